"""SshTransport against commands that misbehave on a real OpenSSH sshd: 128 MiB of output, output
trickled for ever. Each way of running a command (an exec channel, the persistent ``sh``
session) must stop at option ``max_output_bytes`` with a DeviceProtocolError, or at its limit
with a DeviceTimeout, naming device, address and the command, within the limit + 2 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.transport.ssh import SshTransport
from tests.support.sshd_peer import ShellHost

TIMEOUT_S = 2.0
SLACK_S = 2.0
HUGE = "head -c 134217728 /dev/zero"
TRICKLE = "while :; do echo tick; sleep 0.1; done"


@pytest.fixture
def transport(shell_host: ShellHost) -> Iterator[SshTransport]:
    t = SshTransport(shell_host.config(timeout_s=TIMEOUT_S, max_output_bytes=1_000_000))
    t.connect()  # the deadlines measured below are the commands', not the connect's
    yield t
    t.close()


RUNNERS: dict[str, Callable[[SshTransport, str], object]] = {
    "exec": lambda t, cmd: t.run(cmd),
    "session": lambda t, cmd: t.run_persistent(cmd),
}


def timed_failure(call: Callable[[], object], cls: type[DeviceError]) -> tuple[DeviceError, float]:
    started = time.monotonic()
    with pytest.raises(cls) as info:
        call()
    return info.value, time.monotonic() - started


@pytest.mark.parametrize("how", sorted(RUNNERS))
def test_huge_output_stops_at_the_cap(transport: SshTransport, shell_host: ShellHost, how: str) -> None:
    err, elapsed = timed_failure(lambda: RUNNERS[how](transport, HUGE), DeviceProtocolError)
    assert err.device == "node-sh" and err.address == f"{shell_host.host}:{shell_host.port}"
    assert err.operation == f"SSH command {HUGE!r}"
    assert "output larger than 1000000 bytes" in str(err)
    assert elapsed < TIMEOUT_S + SLACK_S
    assert RUNNERS[how](transport, "echo still here").stdout == "still here\n"  # the transport recovers


@pytest.mark.parametrize("how", sorted(RUNNERS))
def test_output_trickled_for_ever_ends_by_the_limit(transport: SshTransport, shell_host: ShellHost, how: str) -> None:
    err, elapsed = timed_failure(lambda: RUNNERS[how](transport, TRICKLE), DeviceTimeout)
    assert err.device == "node-sh" and err.address == f"{shell_host.host}:{shell_host.port}"
    assert err.operation == f"SSH command {TRICKLE!r}"
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + SLACK_S


def test_huge_output_does_not_grow_the_process() -> None:
    """Peak RSS of a 256 MiB command output, in a fresh process (bench/bench_transport_caps.py)."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "bench" / "bench_transport_caps.py"), "--case", "ssh", "--mib", "256", "--json"],
        capture_output=True, text=True, timeout=240, cwd=root, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "output larger than" in str(result.get("outcome")), result
    assert float(result["growth_mb"]) < 200, result  # unbounded growth would be >= 256 MiB
