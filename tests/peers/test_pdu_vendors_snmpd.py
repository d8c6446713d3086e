"""Raritan, ServerTech and Eaton PDU drivers against net-snmp ``snmpd`` (a third-party agent).

snmpd serves each vendor's tables through a pass_persist script (``tests/support/pdu_snmpd_tables.py``)
with the vendor's own indexing ({pduId, outletId, sensorType}, {unit, cord, outlet},
{strappingIndex, outletIndex}) and raw integer encodings. Expected values are computed here from
the raw integers with each MIB's scaling written out, so a wrong scale, index or polarity in a
driver map fails a test. The script logs every SET it receives, which lets the tests check the
exact value written (Raritan off = 0, Sentry4 off = 2, Eaton off = OffCmd written with delay 0).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rackval.core.errors import ConfigError, DeviceError, DeviceTimeout
from rackval.drivers.capabilities import Device, Identity, OutletReading, OutletSwitch, PowerMeter
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.pdu.eaton import EatonEpduPdu
from rackval.drivers.pdu.raritan import RaritanPdu2Pdu
from rackval.drivers.pdu.servertech import ServerTechSentry4Pdu
from rackval.drivers.pdu.snmp_pdu import InletReading, SnmpPdu
from tests.support.pdu_snmpd_tables import (
    EATON,
    EATON_IDENT,
    EATON_INPUT,
    EATON_OUTLETS,
    RARITAN,
    RARITAN_IDENT,
    RARITAN_INLET,
    RARITAN_OUTLETS,
    RARITAN_POLES,
    SENTRY4,
    SENTRY4_CORDS,
    SENTRY4_IDENT,
    SENTRY4_OUTLETS,
    SENTRY4_PHASES,
    VENDOR_RW_COMMUNITY,
    VendorTable,
    eaton_table,
    raritan_table,
    sentry4_table,
    start_vendor_snmpd,
)
from tests.support.snmpd_peer import SnmpdPeer

POLL_S = 0.05
DRIVERS: dict[str, type[SnmpPdu]] = {
    "raritan": RaritanPdu2Pdu,
    "sentry4": ServerTechSentry4Pdu,
    "eaton": EatonEpduPdu,
}
VENDORS = list(DRIVERS)


class Bench:
    """The running snmpd and the tables it serves, by vendor name."""

    def __init__(self, peer: SnmpdPeer, tables: dict[str, VendorTable]) -> None:
        self.peer = peer
        self.tables = tables

    def config(self, vendor: str, *, community: str = VENDOR_RW_COMMUNITY, **options: object) -> DeviceConfig:
        return DeviceConfig(
            name=f"pdu-{vendor}",
            kind="pdu",
            driver=vendor,
            host=self.peer.host,
            port=self.peer.port,
            credentials=Credentials(snmp_version="2c", community=Secret(community)),
            options={"poll_interval_s": POLL_S, "confirm_timeout_s": 5.0, **options},
            timeout_s=2.0,
        )

    def driver(self, vendor: str, **options: object) -> SnmpPdu:
        return DRIVERS[vendor](self.config(vendor, **options))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    tables = {"raritan": raritan_table(), "sentry4": sentry4_table(), "eaton": eaton_table()}
    peer = start_vendor_snmpd(tmp_path_factory.mktemp("pdu-snmpd"), list(tables.values()))
    try:
        yield Bench(peer, tables)
    finally:
        peer.stop()


@pytest.fixture
def pdus(bench: Bench) -> Iterator[dict[str, SnmpPdu]]:
    drivers = {vendor: bench.driver(vendor) for vendor in VENDORS}
    yield drivers
    for d in drivers.values():
        d.close()


# ---- expected values, from the raw integers with each MIB's scaling ----------------------------------
def expected_outlets(vendor: str) -> list[OutletReading]:
    if vendor == "raritan":  # value / 10^DecimalDigits, per sensor object
        return [
            OutletReading(n, name, on, p / 10**pd if on else 0.0, c / 10**cd if on else 0.0)
            for n, (name, on, (p, pd), (c, cd)) in sorted(RARITAN_OUTLETS.items())
        ]
    if vendor == "sentry4":  # W; hundredths of A; -1 = not available; flat numbering across cords
        out = []
        for flat, ((_cord, _n), (name, on, watts, amps)) in enumerate(sorted(SENTRY4_OUTLETS.items()), start=1):
            power = None if watts < 0 else (float(watts) if on else 0.0)
            current = None if amps < 0 else (amps / 100 if on else 0.0)
            out.append(OutletReading(flat, name, on, power, current))
        return out
    out = []  # eaton: W (-1 = not available); mA
    for n, (name, on, watts, milliamps) in sorted(EATON_OUTLETS.items()):
        power = None if watts < 0 else (float(watts) if on else 0.0)
        out.append(OutletReading(n, name, on, power, milliamps / 1000 if on else 0.0))
    return out


def expected_inlets(vendor: str) -> list[InletReading]:
    if vendor == "raritan":
        (pw, pwd), (v, vd), (c, cd) = RARITAN_INLET["power"], RARITAN_INLET["voltage"], RARITAN_INLET["current"]
        rows = [InletReading(1, None, v / 10**vd, c / 10**cd, pw / 10**pwd)]
        for pole, ((pv, pvd), (pc, pcd), (pp, ppd)) in sorted(RARITAN_POLES.items()):
            rows.append(InletReading(1, pole, pv / 10**pvd, pc / 10**pcd, pp / 10**ppd))
        return rows
    if vendor == "sentry4":
        rows = []
        for cord, watts in sorted(SENTRY4_CORDS.items()):
            rows.append(InletReading(cord, None, None, None, float(watts)))
            volts, amps, phase_w = SENTRY4_PHASES[(cord, 1)]
            rows.append(InletReading(cord, 1, volts / 10, amps / 100, float(phase_w)))
        return rows
    return [
        InletReading(1, None, None, None, float(EATON_INPUT["total_watts"])),
        InletReading(1, 1, EATON_INPUT["voltage_mv"] / 1000, EATON_INPUT["current_ma"] / 1000, EATON_INPUT["watts"]),
    ]


EXPECTED_IDENT = {"raritan": RARITAN_IDENT, "sentry4": SENTRY4_IDENT, "eaton": EATON_IDENT}
EXPECTED_TOTAL_W = {
    "raritan": RARITAN_INLET["power"][0] / 10 ** RARITAN_INLET["power"][1],
    "sentry4": float(sum(SENTRY4_CORDS.values())),
    "eaton": float(EATON_INPUT["total_watts"]),
}

# (flat outlet to switch, OID written for off, value for off, OID written for on, value for on)
SWITCH_CASES = {
    "raritan": (1, f"{RARITAN}.4.1.2.1.2.1.1", "0", f"{RARITAN}.4.1.2.1.2.1.1", "1"),  # switchingOperation
    # flat outlet 4 = unit 1, cord 2, outlet 1 (cord 1 has three outlets); action off(2) / on(1)
    "sentry4": (4, f"{SENTRY4}.8.5.1.2.1.2.1", "2", f"{SENTRY4}.8.5.1.2.1.2.1", "1"),
    # separate OffCmd / OnCmd objects; the value is a delay in seconds: 0 = now
    "eaton": (2, f"{EATON}.6.6.1.3.0.2", "0", f"{EATON}.6.6.1.4.0.2", "0"),
}


# ---- tests ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
def test_driver_implements_the_pdu_protocols(pdus: dict[str, SnmpPdu], vendor: str) -> None:
    pdu = pdus[vendor]
    assert isinstance(pdu, Device) and isinstance(pdu, PowerMeter) and isinstance(pdu, OutletSwitch)
    assert pdu.name == f"pdu-{vendor}"


@pytest.mark.parametrize("vendor", VENDORS)
def test_identify_reads_the_vendor_mib(pdus: dict[str, SnmpPdu], vendor: str) -> None:
    assert pdus[vendor].identify() == Identity(**EXPECTED_IDENT[vendor])


@pytest.mark.parametrize("vendor", VENDORS)
def test_outlets_are_indexed_and_scaled_like_the_mib(pdus: dict[str, SnmpPdu], vendor: str) -> None:
    got = pdus[vendor].outlets()
    want = expected_outlets(vendor)
    assert [(o.outlet, o.name, o.on) for o in got] == [(o.outlet, o.name, o.on) for o in want]
    for g, w in zip(got, want, strict=True):
        assert g.power_w == (None if w.power_w is None else pytest.approx(w.power_w, abs=1e-9)), g
        assert g.current_a == (None if w.current_a is None else pytest.approx(w.current_a, abs=1e-9)), g


def test_raritan_decimal_digits_are_per_sensor_object(pdus: dict[str, SnmpPdu]) -> None:
    """Outlet 2's power has 1 decimal digit, outlet 1's none: the same raw scale would be wrong."""
    by_n = {o.outlet: o for o in pdus["raritan"].outlets()}
    assert by_n[1].power_w == 1234.0 and by_n[2].power_w == 456.7
    assert by_n[1].current_a == 5.482  # 3 decimal digits


def test_not_available_readings_become_none(pdus: dict[str, SnmpPdu]) -> None:
    sentry = pdus["sentry4"].outlets()[4]  # flat 5 = cord 2 outlet 2, reports -1
    assert (sentry.name, sentry.on, sentry.power_w, sentry.current_a) == ("BA2 console", True, None, None)
    eaton = pdus["eaton"].outlets()[3]  # outletWatts -1
    assert (eaton.name, eaton.power_w, eaton.current_a) == ("pdu-spare", None, 0.0)


@pytest.mark.parametrize("vendor", VENDORS)
def test_power_watts_is_the_inlet_total(pdus: dict[str, SnmpPdu], vendor: str) -> None:
    assert pdus[vendor].power_watts() == pytest.approx(EXPECTED_TOTAL_W[vendor], abs=1e-9)


@pytest.mark.parametrize("vendor", VENDORS)
def test_inlet_and_phase_readings(pdus: dict[str, SnmpPdu], vendor: str) -> None:
    got = pdus[vendor].inlet_readings()
    want = expected_inlets(vendor)
    assert [(r.inlet, r.pole) for r in got] == [(r.inlet, r.pole) for r in want]
    for g, w in zip(got, want, strict=True):
        for field in ("voltage_v", "current_a", "power_w"):
            expected = getattr(w, field)
            assert getattr(g, field) == (None if expected is None else pytest.approx(expected, abs=1e-9)), (g, field)


@pytest.mark.parametrize("vendor", VENDORS)
def test_set_outlet_writes_the_vendor_command_and_waits_for_the_state(bench: Bench, vendor: str) -> None:
    outlet, off_oid, off_value, on_oid, on_value = SWITCH_CASES[vendor]
    table = bench.tables[vendor]
    pdu = bench.driver(vendor)
    try:
        assert pdu.outlets()[outlet - 1].on is True
        already = len(table.sets())
        started = time.monotonic()
        pdu.set_outlet(outlet, False)
        # The agent keeps the old (or a pending) state for a GET or two: the driver must poll.
        assert time.monotonic() - started >= POLL_S
        reading = pdu.outlets()[outlet - 1]
        assert reading.on is False
        assert reading.power_w in (0.0, None)
        pdu.set_outlet(outlet, True)
        assert pdu.outlets()[outlet - 1].on is True
        assert table.sets()[already:] == [(off_oid, "integer", off_value), (on_oid, "integer", on_value)]
    finally:
        pdu.close()


def test_eaton_commands_are_delays_not_booleans(bench: Bench) -> None:
    """Eaton's OffCmd takes seconds-until-off: writing 1 ("true") would switch a second later."""
    pdu = bench.driver("eaton")
    try:
        already = len(bench.tables["eaton"].sets())
        pdu.set_outlet(3, False)
        pdu.set_outlet(3, True)
        written = bench.tables["eaton"].sets()[already:]
        assert [oid for oid, _, _ in written] == [f"{EATON}.6.6.1.3.0.3", f"{EATON}.6.6.1.4.0.3"]
        assert [value for _, _, value in written] == ["0", "0"]  # immediate; never "1"
    finally:
        pdu.close()


def test_eaton_pending_off_reports_on_and_does_not_confirm(bench: Bench) -> None:
    """pendingOff(2) means "still on": with no time to wait, the switch is not confirmed."""
    hasty = bench.driver("eaton", confirm_timeout_s=0)
    patient = bench.driver("eaton")
    try:
        with pytest.raises(DeviceTimeout) as info:
            hasty.set_outlet(1, False)
        message = str(info.value)
        assert "switch outlet 1 off" in message and "outletControlStatus.0.1" in message
        assert "still reports on (switch pending)" in message and "raw 2" in message
        patient.set_outlet(1, True)  # cancels the pending off by switching on again
        assert patient.outlets()[0].on is True
    finally:
        hasty.close()
        patient.close()


@pytest.mark.parametrize("vendor", VENDORS)
def test_no_such_outlet_is_refused_before_any_set(bench: Bench, vendor: str) -> None:
    pdu = bench.driver(vendor)
    try:
        already = len(bench.tables[vendor].sets())
        with pytest.raises(DeviceError, match=r"switch outlet 99 off: no such outlet") as info:
            pdu.set_outlet(99, False)
        assert info.value.device == f"pdu-{vendor}" and info.value.address == f"{bench.peer.host}:{bench.peer.port}"
        assert len(bench.tables[vendor].sets()) == already
    finally:
        pdu.close()


def test_read_only_community_cannot_switch_and_the_error_names_the_object(bench: Bench) -> None:
    pdu = RaritanPdu2Pdu(bench.config("raritan", community=bench.peer.ro_community))
    try:
        with pytest.raises(DeviceError, match=r"switch outlet 2 off \(switchingOperation\.1\.2 = 0\)") as info:
            pdu.set_outlet(2, False)
        assert bench.peer.ro_community not in str(info.value)
        assert pdu.outlets()[1].on is True
    finally:
        pdu.close()


def test_device_index_defaults_follow_each_mib(bench: Bench) -> None:
    assert bench.driver("eaton").device_index == 0  # strappingIndex of a stand-alone unit
    assert bench.driver("raritan").device_index == 1  # pduId
    assert bench.driver("sentry4").device_index == 1  # st4UnitIndex A
    with pytest.raises(ConfigError, match="device_index"):
        bench.driver("raritan", device_index=0)
    with pytest.raises(ConfigError, match="device_index"):
        bench.driver("eaton", device_index=-1)
