"""SshTransport.run_persistent against OpenSSH: one ``sh`` session, each command framed exactly.

The peer is a real sshd whose sessions run a real POSIX shell, as on a Linux node; a second peer
is a CLI that offers no shell (ForceCommand), where run_persistent must fall back to exec.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.core.errors import DeviceTimeout
from rackval.drivers.transport.ssh import SshTransport
from tests.support.sshd_peer import ShellHost, python_command, start_sshd


@pytest.fixture
def transport(shell_host: ShellHost) -> Iterator[SshTransport]:
    t = SshTransport(shell_host.config(timeout_s=5.0))
    yield t
    t.close()


def test_streams_status_and_quoting_are_framed_exactly(transport: SshTransport) -> None:
    r = transport.run_persistent(["printf", "%s|", "two words", "it's", "$HOME;x"])
    assert (r.exit_status, r.stdout, r.stderr) == (0, "two words|it's|$HOME;x|", "")  # no newline added
    r = transport.run_persistent("echo out; echo err >&2; exit_code() { return 3; }; exit_code")
    assert (r.exit_status, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = transport.run_persistent(["ls", "/no/such/dir"])
    assert r.exit_status != 0 and "/no/such/dir" in r.stderr and r.stdout == ""
    r = transport.run_persistent("head -c 1000000 /dev/zero | tr '\\0' x")
    assert r.stdout == "x" * 1_000_000


def test_one_session_serves_every_command(transport: SshTransport) -> None:
    pids = {transport.run_persistent("echo $$").stdout for _ in range(5)}
    assert len(pids) == 1  # the same shell ran all five
    assert transport.run("echo $$").stdout not in pids  # an exec channel gets a shell of its own


def test_stdin_of_a_command_is_not_the_session(transport: SshTransport) -> None:
    # `cat` would otherwise eat the next command lines; it reads /dev/null and ends at once
    assert transport.run_persistent("cat").stdout == ""
    assert transport.run_persistent("echo still here").stdout == "still here\n"


def test_timeout_closes_the_session_and_the_next_command_gets_a_new_one(transport: SshTransport) -> None:
    before = transport.run_persistent("echo $$").stdout
    with pytest.raises(DeviceTimeout) as info:
        transport.run_persistent(["sleep", "5"], timeout=0.5)
    assert "sleep 5" in str(info.value) and "node-sh" in str(info.value)
    after = transport.run_persistent("echo $$").stdout
    assert after and after != before


def test_multi_line_commands_are_refused(transport: SshTransport) -> None:
    with pytest.raises(ValueError, match="one command line"):
        transport.run_persistent("echo a\necho b")


CLI = textwrap.dedent(
    """\
    import os, sys
    raw = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    if raw == "show version":
        sys.stdout.write("CLI 1.0\\n")
        sys.exit(0)
    sys.stderr.write("% Invalid input: " + raw + "\\n")
    sys.exit(1)
    """
)


def test_a_device_without_a_shell_falls_back_to_exec(tmp_path: Path) -> None:
    script = tmp_path / "cli.py"
    script.write_text(CLI)
    peer = start_sshd(tmp_path / "sshd", python_command(script), peer_type=ShellHost)
    try:
        t = SshTransport(peer.config(timeout_s=3.0))
        try:
            first = t.run_persistent(["show", "version"])
            second = t.run_persistent(["show", "version"])
        finally:
            t.close()
        assert first.stdout == second.stdout == "CLI 1.0\n" and first.exit_status == 0
    finally:
        peer.stop()
