"""A VXI-11 core-channel server for the simulated analyzer (ONC RPC over TCP, XDR by hand).

Why: drivers reach real LAN instruments through ``TCPIP0::host::inst0::INSTR`` (VXI-11) as often
as through a raw socket, and a VISA library speaks a different protocol there: RPC calls, a link
per session, END instead of newline, replies fetched with device_read in ``requestSize`` chunks,
and device_clear / device_readstb out of band. Serving it lets the SCPI transport's VXI-11 path be
tested against the same instrument state as the socket server.

Implemented (VXI-11 rev 1.0 §B.6, RFC 5531 ONC RPC v2, RFC 4506 XDR, RFC 5531 §11 record marking):
- program DEVICE_CORE 0x0607AF version 1 on one TCP port: create_link (device names ``inst<N>``,
  optional lockDevice), device_write (input buffered until the END flag), device_read
  (requestSize, termChar with the TERMCHAR_SET flag, reason bits REQCNT/CHR/END, io_timeout ->
  error 15), device_readstb (EAV/MAV bits), device_trigger (accepted, no-op), device_clear
  (drops this link's input and output, not the error queue, per IEEE 488.2), device_remote /
  device_local (recorded), device_lock / device_unlock (one exclusive lock, WAITLOCK honoured
  within lock_timeout), destroy_link; NULLPROC. A link dies with its TCP connection.
- RPC errors: non-CALL records ignored; rpcvers != 2 -> MSG_DENIED RPC_MISMATCH; other program
  -> PROG_UNAVAIL; other version -> PROG_MISMATCH (1..1); unknown procedure -> PROC_UNAVAIL;
  undecodable arguments -> GARBAGE_ARGS. Any credential flavour is accepted (AUTH_NULL replied).
- A new complete message while a reply is unread discards it and queues -410 "Query
  INTERRUPTED" (IEEE 488.2 §6.3.2.3).

Not implemented: the portmapper (clients give the port: ``TCPIP0::127.0.0.1,<port>::inst0::INSTR``;
pyvisa-py then skips the portmapper), the abort channel (create_link reports abortPort 0),
the interrupt channel and SRQ (create_intr_chan, destroy_intr_chan, device_enable_srq and
device_docmd answer error 8 "operation not supported"), UDP, shared locks.
"""

from __future__ import annotations

import itertools
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rackval.sim.model import RackModel
from rackval.sim.scpi_lan_common import MAX_WAIT_S, ScpiEngine, analyzer_engine
from rackval.sim.scpi_server import E_INPUT_OVERRUN, MAX_LINE_BYTES, ScpiInstrument
from rackval.sim.tcp_shell import POLL_S, StopAwareSocket, TcpServerShell

DEVICE_CORE_PROG = 0x0607AF
DEVICE_CORE_VERS = 1
RPC_VERSION = 2

# RPC message / reply constants (RFC 5531)
CALL, REPLY = 0, 1
MSG_ACCEPTED, MSG_DENIED = 0, 1
SUCCESS, PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS = 0, 1, 2, 3, 4
RPC_MISMATCH = 0
AUTH_NULL = 0

# VXI-11 procedures
NULLPROC = 0
CREATE_LINK, DEVICE_WRITE, DEVICE_READ, DEVICE_READSTB, DEVICE_TRIGGER = 10, 11, 12, 13, 14
DEVICE_CLEAR, DEVICE_REMOTE, DEVICE_LOCAL, DEVICE_LOCK, DEVICE_UNLOCK = 15, 16, 17, 18, 19
DEVICE_ENABLE_SRQ, DEVICE_DOCMD, DESTROY_LINK = 20, 22, 23
CREATE_INTR_CHAN, DESTROY_INTR_CHAN = 25, 26

# VXI-11 error codes
ERR_NONE = 0
ERR_DEVICE_NOT_ACCESSIBLE = 3
ERR_INVALID_LINK = 4
ERR_PARAMETER = 5
ERR_NOT_SUPPORTED = 8
ERR_LOCKED_BY_ANOTHER = 11
ERR_NO_LOCK_HELD = 12
ERR_IO_TIMEOUT = 15

# Operation flags and read reasons
FLAG_WAITLOCK = 0x01
FLAG_END = 0x08
FLAG_TERMCHAR_SET = 0x80
REASON_REQCNT, REASON_CHR, REASON_END = 0x01, 0x02, 0x04

MAX_RECV_SIZE = 1 << 20  # what create_link advertises: device_write data per call
MAX_RECORD = MAX_RECV_SIZE + 4096  # a record bigger than this is garbage: drop the connection
MAX_AUTH_BYTES = 400  # RFC 5531: opaque_auth body <= 400 bytes
MAX_DEVICE_NAME = 256


class XdrError(ValueError):
    """The call's arguments do not decode (too short, bad length): GARBAGE_ARGS."""


class XdrReader:
    """Big-endian XDR decoding of the few types VXI-11 uses (RFC 4506)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise XdrError("truncated")
        (value,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return value

    def i32(self) -> int:
        value = self.u32()
        return value - (1 << 32) if value & 0x80000000 else value

    def opaque(self, limit: int) -> bytes:
        n = self.u32()
        if n > limit or self.pos + n > len(self.data):
            raise XdrError("bad opaque length")
        value = self.data[self.pos : self.pos + n]
        self.pos += (n + 3) & ~3
        return value


def _u32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *(v & 0xFFFFFFFF for v in values))


def _opaque(data: bytes) -> bytes:
    return _u32(len(data)) + data + b"\0" * (-len(data) % 4)


@dataclass
class _Link:
    """One create_link: its buffers live as long as the link (a VISA session)."""

    lid: int
    conn_id: int
    device: str
    inbuf: bytearray = field(default_factory=bytearray)
    out: bytes = b""
    ready_at: float = 0.0  # device_slow: the reply may not be read before this (monotonic)
    remote: bool = False


class Vxi11Server(TcpServerShell):
    """DEVICE_CORE over TCP for one instrument; links and the device lock are shared by all connections."""

    thread_prefix = "vxi11"

    def __init__(self, engine: ScpiEngine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine = engine
        self._links: dict[int, _Link] = {}
        self._lock_holder: int | None = None
        self._state = threading.Condition()
        self._lids = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._procedures = self._procedure_table()
        super().__init__(host, port)
        engine.seed(self.port)

    # ---- connection loop ----------------------------------------------------------------
    def serve(self, sock: StopAwareSocket) -> None:
        conn_id = next(self._conn_ids)
        try:
            while not self.stopping.is_set():
                record = self._recv_record(sock)
                if record is None:
                    return
                reply = self._dispatch(record, conn_id)
                if reply is not None and not sock.send(_u32(0x80000000 | len(reply)) + reply):
                    return
        finally:
            with self._state:
                for lid in [lid for lid, link in self._links.items() if link.conn_id == conn_id]:
                    self._destroy(lid)

    @staticmethod
    def _recv_record(sock: StopAwareSocket) -> bytes | None:
        """One RPC record (record marking: fragments until the last-fragment bit)."""
        record = bytearray()
        while True:
            header = sock.recv_exact(4)
            if header is None:
                return None
            (mark,) = struct.unpack(">I", header)
            size = mark & 0x7FFFFFFF
            if len(record) + size > MAX_RECORD:
                return None  # garbage or abuse; there is no way to resynchronise a stream
            fragment = sock.recv_exact(size) if size else b""
            if fragment is None:
                return None
            record += fragment
            if mark & 0x80000000:
                return bytes(record)

    # ---- RPC ----------------------------------------------------------------------------
    def _dispatch(self, record: bytes, conn_id: int) -> bytes | None:
        r = XdrReader(record)
        try:
            xid, mtype = r.u32(), r.u32()
        except XdrError:
            return None
        if mtype != CALL:
            return None  # not worth a reply (RFC 5531 has no error for it)
        accepted = _u32(xid, REPLY, MSG_ACCEPTED, AUTH_NULL, 0)
        try:
            rpcvers, prog, vers, proc = r.u32(), r.u32(), r.u32(), r.u32()
            if rpcvers != RPC_VERSION:
                return _u32(xid, REPLY, MSG_DENIED, RPC_MISMATCH, RPC_VERSION, RPC_VERSION)
            for _ in range(2):  # credential, verifier: any flavour accepted
                r.u32()
                r.opaque(MAX_AUTH_BYTES)
        except XdrError:
            return accepted + _u32(GARBAGE_ARGS)
        if prog != DEVICE_CORE_PROG:
            return accepted + _u32(PROG_UNAVAIL)
        if vers != DEVICE_CORE_VERS:
            return accepted + _u32(PROG_MISMATCH, DEVICE_CORE_VERS, DEVICE_CORE_VERS)
        handler = self._procedures.get(proc)
        if handler is None:
            return accepted + _u32(PROC_UNAVAIL)
        try:
            result = handler(r, conn_id)
        except XdrError:
            return accepted + _u32(GARBAGE_ARGS)
        return accepted + _u32(SUCCESS) + result

    def _procedure_table(self) -> dict[int, Callable[[XdrReader, int], bytes]]:
        return {
            NULLPROC: lambda r, c: b"",
            CREATE_LINK: self._create_link,
            DEVICE_WRITE: self._device_write,
            DEVICE_READ: self._device_read,
            DEVICE_READSTB: self._device_readstb,
            DEVICE_TRIGGER: self._generic_ok,
            DEVICE_CLEAR: self._device_clear,
            DEVICE_REMOTE: lambda r, c: self._remote_local(r, True),
            DEVICE_LOCAL: lambda r, c: self._remote_local(r, False),
            DEVICE_LOCK: self._device_lock,
            DEVICE_UNLOCK: self._device_unlock,
            DESTROY_LINK: self._destroy_link,
            DEVICE_ENABLE_SRQ: lambda r, c: _u32(ERR_NOT_SUPPORTED),
            DEVICE_DOCMD: lambda r, c: _u32(ERR_NOT_SUPPORTED) + _opaque(b""),
            CREATE_INTR_CHAN: lambda r, c: _u32(ERR_NOT_SUPPORTED),
            DESTROY_INTR_CHAN: lambda r, c: _u32(ERR_NOT_SUPPORTED),
        }

    # ---- links and the lock -------------------------------------------------------------
    def _link(self, lid: int) -> _Link | None:
        with self._state:
            return self._links.get(lid)

    def _destroy(self, lid: int) -> None:
        """Remove a link and release its lock (caller holds ``_state``)."""
        self._links.pop(lid, None)
        if self._lock_holder == lid:
            self._lock_holder = None
            self._state.notify_all()

    def _wait_unlocked(self, lid: int, flags: int, lock_timeout_ms: int, *, take: bool = False) -> bool:
        """True when no *other* link holds the lock (waiting up to lock_timeout with WAITLOCK).

        With ``take`` the lock is then given to ``lid`` in the same critical section.
        """
        deadline = time.monotonic() + (min(lock_timeout_ms / 1000, MAX_WAIT_S) if flags & FLAG_WAITLOCK else 0)
        with self._state:
            while self._lock_holder not in (None, lid):
                left = deadline - time.monotonic()
                if left <= 0 or self.stopping.is_set():
                    return False
                self._state.wait(min(left, POLL_S))
            if take:
                self._lock_holder = lid
            return True

    # ---- procedures ---------------------------------------------------------------------
    def _create_link(self, r: XdrReader, conn_id: int) -> bytes:
        _client_id, lock_device, lock_timeout = r.i32(), r.u32(), r.u32()
        device = r.opaque(MAX_DEVICE_NAME).decode("ascii", "replace")
        name = device.strip().lower()
        if not (name.startswith("inst") and name[4:].isdigit()):
            return _u32(ERR_DEVICE_NOT_ACCESSIBLE, 0, 0, MAX_RECV_SIZE)
        with self._state:
            lid = next(self._lids)
            self._links[lid] = _Link(lid, conn_id, device)
        if lock_device and not self._wait_unlocked(lid, FLAG_WAITLOCK, lock_timeout, take=True):
            with self._state:
                self._destroy(lid)
            return _u32(ERR_LOCKED_BY_ANOTHER, 0, 0, MAX_RECV_SIZE)
        return _u32(ERR_NONE, lid, 0, MAX_RECV_SIZE)

    def _device_write(self, r: XdrReader, _conn: int) -> bytes:
        lid, _io_timeout, lock_timeout, flags = r.i32(), r.u32(), r.u32(), r.i32()
        data = r.opaque(MAX_RECV_SIZE)
        link = self._link(lid)
        if link is None:
            return _u32(ERR_INVALID_LINK, 0)
        if not self._wait_unlocked(lid, flags, lock_timeout):
            return _u32(ERR_LOCKED_BY_ANOTHER, 0)
        link.inbuf += data
        if flags & FLAG_END:
            message, link.inbuf = bytes(link.inbuf), bytearray()
            if link.out:  # the previous reply was never read (IEEE 488.2 query interrupted)
                link.out = b""
                self.engine.push_error(-410, "Query INTERRUPTED")
            outcome = self.engine.execute(message)
            link.out = outcome.reply or b""
            link.ready_at = time.monotonic() + outcome.delay_s
        elif len(link.inbuf) > MAX_LINE_BYTES:  # a message that never ends: as the socket server does
            link.inbuf.clear()
            self.engine.push_error(*E_INPUT_OVERRUN)
        return _u32(ERR_NONE, len(data))

    def _device_read(self, r: XdrReader, _conn: int) -> bytes:
        lid, request_size, io_timeout, lock_timeout = r.i32(), r.u32(), r.u32(), r.u32()
        flags, term_char = r.i32(), r.i32()
        link = self._link(lid)
        if link is None:
            return _u32(ERR_INVALID_LINK, 0) + _opaque(b"")
        if not self._wait_unlocked(lid, flags, lock_timeout):
            return _u32(ERR_LOCKED_BY_ANOTHER, 0) + _opaque(b"")
        now = time.monotonic()
        deadline = now + min(io_timeout / 1000, MAX_WAIT_S)
        # Nothing to read (no query, or a silent device): no reply can appear while we wait,
        # since this link's writes arrive on this same connection; a real device waits out
        # io_timeout all the same. A slow device's reply is readable from ready_at on.
        until = deadline if not link.out else min(link.ready_at, deadline)
        while (left := until - time.monotonic()) > 0:
            if self.stopping.wait(min(left, POLL_S)):
                break
        if not link.out or time.monotonic() < link.ready_at:
            return _u32(ERR_IO_TIMEOUT, 0) + _opaque(b"")
        chunk = link.out[: max(request_size, 0)]
        reason = 0
        if flags & FLAG_TERMCHAR_SET and (pos := chunk.find(bytes([term_char & 0xFF]))) >= 0:
            chunk = chunk[: pos + 1]
            reason |= REASON_CHR
        link.out = link.out[len(chunk) :]
        if not link.out:
            reason |= REASON_END
        elif len(chunk) >= request_size:
            reason |= REASON_REQCNT
        return _u32(ERR_NONE, reason) + _opaque(chunk)

    def _generic(self, r: XdrReader) -> tuple[_Link | None, int]:
        """Device_GenericParms -> (link, error) after the lock check."""
        lid, flags, lock_timeout, _io_timeout = r.i32(), r.i32(), r.u32(), r.u32()
        link = self._link(lid)
        if link is None:
            return None, ERR_INVALID_LINK
        if not self._wait_unlocked(lid, flags, lock_timeout):
            return link, ERR_LOCKED_BY_ANOTHER
        return link, ERR_NONE

    def _device_readstb(self, r: XdrReader, _conn: int) -> bytes:
        link, error = self._generic(r)
        if link is None or error:
            return _u32(error, 0)
        available = bool(link.out) and time.monotonic() >= link.ready_at
        return _u32(ERR_NONE, self.engine.status_byte(available))

    def _generic_ok(self, r: XdrReader, _conn: int) -> bytes:
        _link, error = self._generic(r)
        return _u32(error)

    def _device_clear(self, r: XdrReader, _conn: int) -> bytes:
        link, error = self._generic(r)
        if link is not None and not error:
            link.inbuf.clear()
            link.out = b""
        return _u32(error)

    def _remote_local(self, r: XdrReader, remote: bool) -> bytes:
        link, error = self._generic(r)
        if link is not None and not error:
            link.remote = remote
        return _u32(error)

    def _device_lock(self, r: XdrReader, _conn: int) -> bytes:
        lid, flags, lock_timeout = r.i32(), r.i32(), r.u32()
        if self._link(lid) is None:
            return _u32(ERR_INVALID_LINK)
        if not self._wait_unlocked(lid, flags, lock_timeout, take=True):
            return _u32(ERR_LOCKED_BY_ANOTHER)
        return _u32(ERR_NONE)

    def _device_unlock(self, r: XdrReader, _conn: int) -> bytes:
        lid = r.i32()
        with self._state:
            if lid not in self._links:
                return _u32(ERR_INVALID_LINK)
            if self._lock_holder != lid:
                return _u32(ERR_NO_LOCK_HELD)
            self._lock_holder = None
            self._state.notify_all()
        return _u32(ERR_NONE)

    def _destroy_link(self, r: XdrReader, _conn: int) -> bytes:
        lid = r.i32()
        with self._state:
            if lid not in self._links:
                return _u32(ERR_INVALID_LINK)
            self._destroy(lid)
        return _u32(ERR_NONE)


def start_analyzer_vxi11(
    model: RackModel,
    analyzer: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    elements: int = 1,
    instrument: ScpiInstrument | None = None,
) -> Vxi11Server:
    """Serve ``model.analyzers[analyzer]`` as a Yokogawa WT analyzer over VXI-11 (no portmapper).

    Resource string: ``TCPIP0::{server.host},{server.port}::inst0::INSTR``. Pass ``instrument``
    (e.g. ``socket_server.instrument``) to share one instrument state — settings, error queue —
    with the raw socket server, as one real analyzer would; by default a new ``WtAnalyzerSim``.
    """
    return Vxi11Server(analyzer_engine(model, analyzer, instrument, elements), host=host, port=port)
