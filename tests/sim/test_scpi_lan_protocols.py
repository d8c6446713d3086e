"""The SCPI transport's LAN resource strings (VXI-11, HiSLIP) against the simulated analyzer.

Each protocol is served by our own server (rackval/sim/scpi_vxi11.py, scpi_hislip.py) over the
same instrument code as the raw socket server; the client is the real pyvisa-py 0.8.1 stack,
through the Yokogawa driver, through bare pyvisa sessions, and through hand-built wire messages
for the malformed cases a library would never send.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pyvisa
from pyvisa_py.protocols import hislip as hislip_client

from rackval.core.errors import DeviceError, DeviceTimeout
from rackval.drivers.config import DeviceConfig
from rackval.drivers.instrument.yokogawa import YokogawaWtAnalyzer
from rackval.drivers.transport.scpi import ScpiTransport, resource_string
from rackval.sim.faults import make_fault
from rackval.sim.model import RackModel
from rackval.sim.scpi_hislip import HislipServer, start_analyzer_hislip
from rackval.sim.scpi_server import start_analyzer_scpi
from rackval.sim.scpi_vxi11 import Vxi11Server, start_analyzer_vxi11

IO_TIMEOUT_S = 3.0  # bound on every raw-socket wait in these tests


@dataclass
class Rig:
    model: RackModel
    server: Vxi11Server | HislipServer
    resource: str
    protocol: str


def vxi11_resource(server: Vxi11Server) -> str:
    return f"TCPIP0::{server.host},{server.port}::inst0::INSTR"


def hislip_resource(server: HislipServer) -> str:
    return f"TCPIP0::{server.host}::hislip0,{server.port}::INSTR"


STARTERS: dict[str, tuple[Callable[..., Any], Callable[[Any], str]]] = {
    "vxi11": (start_analyzer_vxi11, vxi11_resource),
    "hislip": (start_analyzer_hislip, hislip_resource),
}


@pytest.fixture(params=sorted(STARTERS))
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    start, resource = STARTERS[request.param]
    model = RackModel()
    server = start(model, "analyzer")
    try:
        yield Rig(model, server, resource(server), request.param)
    finally:
        server.stop()


def driver(rig: Rig, timeout_s: float = 1.0) -> YokogawaWtAnalyzer:
    config = DeviceConfig(
        "analyzer", "analyzer", "yokogawa-wt", rig.server.host, rig.server.port,
        options={"resource": rig.resource, "element": "SIGMA"}, timeout_s=timeout_s,
    )  # fmt: skip
    return YokogawaWtAnalyzer(config)


@pytest.fixture
def visa() -> pyvisa.ResourceManager:
    # pyvisa shares one manager per backend: never close it here (it would close other sessions).
    return pyvisa.ResourceManager("@py")


# ---- through the driver ------------------------------------------------------------------------


def test_resource_option_reaches_the_transport(rig: Rig) -> None:
    drv = driver(rig)
    assert resource_string(drv.config) == rig.resource
    assert drv.transport.resource_name == rig.resource


def test_identify_and_reading_agree_with_the_model(rig: Rig) -> None:
    rig.model.set_utilization("node01", 0.7)
    info = rig.model.analyzers["analyzer"].info
    drv = driver(rig)
    try:
        ident = drv.identify()
        assert (ident.vendor, ident.model, ident.serial, ident.firmware) == (
            info.vendor, info.model, info.serial, info.firmware,
        )  # fmt: skip
        truth_v, truth_i, truth_p, truth_pf = rig.model.analyzer_reading("analyzer")
        reading = drv.read()
        assert reading.power_w == pytest.approx(truth_p, rel=0.005)
        assert reading.voltage_v == pytest.approx(truth_v, rel=0.005)
        assert reading.current_a == pytest.approx(truth_i, rel=0.01)
        assert reading.power_factor == pytest.approx(truth_pf, abs=0.01)
        assert drv.transport.query(":NUM:NORM:ITEM3?") == "P,SIGMA"  # the driver's setup took effect
        generation = drv.transport.generation
        drv.read()
        assert drv.transport.generation == generation  # one session reused
    finally:
        drv.close()


def test_error_queue_and_opc(rig: Rig) -> None:
    drv = driver(rig)
    t = drv.transport
    try:
        t.clear()
        t.write(":BOGus:HEADer 1")
        t.write(":NUM:NORM:NUM 9999")
        assert t.errors() == [
            (-113, "Undefined header;:BOGus:HEADer"),
            (-222, "Data out of range;9999 not within 1..255"),
        ]
        assert t.errors() == []
        t.opc()  # *OPC? answers 1
        t.write(":NUM:FORM FLOAT")
        with pytest.raises(DeviceError, match=r"-221.*after commands ':NUM:FORM FLOAT'") as err:
            t.check("select the number format")
        assert err.value.device == "analyzer"
        assert t.query("*IDN?;*OPC?").endswith(";1")  # compound query, one reply message
    finally:
        drv.close()


def test_silent_device_times_out_naming_device_and_operation(rig: Rig) -> None:
    drv = driver(rig, timeout_s=0.4)
    try:
        assert drv.power_watts() > 1000
        fault_id = rig.model.inject(make_fault("device_silent", "analyzer"))
        started = time.monotonic()
        with pytest.raises(DeviceTimeout) as err:
            drv.power_watts()
        assert time.monotonic() - started < 3.0
        assert err.value.device == "analyzer"
        assert err.value.operation == "SCPI query ':NUMeric:NORMal:VALue?'"
        assert rig.resource in str(err.value)
        rig.model.clear_fault(fault_id)
        assert drv.power_watts() > 1000  # the transport reconnects and redoes its setup
    finally:
        drv.close()


def test_slow_device_answers_late(rig: Rig) -> None:
    rig.model.inject(make_fault("device_slow", "analyzer", delay_s=0.5))
    impatient = driver(rig, timeout_s=0.25)
    with pytest.raises(DeviceTimeout):
        impatient.identify()
    impatient.close()
    patient = driver(rig, timeout_s=3.0)
    try:
        assert patient.identify().model == rig.model.analyzers["analyzer"].info.model
    finally:
        patient.close()


def test_injected_scpi_error_is_reported_by_the_check(rig: Rig) -> None:
    rig.model.inject(make_fault("scpi_error", "analyzer", code=-222, message="Data out of range", command=":NUM"))
    drv = driver(rig)
    try:
        with pytest.raises(DeviceError, match=r"-222.*Data out of range"):
            drv.read()
    finally:
        drv.close()


def test_garbled_reply_is_a_protocol_error(rig: Rig) -> None:
    drv = driver(rig)
    try:
        drv.identify()
        rig.model.inject(make_fault("malformed_reply", "analyzer", mode="wrong_length"))
        with pytest.raises(DeviceError, match="expected 4 values"):
            drv.read()
    finally:
        drv.close()


def test_raw_garbage_does_not_kill_the_server(rig: Rig) -> None:
    with socket.create_connection((rig.server.host, rig.server.port), timeout=IO_TIMEOUT_S) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)))
        answer = recv_until_closed(sock)
    if rig.protocol == "hislip":  # FatalError 1 "poorly formed header", then the server hangs up
        assert answer[:4] == b"HS\x02\x01"
    else:  # an RPC record of ~1.2 GB declared: nothing to resynchronise on, connection dropped
        assert answer == b""
    drv = driver(rig)
    try:
        assert drv.identify().vendor == "YOKOGAWA"
    finally:
        drv.close()


def test_stop_is_idempotent_and_frees_the_port(rig: Rig) -> None:
    drv = driver(rig)
    drv.identify()
    drv.close()  # (pyvisa-py's VXI-11 close waits ~5 s for a destroy_link a dead server never answers)
    # A client stuck half-way through a message while the server stops.
    with socket.create_connection((rig.server.host, rig.server.port), timeout=IO_TIMEOUT_S) as stuck:
        stuck.sendall(b"HS\x00")
        time.sleep(0.05)
        started = time.monotonic()
        rig.server.stop()
        rig.server.stop()
        assert time.monotonic() - started < 2.0
        assert recv_until_closed(stuck) == b""  # the server hung up on it
    with pytest.raises(OSError):
        socket.create_connection((rig.server.host, rig.server.port), timeout=1.0).close()


def test_one_instrument_shared_with_the_socket_server() -> None:
    model = RackModel()
    plain = start_analyzer_scpi(model, "analyzer")
    vxi = start_analyzer_vxi11(model, "analyzer", instrument=plain.instrument)
    hs = start_analyzer_hislip(model, "analyzer", instrument=plain.instrument)
    transports = [
        ScpiTransport(DeviceConfig("analyzer", "analyzer", "yokogawa-wt", s.host, s.port, options=opts, timeout_s=1.0))
        for s, opts in ((plain, {}), (vxi, {"resource": vxi11_resource(vxi)}), (hs, {"resource": hislip_resource(hs)}))
    ]
    try:
        socket_t, vxi_t, hs_t = transports
        vxi_t.write(":NUM:NORM:NUM 6")
        assert hs_t.query(":NUM:NORM:NUM?") == "6"
        hs_t.write("NOT:A:COMMAND")
        # a write has no answer: the next query on the same session is done only after it, so the
        # error is queued before another connection asks (CI once asked first and found none)
        assert hs_t.query("*OPC?") == "1"
        assert socket_t.errors() == [(-113, "Undefined header;NOT:A:COMMAND")]
    finally:
        for t in transports:
            t.close()
        for s in (hs, vxi, plain):
            s.stop()


def test_unknown_analyzer_is_refused() -> None:
    with pytest.raises(KeyError, match="nope"):
        start_analyzer_vxi11(RackModel(), "nope")
    with pytest.raises(KeyError, match="nope"):
        start_analyzer_hislip(RackModel(), "nope")


# ---- bare pyvisa-py sessions ------------------------------------------------------------------


def test_pyvisa_session_idn_stb_clear(rig: Rig, visa: pyvisa.ResourceManager) -> None:
    inst: Any = visa.open_resource(rig.resource, open_timeout=2000)
    try:
        inst.timeout = 1000
        idn = inst.query("*IDN?")
        assert idn.startswith("YOKOGAWA,WT5000,") and idn.endswith("\n")  # END-terminated, "\n" kept
        assert inst.read_stb() & 0x04 == 0  # error queue empty
        inst.write("BOGUS")
        assert inst.read_stb() & 0x04  # EAV: the error queue holds the -113
        assert inst.query("SYST:ERR?").startswith("-113,")
        assert inst.read_stb() & 0x04 == 0
        inst.write("*CLS")
        if rig.protocol == "vxi11":
            # An unread reply is dropped by a device clear; the next query gets its own answer
            # (without the clear, the server would queue -410 "Query INTERRUPTED").
            # Not on HiSLIP: there the reply is already on the wire, and pyvisa-py 0.8.1 does not
            # discard sync-channel data before DeviceClearAcknowledge (it raises RuntimeError).
            inst.write("*IDN?")
        inst.clear()
        assert inst.query("*OPC?") == "1\n"
        assert inst.query("SYST:ERR?").startswith("+0,")
    finally:
        inst.close()


def test_pyvisa_reads_in_chunks(rig: Rig, visa: pyvisa.ResourceManager) -> None:
    inst: Any = visa.open_resource(rig.resource, open_timeout=2000)
    try:
        inst.timeout = 1000
        inst.write("*IDN?")
        head = inst.read_bytes(5)  # VXI-11: device_read requestSize 5 -> reason REQCNT
        rest = inst.read()
        assert (head + rest.encode()).decode().startswith("YOKOGAWA,WT5000,")
        assert head == b"YOKOG"
    finally:
        inst.close()


def test_vxi11_termchar_and_lock(visa: pyvisa.ResourceManager) -> None:
    model = RackModel()
    server = start_analyzer_vxi11(model, "analyzer")
    inst: Any = visa.open_resource(vxi11_resource(server), open_timeout=2000)
    other: Any = visa.open_resource(vxi11_resource(server), open_timeout=2000)
    try:
        inst.timeout = other.timeout = 500
        inst.read_termination = "\n"  # TERMCHAR_SET: each read stops at the newline (reason CHR)
        inst.write("*OPC?\n*IDN?")  # two program messages in one END-terminated write
        assert inst.read() == "1"
        assert inst.read().startswith("YOKOGAWA,")
        inst.lock_excl()
        with pytest.raises(pyvisa.errors.VisaIOError):
            other.query("*IDN?")  # device_locked_by_another_link
        inst.unlock()
        assert other.query("*OPC?") == "1\n"
    finally:
        other.close()
        inst.close()
        server.stop()


def test_hislip_lock_status_and_remote_local() -> None:
    model = RackModel()
    server = start_analyzer_hislip(model, "analyzer")
    a = hislip_client.Instrument("127.0.0.1", timeout=2.0, port=server.port)
    b = hislip_client.Instrument("127.0.0.1", timeout=2.0, port=server.port)
    try:
        assert a.max_msg_size == 1 << 20  # AsyncMaximumMessageSize answered
        assert a.async_lock_request(timeout=0.2) == "success"
        assert a.async_lock_info() == 1
        started = time.monotonic()
        assert b.async_lock_request(timeout=0.2) == "failure"  # held by a: waits its timeout
        assert 0.15 < time.monotonic() - started < 2.0
        assert b.async_lock_release() == "error"  # b holds nothing
        assert a.async_lock_release() == "success"
        assert b.async_lock_request(timeout=0.2) == "success"
        a.async_remote_local_control("enableAndGotoRemote")  # answered with AsyncRemoteLocalResponse
        b.send(b"*IDN?\n")
        assert bytes(b.receive()).startswith(b"YOKOGAWA,")
    finally:
        a.close()
        b.close()
        server.stop()


# ---- malformed wire messages ------------------------------------------------------------------


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_until_closed(sock: socket.socket) -> bytes:
    buf = b""
    while chunk := sock.recv(4096):
        buf += chunk
    return buf


def rpc_call(
    sock: socket.socket, proc: int, args: bytes = b"", *, prog: int = 0x0607AF, vers: int = 1, rpcvers: int = 2
) -> list[int]:
    """Send one ONC RPC call (AUTH_NULL) and return the reply as big-endian 32-bit words."""
    body = struct.pack(">10I", 77, 0, rpcvers, prog, vers, proc, 0, 0, 0, 0) + args
    sock.sendall(struct.pack(">I", 0x80000000 | len(body)) + body)
    (mark,) = struct.unpack(">I", recv_exact(sock, 4))
    assert mark & 0x80000000
    reply = recv_exact(sock, mark & 0x7FFFFFFF)
    words = list(struct.unpack(f">{len(reply) // 4}I", reply))
    assert words[:2] == [77, 1]  # our xid, REPLY
    return words[2:]


def test_vxi11_rpc_errors_and_the_link_survives() -> None:
    server = start_analyzer_vxi11(RackModel(), "analyzer")
    try:
        with socket.create_connection((server.host, server.port), timeout=IO_TIMEOUT_S) as sock:
            assert rpc_call(sock, 0) == [0, 0, 0, 0]  # NULLPROC: accepted, success
            assert rpc_call(sock, 10, prog=0x0607B0) == [0, 0, 0, 1]  # PROG_UNAVAIL
            assert rpc_call(sock, 10, vers=9) == [0, 0, 0, 2, 1, 1]  # PROG_MISMATCH 1..1
            assert rpc_call(sock, 99) == [0, 0, 0, 3]  # PROC_UNAVAIL
            assert rpc_call(sock, 10, rpcvers=3) == [1, 0, 2, 2]  # MSG_DENIED RPC_MISMATCH
            assert rpc_call(sock, 11, b"\0\0") == [0, 0, 0, 4]  # GARBAGE_ARGS
            device = b"inst0\0\0\0"
            ok = rpc_call(sock, 10, struct.pack(">4I", 1, 0, 0, 5) + device)
            assert ok[:5] == [0, 0, 0, 0, 0] and ok[6:] == [0, 1 << 20]  # error 0, abort port 0, maxRecvSize
            lid = ok[5]
            bad = rpc_call(sock, 10, struct.pack(">4I", 1, 0, 0, 5) + b"gpib9\0\0\0")
            assert bad[4] == 3  # device_not_accessible
            assert rpc_call(sock, 11, struct.pack(">6I", lid + 1, 100, 0, 8, 0, 0))[4] == 4  # invalid link
            assert rpc_call(sock, 11, struct.pack(">5I", lid, 100, 0, 8, 6) + b"*OPC?\n\0\0") == [0, 0, 0, 0, 0, 6]
            read = rpc_call(sock, 12, struct.pack(">6I", lid, 100, 100, 0, 0, 0))
            assert read[4:7] == [0, 4, 2]  # no error, reason END, 2 bytes ("1\n")
            empty = rpc_call(sock, 12, struct.pack(">6I", lid, 100, 50, 0, 0, 0))
            assert empty[4] == 15  # nothing to read: io_timeout after 50 ms
            # A new message while a reply is unread: the reply is dropped, -410 queued (IEEE 488.2).
            for command in (b"*IDN?\n\0\0", b"*OPC?\n\0\0"):
                assert rpc_call(sock, 11, struct.pack(">5I", lid, 100, 0, 8, 6) + command)[4:] == [0, 6]
            stb = rpc_call(sock, 13, struct.pack(">4I", lid, 0, 0, 100))
            assert stb[4:] == [0, 0x10 | 0x04]  # MAV (the *OPC? reply) and EAV (the -410)
            assert rpc_call(sock, 12, struct.pack(">6I", lid, 100, 100, 0, 0, 0))[4:8] == [0, 4, 2, 0x310A0000]
            assert rpc_call(sock, 11, struct.pack(">5I", lid, 100, 0, 8, 9) + b"SYST:ERR?\0\0\0")[4:] == [0, 9]
            reply = rpc_call(sock, 12, struct.pack(">6I", lid, 100, 100, 0, 0, 0))
            text = b"".join(struct.pack(">I", word) for word in reply[7:])[: reply[6]]
            assert text == b'-410,"Query INTERRUPTED"\n'
            assert rpc_call(sock, 19, struct.pack(">I", lid))[4] == 12  # unlock without lock
            assert rpc_call(sock, 25, b"")[4] == 8  # create_intr_chan: not supported
            assert rpc_call(sock, 23, struct.pack(">I", lid))[4] == 0  # destroy_link
            assert rpc_call(sock, 23, struct.pack(">I", lid))[4] == 4  # already gone
    finally:
        server.stop()


def hislip_msg(msg_type: int, control: int = 0, param: int = 0, payload: bytes = b"") -> bytes:
    return struct.pack(">2sBBIQ", b"HS", msg_type, control, param, len(payload)) + payload


def hislip_reply(sock: socket.socket) -> tuple[int, int, int, bytes]:
    prologue, msg_type, control, param, length = struct.unpack(">2sBBIQ", recv_exact(sock, 16))
    assert prologue == b"HS"
    return msg_type, control, param, recv_exact(sock, length)


def test_hislip_handshake_negotiation_and_errors() -> None:
    server = start_analyzer_hislip(RackModel(), "analyzer")
    addr = (server.host, server.port)
    try:
        # A 2.0 client gets 2.0, a 1.0 client 1.0; session IDs differ.
        with (
            socket.create_connection(addr, timeout=IO_TIMEOUT_S) as sync,
            socket.create_connection(addr, timeout=IO_TIMEOUT_S) as async_,
            socket.create_connection(addr, timeout=IO_TIMEOUT_S) as old,
        ):
            sync.sendall(hislip_msg(0, 0, 0x0200_0000 | 0x5858, b"hislip0"))
            msg_type, control, param, _ = hislip_reply(sync)
            assert (msg_type, control, param >> 16) == (1, 0, 0x0200)
            sid = param & 0xFFFF
            old.sendall(hislip_msg(0, 0, 0x0100_0000, b"hislip0"))
            msg_type, _, old_param, _ = hislip_reply(old)
            assert msg_type == 1 and old_param >> 16 == 0x0100 and old_param & 0xFFFF != sid
            # Data before the async channel exists: FatalError 2.
            old.sendall(hislip_msg(7, 0, 0xFFFFFF00, b"*IDN?\n"))
            assert hislip_reply(old)[:2] == (2, 2)
            async_.sendall(hislip_msg(17, 0, sid))
            assert hislip_reply(async_)[:3] == (18, 0, 0x5256)
            # Unknown message type: Error 1, and the session carries on.
            sync.sendall(hislip_msg(99, 0, 0, b"junk"))
            assert hislip_reply(sync)[:2] == (3, 1)
            sync.sendall(hislip_msg(200))
            assert hislip_reply(sync)[:2] == (3, 3)  # vendor-specific: Error 3
            sync.sendall(hislip_msg(6, 0, 0x10, b"*IDN") + hislip_msg(7, 0, 0x12, b"?\n"))
            msg_type, _, message_id, payload = hislip_reply(sync)
            assert (msg_type, message_id) == (7, 0x12) and payload.startswith(b"YOKOGAWA,")
            async_.sendall(hislip_msg(15, 0, 0, b"\0\0"))  # AsyncMaxMsgSize with a short payload
            assert hislip_reply(async_)[:2] == (3, 0)
            async_.sendall(hislip_msg(21, 0, 0x14))
            assert hislip_reply(async_)[:2] == (22, 0)  # status byte: nothing queued
        # AsyncInitialize for a session nobody opened: FatalError 3, connection closed.
        with socket.create_connection(addr, timeout=IO_TIMEOUT_S) as stray:
            stray.sendall(hislip_msg(17, 0, 0xBEEF))
            assert hislip_reply(stray)[:2] == (2, 3)
            assert recv_until_closed(stray) == b""
        # A first message that is not an Initialize: FatalError 3.
        with socket.create_connection(addr, timeout=IO_TIMEOUT_S) as wrong:
            wrong.sendall(hislip_msg(7, 0, 0, b"*IDN?\n"))
            assert hislip_reply(wrong)[:2] == (2, 3)
        # Unknown sub-address: FatalError 3.
        with socket.create_connection(addr, timeout=IO_TIMEOUT_S) as bad_sub:
            bad_sub.sendall(hislip_msg(0, 0, 0x0100_0000, b"inst0"))
            assert hislip_reply(bad_sub)[:2] == (2, 3)
    finally:
        server.stop()
