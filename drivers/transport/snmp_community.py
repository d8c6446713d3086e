"""SNMP v2c request/response over one connected UDP socket, with the lean BER codec.

Why not pysnmp for v2c: a community request needs no engine state at all (no discovery, no keys,
no time window), and pysnmp's engine and pyasn1 codec cost ~120 us of CPU per var-bind where
this path costs a few (bench/bench_snmp.py). So ``SnmpTransport`` sends v2c requests through
this channel and keeps pysnmp for SNMPv3.

What it does, and why:
  * one UDP socket per device, ``connect()``-ed so the kernel drops datagrams from any other
    address and reports ICMP port-unreachable as an error we can name;
  * each request has a fresh request-id; replies with another id (late answers to an attempt
    we already gave up on), another version or community, or a non-Response PDU are ignored,
    as an SNMP manager must;
  * ``retries`` re-sends after a per-attempt timeout, so the total wait is bounded by
    ``timeout_s * (retries + 1)``;
  * an undecodable datagram is remembered, not fatal at once (a retry may still get a good
    answer); if no good answer comes, the error says what was wrong with the bytes instead of
    a bare timeout.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time

from drivers.errors import DeviceProtocolError, DeviceTimeout
from drivers.transport import snmp_ber as ber

_RECV_BUFFER = 65_535


class CommunityChannel:
    """Blocking v2c requests to one agent; safe for one request at a time (it locks)."""

    def __init__(
        self,
        *,
        device: str,
        address: str,
        host: str,
        port: int,
        community: bytes,
        timeout_s: float,
        retries: int,
    ) -> None:
        self.device = device
        self.address = address
        self._host = host
        self._port = port
        self._community = community
        self._timeout = timeout_s
        self._retries = retries
        self._sock: socket.socket | None = None
        self._request_id = secrets.randbelow(2**30)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

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

    def request(
        self, pdu_type: int, var_binds: list[bytes], *, non_repeaters: int = 0, max_repetitions: int = 0,
        operation: str,
    ) -> ber.Message:  # fmt: skip
        """Send one request PDU of encoded var-binds and return the matching Response."""
        with self._lock:
            sock = self._socket(operation)
            self._request_id = (self._request_id + 1) % 2**31
            request_id = self._request_id
            datagram = ber.encode_message(
                ber.VERSION_2C, self._community, pdu_type, request_id, non_repeaters, max_repetitions, var_binds
            )
            malformed: str | None = None
            refused = False
            for _attempt in range(self._retries + 1):
                try:
                    sock.send(datagram)
                except ConnectionRefusedError:
                    refused = True
                except OSError as exc:
                    raise DeviceTimeout(self.device, self.address, operation, f"cannot send: {exc}") from exc
                deadline = time.monotonic() + self._timeout
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
                        reply = ber.decode_message(data)
                    except ber.BerError as exc:
                        malformed = f"{exc} ({len(data)} bytes)"
                        continue
                    if (
                        reply.request_id == request_id
                        and reply.pdu_type == ber.RESPONSE
                        and reply.version == ber.VERSION_2C
                        and reply.community == self._community
                    ):
                        return reply
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
                "(device unreachable, wrong port, or credentials the agent drops silently: a wrong community)",
            )  # fmt: skip
