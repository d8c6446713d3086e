"""AristaEosSwitch against a real OpenSSH sshd (third-party peer) serving EOS ``| json`` output.

sshd runs with a pinned host key and a ForceCommand that answers the exact command lines the
driver sends from tests/data/eos/ (shapes from real EOS captures, see the README there). Tests
that need broken output swap one file through the peer's overlay directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.core.errors import DeviceProtocolError
from rackval.drivers.capabilities import (
    CounterTracker,
    Device,
    Identity,
    LldpNeighbor,
    NetSwitch,
    PortStatus,
    SensorReading,
)
from rackval.drivers.switch import eos
from rackval.drivers.switch.eos import AristaEosSwitch, natural_key
from tests.support.switch_sshd import SwitchSshd, start_switch_sshd

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "eos"
FILES = {
    "show version | json": "show_version.json",
    "show interfaces status | json": "show_interfaces_status.json",
    "show lldp neighbors | json": "show_lldp_neighbors.json",
    "show interfaces counters | json": "show_interfaces_counters.json",
    "show interfaces counters errors | json": "show_interfaces_counters_errors.json",
    "show system environment temperature | json": "show_system_environment_temperature.json",
    # what the driver sends with option cli_wrapper="Cli -p 15 -c" (the command arrives quoted)
    "Cli -p 15 -c 'show version | json'": "show_version.json",
}
NAME = "leaf-r12-eos"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchSshd]:
    peer = start_switch_sshd(tmp_path_factory.mktemp("eos-sshd"), DATA_DIR, FILES)
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def switch(sshd: SwitchSshd) -> Iterator[AristaEosSwitch]:
    sw = AristaEosSwitch(sshd.config(NAME, "arista-eos"))
    try:
        yield sw
    finally:
        sw.close()


def test_is_a_device_and_netswitch(switch: AristaEosSwitch) -> None:
    assert isinstance(switch, Device)
    assert isinstance(switch, NetSwitch)
    assert switch.name == NAME


def test_identify_from_show_version(switch: AristaEosSwitch) -> None:
    assert switch.identify() == Identity(
        vendor="Arista", model="DCS-7060DX5-64S-F", serial="JPA2233X0AB", firmware="4.32.2F"
    )


def test_ports_from_interfaces_status(switch: AristaEosSwitch) -> None:
    ports = switch.ports()
    assert [p.name for p in ports] == [
        "Ethernet1/1",
        "Ethernet2/1",
        "Ethernet3/1",
        "Ethernet4/1",
        "Ethernet10/1",
        "Ethernet64/1",
        "Management1",
        "Port-Channel1000",
    ]
    by_name = {p.name: p for p in ports}
    assert by_name["Ethernet1/1"] == PortStatus("Ethernet1/1", True, True, 400_000, "gpu-node-01 enp27s0np0")
    assert by_name["Ethernet3/1"] == PortStatus("Ethernet3/1", False, True, 400_000, "")  # notconnect
    assert by_name["Ethernet4/1"] == PortStatus("Ethernet4/1", False, False, 400_000, "spare")  # disabled
    assert by_name["Ethernet10/1"].oper_up is False and by_name["Ethernet10/1"].admin_up is True  # errdisabled
    assert by_name["Ethernet64/1"].speed_mbps == 800_000  # LAG member
    assert by_name["Management1"].speed_mbps == 1000


def test_lldp_neighbors(switch: AristaEosSwitch) -> None:
    assert switch.lldp_neighbors() == [
        LldpNeighbor("Ethernet1/1", "gpu-node-01", "enp27s0np0"),
        LldpNeighbor("Ethernet2/1", "gpu-node-02", "enp27s0np0"),
        LldpNeighbor("Ethernet64/1", "spine-01.dc1", "Ethernet1/1"),
        LldpNeighbor("Management1", "mgmt-sw-r12", "GigabitEthernet1/0/12"),
    ]


def test_counters_join_traffic_and_error_tables(switch: AristaEosSwitch) -> None:
    by_name = {c.name: c for c in switch.counters()}
    assert set(by_name) >= {"Ethernet1/1", "Ethernet2/1", "Vlan4094", "Port-Channel1000"}
    eth2 = by_name["Ethernet2/1"]
    assert (eth2.in_octets, eth2.out_octets) == (91827364512345, 88776655443322)
    assert (eth2.in_errors, eth2.out_errors, eth2.in_discards, eth2.out_discards) == (17, 0, 0, 0)
    assert eth2.octet_bits == 64 and eth2.error_bits == 64
    assert by_name["Ethernet1/1"].in_octets == 18446744073709551000  # full 64-bit range survives
    vlan = by_name["Vlan4094"]  # SVIs report octets only and are not in the error table
    assert (vlan.in_octets, vlan.in_errors, vlan.in_discards) == (5120, None, None)


def test_counter_tracker_over_two_polls_with_64_bit_wrap_and_clear(sshd: SwitchSshd, switch: AristaEosSwitch) -> None:
    ticks = iter([100.0, 110.0])
    tracker = CounterTracker(clock=lambda: next(ticks))
    assert tracker.update(switch.counters()) == {}  # baseline

    traffic = json.loads((DATA_DIR / "show_interfaces_counters.json").read_text())
    errors = json.loads((DATA_DIR / "show_interfaces_counters_errors.json").read_text())
    eth1 = traffic["interfaces"]["Ethernet1/1"]
    eth1["inOctets"] = 1000  # wrapped past 2**64: 616 to the top, then 1000
    eth1["outOctets"] += 5_000_000_000
    traffic["interfaces"]["Ethernet2/1"]["inOctets"] = 42  # `clear counters`: went far backwards
    errors["interfaceErrorCounters"]["Ethernet64/1"]["outErrors"] += 3
    with (
        sshd.serving("show_interfaces_counters.json", json.dumps(traffic)),
        sshd.serving("show_interfaces_counters_errors.json", json.dumps(errors)),
    ):
        deltas = tracker.update(switch.counters())

    eth1_delta = deltas["Ethernet1/1"]
    assert eth1_delta.reset is False
    assert eth1_delta.interval_s == 10.0
    assert eth1_delta.in_octets == (2**64 - 18446744073709551000) + 1000
    assert eth1_delta.out_octets == 5_000_000_000
    assert eth1_delta.in_errors == 0
    assert deltas["Ethernet2/1"].reset is True
    assert deltas["Ethernet2/1"].in_octets is None and deltas["Ethernet2/1"].in_errors is None
    assert deltas["Ethernet64/1"].out_errors == 3
    assert deltas["Vlan4094"].in_errors is None and deltas["Vlan4094"].in_octets == 0


def test_sensors_include_power_supply_slots_and_alerts(switch: AristaEosSwitch) -> None:
    sensors = switch.sensors()
    assert [s.name for s in sensors] == [
        "TempSensor1",
        "TempSensor2",
        "TempSensor3",
        "TempSensorP1/1",
        "TempSensorP2/1",
    ]
    assert sensors[0] == SensorReading(
        name="TempSensor1",
        kind="temperature",
        value=47.25,
        unit="C",
        status="ok",
        description="Cpu temp sensor",
        warning=95.0,
        critical=105.0,
    )
    assert sensors[2].value == pytest.approx(71.4736)
    assert sensors[4].status == "alert" and not sensors[4].ok and sensors[4].value == 61.5
    assert all(s.ok for s in sensors[:4])


def test_cli_wrapper_quotes_the_command_as_one_argument(sshd: SwitchSshd) -> None:
    sw = AristaEosSwitch(sshd.config(NAME, "arista-eos", cli_wrapper="Cli -p 15 -c"))
    try:
        assert sw.identify().model == "DCS-7060DX5-64S-F"
    finally:
        sw.close()


@pytest.mark.parametrize(
    ("filename", "method", "command"),
    [
        ("show_version.json", "identify", "show version | json"),
        ("show_interfaces_status.json", "ports", "show interfaces status | json"),
        ("show_lldp_neighbors.json", "lldp_neighbors", "show lldp neighbors | json"),
        ("show_interfaces_counters_errors.json", "counters", "show interfaces counters errors | json"),
        ("show_system_environment_temperature.json", "sensors", "show system environment temperature | json"),
    ],
)
def test_truncated_json_is_protocol_error_naming_device_and_command(
    sshd: SwitchSshd, switch: AristaEosSwitch, filename: str, method: str, command: str
) -> None:
    full = (DATA_DIR / filename).read_text()
    with sshd.serving(filename, full[: len(full) // 2]), pytest.raises(DeviceProtocolError) as info:
        getattr(switch, method)()
    err = info.value
    assert err.device == NAME
    assert err.address == f"127.0.0.1:{sshd.port}"
    assert command in err.operation
    assert NAME in str(err) and command in str(err)
    assert "not valid JSON" in err.detail


def test_eos_error_object_is_protocol_error(sshd: SwitchSshd, switch: AristaEosSwitch) -> None:
    body = json.dumps({"errors": ["This is an unconverted command"]})
    with sshd.serving("show_version.json", body), pytest.raises(DeviceProtocolError) as info:
        switch.identify()
    assert "unconverted command" in str(info.value)
    assert "show version | json" in str(info.value)


def test_cli_error_line_is_protocol_error(sshd: SwitchSshd, switch: AristaEosSwitch) -> None:
    with (
        sshd.serving("show_lldp_neighbors.json", "% Invalid input (at token 1: 'lldp')\n"),
        pytest.raises(DeviceProtocolError) as info,
    ):
        switch.lldp_neighbors()
    assert "Invalid input" in str(info.value)
    assert "show lldp neighbors | json" in str(info.value)


def test_wrong_shape_is_protocol_error(sshd: SwitchSshd, switch: AristaEosSwitch) -> None:
    body = json.dumps({"interfaceStatuses": {"Ethernet1/1": {"bandwidth": 400000000000}}})
    with sshd.serving("show_interfaces_status.json", body), pytest.raises(DeviceProtocolError) as info:
        switch.ports()
    assert "linkStatus" in str(info.value) and "Ethernet1/1" in str(info.value)
    with sshd.serving("show_version.json", "[]"), pytest.raises(DeviceProtocolError) as info2:
        switch.identify()
    assert "JSON object" in str(info2.value)


def test_unknown_command_answer_from_peer_is_protocol_error(sshd: SwitchSshd) -> None:
    # A wrapper the peer does not know makes every command unknown to it: EOS-style "% Invalid input".
    sw = AristaEosSwitch(sshd.config(NAME, "arista-eos", cli_wrapper="FastCli -c"))
    try:
        with pytest.raises(DeviceProtocolError) as info:
            sw.identify()
        assert "Invalid input" in str(info.value)
    finally:
        sw.close()


def test_parsers_reject_empty_output() -> None:
    with pytest.raises(DeviceProtocolError) as info:
        eos.parse_show_version("  \n", device="x", address="y")
    assert "empty output" in str(info.value)


def test_natural_sort_of_interface_names() -> None:
    names = ["Ethernet10/1", "Ethernet2/1", "Management1", "Ethernet1/10", "Ethernet1/2", "Port-Channel2"]
    assert sorted(names, key=natural_key) == [
        "Ethernet1/2",
        "Ethernet1/10",
        "Ethernet2/1",
        "Ethernet10/1",
        "Management1",
        "Port-Channel2",
    ]
