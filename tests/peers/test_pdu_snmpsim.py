"""SNMP PDU drivers against snmpsim (a third-party agent) serving recordings of real and simulated units.

Real units, from PyPI snmpsim-data: APC AP7902B (switched rPDU2 without outlet meters; its unit
total reads -1), AP8932 (switched, no outlet meters, metered total) and AP8641 (switched and
metered by outlet). Ours (tests/data/snmprec): an AP7921B-style switched rPDU2 without the
metered-outlet table, and one recording of every vendor map the simulator serves (APC rPDU2,
Raritan PDU2, ServerTech Sentry4, Eaton ePDU), each also served with its outlet meter columns
taken out. Expected values are read from the recordings, not remembered.

The done-when of "Devices in the wild": an APC rPDU2 with no outlet meters reports every
outlet's state, its outlet power is None ("not available"), and nothing raises.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rackval.core.errors import DeviceProtocolError, NotAvailable
from rackval.drivers import registry
from rackval.drivers.pdu import apc
from rackval.drivers.pdu.apc import ApcRpdu2Pdu
from rackval.drivers.pdu.snmp_pdu import SnmpPdu
from rackval.drivers.transport.snmp import SnmpTransport
from rackval.harness.probe import main as probe_main
from rackval.sim import pdu_vendors
from tests.support.snmpsim_peer import SnmpSim, ours, read_snmprec, shipped, without_columns

UNMETERED = ("apc-ap7902b", "apc-ap8932", "apc/ap7921b-switched-not-metered")
SIM_VENDORS = {v.driver: v.map for v in pdu_vendors.vendors()}
NO_METERS = "-no-outlet-meters"
NO_SERIAL = "apc/ap7921b-without-serial"


def _meter_columns(driver: str) -> tuple[str, ...]:
    m = SIM_VENDORS[driver]
    readings = [r for r in (m.outlet_power_w, m.outlet_current_a) if r is not None]
    return tuple(r.oid.template.split("{", 1)[0] for r in readings)


@pytest.fixture(scope="module")
def snmpsim_extra(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every simulated vendor's recording once more, with its outlet meter columns taken out."""
    folder = tmp_path_factory.mktemp("snmprec-derived")
    recorded = ours()
    derived = {
        f"rackval-sim/{driver}{NO_METERS}": without_columns(
            recorded[f"rackval-sim/{driver}"], _meter_columns(driver), folder / f"{driver}.snmprec"
        )
        for driver in SIM_VENDORS
    }
    serial = (f"{apc.IDENT_SERIAL_NUMBER}.",)
    derived[NO_SERIAL] = without_columns(recorded[UNMETERED[2]], serial, folder / "no-serial.snmprec")
    return derived


def _recording(community: str) -> dict[str, str | int | None]:
    if community in ours():
        return read_snmprec(ours()[community])
    return read_snmprec(shipped(community))


def _apc(snmpsim: SnmpSim, community: str) -> ApcRpdu2Pdu:
    return ApcRpdu2Pdu(snmpsim.config(community, name=community.replace("/", "-"), kind="pdu", driver="apc-rpdu2"))


def _column(recording: dict[str, str | int | None], prefix: str) -> dict[int, str | int | None]:
    """{last index: value} of one column of a recording."""
    return {int(oid.rsplit(".", 1)[1]): v for oid, v in recording.items() if oid.rsplit(".", 1)[0] == prefix}


def test_get_with_missing_ok_keeps_what_the_agent_has(snmpsim: SnmpSim) -> None:
    state, power = f"{apc.OUTLET_SWITCHED_STATUS_STATE}.1", f"{apc.OUTLET_METERED_STATUS_POWER}.1"
    with SnmpTransport(snmpsim.config("apc-ap7902b", name="ap7902b", kind="pdu", driver="apc-rpdu2")) as t:
        with pytest.raises(DeviceProtocolError, match=r"noSuch\w+ for rPDU2OutletMeteredStatusPower\.1"):
            t.get([state, power], labels={power: "rPDU2OutletMeteredStatusPower.1"})
        got = t.get([state, power], missing_ok=True)
    assert list(got) == [state] and got[state] in (apc.STATE_ON, apc.STATE_OFF)


@pytest.mark.parametrize("community", UNMETERED)
def test_switched_pdu_without_outlet_meters_reports_every_outlet(snmpsim: SnmpSim, community: str) -> None:
    recording = _recording(community)
    names = _column(recording, apc.OUTLET_SWITCHED_STATUS_NAME)
    states = _column(recording, apc.OUTLET_SWITCHED_STATUS_STATE)
    assert not _column(recording, apc.OUTLET_METERED_STATUS_POWER), "the unit has no outlet meters"
    pdu = _apc(snmpsim, community)
    try:
        for _ in range(2):  # the second call does not ask for the meters again, and still reads
            outlets = pdu.outlets()
            assert [o.outlet for o in outlets] == sorted(names) and len(outlets) >= 8
            assert [o.name for o in outlets] == [str(names[n]).strip() for n in sorted(names)]
            for o in outlets:
                want = states[o.outlet]  # None: the recording varies it over time (AP7902B)
                assert o.on is (want == apc.STATE_ON) if want is not None else isinstance(o.on, bool)
                assert (o.power_w, o.current_a) == (None, None)
    finally:
        pdu.close()


def test_unit_total_of_minus_one_is_not_available(snmpsim: SnmpSim) -> None:
    pdu = _apc(snmpsim, "apc-ap7902b")
    try:
        with pytest.raises(NotAvailable, match=r"rPDU2DeviceStatusPower\.1.*-1") as info:
            pdu.power_watts()
        assert info.value.device == "apc-ap7902b" and info.value.address == f"127.0.0.1:{snmpsim.port}"
        assert pdu.identify().model == "AP7902B"  # the unit still answers everything else
    finally:
        pdu.close()


@pytest.mark.parametrize("community", ["apc-ap8932", "apc-ap8641"])
def test_unit_total_in_watts(snmpsim: SnmpSim, community: str) -> None:
    raw = _recording(community)[f"{apc.DEVICE_STATUS_POWER}.1"]
    assert isinstance(raw, int) and raw > 0
    pdu = _apc(snmpsim, community)
    try:
        assert pdu.power_watts() == raw * 10.0  # hundredths of kW
    finally:
        pdu.close()


def test_metered_by_outlet_unit_reads_every_meter(snmpsim: SnmpSim) -> None:
    recording = _recording("apc-ap8641")
    power = _column(recording, apc.OUTLET_METERED_STATUS_POWER)
    current = _column(recording, apc.OUTLET_METERED_STATUS_CURRENT)
    pdu = _apc(snmpsim, "apc-ap8641")
    try:
        assert pdu.identify().model == "AP8641"
        outlets = pdu.outlets()
        assert len(outlets) == 24
        assert [o.power_w for o in outlets] == [float(power[o.outlet]) for o in outlets]  # type: ignore[arg-type]
        assert [o.current_a for o in outlets] == [round(current[o.outlet] * 0.1, 9) for o in outlets]  # type: ignore[operator]
    finally:
        pdu.close()


def _vendor_driver(snmpsim: SnmpSim, driver: str, community: str) -> SnmpPdu:
    cls = registry.load(driver)
    assert issubclass(cls, SnmpPdu)
    return cls(snmpsim.config(community, name=driver, kind="pdu", driver=driver))


def _states(driver: str, community: str) -> list[bool]:
    m = SIM_VENDORS[driver]
    recording = _recording(community)
    prefix = m.outlet_state.template.split("{", 1)[0]
    codes = [v for oid, v in sorted(recording.items(), key=lambda kv: [int(p) for p in kv[0].split(".")])
             if oid.startswith(prefix)]  # fmt: skip
    return [code in m.state_on or code in m.state_on_pending for code in codes]


@pytest.mark.parametrize("driver", sorted(SIM_VENDORS))
def test_every_vendor_map_with_and_without_outlet_meters(snmpsim: SnmpSim, driver: str) -> None:
    community = f"rackval-sim/{driver}"
    full, bare = _vendor_driver(snmpsim, driver, community), _vendor_driver(snmpsim, driver, community + NO_METERS)
    try:
        metered, unmetered = full.outlets(), bare.outlets()
        assert len(metered) == 8 and all(o.power_w is not None for o in metered)
        assert [o.on for o in metered] == _states(driver, community)
        # the same unit without its meter columns: every outlet and state, no meter readings
        assert [(o.outlet, o.name, o.on) for o in unmetered] == [(o.outlet, o.name, o.on) for o in metered]
        assert all((o.power_w, o.current_a) == (None, None) for o in unmetered)
        assert bare.identify() == full.identify() and full.identify().model
        assert bare.power_watts() == full.power_watts() > 0
    finally:
        full.close()
        bare.close()


def test_identity_fields_the_unit_lacks_are_empty(snmpsim: SnmpSim) -> None:
    """A unit without rPDU2IdentSerialNumber still identifies (Identity's rule: empty, not an error)."""
    pdu = _apc(snmpsim, NO_SERIAL)
    try:
        identity = pdu.identify()
        assert (identity.vendor, identity.model, identity.serial) == ("APC", "AP7921B", "")
        assert len(pdu.outlets()) == 8
    finally:
        pdu.close()


# ---- rackval probe against the unit (the done-when) -------------------------------------------------
def _rack_file(snmpsim: SnmpSim, folder: Path, communities: dict[str, str]) -> Path:
    """A rack file with one apc-rpdu2 device per recording ({device name: community})."""
    credentials, devices = {}, {}
    for device, community in communities.items():
        secret = folder / f"{device}.community"
        secret.write_text(community + "\n")
        credentials[device] = {"snmp_version": "2c", "community": {"file": secret.name}}
        devices[device] = {
            "kind": "pdu", "driver": "apc-rpdu2", "host": "127.0.0.1", "port": snmpsim.port,
            "credentials": device, "timeout_s": 3, "feeds": ["A"],
        }  # fmt: skip
    rack = {"rack": {"name": "snmpsim-rack"}, "credentials": credentials, "devices": devices}
    path = folder / "rack.yaml"
    path.write_text(yaml.safe_dump(rack, sort_keys=False))
    return path


def test_probe_shows_every_outlet_state_and_outlet_power_not_available(
    snmpsim: SnmpSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rack = _rack_file(snmpsim, tmp_path, {"ap7902b": "apc-ap7902b", "ap8641": "apc-ap8641"})
    assert probe_main(["--rack", str(rack), "--json"]) == 0  # "not available" is an answer, not an error
    devices = {d["device"]: d for d in json.loads(capsys.readouterr().out)}
    unmetered, metered = devices["ap7902b"], devices["ap8641"]
    assert unmetered["status"] == "answered" and unmetered["errors"] == []
    assert unmetered["identity"]["model"] == "AP7902B"
    outlets = unmetered["readings"]["outlets"]
    assert (outlets["count"], outlets["metered"], outlets["total_w"]) == (16, 0, None)
    states = outlets["states"]
    assert sorted(n for part in states.values() if part for n in _numbers(part)) == list(range(1, 17))
    assert unmetered["steps"]["power"] == "not_available" and "-1" in unmetered["not_available"]["power"]
    assert metered["readings"]["outlets"]["metered"] == 24 and metered["readings"]["power"]["w"] == 1210.0

    assert probe_main(["--rack", str(rack)]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("ap7902b "))
    assert " answered " in row and "outlets 16 (" in row
    assert "outlet power: not available on this device" in row and "power: not available on this device" in row
    assert "0.0 W" not in row


def _numbers(ranges: str) -> list[int]:
    out: list[int] = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        out += list(range(int(low), int(high or low) + 1))
    return out
