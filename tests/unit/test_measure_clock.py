"""The ``measure`` fixture stamps each measurement with the run clock (``clock_s``), so exports and
plots line measurements up with telemetry samples; a clock that cannot be read leaves it empty."""

from __future__ import annotations

from typing import Any

import pytest

from rackval.core.errors import DeviceError
from rackval.harness.measure import Measurement
from rackval.harness.plugin.fixtures import MeasureRecorder
from rackval.harness.plugin.run import RackvalRun


class _Clock:
    def __init__(self, reading: float | None) -> None:
        self.reading = reading

    def now(self) -> float:
        if self.reading is None:
            raise DeviceError("simulator control", "127.0.0.1:1", "GET /clock", "connection refused")
        return self.reading

    def sleep(self, seconds: float) -> None:  # pragma: no cover - not used here
        raise AssertionError


class _Run:
    """What MeasureRecorder uses of a RackvalRun, with RackvalRun's own clock_now."""

    clock_now = RackvalRun.clock_now

    def __init__(self, reading: float | None) -> None:
        self._clock = _Clock(reading)
        self.recorded: list[Measurement] = []

    def clock(self) -> _Clock:
        return self._clock

    def record(self, nodeid: str, m: Measurement) -> None:
        self.recorded.append(m)


@pytest.mark.parametrize(("reading", "expected"), [(1234.5, 1234.5), (None, None)])
def test_measure_records_the_run_clock(reading: float | None, expected: float | None) -> None:
    run: Any = _Run(reading)
    m = MeasureRecorder(run, "test_x.py::test_y")("inlet", 24.0, "degC", device="node-1")
    assert m.clock_s == expected and run.recorded == [m]
