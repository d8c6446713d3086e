"""Measurements that carry their limits: value, unit, limits, margin and outcome, judged once.

Shaped after OpenHTF's validators and test record, but flat: a measurement is judged when it is
recorded, and the record is what the store, the report and the comparisons read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum

from rackval.core.printable import printable
from rackval.harness.units import convert

_new = object.__new__
_set = object.__setattr__
_now = time.time


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
        for bound in (self.low, self.high, self.marginal):
            if bound is not None and not math.isfinite(bound):  # NaN compares false: all would pass
                raise ValueError(f"limit {self.requirement or '?'}: {bound} is not a finite number")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"limit {self.requirement or '?'}: low {self.low} > high {self.high}")
        # Not a field (equality, repr and hashing ignore it): this limit converted to other units,
        # because a plan measuring W against a spec in kW converts on every measurement otherwise.
        object.__setattr__(self, "_in_units", {})

    def in_unit(self, unit: str) -> Limit:
        """The same limit expressed in ``unit`` (raises ConfigError for incompatible units)."""
        if unit == self.unit:
            return self
        converted: dict[str, Limit] = self._in_units  # type: ignore[attr-defined]
        limit = converted.get(unit)
        if limit is None:
            limit = converted[unit] = Limit(
                low=None if self.low is None else convert(self.low, self.unit, unit),
                high=None if self.high is None else convert(self.high, self.unit, unit),
                unit=unit,
                marginal=self.marginal,
                requirement=self.requirement,
                description=self.description,
            )
        return limit

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g} .. {self.high:g} {self.unit}"
        if self.high is not None:
            return f"<= {self.high:g} {self.unit}"
        return f">= {self.low:g} {self.unit}"

    def margin_pct(self, value: float) -> float | None:
        """The margin ``judge`` gives, in % of the reference the marginal band uses (the span of a
        two-sided limit, the magnitude of a one-sided one); None when that reference is 0."""
        _, margin = self.judge(value)
        reference = reference_of(self.low, self.high)
        return 100.0 * margin / reference if reference else None

    def judge(self, value: float) -> tuple[Outcome, float]:
        """Outcome and margin (signed distance to the nearest limit; negative = outside)."""
        # Written out branch by branch: it runs once per measurement (see bench/bench_store.py).
        if value != value:  # NaN: a lost reading fails
            return Outcome.FAIL, math.nan
        low, high = self.low, self.high
        if high is None:
            margin = value - low  # type: ignore[operator]
            reference = abs(low)  # type: ignore[arg-type]
        elif low is None:
            margin = high - value
            reference = abs(high)
        else:
            above, below = high - value, value - low
            margin = above if above <= below else below
            reference = high - low
        if margin < 0:
            return Outcome.FAIL, margin
        if reference > 0 and margin < self.marginal * reference:
            return Outcome.MARGINAL, margin
        return Outcome.PASS, margin


@dataclass(frozen=True)
class Measurement:
    """One recorded value with everything needed to judge, report and compare it later; ``key``
    identifies it across runs."""

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
    # Free text beside the key: how it was measured ("mean of the last 449 s", "setpoint 2800 W").
    # ``channel`` is an id (a sensor, an outlet, a node) that stays the same from run to run, so
    # (requirement or name, device, channel) identifies a measurement across runs: ``key``.
    detail: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """The measurement's identity across runs: (requirement or name, device, channel); free
        text lives in ``detail``, so compare, trend and rollups join on this alone."""
        return (self.requirement or self.name, self.device, self.channel)

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
        detail: str = "",
    ) -> Measurement:
        """Judge ``value`` (in ``unit``) against ``limit`` (converted to ``unit``); no limit: info."""
        value = float(value)
        if limit is None:
            outcome, low, high, margin, requirement = Outcome.INFO, None, None, None, ""
        else:
            if limit.unit != unit:
                limit = limit.in_unit(unit)
            outcome, margin = limit.judge(value)
            low, high, requirement = limit.low, limit.high, limit.requirement
        if cls is not Measurement:  # a subclass may add fields or checks: take the normal road
            return cls(name, value, unit, outcome, low, high, margin, requirement, device, channel, clock_s=clock_s,
                       detail=detail)  # fmt: skip
        # The fast road for the hot path (one call per measurement): a frozen dataclass's
        # __init__ sets each of its 12 fields through object.__setattr__, which costs more than
        # the judging itself. Filling __dict__ at once yields the identical object.
        m = _new(Measurement)
        _set(m, "__dict__", {
            "name": name, "value": value, "unit": unit, "outcome": outcome, "low": low, "high": high,
            "margin": margin, "requirement": requirement, "device": device, "channel": channel,
            "recorded_at": _now(), "clock_s": clock_s, "detail": detail,
        })  # fmt: skip
        return m

    def describe(self) -> str:
        """One line for an assertion message: what, where, value, limits, outcome (names and channels
        may be device text, e.g. a sensor's name: terminal-safe)."""
        where = f" on {self.device}" if self.device else ""
        chan = f" [{self.channel}]" if self.channel else ""
        if self.detail:
            chan += f" ({self.detail})"
        limits = ""
        if self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "+inf" if self.high is None else f"{self.high:g}"
            limits = f" (limits {lo} .. {hi} {self.unit}, margin {self.margin:+.4g} {self.unit})"
        req = f" requirement {self.requirement}:" if self.requirement else ""
        value = f"{self.value:.6g} {self.unit}"
        return printable(f"{self.outcome.value.upper()}:{req} {self.name}{where}{chan} = {value}{limits}")


def reference_of(low: float | None, high: float | None) -> float | None:
    """The quantity a margin is normalised by, as ``Limit.judge`` uses it for marginal bands:
    the span for two-sided limits, the limit's magnitude for one-sided ones."""
    if low is not None and high is not None:
        return high - low
    if high is not None:
        return abs(high)
    if low is not None:
        return abs(low)
    return None


def limit_reference(m: Measurement) -> float | None:
    """``reference_of`` a recorded measurement's limits."""
    return reference_of(m.low, m.high)


def measurement_margin(m: Measurement) -> float | None:
    """The stored margin, or (for records written without one) the distance to the nearest limit."""
    if m.margin is not None:
        return m.margin
    distances = []
    if m.high is not None:
        distances.append(m.high - m.value)
    if m.low is not None:
        distances.append(m.value - m.low)
    return min(distances) if distances else None
