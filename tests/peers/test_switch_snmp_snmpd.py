"""SnmpSwitch against net-snmp's snmpd (third-party agent), plus pure tests of the counter math.

snmpd serves IF-MIB for this machine's real interfaces (``lo`` at least); LLDP-MIB, ENTITY-MIB
and ENTITY-SENSOR-MIB rows come from a pass_persist script (tests/support/switch_snmp_peer.py). What
the driver reads from IF-MIB is compared with what net-snmp's own ``snmpget`` reads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from rackval.core.errors import DeviceProtocolError, DeviceTimeout, NotAvailable
from rackval.drivers.capabilities import (
    CounterTracker,
    Device,
    Identity,
    LldpNeighbor,
    NetSwitch,
    SensorReading,
)
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.switch import mibs
from rackval.drivers.switch.snmp_switch import SnmpSwitch, scaled_sensor_value
from tests.support.snmpd_peer import SNMPGET, SnmpdPeer, start_snmpd
from tests.support.switch_snmp_peer import pass_persist_lines

NAME = "leaf-r12-snmp"


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpdPeer]:
    workdir = tmp_path_factory.mktemp("switch-snmpd")
    peer = start_snmpd(workdir, extra_lines=pass_persist_lines(workdir))
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture(scope="module")
def plain_snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpdPeer]:
    """An agent with IF-MIB only: no ENTITY-MIB, LLDP-MIB or ENTITY-SENSOR-MIB."""
    peer = start_snmpd(tmp_path_factory.mktemp("plain-snmpd"), sys_descr="Linux leaf-b 6.1.0 x86_64")
    try:
        yield peer
    finally:
        peer.stop()


def config(peer: SnmpdPeer, **options: object) -> DeviceConfig:
    return DeviceConfig(
        name=NAME,
        kind="switch",
        driver="snmp-switch",
        host=peer.host,
        port=peer.port,
        credentials=Credentials(snmp_version="2c", community=Secret(peer.ro_community)),
        options=options,
        timeout_s=2.0,
    )


@pytest.fixture
def switch(snmpd: SnmpdPeer) -> Iterator[SnmpSwitch]:
    sw = SnmpSwitch(config(snmpd))
    try:
        yield sw
    finally:
        sw.close()


def snmpget(peer: SnmpdPeer, oids: list[str]) -> list[str]:
    """Values as net-snmp's own snmpget prints them (numeric, no MIBs)."""
    out = subprocess.run(
        [SNMPGET, "-v2c", "-c", peer.ro_community, "-On", "-Oqv", "-t", "2", f"{peer.host}:{peer.port}", *oids],
        capture_output=True,
        text=True,
        env={**os.environ, "MIBS": ""},
        timeout=10,
        check=True,
    )
    return [line.strip().strip('"') for line in out.stdout.splitlines()]


# ---- against snmpd ---------------------------------------------------------------------------------
def test_is_a_device_and_netswitch(switch: SnmpSwitch) -> None:
    assert isinstance(switch, Device)
    assert isinstance(switch, NetSwitch)


def test_identify_from_entity_mib_chassis_row(switch: SnmpSwitch) -> None:
    # entity 1 (a PSU) comes first in the table; the chassis row (class 3, contained in 0) wins
    assert switch.identify() == Identity(vendor="Celestica", model="DS5000", serial="CS2233000451", firmware="4.2.1")


def test_works_over_snmpv3_auth_priv(snmpd: SnmpdPeer) -> None:
    cfg = DeviceConfig(
        name=NAME,
        kind="switch",
        driver="snmp-switch",
        host=snmpd.host,
        port=snmpd.port,
        credentials=Credentials(
            snmp_version="3",
            username=snmpd.v3_user,
            auth_protocol="SHA256",
            auth_key=Secret(snmpd.v3_auth_pass),
            priv_protocol="AES",
            priv_key=Secret(snmpd.v3_priv_pass),
        ),
        timeout_s=2.0,
    )
    sw = SnmpSwitch(cfg)
    try:
        assert sw.identify().serial == "CS2233000451"
        assert "lo" in {p.name for p in sw.ports()}
    finally:
        sw.close()


def test_wrong_community_times_out_naming_device_and_object(snmpd: SnmpdPeer) -> None:
    cfg = config(snmpd, retries=0)
    cfg = DeviceConfig(
        name=cfg.name,
        kind=cfg.kind,
        driver=cfg.driver,
        host=cfg.host,
        port=cfg.port,
        credentials=Credentials(snmp_version="2c", community=Secret("not-the-community")),
        options=cfg.options,
        timeout_s=0.3,
    )
    sw = SnmpSwitch(cfg)
    try:
        with pytest.raises(DeviceTimeout) as info:
            sw.ports()
        assert info.value.device == NAME
        assert "IF-MIB::ifName" in str(info.value)
        assert "not-the-community" not in str(info.value)
    finally:
        sw.close()


def test_identify_falls_back_to_sysdescr_without_entity_mib(plain_snmpd: SnmpdPeer) -> None:
    sw = SnmpSwitch(config(plain_snmpd))
    try:
        # net-snmp's sysObjectID is under enterprise 8072
        assert sw.identify() == Identity(vendor="net-snmp", model="Linux leaf-b 6.1.0 x86_64", serial="", firmware="")
        with pytest.raises(NotAvailable, match="LLDP-MIB"):  # plain snmpd serves no LLDP-MIB: not "no neighbours"
            sw.lldp_neighbors()
        assert sw.sensors() == []
    finally:
        sw.close()


def test_ports_match_what_snmpd_serves_for_real_interfaces(snmpd: SnmpdPeer, switch: SnmpSwitch) -> None:
    ports = {p.name: p for p in switch.ports()}
    assert "lo" in ports
    lo = ports["lo"]
    assert lo.oper_up and lo.admin_up
    # cross-check every port against net-snmp's own tools, by ifIndex
    walk = subprocess.run(
        ["snmpbulkwalk", "-v2c", "-c", snmpd.ro_community, "-On", f"{snmpd.host}:{snmpd.port}", mibs.IF_NAME.oid],
        capture_output=True,
        text=True,
        env={**os.environ, "MIBS": ""},
        timeout=10,
        check=True,
    ).stdout
    indices = {
        line.split('"')[1]: int(line.split(" = ")[0].rsplit(".", 1)[1]) for line in walk.splitlines() if '"' in line
    }
    assert set(indices) == set(ports)
    for name, index in indices.items():
        admin, oper, speed, alias = snmpget(
            snmpd,
            [
                f"{o.oid}.{index}"
                for o in (mibs.IF_ADMIN_STATUS, mibs.IF_OPER_STATUS, mibs.IF_HIGH_SPEED, mibs.IF_ALIAS)
            ],
        )
        port = ports[name]
        assert port.admin_up == (admin == "1"), name
        assert port.oper_up == (oper == "1"), name
        assert port.speed_mbps == (int(speed) or None), name
        assert port.alias == alias, name
    assert lo.speed_mbps == int(snmpget(snmpd, [f"{mibs.IF_HIGH_SPEED.oid}.{indices['lo']}"])[0])


def test_lldp_local_ports_map_through_lldp_loc_port_table(switch: SnmpSwitch) -> None:
    assert switch.lldp_neighbors() == [
        # local port 4 has no lldpLocPortTable row: no guessing that 4 is an ifIndex
        LldpNeighbor("lldp-port-4", "leaf-b", "swp1"),
        # interfaceName(5) local port; remote port ID is a MAC, the description names it
        LldpNeighbor("Ethernet1/1", "gpu-node-01", "enp27s0np0"),
        # macAddress(3) local port ID: named by lldpLocPortDesc
        LldpNeighbor("Ethernet1/2", "spine-01", "Ethernet120"),
        # local(7) local port ID "1" is an ifIndex: ifName.1 from snmpd's real IF-MIB
        LldpNeighbor("lo", "mgmt-sw-r12", "Gi1/0/12"),
        # no system name: the chassis MAC; a MAC port ID of printable bytes is still a MAC
        LldpNeighbor("uplink-a", "02:fc:00:aa:bb:01", "41:42:43:44:45:46"),
    ]


def test_sensors_scaled_and_named(switch: SnmpSwitch) -> None:
    sensors = {s.name: s for s in switch.sensors()}
    assert set(sensors) == {"CPU temp", "Fan 1", "PSU1 input power", "PSU2 input power", "ASIC temperature", "12V rail"}
    assert sensors["CPU temp"] == SensorReading(
        name="CPU temp", kind="temperature", value=37.5, unit="C", status="ok", description="CPU temperature sensor"
    )
    assert (sensors["Fan 1"].kind, sensors["Fan 1"].value, sensors["Fan 1"].unit) == ("fan", 8400.0, "rpm")
    assert (sensors["PSU1 input power"].kind, sensors["PSU1 input power"].value) == ("power", 412.5)
    assert sensors["PSU2 input power"].status == "unavailable"
    assert sensors["PSU2 input power"].value is None and not sensors["PSU2 input power"].ok
    assert sensors["ASIC temperature"].value == 70.0  # precision -1, named by entPhysicalDescr
    assert (sensors["12V rail"].kind, sensors["12V rail"].value, sensors["12V rail"].unit) == ("voltage", 12.05, "V")


def test_counters_from_snmpd_are_64_bit_and_grow_with_loopback_traffic(switch: SnmpSwitch) -> None:
    first = {c.name: c for c in switch.counters()}
    lo = first["lo"]
    assert lo.octet_bits == 64 and lo.error_bits == 32
    assert lo.in_octets is not None and lo.out_octets is not None and lo.in_errors is not None
    assert lo.discontinuity is not None and lo.uptime_s is not None and lo.uptime_s >= 0

    tracker = CounterTracker()
    assert tracker.update(first.values()) == {}
    sent = 300_000
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        for _ in range(sent // 1000):
            tx.sendto(b"x" * 1000, rx.getsockname())
    # net-snmp caches interface statistics for a few seconds: poll (bounded) and add up the deltas
    received = transmitted = 0
    deadline = time.monotonic() + 10
    while received < sent and time.monotonic() < deadline:
        time.sleep(0.5)
        delta = tracker.update(switch.counters())["lo"]
        assert delta.reset is False
        assert delta.in_octets is not None and delta.out_octets is not None
        received += delta.in_octets
        transmitted += delta.out_octets
    assert received >= sent
    assert transmitted >= sent  # loopback: what goes out comes back in
    assert delta.in_errors == 0 and delta.out_errors == 0


# ---- SnmpSwitch logic on a scripted agent (wrap and discontinuity need counters we control) -------
class ScriptedSnmp:
    """Stands in for SnmpTransport: answers walks and GETs from a dict of OID -> value."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values
        self.walks = 0
        self.gets = 0

    def walk(self, prefix: str, max_repetitions: int = 25, *, operation: str | None = None) -> list[tuple[str, object]]:
        self.walks += 1
        rows = [(oid, v) for oid, v in self.values.items() if oid.startswith(prefix + ".")]
        return sorted(rows, key=lambda r: tuple(int(p) for p in r[0].split(".")))

    def get(
        self, oids: list[str], *, operation: str | None = None, labels: object = None, missing_ok: bool = False
    ) -> dict[str, object]:
        self.gets += 1
        missing = [oid for oid in oids if oid not in self.values]
        if missing_ok:  # as SnmpTransport leaves absent objects out
            return {oid: self.values[oid] for oid in oids if oid in self.values}
        if missing:  # as SnmpTransport reports noSuchInstance
            raise DeviceProtocolError(NAME, "127.0.0.1:1", operation or "SNMP GET", f"noSuchInstance: {missing[0]}")
        return {oid: self.values[oid] for oid in oids}

    def close(self) -> None:
        pass


def agent(uptime: int, eth_in: int, eth_err: int, discontinuity: int) -> dict[str, object]:
    return {
        mibs.SYS_UPTIME.oid: uptime,
        f"{mibs.IF_NAME.oid}.1": "lo",
        f"{mibs.IF_NAME.oid}.10": "Ethernet1",
        f"{mibs.IF_HC_IN_OCTETS.oid}.1": 5,
        f"{mibs.IF_HC_IN_OCTETS.oid}.10": eth_in,
        f"{mibs.IF_HC_OUT_OCTETS.oid}.1": 5,
        f"{mibs.IF_HC_OUT_OCTETS.oid}.10": 1000,
        f"{mibs.IF_IN_ERRORS.oid}.1": 0,
        f"{mibs.IF_IN_ERRORS.oid}.10": eth_err,
        f"{mibs.IF_OUT_ERRORS.oid}.1": 0,
        f"{mibs.IF_OUT_ERRORS.oid}.10": 0,
        f"{mibs.IF_IN_DISCARDS.oid}.10": 0,
        f"{mibs.IF_OUT_DISCARDS.oid}.10": 0,
        f"{mibs.IF_COUNTER_DISCONTINUITY.oid}.1": 0,
        f"{mibs.IF_COUNTER_DISCONTINUITY.oid}.10": discontinuity,
    }


def scripted_switch(values: dict[str, object]) -> tuple[SnmpSwitch, ScriptedSnmp]:
    sw = SnmpSwitch(
        DeviceConfig(
            name=NAME,
            kind="switch",
            driver="snmp-switch",
            host="127.0.0.1",
            port=1,
            credentials=Credentials(community=Secret("x")),
        )
    )
    fake = ScriptedSnmp(values)
    sw._snmp = fake  # white-box: no agent needed for scripted counter sequences
    return sw, fake


def test_counter64_and_counter32_wrap_then_discontinuity_reset() -> None:
    sw, fake = scripted_switch(agent(uptime=1000, eth_in=2**64 - 10, eth_err=2**32 - 2, discontinuity=500))
    tracker = CounterTracker()
    assert tracker.update(sw.counters(), at=0.0) == {}

    fake.values = agent(uptime=2000, eth_in=90, eth_err=3, discontinuity=500)
    deltas = tracker.update(sw.counters(), at=10.0)
    eth = deltas["Ethernet1"]
    assert (eth.reset, eth.interval_s) == (False, 10.0)
    assert eth.in_octets == 100  # Counter64 wrapped: 10 to the top, then 90
    assert eth.in_errors == 5  # Counter32 wrapped: 2 to the top, then 3
    assert eth.out_octets == 0 and eth.in_discards == 0
    assert deltas["lo"].reset is False and deltas["lo"].in_octets == 0
    assert deltas["lo"].in_discards is None  # lo has no discard rows in this agent

    # the agent re-initialised Ethernet1's counters: ifCounterDiscontinuityTime moved
    fake.values = agent(uptime=3000, eth_in=200, eth_err=4, discontinuity=2950)
    deltas = tracker.update(sw.counters(), at=20.0)
    assert deltas["Ethernet1"].reset is True
    assert deltas["Ethernet1"].in_octets is None and deltas["Ethernet1"].in_errors is None
    assert deltas["lo"].reset is False

    # agent restart: sysUpTime went back, every port resets even though markers look equal
    fake.values = agent(uptime=50, eth_in=300, eth_err=4, discontinuity=2950)
    deltas = tracker.update(sw.counters(), at=30.0)
    assert deltas["Ethernet1"].reset is True and deltas["lo"].reset is True


def test_counters_fall_back_to_32_bit_octets_without_ifxtable_counters() -> None:
    values = agent(uptime=1, eth_in=0, eth_err=0, discontinuity=0)
    values = {
        k: v for k, v in values.items() if not k.startswith((mibs.IF_HC_IN_OCTETS.oid, mibs.IF_HC_OUT_OCTETS.oid))
    }
    values[f"{mibs.IF_IN_OCTETS.oid}.10"] = 77
    values[f"{mibs.IF_OUT_OCTETS.oid}.10"] = 88
    sw, _ = scripted_switch(values)
    eth = {c.name: c for c in sw.counters()}["Ethernet1"]
    assert (eth.in_octets, eth.out_octets, eth.octet_bits) == (77, 88, 32)


def test_non_integer_counter_is_protocol_error_naming_the_object() -> None:
    values = agent(uptime=1, eth_in=0, eth_err=0, discontinuity=0)
    values[f"{mibs.IF_IN_ERRORS.oid}.10"] = "garbage"
    sw, _ = scripted_switch(values)
    with pytest.raises(DeviceProtocolError) as info:
        sw.counters()
    assert "IF-MIB::ifInErrors" in str(info.value) and NAME in str(info.value)


@pytest.mark.parametrize(
    ("raw", "scale", "precision", "expected"),
    [(375, 9, 1, 37.5), (412500, 8, 0, 412.5), (7, 9, -1, 70.0), (1205000, 8, 2, 12.05), (3, 10, 0, 3000.0)],
)
def test_scaled_sensor_value(raw: int, scale: int, precision: int, expected: float) -> None:
    assert scaled_sensor_value(raw, scale, precision) == expected


def test_counters_walk_once_then_get_known_rows_and_rewalk_when_rows_change() -> None:
    sw, fake = scripted_switch(agent(uptime=1000, eth_in=10, eth_err=0, discontinuity=500))
    sw.counters()
    walks = fake.walks
    assert walks > 0
    fake.values = agent(uptime=1100, eth_in=20, eth_err=1, discontinuity=500)
    again = {c.name: c for c in sw.counters()}
    assert fake.walks == walks  # known rows: GETs only, no walk
    assert again["Ethernet1"].in_octets == 20 and again["Ethernet1"].in_errors == 1
    del fake.values[f"{mibs.IF_IN_ERRORS.oid}.10"]  # the agent lost a row (port removed or renumbered)
    sw.counters()
    assert fake.walks > walks
