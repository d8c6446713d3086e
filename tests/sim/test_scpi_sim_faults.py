"""Protocol faults on the simulated analyzer, as the Yokogawa driver sees them over SCPI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import DeviceConfig
from rackval.drivers.instrument.yokogawa import YokogawaWtAnalyzer
from rackval.sim.faults import make_fault
from rackval.sim.model import RackModel
from rackval.sim.scpi_server import ScpiServer, start_analyzer_scpi


@pytest.fixture
def rig() -> Iterator[tuple[RackModel, ScpiServer]]:
    model = RackModel()
    server = start_analyzer_scpi(model, "analyzer")
    try:
        yield model, server
    finally:
        server.stop()


def analyzer(server: ScpiServer, timeout_s: float = 1.0) -> YokogawaWtAnalyzer:
    return YokogawaWtAnalyzer(
        DeviceConfig("analyzer", "analyzer", "yokogawa-wt", server.host, server.port, timeout_s=timeout_s)
    )


def test_healthy_reading_then_silent_device_times_out_naming_it(rig: tuple[RackModel, ScpiServer]) -> None:
    model, server = rig
    drv = analyzer(server)
    assert drv.power_watts() > 1000
    model.inject(make_fault("device_silent", "analyzer"))
    with pytest.raises(DeviceTimeout) as err:
        drv.power_watts()
    assert f"analyzer ({server.host}:{server.port})" in str(err.value)
    drv.close()


def test_slow_device_answers_late(rig: tuple[RackModel, ScpiServer]) -> None:
    model, server = rig
    model.inject(make_fault("device_slow", "analyzer", delay_s=0.6))
    with pytest.raises(DeviceTimeout):
        analyzer(server, timeout_s=0.3).identify()
    patient = analyzer(server, timeout_s=3.0)
    assert patient.identify().model == "WT5000"
    patient.close()


def test_queued_scpi_error_is_reported_by_the_check(rig: tuple[RackModel, ScpiServer]) -> None:
    model, server = rig
    model.inject(make_fault("scpi_error", "analyzer", code=-222, message="Data out of range", command=":NUM"))
    with pytest.raises(DeviceError, match=r"-222.*Data out of range"):
        analyzer(server).read()  # the driver checks the queue after configuring :NUMeric


@pytest.mark.parametrize("mode", ["truncate", "garbage", "wrong_length"])
def test_malformed_replies_are_protocol_errors(rig: tuple[RackModel, ScpiServer], mode: str) -> None:
    model, server = rig
    drv = analyzer(server)
    drv.identify()  # configure while healthy, then corrupt the readings
    model.inject(make_fault("malformed_reply", "analyzer", mode=mode))
    with pytest.raises(DeviceProtocolError) as err:
        drv.read()
    assert "analyzer" in str(err.value)
    drv.close()
