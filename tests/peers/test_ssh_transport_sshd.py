"""SshTransport and SonicSwitch against a real OpenSSH sshd (third-party peer) on 127.0.0.1.

sshd (started by tests/support/sshd_peer.py) runs with its own config, host key and authorized_keys in a
temporary directory, and a ForceCommand script that answers from tests/data/sonic/ (SONiC-format
output), echoes SSH_ORIGINAL_COMMAND for ``echo``, sleeps for ``sleep N`` and exits 127 for
anything else.
"""

from __future__ import annotations

import shlex
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from rackval.core.errors import DeviceAuthError, DeviceTimeout
from rackval.drivers.capabilities import Identity, LldpNeighbor, PortStatus
from rackval.drivers.config import Credentials, DeviceConfig
from rackval.drivers.switch.sonic import SonicSwitch
from rackval.drivers.transport.ssh import SshTransport
from tests.support.sshd_peer import SshdPeer, fingerprint, keygen, python_command, start_sshd

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "sonic"

FORCE_COMMAND = textwrap.dedent(
    """\
    import os, shlex, sys, time
    DATA_DIR = {data_dir!r}
    FILES = {{
        "show version": "show_version.txt",
        "show interfaces status": "show_interfaces_status.txt",
        "show lldp table": "show_lldp_table.txt",
    }}
    raw = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    try:
        words = shlex.split(raw)
    except ValueError:
        words = [raw]
    if words[:1] == ["echo"]:
        sys.stdout.write(raw + "\\n")
        sys.exit(0)
    if words[:1] == ["sleep"] and len(words) == 2:
        time.sleep(float(words[1]))
        sys.exit(0)
    name = FILES.get(" ".join(words))
    if name is None:
        sys.stderr.write("bash: line 1: %s: command not found\\n" % (words[0] if words else ""))
        sys.exit(127)
    with open(os.path.join(DATA_DIR, name)) as fh:
        sys.stdout.write(fh.read())
    """
)


class Sshd(SshdPeer):
    """The peer; ``config()`` defaults to a SONiC switch named tor-sshd."""

    DEVICE_NAME = "tor-sshd"
    DEVICE_KIND = "switch"
    DEVICE_DRIVER = "sonic"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    d = tmp_path_factory.mktemp("sshd")
    script = d / "force_command.py"
    script.write_text(FORCE_COMMAND.format(data_dir=str(DATA_DIR)))
    peer = start_sshd(d, python_command(script), peer_type=Sshd)
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def transport(sshd: Sshd):
    t = SshTransport(sshd.config())
    yield t
    t.close()


def test_run_returns_stdout_and_exit_status_zero(transport: SshTransport) -> None:
    result = transport.run(["show", "version"])
    assert result.exit_status == 0
    assert result.ok
    assert result.stdout == (DATA_DIR / "show_version.txt").read_text()
    assert result.stderr == ""
    assert result.command == "show version"
    assert 0 < result.duration_s < 5


def test_unknown_command_exits_127_with_message(transport: SshTransport) -> None:
    result = transport.run(["reboot", "now"])
    assert result.exit_status == 127
    assert "reboot: command not found" in result.stderr
    assert result.stdout == ""


def test_connection_is_reused_and_socket_has_nodelay(transport: SshTransport) -> None:
    transport.run(["show", "version"])
    first = transport._client.get_transport()  # white-box: the one connection this instance holds
    transport.run(["show", "lldp", "table"])
    assert transport._client.get_transport() is first
    assert first.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_argv_is_quoted_as_one_string(transport: SshTransport) -> None:
    argv = ["echo", "two words", "it's", 'say "hi"; rm -rf /tmp/x', "$HOME", "a|b&c"]
    result = transport.run(argv)
    assert result.exit_status == 0
    received = result.stdout.rstrip("\n")  # sshd hands the command line over verbatim
    assert received == shlex.join(argv)
    assert shlex.split(received) == argv


def test_string_command_is_sent_as_is(transport: SshTransport) -> None:
    result = transport.run("echo a   'b  c'")
    assert result.stdout.rstrip("\n") == "echo a   'b  c'"


def test_command_timeout_names_the_command_and_keeps_connection(transport: SshTransport) -> None:
    start = time.monotonic()
    with pytest.raises(DeviceTimeout) as info:
        transport.run(["sleep", "2"], timeout=0.3)
    assert time.monotonic() - start < 1.5
    assert "sleep 2" in str(info.value)
    assert "tor-sshd" in str(info.value)
    assert transport.run(["show", "version"]).exit_status == 0


def test_reconnects_once_when_connection_died(transport: SshTransport) -> None:
    transport.run(["show", "version"])
    transport._client.get_transport().close()  # white-box: simulate a dropped connection
    result = transport.run(["show", "version"])
    assert result.exit_status == 0
    assert "HwSKU: Mellanox-SN4700-O8C48" in result.stdout


def test_parallel_callers_share_one_transport(transport: SshTransport) -> None:
    expected = (DATA_DIR / "show_lldp_table.txt").read_text()
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(2):
                results.append(transport.run(["show", "lldp", "table"]).stdout)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert results == [expected] * 8


def test_unknown_host_key_is_refused_naming_device_address_andfingerprint(sshd: Sshd, tmp_path: Path) -> None:
    other = paramiko.ECDSAKey.generate()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port + 1} {other.get_name()} {other.get_base64()}\n")
    t = SshTransport(sshd.config(known_hosts=str(known)))
    with pytest.raises(DeviceAuthError) as info:
        t.run(["show", "version"])
    message = str(info.value)
    assert info.value.device == "tor-sshd"
    assert info.value.address == f"127.0.0.1:{sshd.port}"
    assert f"127.0.0.1:{sshd.port}" in message
    assert fingerprint(sshd.host_key_line) in message
    assert str(known) in message
    t.close()


def test_missing_known_hosts_file_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "known_hosts"
    t = SshTransport(sshd.config(known_hosts=str(missing)))
    with pytest.raises(DeviceAuthError) as info:
        t.run(["show", "version"])
    assert "does not exist" in str(info.value)
    assert not missing.exists()


def test_changed_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    impostor = keygen(tmp_path / "impostor")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {impostor}\n")
    t = SshTransport(sshd.config(known_hosts=str(known)))
    with pytest.raises(DeviceAuthError) as info:
        t.run(["show", "version"])
    message = str(info.value)
    assert "HOST KEY CHANGED" in message
    assert fingerprint(sshd.host_key_line) in message  # what the server offered
    assert fingerprint(impostor) in message  # what the file expected
    # trust-on-first-use must not paper over a changed key either
    t2 = SshTransport(sshd.config(known_hosts=str(known), trust_on_first_use=True))
    with pytest.raises(DeviceAuthError):
        t2.run(["show", "version"])
    assert known.read_text() == f"[127.0.0.1]:{sshd.port} {impostor}\n"


def test_trust_on_first_use_records_the_key(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "tofu" / "known_hosts"
    t = SshTransport(sshd.config(known_hosts=str(known), trust_on_first_use=True))
    assert t.run(["show", "version"]).exit_status == 0
    t.close()
    assert known.read_text() == f"[127.0.0.1]:{sshd.port} {sshd.host_key_line}\n"
    strict = SshTransport(sshd.config(known_hosts=str(known)))  # now verifiable without TOFU
    assert strict.run(["show", "version"]).exit_status == 0
    strict.close()


def test_key_not_authorized_is_auth_error(sshd: Sshd, tmp_path: Path) -> None:
    keygen(tmp_path / "stranger")
    base = sshd.config()
    cfg = DeviceConfig(
        name=base.name,
        kind=base.kind,
        driver=base.driver,
        host=base.host,
        port=base.port,
        credentials=Credentials(username=sshd.user, key_file=str(tmp_path / "stranger")),
        options=base.options,
    )
    t = SshTransport(cfg)
    with pytest.raises(DeviceAuthError) as info:
        t.run(["show", "version"])
    assert sshd.user in str(info.value)
    assert "key file" in str(info.value)


def test_sonic_switch_parses_real_format_output_through_sshd(sshd: Sshd) -> None:
    sw = SonicSwitch(sshd.config())
    try:
        assert sw.identify() == Identity(
            vendor="SONiC", model="Mellanox-SN4700-O8C48", serial="MT2330X01234", firmware="SONiC.202311.1-8c08d87"
        )
        ports = sw.ports()
        assert [p.name for p in ports] == [
            "Ethernet0",
            "Ethernet8",
            "Ethernet16",
            "Ethernet24",
            "Ethernet32",
            "Ethernet36",
            "Ethernet40",
            "PortChannel101",
        ]
        by_name = {p.name: p for p in ports}
        assert by_name["Ethernet0"] == PortStatus("Ethernet0", True, True, 400_000, "etp1")
        assert by_name["Ethernet16"] == PortStatus("Ethernet16", False, True, 400_000, "etp3")
        assert by_name["Ethernet24"] == PortStatus("Ethernet24", False, False, 400_000, "etp4")
        assert by_name["Ethernet32"] == PortStatus("Ethernet32", True, True, 100_000, "etp5a")
        assert by_name["Ethernet40"] == PortStatus("Ethernet40", False, False, None, "etp6")
        assert by_name["PortChannel101"] == PortStatus("PortChannel101", True, True, 200_000, "")
        assert sw.lldp_neighbors() == [
            LldpNeighbor("Ethernet0", "gpu-node-01", "enp27s0np0"),
            LldpNeighbor("Ethernet8", "gpu-node-02", "enp27s0np0"),
            LldpNeighbor("Ethernet32", "spine-01", "Ethernet120"),
            LldpNeighbor("Ethernet36", "spine-02", "Ethernet120"),
            LldpNeighbor("eth0", "mgmt-sw-r12", "GigabitEthernet 0/12"),
        ]
    finally:
        sw.close()
