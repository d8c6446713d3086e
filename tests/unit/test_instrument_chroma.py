"""Chroma66200 and GenericScpiInstrument against a small SCPI meter served over a raw socket.

The meter reuses the simulator's IEEE 488.2 core (``rackval.sim.scpi_server.ScpiInstrument``:
header forms, FIFO error queue, rejected queries that answer nothing) with a Chroma-like FETCh
subsystem whose readings the tests set directly, including NAN and 9.91E+37.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError, NotAvailable
from rackval.drivers.capabilities import AnalyzerReading, Device, Identity, PowerAnalyzer, PowerMeter
from rackval.drivers.config import DeviceConfig
from rackval.drivers.instrument.chroma import Chroma66200
from rackval.drivers.instrument.generic import GenericScpiInstrument
from rackval.sim.scpi_server import E_ILLEGAL_PARAM, ScpiError, ScpiInstrument, ScpiServer


class ChromaMeterSim(ScpiInstrument):
    """A Chroma 66202-like meter: FETC readings from attributes, a settable inrush window."""

    idn = "Chroma ATE,66202,662020001234,1.05"

    def __init__(self) -> None:
        super().__init__()
        self.values = {"VOLT": "230.12", "CURR": "4.2531", "POW": "975.40", "INR": "38.7"}
        self.kw = "0.97540"  # what a kW-reporting meter answers to MEAS:POW?
        self.inrush_window_ms = 0
        self.queries: list[str] = []
        self.add_command(":FETCh:VOLTage:RMS?", lambda p, s: self._reply("VOLT"))
        self.add_command(":FETCh:CURRent:RMS?", lambda p, s: self._reply("CURR"))
        self.add_command(":FETCh:POWer:REAL?", lambda p, s: self._reply("POW"))
        self.add_command(":FETCh:CURRent:INRush?", lambda p, s: self._reply("INR"))
        self.add_command(":MEASure:POWer?", lambda p, s: self.kw)
        self.add_command(":CONFigure:INRush:TIME", self._set_window, params=(1, 1))

    def _reply(self, key: str) -> str:
        self.queries.append(key)
        return self.values[key]

    def _set_window(self, params: list[str], _s: list[int]) -> None:
        value = int(params[0])
        if not 1 <= value <= 1000:
            raise ScpiError(E_ILLEGAL_PARAM, f"{value}")
        self.inrush_window_ms = value


@pytest.fixture
def meter() -> Iterator[tuple[ChromaMeterSim, ScpiServer]]:
    sim = ChromaMeterSim()
    server = ScpiServer(sim, host="127.0.0.1", port=0)
    yield sim, server
    server.stop()


def config(server: ScpiServer, *, timeout_s: float = 2.0, **options: object) -> DeviceConfig:
    return DeviceConfig(
        name="meter-a",
        kind="analyzer",
        driver="chroma-66200",
        host=server.host,
        port=server.port,
        options=options,
        timeout_s=timeout_s,
    )


@pytest.fixture
def chroma(meter: tuple[ChromaMeterSim, ScpiServer]) -> Iterator[Chroma66200]:
    driver = Chroma66200(config(meter[1]))
    yield driver
    driver.close()


def test_chroma_capabilities_and_identity(chroma: Chroma66200) -> None:
    assert isinstance(chroma, Device)
    assert isinstance(chroma, PowerAnalyzer)
    assert isinstance(chroma, PowerMeter)
    assert chroma.identify() == Identity("Chroma ATE", "66202", "662020001234", "1.05")


def test_chroma_read_power_and_inrush(chroma: Chroma66200, meter: tuple[ChromaMeterSim, ScpiServer]) -> None:
    sim, _ = meter
    assert chroma.read() == AnalyzerReading(voltage_v=230.12, current_a=4.2531, power_w=975.40, power_factor=None)
    assert sim.queries == ["VOLT", "CURR", "POW"]
    sim.values["POW"] = "+1.0125E+03"
    assert chroma.power_watts() == pytest.approx(1012.5)
    assert chroma.inrush_current_a() == pytest.approx(38.7)


@pytest.mark.parametrize("bad", ["NAN", "9.91E+37", "-INF"])
def test_chroma_refuses_nan_and_overrange(
    chroma: Chroma66200, meter: tuple[ChromaMeterSim, ScpiServer], bad: str
) -> None:
    meter[0].values["CURR"] = bad
    with pytest.raises(DeviceProtocolError) as info:
        chroma.read()
    message = str(info.value)
    assert "FETC:CURR:RMS?" in message and bad in message and "no valid reading" in message
    assert info.value.device == "meter-a"
    meter[0].values["CURR"] = "4.0"
    assert chroma.read().current_a == 4.0  # the connection survived the refused value


def test_non_numeric_reply_is_a_protocol_error(chroma: Chroma66200, meter: tuple[ChromaMeterSim, ScpiServer]) -> None:
    meter[0].values["POW"] = "OVERLOAD"
    with pytest.raises(DeviceProtocolError) as info:
        chroma.power_watts()
    assert "reply is not a number: 'OVERLOAD'" in str(info.value)


def test_setup_commands_are_checked_against_the_error_queue(meter: tuple[ChromaMeterSim, ScpiServer]) -> None:
    sim, server = meter
    good = Chroma66200(config(server, setup_commands=["CONF:INR:TIME 100"]))
    try:
        sim.push_error(-222, "Data out of range")  # stale error from an earlier session: *CLS clears it
        assert good.inrush_current_a() == pytest.approx(38.7)
        assert sim.inrush_window_ms == 100
    finally:
        good.close()

    sim.queries.clear()
    bad = Chroma66200(config(server, setup_commands=["CONF:INR:TIME 5000", "CONF:BOGUS 1"]))
    try:
        with pytest.raises(DeviceError) as info:
            bad.read()
        message = str(info.value)
        assert "-224" in message and "-113" in message
        assert "CONF:INR:TIME 5000" in message and "meter-a" in message
        assert sim.queries == []  # nothing was read on a meter we failed to configure
    finally:
        bad.close()


def test_rejected_query_is_explained_from_the_error_queue(meter: tuple[ChromaMeterSim, ScpiServer]) -> None:
    _sim, server = meter
    generic = GenericScpiInstrument(config(server, timeout_s=0.4, power_query="MEAS:POW:TOTAL?"))
    try:
        with pytest.raises(DeviceProtocolError) as info:
            generic.power_watts()
        message = str(info.value)
        assert "MEAS:POW:TOTAL?" in message
        assert '-113,"Undefined header' in message
        # the instrument is fine: a valid query on the same driver works afterwards
        assert generic.query_float("FETC:POW:REAL?") == pytest.approx(975.4)
    finally:
        generic.close()


def test_generic_power_meter_with_scale(meter: tuple[ChromaMeterSim, ScpiServer]) -> None:
    _sim, server = meter
    generic = GenericScpiInstrument(config(server, power_query=":MEASure:POWer?", power_scale=1000))
    try:
        assert isinstance(generic, Device) and isinstance(generic, PowerMeter)
        assert not isinstance(generic, PowerAnalyzer)
        assert generic.identify().model == "66202"
        assert generic.power_watts() == pytest.approx(975.4)
    finally:
        generic.close()


def test_generic_without_power_query_says_so(meter: tuple[ChromaMeterSim, ScpiServer]) -> None:
    generic = GenericScpiInstrument(config(meter[1]))
    try:
        with pytest.raises(NotAvailable) as info:
            generic.power_watts()
        assert "no 'power_query' option" in str(info.value) and "meter-a" in str(info.value)
    finally:
        generic.close()


def test_unreachable_meter_names_device_and_address() -> None:
    server = ScpiServer(ChromaMeterSim(), host="127.0.0.1", port=0)
    port = server.port
    server.stop()
    cfg = DeviceConfig(name="meter-b", kind="analyzer", driver="chroma-66200", host="127.0.0.1", port=port, timeout_s=1)
    driver = Chroma66200(cfg)
    try:
        with pytest.raises(DeviceError) as info:
            driver.power_watts()
        assert info.value.device == "meter-b"
        assert info.value.address == f"127.0.0.1:{port}"
    finally:
        driver.close()
