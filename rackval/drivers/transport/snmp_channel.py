"""SNMP request/response channels over one connected UDP socket, on the lean codecs.

Why not pysnmp here: polling a rack is thousands of var-binds a second, and pysnmp's engine and
pyasn1 codec cost ~100-120 us of CPU per var-bind where these channels cost a few
(bench/bench_snmp.py). ``SnmpTransport`` sends v2c requests through ``CommunityChannel`` and
SNMPv3 requests with HMAC-MD5/SHA/SHA-2 authentication and AES-128 privacy through
``UsmChannel``; the remaining v3 privacy protocols (DES, AES-192/256 key extension) keep
pysnmp's engine.

What every channel does, and why:
  * one UDP socket per device, ``connect()``-ed so the kernel drops datagrams from any other
    address and reports ICMP port-unreachable as an error we can name;
  * each request has a fresh id; replies that do not match it (late answers to an attempt we
    already gave up on), or fail the security checks, are ignored as a manager must;
  * ``retries`` re-sends after a per-attempt timeout, so the total wait is bounded by
    ``timeout_s * (retries + 1)`` (v3 adds at most one discovery and one time-sync exchange),
    and by the caller's ``deadline`` when it gives one (a walk's own bound); replies that are
    ignored (another request's, garbage) never extend a wait;
  * an undecodable datagram is remembered, not fatal at once (a retry may still get a good
    answer); if no good answer comes, the error says what was wrong with the bytes instead of
    a bare timeout.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from rackval.core.errors import DeviceAuthError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.transport import snmp_ber as ber
from rackval.drivers.transport import snmp_usm as usm

_RECV_BUFFER = 65_535
_T = TypeVar("_T")


class _UdpChannel:
    """The socket and the send / wait / retry loop shared by both channels."""

    silent_hint = "a wrong community"

    def __init__(self, *, device: str, address: str, host: str, port: int, timeout_s: float, retries: int) -> None:
        self.device = device
        self.address = address
        self._host = host
        self._port = port
        self._timeout = timeout_s
        self._retries = retries
        self._sock: socket.socket | None = None
        self._next_id = secrets.randbelow(2**30)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _new_id(self) -> int:
        self._next_id = (self._next_id + 1) % 2**31
        return self._next_id

    def _socket(self, operation: str) -> socket.socket:
        if self._sock is None:
            try:
                family, kind, proto, _, sockaddr = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_DGRAM)[0]
                sock = socket.socket(family, kind, proto)
                try:
                    sock.connect(sockaddr)
                except OSError:
                    sock.close()
                    raise
            except OSError as exc:
                reason = exc.strerror or exc
                raise DeviceTimeout(
                    self.device, self.address, operation, f"cannot reach {self._host}:{self._port}: {reason}"
                ) from exc
            self._sock = sock
        return self._sock

    def _exchange(
        self, datagram: bytes, accept: Callable[[bytes], _T | None], operation: str, until: float | None = None
    ) -> _T:
        """Send ``datagram`` (re-sent on timeout) until ``accept`` returns a result for a reply.

        ``accept`` returns None to ignore a reply, raises BerError / UsmError for a malformed one
        (remembered), or raises a DeviceError to stop at once. ``until`` (monotonic) ends every
        wait and retry when it passes. Call with the lock held.
        """
        sock = self._socket(operation)
        malformed: str | None = None
        refused = False
        for _attempt in range(self._retries + 1):
            if until is not None and time.monotonic() >= until:
                raise DeviceTimeout(self.device, self.address, operation, "no time left for another request")
            try:
                sock.send(datagram)
            except ConnectionRefusedError:
                refused = True
            except OSError as exc:
                raise DeviceTimeout(self.device, self.address, operation, f"cannot send: {exc}") from exc
            deadline = time.monotonic() + self._timeout
            if until is not None:
                deadline = min(deadline, until)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                try:
                    data = sock.recv(_RECV_BUFFER)
                except TimeoutError:
                    break
                except ConnectionRefusedError:  # ICMP port unreachable for an earlier send
                    refused = True
                    continue
                except OSError as exc:
                    raise DeviceTimeout(self.device, self.address, operation, f"cannot receive: {exc}") from exc
                try:
                    result = accept(data)
                except (ber.BerError, usm.UsmError) as exc:
                    malformed = f"{exc} ({len(data)} bytes)"
                    continue
                if result is not None:
                    return result
        tries = self._retries + 1
        if malformed is not None:
            raise DeviceProtocolError(self.device, self.address, operation, f"malformed SNMP response: {malformed}")
        if refused:
            raise DeviceTimeout(
                self.device, self.address, operation,
                f"no response after {tries} attempt(s) of {self._timeout:g} s: ICMP port unreachable "
                f"(nothing listens on UDP {self._port})",
            )  # fmt: skip
        raise DeviceTimeout(
            self.device, self.address, operation,
            f"no response after {tries} attempt(s) of {self._timeout:g} s "
            f"(device unreachable, wrong port, or credentials the agent drops silently: {self.silent_hint})",
        )  # fmt: skip


class CommunityChannel(_UdpChannel):
    """Blocking v2c requests to one agent; one request at a time (it locks)."""

    def __init__(self, *, community: bytes, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._community = community

    def request(
        self, pdu_type: int, var_binds: list[bytes], *, non_repeaters: int = 0, max_repetitions: int = 0,
        operation: str, until: float | None = None,
    ) -> ber.Message:  # fmt: skip
        """Send one request PDU of encoded var-binds and return the matching Response (by ``until``)."""
        with self._lock:
            request_id = self._new_id()
            datagram = ber.encode_message(
                ber.VERSION_2C, self._community, pdu_type, request_id, non_repeaters, max_repetitions, var_binds
            )

            def accept(data: bytes) -> ber.Message | None:
                reply = ber.decode_message(data)
                if (
                    reply.request_id == request_id
                    and reply.pdu_type == ber.RESPONSE
                    and reply.version == ber.VERSION_2C
                    and reply.community == self._community
                ):
                    return reply
                return None

            return self._exchange(datagram, accept, operation, until)


_REPORT_HINTS = {
    usm.UNKNOWN_USER_NAMES: "the agent does not know this SNMPv3 user (UnknownUserName)",
    usm.WRONG_DIGESTS: "authentication failed: wrong auth key or auth protocol (WrongDigest)",
    usm.DECRYPTION_ERRORS: "decryption failed: wrong privacy key or privacy protocol (DecryptionError)",
    usm.UNSUPPORTED_SEC_LEVELS: "the agent does not allow this security level for the user (UnsupportedSecurityLevel)",
}


class UsmChannel(_UdpChannel):
    """Blocking SNMPv3 (USM) requests to one agent: discovery, time sync, auth and AES-128 privacy.

    Engine discovery (RFC 3414 4) happens on the first request; the engine's boots and time
    are tracked from every authenticated reply and re-synchronised on a notInTimeWindows
    report; an unknownEngineID report (the agent was replaced or reset) re-discovers.
    """

    silent_hint = "a wrong privacy key or protocol"

    def __init__(
        self, *, user: str, auth: str | None, auth_key: str | None, priv: str | None, priv_key: str | None,
        **kwargs: object,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._user, self._auth, self._auth_password, self._priv, self._priv_password = (
            user,
            auth,
            auth_key,
            priv,
            priv_key,
        )
        self._engine_id: bytes | None = None
        self._boots = 0
        self._time = 0
        self._time_at = 0.0
        self._keys: usm.UsmKeys | None = None
        self._salt = secrets.randbits(64)

    def __repr__(self) -> str:
        return f"UsmChannel(device={self.device!r}, user={self._user!r})"

    def request(
        self, pdu_type: int, var_binds: list[bytes], *, non_repeaters: int = 0, max_repetitions: int = 0,
        operation: str, until: float | None = None,
    ) -> ber.Message:  # fmt: skip
        """Send one request PDU and return the Response (as a ber.Message with version 3)."""
        with self._lock:
            fresh = self._engine_id is None
            if fresh:
                self._discover(operation, until)
            for _sync in range(3):
                try:
                    result = self._send(pdu_type, var_binds, non_repeaters, max_repetitions, operation, until)
                except DeviceAuthError:
                    if fresh:
                        raise
                    # Keys worked before: the device may have been replaced or reset (some agents
                    # say unknownUserName, not unknownEngineID, for an engine ID they do not own).
                    fresh = True
                    self._discover(operation, until)
                    continue
                if isinstance(result, ber.Message):
                    return result
                # a report we can act on: the engine moved on (time window) or was replaced
                if result == usm.UNKNOWN_ENGINE_IDS:
                    fresh = True
                    self._discover(operation, until)
            raise DeviceProtocolError(self.device, self.address, operation, "SNMPv3 time synchronisation failed")

    # ---- internals -----------------------------------------------------------------------------
    def _engine_time(self) -> int:
        return min(self._time + int(time.monotonic() - self._time_at), 2**31 - 1)

    def _learn_time(self, msg: usm.V3Message) -> None:
        self._boots, self._time, self._time_at = msg.boots, msg.time, time.monotonic()

    def _discover(self, operation: str, until: float | None) -> None:
        """Learn the agent's engine ID (and boots/time) from the report to an empty request."""
        msg_id = self._new_id()
        scoped = usm.encode_scoped_pdu(b"", b"", ber.encode_pdu(ber.GET_REQUEST, self._new_id(), 0, 0, []))
        probe = usm.encode_message(usm.UsmKeys(b"", None), msg_id=msg_id, engine_id=b"", boots=0, time=0,
                                   scoped_pdu=scoped, flags=0)  # fmt: skip

        def accept(data: bytes) -> usm.V3Message | None:
            msg = usm.decode_message(data)
            if msg.msg_id != msg_id or not msg.engine_id:
                return None
            return msg

        report = self._exchange(probe, accept, operation, until)
        self._engine_id = report.engine_id
        self._learn_time(report)
        try:
            self._keys = usm.localized_keys(self._user, self._auth, self._auth_password, self._priv,
                                            self._priv_password, report.engine_id)  # fmt: skip
        except usm.UsmError as exc:
            raise DeviceAuthError(self.device, self.address, operation, str(exc)) from exc

    def _send(
        self, pdu_type: int, var_binds: list[bytes], non_repeaters: int, max_repetitions: int, operation: str,
        until: float | None,
    ) -> ber.Message | tuple[int, ...]:  # fmt: skip
        """One authenticated exchange: the Response, or the OID of an actionable usmStats report."""
        keys, engine_id = self._keys, self._engine_id
        assert keys is not None and engine_id is not None
        msg_id = self._new_id()
        request_id = self._new_id()
        self._salt = (self._salt + 1) % 2**64
        pdu = ber.encode_pdu(pdu_type, request_id, non_repeaters, max_repetitions, var_binds)
        datagram = usm.encode_message(
            keys, msg_id=msg_id, engine_id=engine_id, boots=self._boots, time=self._engine_time(),
            scoped_pdu=usm.encode_scoped_pdu(engine_id, b"", pdu), salt=self._salt,
        )  # fmt: skip

        def accept(data: bytes) -> ber.Message | tuple[int, ...] | None:
            msg = usm.decode_message(data)
            if msg.msg_id != msg_id:
                return None
            authentic = bool(msg.flags & usm.FLAG_AUTH) and keys.auth is not None
            if authentic:
                usm.verify(keys, msg)  # a forged or corrupted reply is malformed, never believed
            _, _, (kind, rid, status, index, vbs) = usm.decode_scoped_pdu(usm.scoped_pdu_of(keys, msg))
            if kind == usm.REPORT:
                oid = vbs[0][0] if vbs else ()
                if oid in _REPORT_HINTS:
                    raise DeviceAuthError(self.device, self.address, operation, _REPORT_HINTS[oid])
                if oid == usm.NOT_IN_TIME_WINDOWS and (authentic or keys.auth is None):
                    self._learn_time(msg)
                    return oid
                if oid == usm.UNKNOWN_ENGINE_IDS:
                    return oid
                what = ber.format_oid(oid) if oid else "an empty report"
                raise DeviceProtocolError(self.device, self.address, operation, f"agent reported {what}")
            if kind != ber.RESPONSE or rid != request_id:
                return None
            if keys.auth is not None and not authentic:
                return None  # an unauthenticated answer to an authenticated request is ignored
            if authentic:
                self._learn_time(msg)
            return ber.Message(usm.VERSION_3, b"", kind, rid, status, index, vbs)

        return self._exchange(datagram, accept, operation, until)
