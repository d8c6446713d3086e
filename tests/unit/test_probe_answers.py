"""``rackval probe`` tells what each device said: answered, answered with an error, not available,
no answer; every reading attempted; outlet power totals say how many outlets are metered.

Fake drivers (real capability Protocols, no network) so each case is exactly one situation; the
same rules against real peers are in tests/peers/test_pdu_snmpsim.py (APC rPDU2 without outlet
meters), tests/peers/test_bmc_ipmi_sim.py (a BMC without FRU, SDRs and DCMI) and
tests/sim/test_probe.py (the simulated rack with a dead BMC and a wrong community).
"""

from __future__ import annotations

import socket
import ssl

import pytest

from rackval.core.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceTimeout, NotAvailable
from rackval.drivers.capabilities import Bmc, Device, Identity, OutletReading, OutletSwitch, PowerMeter
from rackval.harness.probe import (
    ANSWERED,
    ANSWERED_WITH_ERROR,
    ERROR,
    NO_ANSWER,
    NOT_AVAILABLE,
    NOT_SUPPORTED,
    DeviceProbe,
    answer_of,
    probe_driver,
)
from rackval.harness.readers import readings_text

ADDRESS = "127.0.0.1:161"


def _fail(device: str, operation: str, cls: type[DeviceError] = DeviceError, detail: str = "x") -> DeviceError:
    return cls(device, ADDRESS, operation, detail)


class FakePdu(Device, PowerMeter, OutletSwitch):
    name = "pdu-x"

    def __init__(self, outlets: list[OutletReading], total: float | Exception, ident: Exception | None = None) -> None:
        self._outlets, self._total, self._ident = outlets, total, ident
        self.calls: list[str] = []

    def identify(self) -> Identity:
        self.calls.append("identify")
        if self._ident is not None:
            raise self._ident
        return Identity("APC", "AP7902B", "5A1551F39430", "6.7.2")

    def close(self) -> None:
        pass

    def power_watts(self) -> float:
        self.calls.append("power")
        if isinstance(self._total, Exception):
            raise self._total
        return self._total

    def outlets(self) -> list[OutletReading]:
        self.calls.append("outlets")
        return self._outlets

    def set_outlet(self, outlet: int, on: bool) -> None:  # pragma: no cover - the probe never switches
        raise AssertionError("the probe switched an outlet")


class FakeBmc(Device, Bmc, PowerMeter):
    name = "bmc-x"

    def __init__(self, power: float | Exception, temps: dict[str, float] | Exception) -> None:
        self._power, self._temps = power, temps

    def identify(self) -> Identity:
        return Identity("Rackval Labs", "", "", "2.15")

    def close(self) -> None:
        pass

    def power_watts(self) -> float:
        if isinstance(self._power, Exception):
            raise self._power
        return self._power

    def power_state(self) -> str:
        return "On"

    def temperatures(self) -> dict[str, float]:
        if isinstance(self._temps, Exception):
            raise self._temps
        return self._temps


def _probe(driver: object) -> DeviceProbe:
    return probe_driver(driver, DeviceProbe(getattr(driver, "name", "x"), "pdu", "fake", ADDRESS))


def _outlets(n: int, metered: int) -> list[OutletReading]:
    return [OutletReading(i, f"o{i}", i % 2 == 1, 100.0 + i if i <= metered else None, None) for i in range(1, n + 1)]


def test_pdu_without_outlet_meters_answers_every_state_and_says_power_is_not_available() -> None:
    total = NotAvailable("pdu-x", ADDRESS, "read total power (rPDU2DeviceStatusPower.1)", "it reads -1 (not available)")
    pdu = FakePdu(_outlets(16, 0), total)
    probe = _probe(pdu)
    assert probe.status == ANSWERED and probe.ok and probe.errors == []
    assert probe.steps == {"identify": ANSWERED, "power": NOT_AVAILABLE, "outlets": ANSWERED}
    assert probe.not_available == {"power": str(total)}
    outlets = probe.readings["outlets"]
    assert (outlets["count"], outlets["on"], outlets["metered"], outlets["total_w"]) == (16, 8, 0, None)
    assert outlets["states"] == {"on": "1,3,5,7,9,11,13,15", "off": "2,4,6,8,10,12,14,16"}
    text = readings_text(probe.readings, probe.not_available)
    assert "power: not available on this device" in text
    assert "outlet power: not available on this device" in text
    assert "0.0 W" not in text
    assert probe.to_json()["not_available"] == {"power": str(total)}


def test_partly_metered_pdu_says_how_many_outlets_the_total_covers() -> None:
    probe = _probe(FakePdu(_outlets(11, 9), 1234.0))
    outlets = probe.readings["outlets"]
    assert (outlets["metered"], outlets["total_w"]) == (9, sum(100.0 + i for i in range(1, 10)))
    assert f"{outlets['total_w']:.1f} W (9 of 11 outlets metered)" in readings_text(probe.readings)
    fully = _probe(FakePdu(_outlets(4, 4), 410.0))
    assert "metered" not in readings_text(fully.readings).split("power")[-1]


def test_bmc_without_dcmi_still_reads_power_state_and_temperatures() -> None:
    dcmi = NotAvailable("bmc-x", ADDRESS, "read power (ipmitool dcmi power reading)", "BMC does not support DCMI")
    probe = _probe(FakeBmc(dcmi, {"CPU0 Temp": 45.0}))
    assert probe.status == ANSWERED and probe.ok
    assert probe.readings["power_state"] == {"state": "On"}
    assert probe.readings["temperatures"]["max_c"] == 45.0
    no_sdr = _probe(FakeBmc(dcmi, {}))  # no SDR repository: no temperature sensor, not an error
    assert no_sdr.ok and "temperatures: not available on this device" in readings_text(no_sdr.readings)


def test_a_failing_reading_skips_nothing() -> None:
    broken = _fail("bmc-x", "read power (GET /redfish/v1/Chassis/1/Power)", DeviceProtocolError, "not JSON")
    probe = _probe(FakeBmc(broken, {"Inlet Temp": 24.0}))
    assert probe.status == ANSWERED_WITH_ERROR and probe.answered and not probe.ok
    assert [e.step for e in probe.errors] == ["power"] and probe.errors[0].message == str(broken)
    assert set(probe.readings) == {"power_state", "temperatures"}


@pytest.mark.parametrize(
    "exc",
    [
        _fail("pdu-x", "identify", DeviceAuthError, "HTTP 401 Unauthorized (credentials or session refused)"),
        _fail("pdu-x", "identify", DeviceAuthError, "TLS certificate did not verify (option 'verify')"),
        _fail("pdu-x", "read FRU 0 (ipmitool fru print 0)", DeviceError, "ipmitool exited 1: Device not present"),
    ],
    ids=["http-401", "tls", "ipmi-completion-code"],
)
def test_an_error_the_device_answered_is_not_no_answer(exc: DeviceError) -> None:
    pdu = FakePdu(_outlets(2, 2), 20.0, ident=exc)
    probe = _probe(pdu)
    assert probe.answered and probe.status == ANSWERED_WITH_ERROR
    assert probe.errors[0].answer == ERROR and probe.errors[0].message == str(exc)  # verbatim
    assert pdu.calls == ["identify", "power", "outlets"]  # every reading still attempted


def test_a_device_that_has_none_of_it_is_not_supported() -> None:
    absent = NotAvailable("pdu-x", ADDRESS, "read", "the agent does not have it")
    pdu = FakePdu(_outlets(1, 0), absent, ident=absent)
    pdu.outlets = lambda: (_ for _ in ()).throw(absent)  # type: ignore[method-assign]
    probe = _probe(pdu)
    assert probe.status == NOT_SUPPORTED and probe.answered and not probe.ok and probe.errors == []


def _raised_from(cause: BaseException) -> DeviceError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise DeviceError("d", ADDRESS, "op", f"cannot connect: {exc}") from exc
    except DeviceError as err:
        return err


@pytest.mark.parametrize(
    ("exc", "answer"),
    [
        (_raised_from(ConnectionRefusedError(111, "Connection refused")), NO_ANSWER),
        (_raised_from(socket.gaierror(-2, "Name or service not known")), NO_ANSWER),
        (_raised_from(OSError(113, "No route to host")), NO_ANSWER),
        (_raised_from(ssl.SSLCertVerificationError(1, "certificate verify failed")), ERROR),
        (_raised_from(ConnectionResetError(104, "Connection reset by peer")), ERROR),
        (DeviceError("d", ADDRESS, "op", "ipmitool exited 1: Invalid command"), ERROR),
        (DeviceTimeout("d", ADDRESS, "op", "no answer within 1 s"), NO_ANSWER),
        (NotAvailable("d", ADDRESS, "op", "not there"), NOT_AVAILABLE),
        (KeyError("driver bug"), ERROR),
    ],
)
def test_answer_of_tells_no_answer_from_an_answered_error(exc: BaseException, answer: str) -> None:
    assert answer_of(exc) == answer
