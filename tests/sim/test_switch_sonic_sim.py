"""SonicSwitch against the simulated switch's SSH server, and the SONiC parsers on malformed text."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import paramiko
import pytest

from rackval.core.errors import DeviceAuthError, DeviceProtocolError
from rackval.drivers.capabilities import Device, Identity, NetSwitch
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.switch.sonic import (
    SonicSwitch,
    parse_interfaces_status,
    parse_lldp_table,
    parse_show_version,
    parse_speed_mbps,
)
from rackval.sim.model import RackModel
from rackval.sim.ssh_server import write_known_hosts
from rackval.sim.switch_shell import format_speed, start_switch_ssh

USER, PASSWORD = "admin", "YourPaSsWoRd"
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "sonic"


@pytest.fixture(scope="module")
def host_key() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate()


@pytest.fixture
def model() -> RackModel:
    return RackModel()


@pytest.fixture
def server(model: RackModel, host_key: paramiko.PKey):
    srv = start_switch_ssh(model, "tor1", username=USER, password=PASSWORD, host_key=host_key)
    yield srv
    srv.stop()


@pytest.fixture
def known_hosts(tmp_path: Path, server, host_key: paramiko.PKey) -> Path:
    path = tmp_path / "known_hosts"
    write_known_hosts(path, server.host, server.port, host_key)
    return path


def _config(server, known_hosts: Path, password: str = PASSWORD) -> DeviceConfig:
    return DeviceConfig(
        name="tor1",
        kind="switch",
        driver="sonic",
        host=server.host,
        port=server.port,
        credentials=Credentials(username=USER, password=Secret(password)),
        options={"known_hosts": str(known_hosts)},
        timeout_s=5.0,
    )


@pytest.fixture
def switch(server, known_hosts: Path):
    sw = SonicSwitch(_config(server, known_hosts))
    yield sw
    sw.close()


def test_driver_implements_device_and_netswitch(switch: SonicSwitch) -> None:
    assert isinstance(switch, Device)
    assert isinstance(switch, NetSwitch)
    assert switch.name == "tor1"


def test_identify_matches_model(switch: SonicSwitch, model: RackModel) -> None:
    info = model.switches["tor1"].info
    assert switch.identify() == Identity("SONiC", info.model, info.serial, info.firmware)


def test_ports_match_model(switch: SonicSwitch, model: RackModel) -> None:
    expected = model.switches["tor1"].ports
    ports = switch.ports()
    assert len(ports) == len(expected) == model.size.switch_ports
    for got, want in zip(ports, expected, strict=True):
        assert got.name == want.name
        assert got.alias == want.alias
        assert got.speed_mbps == want.speed_mbps
        assert got.admin_up is want.admin_up
        assert got.oper_up is want.oper_up
    assert sum(p.oper_up for p in ports) == len(model.nodes)  # only cabled ports have link


def test_lldp_neighbors_equal_cabling(switch: SonicSwitch, model: RackModel) -> None:
    cabling = {(p.name, p.peer[0], p.peer[1]) for p in model.switches["tor1"].ports if p.peer is not None}
    seen = {(n.local_port, n.remote_system, n.remote_port) for n in switch.lldp_neighbors()}
    assert seen == cabling
    assert len(cabling) == len(model.nodes)


def test_admin_down_port_reads_down_and_leaves_lldp(switch: SonicSwitch, model: RackModel) -> None:
    assert any(n.local_port == "Ethernet8" for n in switch.lldp_neighbors())
    with model.lock:
        port = next(p for p in model.switches["tor1"].ports if p.name == "Ethernet8")
        port.admin_up = False
    status = {p.name: p for p in switch.ports()}["Ethernet8"]
    assert status.admin_up is False
    assert status.oper_up is False
    assert all(n.local_port != "Ethernet8" for n in switch.lldp_neighbors())
    assert {n.local_port for n in switch.lldp_neighbors()} == {"Ethernet0", "Ethernet16", "Ethernet24"}


def test_wrong_password_is_auth_error(server, known_hosts: Path) -> None:
    sw = SonicSwitch(_config(server, known_hosts, password="wrong"))
    with pytest.raises(DeviceAuthError) as info:
        sw.identify()
    assert info.value.device == "tor1"
    assert info.value.address == f"{server.host}:{server.port}"
    assert "wrong" not in str(info.value)  # the secret never appears in messages
    sw.close()


def test_unknown_command_status_and_click_error(switch: SonicSwitch) -> None:
    result = switch._ssh.run(["show", "bogus"])  # white-box: the transport the driver uses
    assert result.exit_status == 2
    assert 'Error: No such command "bogus".' in result.stderr
    result = switch._ssh.run(["rm", "-rf", "/"])
    assert result.exit_status == 127
    assert "command not found" in result.stderr


def test_concurrent_callers_get_consistent_answers(switch: SonicSwitch) -> None:
    errors: list[BaseException] = []
    counts: list[int] = []

    def worker() -> None:
        try:
            for _ in range(5):
                counts.append(len(switch.ports()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert counts == [32] * 20


def test_server_sets_nodelay_and_stop_is_idempotent(model: RackModel, host_key: paramiko.PKey) -> None:
    srv = start_switch_ssh(model, "tor1", username=USER, password=PASSWORD, host_key=host_key)
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        assert s.recv(64).startswith(b"SSH-2.0-")
        with srv._lock:  # white-box: the server side of the connection just made
            (transport,) = srv._transports
        assert transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    srv.stop()
    srv.stop()
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=1).close()


def test_write_known_hosts_replaces_only_that_entry(tmp_path: Path) -> None:
    path = tmp_path / "kh"
    k1, k2 = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
    path.write_text("# comment\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n")
    write_known_hosts(path, "127.0.0.1", 2200, k1)
    write_known_hosts(path, "127.0.0.1", 2200, k2)
    write_known_hosts(path, "127.0.0.1", 22, k1)
    lines = path.read_text().splitlines()
    assert lines[:2] == ["# comment", "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"]
    assert f"[127.0.0.1]:2200 {k2.get_name()} {k2.get_base64()}" in lines
    assert f"127.0.0.1 {k1.get_name()} {k1.get_base64()}" in lines
    assert len(lines) == 4


# ---- parsers on captured and malformed text ----------------------------------------------------

# A newer release's layout with an extra "Oper Speed" column, sub-gigabit and fractional speeds.
STATUS_WITH_OPER_SPEED = (DATA_DIR / "show_interfaces_status_oper_speed.txt").read_text()


def test_interfaces_status_tolerates_extra_columns_and_speed_forms() -> None:
    ports = parse_interfaces_status(STATUS_WITH_OPER_SPEED)
    assert [(p.name, p.speed_mbps, p.oper_up, p.admin_up, p.alias) for p in ports] == [
        ("Ethernet0", 25_000, True, True, "Eth6/3(Port1)"),
        ("Ethernet3", 2_500, False, False, "Eth7/4(Port4)"),
        ("Ethernet48", 100, True, True, "Eth48(Mgmt)"),
    ]


@pytest.mark.parametrize("mbps", [100, 1000, 2500, 10_000, 25_000, 100_000, 400_000, 800_000])
def test_speed_format_and_parse_round_trip(mbps: int) -> None:
    assert parse_speed_mbps(format_speed(mbps)) == mbps


def test_speed_garbage_is_rejected() -> None:
    assert parse_speed_mbps("N/A") is None
    with pytest.raises(ValueError):
        parse_speed_mbps("fast")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "no table header"),
        ("Error: Could not connect to Redis\n", "no table header"),
        ("  Interface    Speed\n", "no table header"),  # header but no dashed rule
        (
            "  Port  Lanes  Speed\n------  -----  -----\n  Ethernet0  0  400G\n",
            "lacks column",
        ),
    ],
)
def test_interfaces_status_without_proper_header_is_protocol_error(text: str, needle: str) -> None:
    with pytest.raises(DeviceProtocolError) as info:
        parse_interfaces_status(text, device="tor9", address="10.0.0.9:22")
    assert needle in str(info.value)
    assert "tor9 (10.0.0.9:22)" in str(info.value)
    assert "show interfaces status" in str(info.value)


def test_interfaces_status_bad_speed_and_misaligned_rows_are_protocol_errors() -> None:
    good = STATUS_WITH_OPER_SPEED.splitlines()
    bad_speed = "\n".join([*good[:2], good[2].replace("    25G   9100", "   fast   9100")])
    with pytest.raises(DeviceProtocolError, match="Ethernet0: unrecognised speed 'fast'"):
        parse_interfaces_status(bad_speed)
    shifted = "\n".join([*good[:2], "   " + good[2]])  # a row shifted across column boundaries
    with pytest.raises(DeviceProtocolError, match="does not line up"):
        parse_interfaces_status(shifted)


LLDP = """\
Capability codes: (R) Router, (B) Bridge, (O) Other
LocalPort    RemoteDevice       RemotePortID         Capability    RemotePortDescr
-----------  -----------------  -------------------  ------------  --------------------
Ethernet112  T1-1               hundredGigE1/2       BR            T0-2:hundredGigE1/29
Ethernet116  T1-2               hundredGigE1/2       BR            T0-2:hundredGigE1/30
eth0         swtor-b2lab2-1610  GigabitEthernet 0/2  OBR
--------------------------------------------------
Total entries displayed:  3
"""


def test_lldp_table_with_spaces_and_empty_cells() -> None:
    neighbors = parse_lldp_table(LLDP)
    assert [(n.local_port, n.remote_system, n.remote_port) for n in neighbors] == [
        ("Ethernet112", "T1-1", "hundredGigE1/2"),
        ("Ethernet116", "T1-2", "hundredGigE1/2"),
        ("eth0", "swtor-b2lab2-1610", "GigabitEthernet 0/2"),
    ]


def test_lldp_table_empty_is_no_neighbors() -> None:
    text = (
        "Capability codes: (R) Router, (B) Bridge, (O) Other\n"
        "LocalPort    RemoteDevice    RemotePortID    Capability    RemotePortDescr\n"
        "-----------  --------------  --------------  ------------  -----------------\n"
        "--------------------------------------------------\n"
        "Total entries displayed:  0\n"
    )
    assert parse_lldp_table(text) == []


def test_lldp_table_truncated_or_headerless_is_protocol_error() -> None:
    truncated = LLDP.replace("Total entries displayed:  3", "Total entries displayed:  4")
    with pytest.raises(DeviceProtocolError, match="3 rows but says"):
        parse_lldp_table(truncated)
    with pytest.raises(DeviceProtocolError, match="no table header"):
        parse_lldp_table("")  # lldp container not running: lldpshow prints nothing
    garbled = LLDP.replace("RemoteDevice ", "RemoteDev    ")
    with pytest.raises(DeviceProtocolError, match="lacks column"):
        parse_lldp_table(garbled)


def test_show_version_missing_fields_is_protocol_error() -> None:
    text = "SONiC Software Version: SONiC.202311.1\nPlatform: x86_64-kvm_x86_64-r0\n"
    with pytest.raises(DeviceProtocolError, match="HwSKU, Serial Number"):
        parse_show_version(text)
    ok = text + "HwSKU: Force10-S6000\nSerial Number: N/A\nUptime: 14:40:15 up 3 min\n"
    assert parse_show_version(ok) == Identity("SONiC", "Force10-S6000", "N/A", "SONiC.202311.1")
