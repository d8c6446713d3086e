"""SSH connect against scripted misbehaving servers on 127.0.0.1: the whole connect has one deadline.

paramiko bounds the banner read per chunk, and the banner, the key exchange and authentication
each on their own; a server that accepts and says nothing, trickles its banner, or sends a banner
and then trickles the key exchange must still end the connect within ``timeout_s`` + 2 s, as a
DeviceTimeout naming device, address and operation. (Output caps and deadlines of commands are
tested against OpenSSH: tests/peers/test_ssh_hostile_output.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from rackval.core.errors import DeviceTimeout
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.transport.ssh import SshTransport
from tests.support.scripted_peers import Peer, ScriptedTcpServer

TIMEOUT_S = 1.0
SLACK_S = 2.0


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[Peer], None]], ScriptedTcpServer]]:
    started: list[ScriptedTcpServer] = []

    def start(script: Callable[[Peer], None]) -> ScriptedTcpServer:
        started.append(ScriptedTcpServer(script))
        return started[-1]

    yield start
    for srv in started:
        srv.stop()


def half_open(peer: Peer) -> None:
    peer.hold()


def banner_trickled(peer: Peer) -> None:
    peer.trickle(b"SSH-2.0-" + b"x" * 10_000, every_s=0.05)  # no end of line, a byte at a time


def key_exchange_trickled(peer: Peer) -> None:
    peer.send(b"SSH-2.0-OpenSSH_9.6\r\n")
    peer.trickle(b"\x00\x00\x01\xfc\x07\x14" + b"\x00" * 10_000, every_s=0.05)  # a KEXINIT that never ends


@pytest.mark.parametrize(
    ("script", "stage"),
    [(half_open, "no SSH banner"), (banner_trickled, "no SSH banner"), (key_exchange_trickled, "key exchange")],
    ids=["half-open", "banner-trickled", "kex-trickled"],
)
def test_connect_ends_by_its_deadline_whatever_the_server_does(server, script, stage: str) -> None:
    srv = server(script)
    t = SshTransport(
        DeviceConfig("node-hostile", "node", "linux-gpu-node", "127.0.0.1", srv.port,
                     Credentials(username="root", password=Secret("ssh-pw")),
                     {"known_hosts": "/nonexistent/known_hosts"}, TIMEOUT_S)
    )  # fmt: skip
    started = time.monotonic()
    try:
        with pytest.raises(DeviceTimeout) as info:
            t.run(["true"])
    finally:
        t.close()
    elapsed = time.monotonic() - started
    err = info.value
    assert err.device == "node-hostile" and err.address == f"127.0.0.1:{srv.port}"
    assert err.operation == "SSH connect as root" and stage in str(err)
    assert "ssh-pw" not in str(err)
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + SLACK_S
