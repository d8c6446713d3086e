"""The SCPI transport (pyvisa-py) against scripted misbehaving instruments on 127.0.0.1.

Raw socket (``::SOCKET``) peers that trickle a reply, never end it, never answer, stream 128 MiB
without a newline, or answer with bytes that are not text; VXI-11 and HiSLIP peers that accept
the connection and never answer. Each case asserts the error class, that the message names
device, address and operation, and that it ended within ``timeout_s`` + 2 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import DeviceConfig
from rackval.drivers.transport.scpi import ScpiTransport
from tests.support.scripted_peers import Peer, ScriptedTcpServer

TIMEOUT_S = 1.0
SLACK_S = 2.0
HUGE = 128 * 1024 * 1024


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[Peer], None]], ScriptedTcpServer]]:
    started: list[ScriptedTcpServer] = []

    def start(script: Callable[[Peer], None]) -> ScriptedTcpServer:
        started.append(ScriptedTcpServer(script))
        return started[-1]

    yield start
    for srv in started:
        srv.stop()


def transport(srv: ScriptedTcpServer, **options: object) -> ScpiTransport:
    return ScpiTransport(
        DeviceConfig("meter-hostile", "analyzer", "generic-scpi", "127.0.0.1", srv.port, options=options,
                     timeout_s=TIMEOUT_S)
    )  # fmt: skip


def on_query(answer: Callable[[Peer], None]) -> Callable[[Peer], None]:
    """A script that reads one command line, then misbehaves with ``answer``."""

    def script(peer: Peer) -> None:
        peer.recv_until(b"\n")
        answer(peer)

    return script


def timed_failure(call: Callable[[], object], cls: type[DeviceError]) -> tuple[DeviceError, float]:
    started = time.monotonic()
    with pytest.raises(cls) as info:
        call()
    return info.value, time.monotonic() - started


def names_where(err: DeviceError, srv: ScriptedTcpServer, operation: str) -> None:
    assert err.device == "meter-hostile" and err.address == f"127.0.0.1:{srv.port}"
    assert err.operation == operation
    assert str(err).startswith(f"meter-hostile (127.0.0.1:{srv.port}): {operation}: ")


def trickle_forever(peer: Peer) -> None:
    peer.trickle(b"1" * 100_000, every_s=0.05)  # a byte well inside every read's timeout, no newline


def slow_reply(peer: Peer) -> None:
    peer.trickle(b"YOKOGAWA,WT5000,S1,F1\n", every_s=0.1)  # complete, but after 2.2 s


def no_terminator(peer: Peer) -> None:
    peer.send(b"YOKOGAWA,WT5000,S1,F1")
    peer.hold()


def half_open(peer: Peer) -> None:
    peer.hold()


@pytest.mark.parametrize(
    "script",
    [pytest.param(on_query(trickle_forever), id="trickle"), pytest.param(on_query(slow_reply), id="slow-reply"),
     pytest.param(on_query(no_terminator), id="no-terminator"), pytest.param(half_open, id="half-open")],
)  # fmt: skip
def test_query_ends_by_its_deadline_whatever_the_instrument_does(server, script) -> None:
    srv = server(script)
    t = transport(srv)
    try:
        err, elapsed = timed_failure(lambda: t.query("*IDN?"), DeviceTimeout)
    finally:
        t.close()
    names_where(err, srv, "SCPI query '*IDN?'")
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + SLACK_S


def test_transport_reconnects_after_a_deadline(server) -> None:
    calls = {"n": 0}

    def first_is_silent(peer: Peer) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            peer.hold()
        while True:
            peer.recv_until(b"\n")
            peer.send(b"ACME,M1,S1,F1\n")

    srv = server(first_is_silent)
    t = transport(srv)
    try:
        timed_failure(lambda: t.query("*IDN?"), DeviceTimeout)
        assert t.identity() == ("ACME", "M1", "S1", "F1")
        assert srv.connections == 2
    finally:
        t.close()


def test_huge_reply_without_newline_is_refused_at_the_cap(server) -> None:
    srv = server(on_query(lambda peer: peer.stream(b"7" * 65536, HUGE)))
    t = transport(srv, max_reply_bytes=1_000_000)
    try:
        err, elapsed = timed_failure(lambda: t.query(":NUM:VAL?"), DeviceProtocolError)
    finally:
        t.close()
    names_where(err, srv, "SCPI query ':NUM:VAL?'")
    assert "reply larger than 1000000 bytes" in str(err)
    assert elapsed < TIMEOUT_S + SLACK_S


def test_reply_just_under_the_cap_is_read_whole(server) -> None:
    srv = server(on_query(lambda peer: (peer.send(b"5" * 999_999 + b"\n"), peer.hold())))
    t = transport(srv, max_reply_bytes=1_000_000)
    try:
        assert t.query(":DATA?") == "5" * 999_999
    finally:
        t.close()


def test_garbage_bytes_are_a_protocol_error(server) -> None:
    srv = server(on_query(lambda peer: (peer.send(b"\xff\xfe\x1b[2J\x00garbage\n"), peer.hold())))
    t = transport(srv)
    try:
        err, elapsed = timed_failure(lambda: t.query("*IDN?"), DeviceProtocolError)
    finally:
        t.close()
    names_where(err, srv, "SCPI query '*IDN?'")
    assert "garbled reply" in str(err) and "\x1b" not in str(err)
    assert elapsed < TIMEOUT_S + SLACK_S


def test_identity_of_the_wrong_shape_is_a_protocol_error(server) -> None:
    srv = server(on_query(lambda peer: (peer.send(b"\x1b[2Jonly,two\n"), peer.hold())))
    t = transport(srv)
    try:
        err, _ = timed_failure(t.identity, DeviceProtocolError)
    finally:
        t.close()
    assert "expected 'maker,model,serial,firmware'" in str(err)
    assert "\x1b" not in str(err) and "\\x1b[2Jonly,two" in str(err)


@pytest.mark.parametrize(
    "resource",
    ["TCPIP0::127.0.0.1,{port}::inst0::INSTR", "TCPIP0::127.0.0.1::hislip0,{port}::INSTR"],
    ids=["vxi11", "hislip"],
)
def test_half_open_vxi11_and_hislip_peers_are_bounded(server, resource: str) -> None:
    srv = server(half_open)
    name = resource.format(port=srv.port)
    t = transport(srv, resource=name)
    try:
        err, elapsed = timed_failure(lambda: t.query("*IDN?"), DeviceTimeout)
    finally:
        t.close()
    assert err.device == "meter-hostile" and name in str(err)
    assert err.operation in (f"open SCPI session {name}", "SCPI query '*IDN?'")
    assert elapsed < TIMEOUT_S + SLACK_S
