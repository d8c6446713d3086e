"""The wire protocol of ``SshTransport.run_persistent``'s long-lived ``sh`` session.

The session runs ``sh`` once; each command is written as one line with stdin from /dev/null,
followed by its exit status after a random marker on stdout and the marker on stderr, so both
streams of each command are delimited exactly (the simulator's SSH server answers the same
lines). Why a session at all, and when the transport gives up on it, is ``run_persistent``'s
docstring.
"""

from __future__ import annotations

import os
import select
import time

import paramiko

from rackval.drivers.transport.ssh_shell import READ_CHUNK


class SessionEnded(Exception):
    """The session's channel ended before the command's end markers came."""


class SessionTooLarge(Exception):
    """The command's output went past the byte cap before its end markers came."""


class SessionSilent(Exception):
    """The deadline passed before the command's end markers came."""

    def __init__(self, out_bytes: int, err_bytes: int) -> None:
        super().__init__(f"{out_bytes} bytes of stdout, {err_bytes} of stderr so far")
        self.out_bytes = out_bytes
        self.err_bytes = err_bytes


def new_marker() -> str:
    """A marker no command output will contain by chance."""
    return "RV" + os.urandom(8).hex()


def command_line(cmd: str, marker: str) -> str:
    """The line that runs ``cmd`` in the session and ends both its streams with ``marker``."""
    body = cmd.rstrip().rstrip(";").rstrip()
    return f"{{ {body}; }} </dev/null; printf '\\n%s %d\\n' {marker} \"$?\"; printf '%s\\n' {marker} >&2\n"


def read_result(chan: paramiko.Channel, marker: str, deadline: float, max_bytes: int) -> tuple[bytes, bytes, bytes]:
    """stdout, stderr and the exit status text of the command that ``marker`` ends.

    Raises SessionEnded, SessionSilent or SessionTooLarge (more than ``max_bytes`` of output);
    the session's state is then unknown."""
    out, err = bytearray(), bytearray()
    end_out = f"\n{marker} ".encode()
    end_err = f"{marker}\n".encode()
    fd = chan.fileno()
    while True:
        while chan.recv_ready() and len(out) + len(err) <= max_bytes:
            out.extend(chan.recv(READ_CHUNK))
        while chan.recv_stderr_ready() and len(out) + len(err) <= max_bytes:
            err.extend(chan.recv_stderr(READ_CHUNK))
        at = out.find(end_out)
        if at >= 0 and out.endswith(b"\n") and err.endswith(end_err):
            break
        if len(out) + len(err) > max_bytes:
            raise SessionTooLarge
        if chan.eof_received or chan.closed:
            raise SessionEnded
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SessionSilent(len(out), len(err))
        select.select([fd], [], [], remaining)
    return bytes(out[:at]), bytes(err[: -len(end_err)]), bytes(out[at + len(end_out) :].strip())
