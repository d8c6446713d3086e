"""Unit handling for limits: a spec may state kW where a plan measures W.

Only scale conversions within one quantity are done; anything else is a configuration error,
because silently comparing amps with watts is how a wrong rack gets accepted.
"""

from __future__ import annotations

from rackval.core.errors import ConfigError

# unit -> (quantity, factor to the quantity's base unit)
_UNITS: dict[str, tuple[str, float]] = {
    "W": ("power", 1.0),
    "kW": ("power", 1e3),
    "mW": ("power", 1e-3),
    "VA": ("apparent power", 1.0),
    "kVA": ("apparent power", 1e3),
    "A": ("current", 1.0),
    "mA": ("current", 1e-3),
    "V": ("voltage", 1.0),
    "mV": ("voltage", 1e-3),
    "degC": ("temperature", 1.0),
    "K": ("temperature difference", 1.0),
    "%": ("ratio", 1.0),
    "ratio": ("ratio", 100.0),
    "s": ("time", 1.0),
    "ms": ("time", 1e-3),
    "min": ("time", 60.0),
    "Mb/s": ("bit rate", 1.0),
    "Gb/s": ("bit rate", 1e3),
    "rpm": ("rotation", 1.0),
    "count": ("count", 1.0),
    "Wh": ("energy", 1.0),
    "kWh": ("energy", 1e3),
    "L/min": ("volume flow", 1.0),
    "m3/h": ("volume flow", 1000.0 / 60.0),
    "kPa": ("pressure", 1.0),
    "bar": ("pressure", 100.0),
}


def known_units() -> list[str]:
    return sorted(_UNITS)


def convert_optional(value: float | None, from_unit: str, to_unit: str) -> float | None:
    """``convert`` for a figure that may be absent (a one-sided limit, a margin not stored): None stays None."""
    return None if value is None else convert(value, from_unit, to_unit)


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert ``value`` between two units of the same quantity, or raise ConfigError."""
    if from_unit == to_unit:
        return value
    try:
        q_from, f_from = _UNITS[from_unit]
        q_to, f_to = _UNITS[to_unit]
    except KeyError as exc:
        raise ConfigError(f"unknown unit {exc.args[0]!r} (known: {', '.join(known_units())})") from None
    if q_from != q_to:
        raise ConfigError(f"cannot compare {from_unit} ({q_from}) with {to_unit} ({q_to})")
    return value * f_from / f_to
