"""Counter arithmetic: what grew between two polls of a switch's raw port counters.

Switch counters are cumulative and wrap (Counter32 / Counter64), and devices re-initialise them
(a line-card reset, an agent restart) without warning, so a raw value means something only as a
difference between two polls, and the difference is wrong unless wraps and resets are told apart.
This lives beside the records (not in one switch driver) because it works for any driver
returning ``PortCounters`` (SNMP, EOS, SONiC) and plans use it directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from rackval.drivers.capabilities.records import PortCounterDelta, PortCounters

_OCTET_FIELDS = ("in_octets", "out_octets")
_ERROR_FIELDS = ("in_errors", "out_errors", "in_discards", "out_discards")


def counter_delta(previous: int, current: int, bits: int) -> int | None:
    """Growth of a ``bits``-wide wrapping counter from ``previous`` to ``current``.

    A counter that went backwards either wrapped or was reset. A wrap is accepted only if it
    explains the change with less than half the counter's range (serial-number arithmetic,
    RFC 1982); otherwise ``None``: the counter was re-initialised and the growth is unknown.
    For Counter64 that means any backwards step not near 2**64 is a reset (a 400G port needs
    ~11 years to wrap 64 bits); Counter32 octet counters can wrap in well under a second at
    these speeds, which is why the SNMP switch driver reads the 64-bit ifHC counters.
    """
    if bits <= 0:
        raise ValueError("bits must be positive")
    modulus = 1 << bits
    if not (0 <= previous < modulus and 0 <= current < modulus):
        raise ValueError(f"counter value out of range for {bits} bits: {previous} -> {current}")
    if current >= previous:
        return current - previous
    wrapped = modulus - previous + current
    return wrapped if wrapped < (modulus >> 1) else None


def port_delta(previous: PortCounters, current: PortCounters, interval_s: float) -> PortCounterDelta:
    """Deltas between two polls of one port; ``reset`` (and all counts None) if counters restarted."""
    reset = (
        (previous.discontinuity is not None and previous.discontinuity != current.discontinuity)
        or (previous.uptime_s is not None and current.uptime_s is not None and current.uptime_s < previous.uptime_s)
        or previous.octet_bits != current.octet_bits
        or previous.error_bits != current.error_bits
    )
    deltas: dict[str, int | None] = {}
    for field in _OCTET_FIELDS + _ERROR_FIELDS:
        bits = current.octet_bits if field in _OCTET_FIELDS else current.error_bits
        before, after = getattr(previous, field), getattr(current, field)
        if before is None or after is None:
            deltas[field] = None
            continue
        delta = counter_delta(before, after, bits)
        if delta is None:
            reset = True
        deltas[field] = delta
    if reset:
        deltas = dict.fromkeys(deltas)
    return PortCounterDelta(name=current.name, interval_s=interval_s, reset=reset, **deltas)


class CounterTracker:
    """Remembers the last poll of each port and returns what grew since then.

    Use one tracker per switch: ``tracker.update(switch.counters())`` returns ``{}`` the first
    time (a baseline) and then ``{port: PortCounterDelta}`` for ports present in both polls.
    A port seen for the first time only becomes a baseline. Works for any driver returning
    ``PortCounters`` (SNMP, EOS). ``clock`` is injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, tuple[float, PortCounters]] = {}

    def update(self, counters: Iterable[PortCounters], at: float | None = None) -> dict[str, PortCounterDelta]:
        now = self._clock() if at is None else at
        result: dict[str, PortCounterDelta] = {}
        latest: dict[str, tuple[float, PortCounters]] = {}
        for current in counters:
            latest[current.name] = (now, current)
            seen = self._last.get(current.name)
            if seen is not None:
                result[current.name] = port_delta(seen[1], current, now - seen[0])
        self._last = latest
        return result
