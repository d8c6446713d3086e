"""Interactive-shell mode of SshTransport, its exec fallback, EOS through the shell, and connect timeouts.

The peer is a real OpenSSH sshd whose ForceCommand is a small interactive switch CLI
(tests/support/ssh_interactive_cli.py): banner and prompt with ANSI escapes, ``terminal length 0``, a ``--More--``
pager read in cbreak mode, EOS ``| json`` answers from tests/data/eos/, and a refusal of exec
channels. The connect-timeout tests use a TCP server that accepts and never speaks, and the
simulator's ``device_silent`` fault.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from rackval.core.errors import ConfigError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.capabilities import Identity, PortStatus
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.switch.eos import AristaEosSwitch
from rackval.drivers.transport.ssh import SshTransport
from rackval.drivers.transport.ssh_options import DEFAULT_PAGER_REGEX, DEFAULT_PROMPT_REGEX
from rackval.drivers.transport.ssh_terminal import render_terminal, strip_pager_prompts
from rackval.sim.clock import SimClock
from rackval.sim.faults import make_fault
from rackval.sim.model import RackModel
from rackval.sim.ssh_server import write_known_hosts
from rackval.sim.switch_shell import start_switch_ssh
from tests.support.ssh_interactive_cli import LONG_OUTPUT
from tests.support.ssh_interactive_sshd import EOS_DATA, InteractiveSshd, SilentTcpServer, start_interactive_sshd

NAME = "leaf-sshi"
CLEAN_LONG = re.sub(r"\x1b\[[0-9;]*m", "", LONG_OUTPUT)
SHOW_VERSION = (EOS_DATA / "show_version.json").read_text()


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveSshd]:
    server = start_interactive_sshd(tmp_path_factory.mktemp("sshi"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def closing() -> Iterator[list]:
    """Transports and drivers a test opened; closed even when the test fails."""
    opened: list = []
    yield opened
    for item in opened:
        item.close()


@pytest.fixture(autouse=True)
def _fresh_logs(request: pytest.FixtureRequest) -> None:
    if "peer" in request.fixturenames:
        request.getfixturevalue("peer").reset_logs()


def _transport(peer: InteractiveSshd, closing: list, **options: object) -> SshTransport:
    t = SshTransport(peer.config(NAME, **options))
    closing.append(t)
    return t


def _assert_clean(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text and "\b" not in text
    assert "switch1" not in text  # no prompt
    assert "More" not in text  # no pager prompt


# ---- run_interactive -------------------------------------------------------------------------


def test_run_interactive_returns_clean_outputs(peer: InteractiveSshd, closing: list) -> None:
    t = _transport(peer, closing)
    colour, long, version, invalid = t.run_interactive(
        ["show colour", "show long", "show version | json", "show bogus"]
    )
    assert colour == "status: green\n"  # echo, ANSI colours and the prompt all gone
    assert long == CLEAN_LONG  # 60 lines, terminal length 0 was honoured
    assert version == SHOW_VERSION
    assert invalid == "% Invalid input (at token 0: 'show')\n"
    for text in (colour, long, version, invalid):
        _assert_clean(text)


def test_output_beyond_the_cap_closes_the_shell_with_a_protocol_error(peer: InteractiveSshd, closing: list) -> None:
    t = _transport(peer, closing, max_output_bytes=1024)
    with pytest.raises(DeviceProtocolError) as info:
        t.run_interactive("show interfaces status | json")  # 4 KB of JSON
    assert info.value.device == NAME and info.value.operation == "SSH shell command 'show interfaces status | json'"
    assert "output larger than 1024 characters" in str(info.value)
    assert t.run_interactive("show colour") == ["status: green\n"]  # a new shell on the same connection


def test_one_shell_is_reused_across_calls(peer: InteractiveSshd, closing: list) -> None:
    t = _transport(peer, closing)
    assert t.run_interactive("show colour") == ["status: green\n"]
    chan = t._shell.chan  # white-box: the one shell channel this instance holds
    assert t.run_interactive(["show version | json"]) == [SHOW_VERSION]
    assert t._shell.chan is chan
    assert len(peer.log_lines("sessions.log")) == 1


@pytest.mark.parametrize("erase", ["cr", "backspace", "ansi", "none"])
def test_pager_is_answered_when_terminal_length_is_ignored(peer: InteractiveSshd, closing: list, erase: str) -> None:
    with peer.behave(ignore_terminal_length=True, pager_erase=erase):
        t = _transport(peer, closing)
        long, version = t.run_interactive(["show long", "show version | json"])
    assert long == CLEAN_LONG  # three pages joined, the --More-- prompts removed
    assert version == SHOW_VERSION  # 20 lines: exactly one page, no pager
    _assert_clean(long)


def test_shell_is_reopened_after_the_device_closed_it(peer: InteractiveSshd, closing: list) -> None:
    t = _transport(peer, closing)
    t.run_interactive("show colour")
    started = time.monotonic()
    with pytest.raises(DeviceError) as info:
        t.run_interactive("exit")  # the CLI ends the session: no prompt will ever come
    assert not isinstance(info.value, DeviceTimeout)
    assert time.monotonic() - started < 2.0
    assert "'exit'" in str(info.value) and "closed the interactive session" in str(info.value)
    assert t.run_interactive("show colour") == ["status: green\n"]
    assert len(peer.log_lines("sessions.log")) == 2


def test_prompt_never_returning_is_timeout_naming_the_command(peer: InteractiveSshd, closing: list) -> None:
    t = _transport(peer, closing)
    t.run_interactive("show colour")
    started = time.monotonic()
    with pytest.raises(DeviceTimeout) as info:
        t.run_interactive(["show tech-support"], timeout=0.5)
    assert 0.45 <= time.monotonic() - started < 2.0
    err = info.value
    assert err.device == NAME and err.address == f"127.0.0.1:{peer.port}"
    assert "show tech-support" in err.operation
    assert "show version ---" in err.detail  # the last line received, to help the engineer
    # The hung shell is abandoned; the connection stays and a new shell answers.
    transport = t._client.get_transport()
    assert t.run_interactive("show colour") == ["status: green\n"]
    assert t._client.get_transport() is transport


def test_prompt_regex_that_does_not_match_times_out_opening_the_shell(peer: InteractiveSshd, closing: list) -> None:
    t = _transport(peer, closing, prompt_regex=r"router>")
    with pytest.raises(DeviceTimeout) as info:
        t.run_interactive("show colour", timeout=0.4)
    assert "first CLI prompt" in info.value.detail
    assert "switch1#" in info.value.detail  # what the device's prompt really looks like
    assert "prompt_regex" in info.value.detail
    assert t.run_interactive("show colour", prompt_regex=r"switch\d#") == ["status: green\n"]


def test_parallel_callers_share_one_shell(peer: InteractiveSshd, closing: list) -> None:
    t = _transport(peer, closing, cli_mode="shell")
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(3):
                results.append(t.run_cli("show version | json").stdout)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert results == [SHOW_VERSION] * 9
    assert len(peer.log_lines("sessions.log")) == 1
    assert peer.log_lines("exec.log") == []


# ---- cli_mode --------------------------------------------------------------------------------


@pytest.mark.parametrize("refusal", ["message", "silent"])
def test_auto_mode_falls_back_from_exec_and_remembers(peer: InteractiveSshd, closing: list, refusal: str) -> None:
    with peer.behave(exec_refusal=refusal):
        t = _transport(peer, closing, cli_mode="auto")
        assert t.active_cli_mode == "exec"
        result = t.run_cli("show version | json")
        assert (result.exit_status, result.stdout, result.stderr) == (0, SHOW_VERSION, "")
        assert t.active_cli_mode == "shell"
        assert t.run_cli("show colour").stdout == "status: green\n"
        t.close()  # remembered across reconnects too
        assert t.run_cli("show colour").stdout == "status: green\n"
    assert peer.log_lines("exec.log") == ["show version | json"]  # exec tried once only
    assert len(peer.log_lines("sessions.log")) == 2


def test_exec_mode_reports_the_refusal_and_does_not_fall_back(peer: InteractiveSshd, closing: list) -> None:
    t = _transport(peer, closing)  # cli_mode defaults to exec
    result = t.run_cli("show version | json")
    assert result.exit_status == 1
    assert "exec command is not supported" in result.stdout
    assert t.active_cli_mode == "exec"
    assert peer.log_lines("sessions.log") == []


def test_bad_cli_mode_is_config_error(peer: InteractiveSshd) -> None:
    with pytest.raises(ConfigError, match="cli_mode"):
        SshTransport(peer.config(NAME, cli_mode="telnet"))
    with pytest.raises(ConfigError, match="prompt_regex"):
        SshTransport(peer.config(NAME, prompt_regex="(unclosed"))


# ---- EOS driver through the shell ------------------------------------------------------------


def _check_eos(sw: AristaEosSwitch) -> None:
    assert sw.identify() == Identity(
        vendor="Arista", model="DCS-7060DX5-64S-F", serial="JPA2233X0AB", firmware="4.32.2F"
    )
    ports = {p.name: p for p in sw.ports()}
    assert len(ports) == 8
    assert ports["Ethernet1/1"] == PortStatus("Ethernet1/1", True, True, 400_000, "gpu-node-01 enp27s0np0")
    assert ports["Ethernet4/1"] == PortStatus("Ethernet4/1", False, False, 400_000, "spare")


def test_eos_driver_falls_back_to_the_shell_by_default(peer: InteractiveSshd, closing: list) -> None:
    sw = AristaEosSwitch(peer.config(NAME))
    closing.append(sw)
    _check_eos(sw)
    assert sw.cli_mode == "shell"
    assert len(sw.lldp_neighbors()) == 4
    assert peer.log_lines("exec.log") == ["show version | json"]
    assert len(peer.log_lines("sessions.log")) == 1


def test_eos_driver_in_shell_mode_with_a_pager_that_stays_on(peer: InteractiveSshd, closing: list) -> None:
    with peer.behave(ignore_terminal_length=True, pager_erase="cr"):
        sw = AristaEosSwitch(peer.config(NAME, cli_mode="shell"))
        closing.append(sw)
        _check_eos(sw)  # show interfaces status | json is 116 lines: six pages
        assert [s.name for s in sw.sensors()][:2] == ["TempSensor1", "TempSensor2"]
    assert peer.log_lines("exec.log") == []


def test_eos_cli_error_in_the_shell_is_protocol_error(peer: InteractiveSshd, closing: list) -> None:
    from rackval.core.errors import DeviceProtocolError

    sw = AristaEosSwitch(peer.config(NAME, cli_mode="shell", cli_wrapper="FastCli -c"))
    closing.append(sw)
    with pytest.raises(DeviceProtocolError) as info:
        sw.identify()
    assert "Invalid input" in str(info.value) and "show version | json" in str(info.value)


# ---- connect timeouts ------------------------------------------------------------------------


def test_silent_tcp_server_is_connect_timeout() -> None:
    server = SilentTcpServer()
    try:
        config = DeviceConfig(
            name="bmc-hung",
            kind="bmc",
            driver="openbmc",
            host=server.host,
            port=server.port,
            credentials=Credentials(username="root", password=Secret("0penBmc")),
            options={"known_hosts": "/nonexistent/known_hosts"},
            timeout_s=0.5,
        )
        t = SshTransport(config)
        started = time.monotonic()
        with pytest.raises(DeviceTimeout) as info:
            t.connect()
        elapsed = time.monotonic() - started
        assert 0.45 <= elapsed < 2.5
        err = info.value
        assert err.device == "bmc-hung" and err.address == f"127.0.0.1:{server.port}"
        assert "connect" in err.operation
        assert "no SSH banner" in err.detail and "0.5 s" in err.detail
        assert "0penBmc" not in str(err)
        assert server.accepted >= 1
        with pytest.raises(DeviceTimeout):  # through a command too, and the same again
            t.run_cli("show version")
        t.close()
    finally:
        server.stop()


def test_simulator_device_silent_is_connect_timeout(tmp_path: Path) -> None:
    model = RackModel(clock=SimClock(time_scale=0))
    switch = sorted(model.switches)[0]
    key = paramiko.ECDSAKey.generate()
    server = start_switch_ssh(model, switch, username="admin", password="sim-pw", host_key=key)
    try:
        known = tmp_path / "known_hosts"
        write_known_hosts(known, server.host, server.port, key)
        model.inject(make_fault("device_silent", switch))
        config = DeviceConfig(
            name=switch,
            kind="switch",
            driver="sonic",
            host=server.host,
            port=server.port,
            credentials=Credentials(username="admin", password=Secret("sim-pw")),
            options={"known_hosts": str(known)},
            timeout_s=0.5,
        )
        t = SshTransport(config)
        with pytest.raises(DeviceTimeout) as info:
            t.run(["show", "version"])
        assert info.value.device == switch and "connect" in info.value.operation
        t.close()
    finally:
        server.stop()


# ---- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "switch1#",
        "switch1>",
        "leaf1(config-if-Et1)#",
        "admin@host:~$ ",
        "[admin@host ~]$ ",
        "<HUAWEI>",
        "RP/0/RSP0/CPU0:r1#",
    ],
)
def test_default_prompt_regex_matches_common_prompts(line: str) -> None:
    pattern = re.compile(f"(?:{DEFAULT_PROMPT_REGEX})[ \\t]*\\Z", re.MULTILINE)
    assert pattern.search("banner\n" + line)


@pytest.mark.parametrize(
    "line", ["CPU utilization 95%", "cost 5$", "a -> b>", '    "port": "Ethernet1/1#', "show version"]
)
def test_default_prompt_regex_ignores_output_lines(line: str) -> None:
    pattern = re.compile(f"(?:{DEFAULT_PROMPT_REGEX})[ \\t]*\\Z", re.MULTILINE)
    assert not pattern.search("x\n" + line)


def test_render_terminal_applies_overwrites_and_drops_escapes() -> None:
    assert render_terminal("a\r\nb\r\n") == "a\nb\n"
    assert render_terminal("\x1b[1mbold\x1b[0m\r\n") == "bold\n"
    assert render_terminal(" --More-- \r          \rnext\r\n") == "next\n"
    assert render_terminal(" --More-- " + "\b" * 10 + " " * 10 + "\b" * 10 + "next\n") == "next\n"
    assert render_terminal(" --More-- \r\x1b[Knext\n") == "next\n"
    assert render_terminal("\x1b]0;title\x07ok\n") == "ok\n"
    pager = re.compile(DEFAULT_PAGER_REGEX)
    assert strip_pager_prompts("a\n --More-- \nb\n", pager) == "a\nb\n"
    assert strip_pager_prompts("a\n --More-- b\n", pager) == "a\nb\n"
