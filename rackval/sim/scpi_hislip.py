"""A HiSLIP server (IVI-6.1, protocol 1.0 and 2.0 negotiation) for the simulated analyzer.

Why: HiSLIP (``TCPIP0::host::hislip0::INSTR``) is the LAN protocol current instruments ship
with, and it is the one with the most state a client can get wrong: two TCP connections per
session on one port tied by a session ID, message IDs that let the client drop stale replies,
and device clear / status / lock on the asynchronous channel while the synchronous one is busy.
Serving it lets the SCPI transport's HiSLIP path be tested against the same instrument state
and protocol faults as the raw socket server.

Implemented (IVI-6.1 rev 2.0, synchronized mode only):
- One listening port for both channels; the first message decides: Initialize -> synchronous
  channel (InitializeResponse: negotiated version = min(client, 2.0), new session ID, overlap 0,
  no encryption), AsyncInitialize -> asynchronous channel of that session
  (AsyncInitializeResponse with vendor ID "RV"). Sub-address must be ``hislip<N>`` (or empty).
- Data / DataEND with message IDs: input is buffered until DataEND, then executed as one
  program message; the reply goes back as Data... DataEND carrying the message ID of that DataEND,
  split to the client's AsyncMaximumMessageSize. Trigger is accepted (no-op).
- AsyncMaximumMessageSize (server accepts up to 1 MiB payloads; larger -> Error 4 "Message too
  large" and the payload is discarded), AsyncDeviceClear + DeviceClearComplete ->
  AsyncDeviceClearAcknowledge / DeviceClearAcknowledge (feature bitmap 0 = synchronized; input
  and any held reply are discarded in between), AsyncLock (exclusive with a bounded wait, shared
  granted; release answers 1/2, or 3 when no lock is held), AsyncLockInfo,
  AsyncRemoteLocalControl (codes 0..6), AsyncStatusQuery (EAV/MAV status byte).
- Errors: a header without the "HS" prologue -> FatalError 1 and both channels close; a first
  message that is neither Initialize nor AsyncInitialize, or an unknown session ID -> FatalError 3;
  Data before the asynchronous channel exists -> FatalError 2; unknown or wrong-channel message
  types -> Error 1 (vendor-specific types 128..255 -> Error 3) and the payload is skipped.
  A payload length beyond 16 MiB is treated as garbage (FatalError 1).

Not implemented: overlapped mode, Interrupted / AsyncInterrupted (a new message while a slow
reply is held is simply processed after it), AsyncServiceRequest (no SRQ), the 2.0 security
features (StartTLS, AsyncStartTLS, EndTLS, SASL authentication: answered with Error 1) and
GetDescriptors; vendor-defined messages.
"""

from __future__ import annotations

import itertools
import re
import select
import struct
import threading
import time
from dataclasses import dataclass, field

from rackval.sim.model import RackModel
from rackval.sim.scpi_lan_common import MAX_WAIT_S, ScpiEngine, analyzer_engine
from rackval.sim.scpi_server import ScpiInstrument
from rackval.sim.tcp_shell import POLL_S, StopAwareSocket, TcpServerShell

HEADER = struct.Struct(">2sBBIQ")  # prologue "HS", type, control code, parameter, payload length
SERVER_VERSION = (2, 0)
VENDOR_ID = 0x5256  # "RV"
MAX_PAYLOAD = 1 << 20  # AsyncMaximumMessageSize the server answers
GARBAGE_PAYLOAD = 16 << 20  # a length beyond this is not a message: the stream is lost
MAX_SUB_ADDRESS = 256
STATUS_WAIT_S = 1.0  # longest an AsyncStatusQuery waits for the sync channel to go quiet

# Message types (IVI-6.1 table 4)
INITIALIZE, INITIALIZE_RESPONSE, FATAL_ERROR, ERROR = 0, 1, 2, 3
ASYNC_LOCK, ASYNC_LOCK_RESPONSE, DATA, DATA_END = 4, 5, 6, 7
DEVICE_CLEAR_COMPLETE, DEVICE_CLEAR_ACKNOWLEDGE = 8, 9
ASYNC_REMOTE_LOCAL_CONTROL, ASYNC_REMOTE_LOCAL_RESPONSE, TRIGGER = 10, 11, 12
ASYNC_MAX_MSG_SIZE, ASYNC_MAX_MSG_SIZE_RESPONSE = 15, 16
ASYNC_INITIALIZE, ASYNC_INITIALIZE_RESPONSE, ASYNC_DEVICE_CLEAR = 17, 18, 19
ASYNC_STATUS_QUERY, ASYNC_STATUS_RESPONSE, ASYNC_DEVICE_CLEAR_ACKNOWLEDGE = 21, 22, 23
ASYNC_LOCK_INFO, ASYNC_LOCK_INFO_RESPONSE = 24, 25
VENDOR_SPECIFIC = 128

# FatalError and Error codes
FATAL_BAD_HEADER, FATAL_NO_BOTH_CHANNELS, FATAL_BAD_INIT = 1, 2, 3
ERROR_UNIDENTIFIED, ERROR_BAD_TYPE, ERROR_BAD_CONTROL, ERROR_BAD_VENDOR, ERROR_TOO_LARGE = 0, 1, 2, 3, 4

LOCK_FAILURE, LOCK_SUCCESS, LOCK_SUCCESS_SHARED, LOCK_ERROR = 0, 1, 2, 3
_SUB_ADDRESS = re.compile(r"(hislip\d+)?", re.IGNORECASE)


@dataclass(frozen=True)
class Header:
    type: int
    control: int
    param: int
    length: int


def message(msg_type: int, control: int = 0, param: int = 0, payload: bytes = b"") -> bytes:
    """One HiSLIP message: 16-byte header + payload."""
    return HEADER.pack(b"HS", msg_type, control & 0xFF, param & 0xFFFFFFFF, len(payload)) + payload


@dataclass
class _Session:
    """One client session: a synchronous and (once attached) an asynchronous connection."""

    sid: int
    version: tuple[int, int]
    sync: StopAwareSocket
    async_: StopAwareSocket | None = None
    client_max: int | None = None  # the client's AsyncMaximumMessageSize
    clearing: bool = False  # between AsyncDeviceClear and DeviceClearComplete
    holding_reply: bool = False  # a slow device's reply not yet sent (MAV)
    remote_control: int = 0
    shared_lock: bytes | None = None
    # True while the sync thread holds an unfinished message: AsyncStatusQuery waits for it, so
    # the status byte reflects everything the client sent before asking (EAV after a bad command).
    executing: bool = False
    idle: threading.Condition = field(default_factory=threading.Condition)


class _Fatal(Exception):
    """Send FatalError(code, text) on this channel and end the session."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class HislipServer(TcpServerShell):
    """HiSLIP for one instrument; sessions and the device lock are shared by every connection."""

    thread_prefix = "hislip"

    def __init__(self, engine: ScpiEngine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine = engine
        self._sessions: dict[int, _Session] = {}
        self._state = threading.Condition()
        self._exclusive: int | None = None  # session ID holding the exclusive lock
        self._session_ids = itertools.count(1)
        super().__init__(host, port)
        engine.seed(self.port)

    # ---- framing ------------------------------------------------------------------------
    @staticmethod
    def _header(sock: StopAwareSocket) -> Header | None:
        raw = sock.recv_exact(HEADER.size)
        if raw is None:
            return None
        prologue, msg_type, control, param, length = HEADER.unpack(raw)
        if prologue != b"HS":
            raise _Fatal(FATAL_BAD_HEADER, "Poorly formed message header (no 'HS' prologue)")
        if length > GARBAGE_PAYLOAD:
            raise _Fatal(FATAL_BAD_HEADER, f"Poorly formed message header (payload length {length})")
        return Header(msg_type, control, param, length)

    @staticmethod
    def _payload(sock: StopAwareSocket, header: Header, limit: int) -> bytes | None:
        """The payload if it fits ``limit``; otherwise skip it and send Error 4 (None = gone)."""
        if header.length > limit:
            if not sock.discard(header.length):
                return None
            sock.send(message(ERROR, ERROR_TOO_LARGE, 0, f"payload {header.length} > {limit} bytes".encode()))
            return b""
        return sock.recv_exact(header.length) if header.length else b""

    @staticmethod
    def _unrecognized(sock: StopAwareSocket, header: Header, channel: str) -> bool:
        """Error 1 (or 3 for vendor types), payload skipped. False if the connection ended."""
        if not sock.discard(header.length):
            return False
        code = ERROR_BAD_VENDOR if header.type >= VENDOR_SPECIFIC else ERROR_BAD_TYPE
        return sock.send(
            message(ERROR, code, 0, f"message type {header.type} not accepted on the {channel} channel".encode())
        )

    # ---- connection entry ---------------------------------------------------------------
    def serve(self, sock: StopAwareSocket) -> None:
        session: _Session | None = None
        try:
            header = self._header(sock)
            if header is None:
                return
            if header.type == INITIALIZE:
                session = self._initialize(sock, header)
                if session is not None:
                    self._sync_loop(session)
            elif header.type == ASYNC_INITIALIZE:
                session = self._async_initialize(sock, header)
                if session is not None:
                    self._async_loop(session)
            else:
                raise _Fatal(FATAL_BAD_INIT, f"Invalid Initialization sequence (first message type {header.type})")
        except _Fatal as fatal:
            sock.send(message(FATAL_ERROR, fatal.code, 0, fatal.text.encode("ascii", "replace")))
        finally:
            if session is not None:
                self._end_session(session)

    def _end_session(self, session: _Session) -> None:
        """Either channel closing ends the session: close the other, release its locks."""
        with self._state:
            if self._sessions.pop(session.sid, None) is None:
                return
            if self._exclusive == session.sid:
                self._exclusive = None
            self._state.notify_all()
        for channel in (session.sync, session.async_):
            if channel is not None:
                channel.close()

    # ---- synchronous channel ------------------------------------------------------------
    def _initialize(self, sock: StopAwareSocket, header: Header) -> _Session | None:
        if header.length > MAX_SUB_ADDRESS:
            raise _Fatal(FATAL_BAD_HEADER, "Poorly formed message header (sub-address too long)")
        sub = sock.recv_exact(header.length) if header.length else b""
        if sub is None:
            return None
        name = sub.decode("ascii", "replace")
        if not _SUB_ADDRESS.fullmatch(name):
            raise _Fatal(FATAL_BAD_INIT, f"Invalid Initialization sequence (unknown sub-address {name!r})")
        client = (header.param >> 24 & 0xFF, header.param >> 16 & 0xFF)
        version = min(client, SERVER_VERSION)
        with self._state:
            sid = 0
            while sid == 0 or sid in self._sessions:  # 16-bit IDs, unique among live sessions
                sid = next(self._session_ids) & 0xFFFF
            session = _Session(sid, version, sock)
            self._sessions[sid] = session
        param = version[0] << 24 | version[1] << 16 | sid
        if not sock.send(message(INITIALIZE_RESPONSE, 0, param)):
            return None
        return session

    def _sync_loop(self, session: _Session) -> None:
        sock = session.sync
        inbuf = bytearray()
        while not self.stopping.is_set():
            self._set_executing(session, False)
            if not self._await_input(session):
                return
            header = self._header(sock)
            if header is None:
                return
            if header.type in (DATA, DATA_END):
                if session.async_ is None:
                    raise _Fatal(FATAL_NO_BOTH_CHANNELS, "Attempt to use connection without both channels established")
                payload = self._payload(sock, header, MAX_PAYLOAD)
                if payload is None:
                    return
                if session.clearing:
                    continue  # discarded until DeviceClearComplete
                inbuf += payload
                if header.type == DATA_END:
                    program, inbuf = bytes(inbuf), bytearray()
                    if not self._reply(session, program, header.param):
                        return
            elif header.type == TRIGGER:
                if not sock.discard(header.length):
                    return
            elif header.type == DEVICE_CLEAR_COMPLETE:
                if not sock.discard(header.length):
                    return
                inbuf.clear()
                session.clearing = False
                if not sock.send(message(DEVICE_CLEAR_ACKNOWLEDGE, 0)):
                    return
            elif header.type == FATAL_ERROR:
                return
            elif header.type == ERROR:
                if not sock.discard(header.length):
                    return
            elif not self._unrecognized(sock, header, "synchronous"):
                return

    def _reply(self, session: _Session, program: bytes, message_id: int) -> bool:
        """Execute one program message and send its reply, if any (False: connection gone)."""
        outcome = self.engine.execute(program)
        self._set_executing(session, False)  # executed: a status query may answer now
        if outcome.reply is None:
            return True
        if outcome.delay_s > 0:
            session.holding_reply = True
            deadline = time.monotonic() + min(outcome.delay_s, MAX_WAIT_S)
            while (left := deadline - time.monotonic()) > 0 and not session.clearing:
                if self.stopping.wait(min(left, POLL_S)):
                    return False
            session.holding_reply = False
            if session.clearing:
                return True  # a device clear discards the reply
        chunk = max((session.client_max or len(outcome.reply) + HEADER.size) - HEADER.size, 1)
        data = outcome.reply
        parts = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        wire = b"".join(message(DATA, 0, message_id, part) for part in parts[:-1])
        return session.sync.send(wire + message(DATA_END, 0, message_id, parts[-1]))

    def _await_input(self, session: _Session) -> bool:
        """Wait until the sync connection is readable, then mark the session busy (False: stop).

        Marking happens under ``session.idle`` *before* any byte is consumed, so a status query
        never sees "nothing readable, nothing executing" while a message is half-read.
        """
        conn = session.sync.conn
        while not self.stopping.is_set():
            try:
                readable, _, _ = select.select([conn], [], [], POLL_S)
            except (OSError, ValueError):
                return False
            if readable:
                self._set_executing(session, True)
                return True
        return False

    @staticmethod
    def _set_executing(session: _Session, busy: bool) -> None:
        with session.idle:
            session.executing = busy
            if not busy:
                session.idle.notify_all()

    @staticmethod
    def _sync_quiet(session: _Session) -> bool:
        """Nothing executing and nothing unread on the sync connection (caller holds ``idle``)."""
        if session.executing:
            return False
        try:
            readable, _, _ = select.select([session.sync.conn], [], [], 0)
        except (OSError, ValueError):
            return True
        return not readable

    # ---- asynchronous channel -----------------------------------------------------------
    def _async_initialize(self, sock: StopAwareSocket, header: Header) -> _Session | None:
        if not sock.discard(header.length):
            return None
        sid = header.param & 0xFFFF
        with self._state:
            session = self._sessions.get(sid)
            if session is None or session.async_ is not None:
                raise _Fatal(
                    FATAL_BAD_INIT, f"Invalid Initialization sequence (no session {sid} awaiting its async channel)"
                )
            session.async_ = sock
        if not sock.send(message(ASYNC_INITIALIZE_RESPONSE, 0, VENDOR_ID)):
            return None
        return session

    def _async_loop(self, session: _Session) -> None:
        sock = session.async_
        assert sock is not None
        while not self.stopping.is_set():
            header = self._header(sock)
            if header is None:
                return
            if header.type == ASYNC_MAX_MSG_SIZE:
                if header.length != 8:
                    if not sock.discard(header.length):
                        return
                    reply = message(ERROR, ERROR_UNIDENTIFIED, 0, b"AsyncMaximumMessageSize needs an 8-byte size")
                    if not sock.send(reply):
                        return
                    continue
                payload = sock.recv_exact(8)
                if payload is None:
                    return
                session.client_max = max(struct.unpack(">Q", payload)[0], HEADER.size + 1)
                reply = message(ASYNC_MAX_MSG_SIZE_RESPONSE, 0, 0, struct.pack(">Q", MAX_PAYLOAD))
            elif header.type == ASYNC_DEVICE_CLEAR:
                if not sock.discard(header.length):
                    return
                session.clearing = True  # the sync channel drops input until DeviceClearComplete
                reply = message(ASYNC_DEVICE_CLEAR_ACKNOWLEDGE, 0)
            elif header.type == ASYNC_STATUS_QUERY:
                if not sock.discard(header.length):
                    return
                with session.idle:  # let the sync channel finish what was sent before the query
                    session.idle.wait_for(lambda: self._sync_quiet(session), timeout=STATUS_WAIT_S)
                reply = message(ASYNC_STATUS_RESPONSE, self.engine.status_byte(session.holding_reply))
            elif header.type == ASYNC_LOCK:
                payload = self._payload(sock, header, MAX_SUB_ADDRESS)
                if payload is None:
                    return
                reply = message(ASYNC_LOCK_RESPONSE, self._lock_request(session, header, payload))
            elif header.type == ASYNC_LOCK_INFO:
                if not sock.discard(header.length):
                    return
                with self._state:
                    holders = sum(1 for s in self._sessions.values() if s.shared_lock is not None)
                    exclusive = self._exclusive is not None
                reply = message(ASYNC_LOCK_INFO_RESPONSE, int(exclusive), holders + int(exclusive))
            elif header.type == ASYNC_REMOTE_LOCAL_CONTROL:
                if not sock.discard(header.length):
                    return
                if header.control > 6:
                    reply = message(ERROR, ERROR_BAD_CONTROL, 0, f"remote/local code {header.control}".encode())
                else:
                    session.remote_control = header.control
                    reply = message(ASYNC_REMOTE_LOCAL_RESPONSE, 0)
            elif header.type == FATAL_ERROR:
                return
            elif header.type == ERROR:
                if not sock.discard(header.length):
                    return
                continue
            elif header.type == ASYNC_INITIALIZE:
                raise _Fatal(FATAL_BAD_INIT, "Invalid Initialization sequence (second AsyncInitialize)")
            else:
                if not self._unrecognized(sock, header, "asynchronous"):
                    return
                continue
            if not sock.send(reply):
                return

    def _lock_request(self, session: _Session, header: Header, lock_string: bytes) -> int:
        """AsyncLock: control 1 = request (param = timeout ms), 0 = release."""
        with self._state:
            if header.control == 0:  # release
                if self._exclusive == session.sid:
                    self._exclusive = None
                    self._state.notify_all()
                    return LOCK_SUCCESS
                if session.shared_lock is not None:
                    session.shared_lock = None
                    return LOCK_SUCCESS_SHARED
                return LOCK_ERROR
            if header.control != 1:
                return LOCK_ERROR
            if lock_string:  # shared lock: granted (shared locks are not contended here)
                session.shared_lock = lock_string
                return LOCK_SUCCESS
            deadline = time.monotonic() + min(header.param / 1000, MAX_WAIT_S)
            while self._exclusive not in (None, session.sid):
                left = deadline - time.monotonic()
                if left <= 0 or self.stopping.is_set():
                    return LOCK_FAILURE
                self._state.wait(min(left, POLL_S))
            self._exclusive = session.sid
            return LOCK_SUCCESS


def start_analyzer_hislip(
    model: RackModel,
    analyzer: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    elements: int = 1,
    instrument: ScpiInstrument | None = None,
) -> HislipServer:
    """Serve ``model.analyzers[analyzer]`` as a Yokogawa WT analyzer over HiSLIP.

    Resource string: ``TCPIP0::{server.host}::hislip0,{server.port}::INSTR``. Pass ``instrument``
    (e.g. ``socket_server.instrument``) to share one instrument state with the other servers.
    """
    return HislipServer(analyzer_engine(model, analyzer, instrument, elements), host=host, port=port)
