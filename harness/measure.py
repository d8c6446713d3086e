"""Measurements that carry their limits: value, unit, limits, margin and outcome, judged once.

Shaped after OpenHTF's validators and test record, but flat: a measurement is judged when it is
recorded, and the record is what the store, the report and the comparisons read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum

from harness.units import convert


class Outcome(StrEnum):
    """pass: inside the limits with room; marginal: inside but within the marginal band of a
    limit; fail: outside; info: recorded without limits."""

    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True)
class Limit:
    """Acceptance limits for one requirement, in ``unit``.

    ``marginal`` is the fraction of the reference (the limit's magnitude for one-sided limits, the
    span for two-sided ones) inside which a passing value is flagged marginal: a value that
    passes by 1 % today fails on the next unit.
    """

    low: float | None = None
    high: float | None = None
    unit: str = ""
    marginal: float = 0.05
    requirement: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.low is None and self.high is None:
            raise ValueError(f"limit {self.requirement or '?'} has neither low nor high")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"limit {self.requirement or '?'}: low {self.low} > high {self.high}")

    def in_unit(self, unit: str) -> Limit:
        """The same limit expressed in ``unit`` (raises ConfigError for incompatible units)."""
        if unit == self.unit:
            return self
        return Limit(
            low=None if self.low is None else convert(self.low, self.unit, unit),
            high=None if self.high is None else convert(self.high, self.unit, unit),
            unit=unit,
            marginal=self.marginal,
            requirement=self.requirement,
            description=self.description,
        )

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g} .. {self.high:g} {self.unit}"
        if self.high is not None:
            return f"<= {self.high:g} {self.unit}"
        return f">= {self.low:g} {self.unit}"

    def judge(self, value: float) -> tuple[Outcome, float]:
        """Outcome and margin (signed distance to the nearest limit; negative = outside)."""
        if math.isnan(value):
            return Outcome.FAIL, math.nan
        distances = []
        if self.high is not None:
            distances.append(self.high - value)
        if self.low is not None:
            distances.append(value - self.low)
        margin = min(distances)
        if margin < 0:
            return Outcome.FAIL, margin
        if self.low is not None and self.high is not None:
            reference = self.high - self.low
        else:
            reference = abs(self.high if self.high is not None else self.low)  # type: ignore[arg-type]
        if reference > 0 and margin < self.marginal * reference:
            return Outcome.MARGINAL, margin
        return Outcome.PASS, margin


@dataclass(frozen=True)
class Measurement:
    """One recorded value with everything needed to judge, report and compare it later."""

    name: str
    value: float
    unit: str
    outcome: Outcome
    low: float | None = None
    high: float | None = None
    margin: float | None = None
    requirement: str = ""
    device: str = ""
    channel: str = ""
    recorded_at: float = field(default_factory=time.time)
    clock_s: float | None = None

    @classmethod
    def judged(
        cls,
        name: str,
        value: float,
        unit: str,
        limit: Limit | None = None,
        *,
        device: str = "",
        channel: str = "",
        clock_s: float | None = None,
    ) -> Measurement:
        value = float(value)
        if limit is None:
            return cls(name, value, unit, Outcome.INFO, device=device, channel=channel, clock_s=clock_s)
        limit = limit.in_unit(unit)
        outcome, margin = limit.judge(value)
        return cls(
            name,
            value,
            unit,
            outcome,
            low=limit.low,
            high=limit.high,
            margin=margin,
            requirement=limit.requirement,
            device=device,
            channel=channel,
            clock_s=clock_s,
        )

    def describe(self) -> str:
        """One line for an assertion message: what, where, value, limits, outcome."""
        where = f" on {self.device}" if self.device else ""
        chan = f" [{self.channel}]" if self.channel else ""
        limits = ""
        if self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "+inf" if self.high is None else f"{self.high:g}"
            limits = f" (limits {lo} .. {hi} {self.unit}, margin {self.margin:+.4g} {self.unit})"
        req = f" requirement {self.requirement}:" if self.requirement else ""
        value = f"{self.value:.6g} {self.unit}"
        return f"{self.outcome.value.upper()}:{req} {self.name}{where}{chan} = {value}{limits}"
