"""Counter arithmetic (rackval.drivers.capabilities.counters): wraps, resets and the per-switch tracker."""

from __future__ import annotations

import pytest

from rackval.drivers.capabilities import CounterTracker, PortCounters, counter_delta, port_delta


@pytest.mark.parametrize(
    ("previous", "current", "bits", "expected"),
    [
        (100, 250, 64, 150),
        (7, 7, 64, 0),
        (2**64 - 1, 0, 64, 1),
        (2**64 - 100, 50, 64, 150),
        (10**12, 10**3, 64, None),  # backwards, far from the top: a reset, not a wrap
        (2**32 - 1, 4, 32, 5),
        (4_000_000_000, 100_000_000, 32, 2**32 - 4_000_000_000 + 100_000_000),
        (1_000_000_000, 500_000_000, 32, None),  # would need 3.8e9 of growth: reset
        (0, 2**32 - 1, 32, 2**32 - 1),  # forward movement is never a reset
    ],
)
def test_counter_delta(previous: int, current: int, bits: int, expected: int | None) -> None:
    assert counter_delta(previous, current, bits) == expected


def test_counter_delta_rejects_values_wider_than_the_counter() -> None:
    with pytest.raises(ValueError):
        counter_delta(0, 2**32, 32)
    with pytest.raises(ValueError):
        counter_delta(-1, 0, 64)


def test_port_delta_missing_fields_and_width_change() -> None:
    a = PortCounters("e1", 10, 10, None, 0, octet_bits=64, error_bits=32)
    b = PortCounters("e1", 30, 15, 4, 1, octet_bits=64, error_bits=32)
    d = port_delta(a, b, 5.0)
    assert (d.reset, d.in_octets, d.out_octets, d.in_errors, d.out_errors) == (False, 20, 5, None, 1)
    c = PortCounters("e1", 40, 20, 4, 1, octet_bits=32, error_bits=32)  # agent switched to 32-bit
    assert port_delta(b, c, 5.0).reset is True


def test_tracker_baselines_new_ports_and_forgets_gone_ones() -> None:
    tracker = CounterTracker(clock=iter([1.0, 2.0, 3.0]).__next__)
    tracker.update([PortCounters("a", 1, 1, 0, 0)])
    assert set(tracker.update([PortCounters("a", 2, 2, 0, 0), PortCounters("b", 5, 5, 0, 0)])) == {"a"}
    third = tracker.update([PortCounters("b", 9, 9, 0, 0)])
    assert set(third) == {"b"} and third["b"].in_octets == 4 and third["b"].interval_s == 1.0
