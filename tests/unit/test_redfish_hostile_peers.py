"""The Redfish transport and drivers against scripted misbehaving HTTP servers on 127.0.0.1.

One test per misbehaviour a real BMC web server has shown: headers or a body trickled one byte
at a time, a body without an end, a connection accepted and never answered, a 128 MiB reply,
JSON nested 100,000 levels deep, values of the wrong type, bytes that are not HTTP, a session
login answered 404/405/501. Each asserts the error class, that the message names device,
address and operation, and that it ended within ``timeout_s`` + 2 s (the documented slack).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.bmc.redfish import RedfishBmc
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.pdu.redfish_pdu import RedfishRackPdu
from rackval.drivers.transport.redfish import RedfishTransport
from tests.support.scripted_peers import Peer, ScriptedTcpServer

TIMEOUT_S = 1.0
SLACK_S = 2.0
SYSTEM = "/redfish/v1/Systems/1"
MANAGER = "/redfish/v1/Managers/1"
PASSWORD = "hostile-peer-pw"


def http_reply(status: int, body: bytes, *, headers: dict[str, str] | None = None, length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def doc(**members: Any) -> bytes:
    return json.dumps(members).encode()


IDENTITY = {SYSTEM: doc(Manufacturer="Contoso", Model="R1", SerialNumber="S1"), MANAGER: doc(FirmwareVersion="1.0")}


def serve(answers: dict[str, bytes | Callable[[Peer], None]]) -> Callable[[Peer], None]:
    """A script answering GETs by path: bytes are a JSON body (200), a callable misbehaves."""

    def script(peer: Peer) -> None:
        while True:
            line, _, _ = peer.read_http_request()
            path = line.split(" ")[1]
            answer = answers.get(path)
            if answer is None:
                peer.send(http_reply(404, doc(error={"message": "no such resource"})))
            elif callable(answer):
                answer(peer)
                return
            else:
                peer.send(http_reply(200, answer))

    return script


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[Peer], None]], ScriptedTcpServer]]:
    started: list[ScriptedTcpServer] = []

    def start(script: Callable[[Peer], None]) -> ScriptedTcpServer:
        started.append(ScriptedTcpServer(script))
        return started[-1]

    yield start
    for srv in started:
        srv.stop()


def config(srv: ScriptedTcpServer, *, auth: str = "basic", **options: object) -> DeviceConfig:
    return DeviceConfig(
        name="bmc-hostile",
        kind="bmc",
        driver="redfish",
        host="127.0.0.1",
        port=srv.port,
        credentials=Credentials(username="admin", password=Secret(PASSWORD)),
        options={"scheme": "http", "auth": auth, "system_id": "1", "manager_id": "1", **options},
        timeout_s=TIMEOUT_S,
    )


def timed_failure(call: Callable[[], object], cls: type[DeviceError]) -> tuple[DeviceError, float]:
    started = time.monotonic()
    with pytest.raises(cls) as info:
        call()
    return info.value, time.monotonic() - started


def names_where(err: DeviceError, srv: ScriptedTcpServer, operation: str) -> None:
    text = str(err)
    assert err.device == "bmc-hostile" and err.address == f"127.0.0.1:{srv.port}"
    assert err.operation == operation
    assert text.startswith(f"bmc-hostile (127.0.0.1:{srv.port}): {operation}: ")
    assert PASSWORD not in text


# ---- deadlines -------------------------------------------------------------------------------------
HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"


def slowloris_headers(peer: Peer) -> None:
    peer.trickle(HEADERS * 100, every_s=0.2)  # each byte well inside a read timeout


def slow_body(peer: Peer) -> None:
    peer.send(HEADERS)
    peer.trickle(b'{"Manufacturer": "' + b"x" * 1000, every_s=0.2)


def body_without_end(peer: Peer) -> None:
    peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")  # read until close...
    peer.trickle(b"[" * 10_000, every_s=0.1)  # ...which never comes


def endless_chunk(peer: Peer) -> None:
    peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n")
    peer.trickle(b"x" * 10_000, every_s=0.1)


def half_open(peer: Peer) -> None:
    peer.hold()


@pytest.mark.parametrize(
    "misbehaviour",
    [slowloris_headers, slow_body, body_without_end, endless_chunk, half_open],
    ids=["slowloris-headers", "slow-body", "no-terminator", "endless-chunk", "half-open"],
)
def test_request_ends_by_its_deadline_whatever_the_server_does(server, misbehaviour) -> None:
    srv = server(serve({SYSTEM: misbehaviour}))
    transport = RedfishTransport(config(srv))
    try:
        err, elapsed = timed_failure(lambda: transport.get(SYSTEM), DeviceTimeout)
    finally:
        transport.close()
    names_where(err, srv, f"GET {SYSTEM}")
    assert f"within {TIMEOUT_S:g} s" in str(err)
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + SLACK_S


def test_login_that_never_answers_is_bounded_too(server) -> None:
    srv = server(lambda peer: (peer.read_http_request(), peer.hold()))
    bmc = RedfishBmc(config(srv, auth="session"))
    try:
        err, elapsed = timed_failure(bmc.identify, DeviceTimeout)
    finally:
        bmc.close()
    assert "log in" in err.operation and err.address == f"127.0.0.1:{srv.port}"
    assert elapsed < TIMEOUT_S + SLACK_S


def test_transport_recovers_after_a_deadline(server) -> None:
    calls = {"n": 0}

    def first_hangs(peer: Peer) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            peer.hold()
        serve(IDENTITY)(peer)

    srv = server(first_hangs)
    transport = RedfishTransport(config(srv))
    try:
        timed_failure(lambda: transport.get(SYSTEM), DeviceTimeout)
        assert transport.get(SYSTEM)["Manufacturer"] == "Contoso"
    finally:
        transport.close()


# ---- size caps and parsing ----------------------------------------------------------------------------
HUGE = 128 * 1024 * 1024


@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "content-length"])
def test_huge_reply_is_refused_at_the_cap(server, declared: bool) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {HUGE}\r\n\r\n".encode() if declared else b"Connection: close\r\n\r\n"

    def huge(peer: Peer) -> None:
        peer.send(head)
        peer.stream(b'{"x": "' + b"y" * 65536, HUGE)

    srv = server(serve({SYSTEM: huge}))
    transport = RedfishTransport(config(srv, max_body_bytes=1_000_000))
    try:
        err, elapsed = timed_failure(lambda: transport.get(SYSTEM), DeviceProtocolError)
    finally:
        transport.close()
    names_where(err, srv, f"GET {SYSTEM}")
    assert "reply larger than 1000000 bytes" in str(err)
    assert elapsed < TIMEOUT_S + SLACK_S


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a": ' * 100_000 + b"1" + b"}" * 100_000],
    ids=["arrays", "objects"],
)
def test_deep_json_is_a_protocol_error(server, body: bytes) -> None:
    srv = server(serve({SYSTEM: body}))
    transport = RedfishTransport(config(srv))
    try:
        err, elapsed = timed_failure(lambda: transport.get(SYSTEM), DeviceProtocolError)
    finally:
        transport.close()
    names_where(err, srv, f"GET {SYSTEM}")
    assert "nested too deeply" in str(err)
    assert elapsed < TIMEOUT_S + SLACK_S


def test_non_standard_json_constants_are_refused(server) -> None:
    srv = server(serve({SYSTEM: b'{"Manufacturer": "Contoso", "x": NaN}'}))
    transport = RedfishTransport(config(srv))
    try:
        err, _ = timed_failure(lambda: transport.get(SYSTEM), DeviceProtocolError)
    finally:
        transport.close()
    assert "non-standard JSON constant NaN" in str(err)


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\xff\xfe garbage \x1b[2J\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200],
    ids=["binary", "bad-status", "too-many-headers"],
)
def test_garbage_instead_of_http_is_a_protocol_error(server, garbage: bytes) -> None:
    def answer(peer: Peer) -> None:
        peer.send(garbage)
        peer.hold()

    srv = server(serve({SYSTEM: answer}))
    transport = RedfishTransport(config(srv))
    try:
        err, elapsed = timed_failure(lambda: transport.get(SYSTEM), DeviceProtocolError)
    finally:
        transport.close()
    names_where(err, srv, f"GET {SYSTEM}")
    assert "malformed" in str(err) and "\x1b" not in str(err)
    assert elapsed < TIMEOUT_S + SLACK_S


# ---- strict types --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "shown"),
    [(123, "a number (123)"), (["x"], 'an array (["x"])'), ({"a": 1}, 'an object ({"a": 1})'), (True, "true")],
)
def test_identity_field_of_the_wrong_type_is_a_protocol_error(server, value: object, shown: str) -> None:
    srv = server(serve({**IDENTITY, SYSTEM: doc(Manufacturer=value, Model="R1")}))
    bmc = RedfishBmc(config(srv))
    try:
        err, _ = timed_failure(bmc.identify, DeviceProtocolError)
    finally:
        bmc.close()
    assert err.operation.startswith("identify")
    assert f"Manufacturer: expected a string, got {shown}" in str(err)


@pytest.mark.parametrize(
    ("reading", "expected"),
    [(b'"1234"', 'expected a number, got a string ("1234")'), (b"1e999", "expected a finite number"),
     (b"[1]", "expected a number, got an array"), (b"true", "expected a number, got true")],
)  # fmt: skip
def test_reading_of_the_wrong_type_is_a_protocol_error(server, reading: bytes, expected: str) -> None:
    chassis = "/redfish/v1/Chassis/1"
    srv = server(
        serve({chassis: doc(Id="1"), f"{chassis}/EnvironmentMetrics": b'{"PowerWatts": {"Reading": ' + reading + b"}}"})
    )
    bmc = RedfishBmc(config(srv, chassis_id="1", power_source="environment"))
    try:
        err, _ = timed_failure(bmc.power_watts, DeviceProtocolError)
    finally:
        bmc.close()
    assert err.operation == "read power" and f"PowerWatts.Reading: {expected}" in str(err)


def test_null_reading_is_not_reported_rather_than_an_error(server) -> None:
    chassis = "/redfish/v1/Chassis/1"
    thermal = doc(Temperatures=[{"Name": "Inlet", "ReadingCelsius": None}, {"Name": "CPU", "ReadingCelsius": 51}])
    srv = server(serve({chassis: doc(Id="1"), f"{chassis}/Thermal": thermal}))
    bmc = RedfishBmc(config(srv, chassis_id="1"))
    try:
        assert bmc.temperatures() == {"CPU": 51.0}
    finally:
        bmc.close()


def test_pdu_fields_of_the_wrong_type_are_protocol_errors(server) -> None:
    pdu = "/redfish/v1/PowerEquipment/RackPDUs/1"
    outlets = f"{pdu}/Outlets"
    srv = server(
        serve({
            pdu: doc(Manufacturer={"a": 1}, Outlets={"@odata.id": outlets}),
            outlets: doc(Members=[{"@odata.id": f"{outlets}/A1"}]),
            f"{outlets}/A1": doc(Id="A1", PowerState="On", PowerWatts={"Reading": "12 W"}),
        })
    )  # fmt: skip
    drv = RedfishRackPdu(
        DeviceConfig("pdu-hostile", "pdu", "redfish-pdu", "127.0.0.1", srv.port,
                     Credentials(username="admin", password=Secret(PASSWORD)),
                     {"scheme": "http", "auth": "basic", "pdu_id": "1"}, TIMEOUT_S)
    )  # fmt: skip
    try:
        err, _ = timed_failure(drv.identify, DeviceProtocolError)
        assert 'Manufacturer: expected a string, got an object ({"a": 1})' in str(err)
        err, _ = timed_failure(drv.outlets, DeviceProtocolError)
        assert f'{outlets}/A1 PowerWatts.Reading: expected a number, got a string ("12 W")' in str(err)
    finally:
        drv.close()


def test_device_text_in_an_error_reaches_the_terminal_escaped(server) -> None:
    body = doc(error={"message": "\x1b[2J\x1b[Hall clear\nPASSED \u202eevil"})
    srv = server(serve({SYSTEM: lambda peer: peer.send(http_reply(500, body))}))
    transport = RedfishTransport(config(srv))
    try:
        err, _ = timed_failure(lambda: transport.get(SYSTEM), DeviceError)
    finally:
        transport.close()
    text = str(err)
    assert "\x1b" not in text and "\n" not in text and "\u202e" not in text
    assert "\\x1b[2J\\x1b[Hall clear\\nPASSED \\u202eevil" in text
    assert "\x1b[2J" in err.detail  # the raw text stays available to code


# ---- auth ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [404, 405, 501])
def test_no_session_service_falls_back_to_basic_auth_and_says_so(
    server, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    def script(peer: Peer) -> None:
        while True:
            line, headers, _ = peer.read_http_request()
            seen.append((line, headers))
            if line.startswith("POST "):
                peer.send(http_reply(status, doc(error={"message": "no sessions here"})))
            else:
                peer.send(http_reply(200, IDENTITY.get(line.split(" ")[1], doc())))

    srv = server(script)
    bmc = RedfishBmc(config(srv, auth="session"))
    try:
        with caplog.at_level(logging.INFO, logger="rackval.drivers.transport.redfish"):
            assert bmc.identify().vendor == "Contoso"
    finally:
        bmc.close()
    posts = [line for line, _ in seen if line.startswith("POST")]
    gets = [headers for line, headers in seen if line.startswith("GET")]
    assert len(posts) == 1
    assert gets and all(h.get("authorization", "").startswith("Basic ") and "x-auth-token" not in h for h in gets)
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"HTTP {status}" in m and "basic" in m and "bmc-hostile" in m for m in messages), messages


def test_session_auth_is_logged_with_its_session(server, caplog: pytest.LogCaptureFixture) -> None:
    def script(peer: Peer) -> None:
        while True:
            line, headers, _ = peer.read_http_request()
            if line.startswith("POST"):
                peer.send(http_reply(201, doc(), headers={"X-Auth-Token": "tok", "Location": "/redfish/v1/S/7"}))
            elif line.startswith("DELETE"):
                peer.send(http_reply(204, b""))
            else:
                assert headers.get("x-auth-token") == "tok"
                peer.send(http_reply(200, IDENTITY.get(line.split(" ")[1], doc())))

    srv = server(script)
    bmc = RedfishBmc(config(srv, auth="session"))
    try:
        with caplog.at_level(logging.INFO, logger="rackval.drivers.transport.redfish"):
            bmc.identify()
    finally:
        bmc.close()
    assert any("session" in r.getMessage() and "/redfish/v1/S/7" in r.getMessage() for r in caplog.records)
