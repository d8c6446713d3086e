"""How a number reads in the report: in the unit the spec states, with sensible significant
digits, and a margin both in that unit and in % of the limit.

Why: a plan measures rack power in W because that is what the analyzer answers, while the spec
says kW; a report that prints ``202379`` W against a limit of ``225000`` and a margin of
``+1.77e+04`` makes the reader do the conversion. So each measurement is shown in its
requirement's spec unit (``RunData.spec_units``: the units the run recorded, or its spec file),
converted with ``rackval.harness.units``; a quantity without a spec unit is shown as measured,
except watts of 10 kW and more, which read as kW. Numbers get ``SIGNIFICANT`` significant digits
and never an exponent between 1e-4 and 1e9 (integers keep all their digits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rackval.core.errors import ConfigError
from rackval.harness.measure import Measurement, reference_of
from rackval.harness.units import convert, convert_optional

SIGNIFICANT = 5
AUTO_UNITS: dict[str, tuple[float, str]] = {"W": (10_000.0, "kW"), "Wh": (10_000.0, "kWh"), "VA": (10_000.0, "kVA")}
"""A unit with no spec unit to follow: from this magnitude on, show it in the larger unit."""


def readable(value: float | None, significant: int = SIGNIFICANT, *, sign: bool = False) -> str:
    """``value`` with ``significant`` digits, no exponent in the range people read (1e-4 .. 1e9),
    integers in full; '' for None, spelled out for NaN and infinities."""
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    plus = "+" if sign and value > 0 else ""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 9 or magnitude < -4:
        return format(value, f"{'+' if sign else ''}.{significant}g")
    decimals = max(0, significant - 1 - magnitude)
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return plus + ("0" if text in ("-0", "") else text)


def display_unit(unit: str, magnitude: float | None, spec_unit: str = "") -> str:
    """The unit to show a quantity measured in ``unit`` in: the spec's when it converts, else the
    larger unit of ``AUTO_UNITS`` for large magnitudes, else ``unit``."""
    if spec_unit and spec_unit != unit:
        try:
            convert(1.0, unit, spec_unit)
            return spec_unit
        except ConfigError:
            return unit
    if spec_unit:
        return unit
    auto = AUTO_UNITS.get(unit)
    if auto and magnitude is not None and math.isfinite(magnitude) and abs(magnitude) >= auto[0]:
        return auto[1]
    return unit


@dataclass(frozen=True)
class Shown:
    """A measurement as the report shows it: every number in ``unit``, ready-formatted."""

    value: str
    low: str
    high: str
    margin: str
    margin_pct: str
    unit: str

    @property
    def limits(self) -> str:
        """``low .. high``, ``≤ high`` or ``≥ low``; '' without limits."""
        return self.bounds()

    def bounds(self, at_most: str = "≤", at_least: str = "≥") -> str:
        """``limits`` with other signs (the terminal writes ``<=`` and ``>=``)."""
        if self.low and self.high:
            return f"{self.low} .. {self.high}"
        if self.high:
            return f"{at_most} {self.high}"
        if self.low:
            return f"{at_least} {self.low}"
        return ""


def shown(m: Measurement, spec_units: dict[str, str]) -> Shown:
    """``m`` in its requirement's spec unit (or as measured), with its margin in % of the limit
    reference (the span of a two-sided limit, the limit's magnitude for a one-sided one)."""
    value = m.value if m.value is not None else math.nan
    unit = display_unit(m.unit, value, spec_units.get(m.requirement, ""))
    reference = reference_of(m.low, m.high)
    pct = None if m.margin is None or not reference else 100.0 * m.margin / reference
    return Shown(
        value=readable(convert_optional(value, m.unit, unit)),
        low=readable(convert_optional(m.low, m.unit, unit)),
        high=readable(convert_optional(m.high, m.unit, unit)),
        margin=readable(convert_optional(m.margin, m.unit, unit), sign=True),
        margin_pct="" if pct is None else f"{readable(pct, 3, sign=True)} %",
        unit=unit,
    )
