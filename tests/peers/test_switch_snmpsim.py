"""SnmpSwitch against snmpsim serving recordings of real switches (PyPI snmpsim-data).

Arista DCS-7150S (IF-MIB, LLDP-MIB with neighbours, ENTITY-MIB and ENTITY-SENSOR-MIB), Cisco
Catalyst 3560G (LLDP-MIB with local ports but no neighbours, no ENTITY-SENSOR-MIB) and Brocade
ICX6430 (IF-MIB only: no LLDP-MIB, no ENTITY-MIB), plus the Arista recording with columns taken
out (ifHighSpeed, the ifHC counters, entPhySensorValue). Each switch reads what it has; what it
lacks is None, empty, or "not available" (LLDP-MIB not served), never an error. Expected values
come from the recordings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rackval.core.errors import NotAvailable
from rackval.drivers.switch import mibs
from rackval.drivers.switch.snmp_switch import SnmpSwitch
from rackval.harness.probe import ANSWERED, NOT_AVAILABLE, DeviceProbe, probe_driver
from rackval.harness.readers import readings_text
from tests.support.snmpsim_peer import SnmpSim, read_snmprec, shipped, without_columns

ARISTA_STRIPPED = "arista-dcs-7150s-stripped"
STRIPPED = (mibs.IF_HIGH_SPEED, mibs.IF_HC_IN_OCTETS, mibs.IF_HC_OUT_OCTETS, mibs.ENT_SENSOR_VALUE)


@pytest.fixture(scope="module")
def snmpsim_extra(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("snmprec-switch")
    prefixes = tuple(f"{o.oid}." for o in STRIPPED)
    return {ARISTA_STRIPPED: without_columns(shipped("arista-dcs-7150s"), prefixes, folder / "arista.snmprec")}


def _switch(snmpsim: SnmpSim, community: str) -> SnmpSwitch:
    return SnmpSwitch(snmpsim.config(community, name=community, kind="switch", driver="snmp-switch"))


def _rows(recording: dict[str, object], obj: mibs.MibObject) -> dict[str, object]:
    return {oid[len(obj.oid) + 1 :]: v for oid, v in recording.items() if oid.startswith(f"{obj.oid}.")}


def test_full_featured_switch_reads_everything(snmpsim: SnmpSim) -> None:
    recording = read_snmprec(shipped("arista-dcs-7150s"))
    sw = _switch(snmpsim, "arista-dcs-7150s")
    try:
        identity = sw.identify()
        assert (
            identity.vendor == "Arista Networks"
            and identity.serial in _rows(recording, mibs.ENT_PHYSICAL_SERIAL_NUM).values()
        )
        ports = sw.ports()
        assert len(ports) == len(_rows(recording, mibs.IF_DESCR))
        assert any(p.speed_mbps for p in ports if p.oper_up)
        assert len(sw.lldp_neighbors()) == len(_rows(recording, mibs.LLDP_REM_CHASSIS_ID)) > 0
        sensors = sw.sensors()
        assert len(sensors) == len(_rows(recording, mibs.ENT_SENSOR_TYPE))
        assert any(s.kind == "temperature" and s.value is not None for s in sensors)
        assert {c.octet_bits for c in sw.counters()} == {64}
    finally:
        sw.close()


def test_missing_columns_are_none_for_every_row(snmpsim: SnmpSim) -> None:
    full, bare = _switch(snmpsim, "arista-dcs-7150s"), _switch(snmpsim, ARISTA_STRIPPED)
    try:
        assert [(p.name, p.oper_up) for p in bare.ports()] == [(p.name, p.oper_up) for p in full.ports()]
        assert all(p.speed_mbps is None for p in bare.ports())  # no ifHighSpeed: unknown, not 0
        assert {c.octet_bits for c in bare.counters()} == {32}  # no ifHC*: the 32-bit counters, said so
        sensors = bare.sensors()
        assert [s.name for s in sensors] == [s.name for s in full.sensors()]
        assert all(s.value is None for s in sensors)
        assert bare.identify() == full.identify()
    finally:
        full.close()
        bare.close()


def test_lldp_served_without_neighbours_is_an_empty_list(snmpsim: SnmpSim) -> None:
    sw = _switch(snmpsim, "cisco-c3560")
    try:
        assert sw.identify().model.startswith("WS-C3560")
        assert sw.lldp_neighbors() == []
        assert sw.sensors() == []  # no ENTITY-SENSOR-MIB
        assert len(sw.ports()) == len(_rows(read_snmprec(shipped("cisco-c3560")), mibs.IF_DESCR))
    finally:
        sw.close()


def test_switch_without_lldp_mib_says_not_available(snmpsim: SnmpSim) -> None:
    recording = read_snmprec(shipped("brocade-icx6430"))
    sw = _switch(snmpsim, "brocade-icx6430")
    try:
        with pytest.raises(NotAvailable, match="no lldpRemTable and no lldpLocPortTable") as info:
            sw.lldp_neighbors()
        assert info.value.device == "brocade-icx6430"
        identity = sw.identify()  # no ENTITY-MIB: from sysDescr / sysObjectID
        assert identity.model == str(recording[mibs.SYS_DESCR.oid]).splitlines()[0].strip()
        assert identity.serial == ""
        probe = probe_driver(sw, DeviceProbe("brocade-icx6430", "switch", "snmp-switch", "127.0.0.1"))
        assert probe.status == ANSWERED and probe.steps["lldp"] == NOT_AVAILABLE
        assert probe.readings["ports"]["total"] == len(_rows(recording, mibs.IF_DESCR))
        assert "lldp: not available on this device" in readings_text(probe.readings, probe.not_available)
    finally:
        sw.close()
