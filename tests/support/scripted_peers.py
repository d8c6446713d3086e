"""Scripted misbehaving peers on 127.0.0.1: a TCP server and a UDP agent that send what a script says.

Real devices misbehave in ways no simulator does on purpose: they trickle headers one byte at a
time, accept a connection and never answer, send a reply without its terminator, stream 128 MiB,
answer with garbage. A test states such a peer in a few lines (``script(peer)`` runs once per
connection, in its own thread) and asserts what the transport makes of it.

Every server binds a free port on 127.0.0.1, is bounded in time (a script's waits end when the
server stops, and no script outlives ``stop()`` by more than its join bound) and is stopped by
the test (context manager or fixture). Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

from rackval.drivers.transport import snmp_ber as ber

_JOIN_S = 5.0


class PeerGone(Exception):
    """The client closed the connection or the server is stopping (ends a script quietly)."""


class Peer:
    """One accepted connection, as a script sees it."""

    def __init__(self, conn: socket.socket, stopping: threading.Event) -> None:
        self.conn = conn
        self._stopping = stopping
        self._buffer = b""
        conn.settimeout(0.1)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def recv_until(self, marker: bytes, limit: int = 1 << 20) -> bytes:
        """Everything up to and including ``marker`` (PeerGone if the client leaves first)."""
        while marker not in self._buffer:
            if len(self._buffer) > limit:
                raise PeerGone
            self._buffer += self._recv()
        at = self._buffer.index(marker) + len(marker)
        data, self._buffer = self._buffer[:at], self._buffer[at:]
        return data

    def recv_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += self._recv()
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _recv(self) -> bytes:
        while not self.stopping:
            try:
                data = self.conn.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise PeerGone from exc
            if not data:
                raise PeerGone
            return data
        raise PeerGone

    def read_http_request(self) -> tuple[str, dict[str, str], bytes]:
        """One HTTP request: (request line, headers with lower-case names, body)."""
        head = self.recv_until(b"\r\n\r\n").decode("latin-1")
        line, *rest = head.split("\r\n")
        headers = {}
        for item in rest:
            if ":" in item:
                name, _, value = item.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = self.recv_exactly(int(headers.get("content-length") or 0))
        return line, headers, body

    def send(self, data: bytes) -> None:
        try:
            self.conn.sendall(data)
        except OSError as exc:
            raise PeerGone from exc

    def trickle(self, data: bytes, every_s: float) -> None:
        """Send ``data`` one byte at a time, ``every_s`` apart, until done or stopped."""
        for i in range(len(data)):
            self.send(data[i : i + 1])
            self.pause(every_s)

    def stream(self, chunk: bytes, total: int) -> None:
        """Send ``total`` bytes made of ``chunk`` repeated, as fast as the client reads."""
        sent = 0
        while sent < total and not self.stopping:
            piece = chunk[: total - sent]
            self.send(piece)
            sent += len(piece)

    def pause(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise PeerGone

    def hold(self) -> None:
        """Keep the connection open and say nothing until the server stops (a half-open peer)."""
        with contextlib.suppress(PeerGone):
            while True:
                self._buffer += self._recv()  # drain whatever the client sends, answer nothing
        self._stopping.wait()


class ScriptedTcpServer:
    """A TCP server on 127.0.0.1 running ``script(peer)`` for every connection it accepts."""

    def __init__(self, script: Callable[[Peer], None]) -> None:
        self.script = script
        self.connections = 0
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.host, self.port = self._listener.getsockname()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, name="scripted-tcp", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
                worker = threading.Thread(target=self._run, args=(conn,), name="scripted-tcp-peer", daemon=True)
                self._threads.append(worker)
            worker.start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(PeerGone, OSError):
            self.script(Peer(conn, self._stopping))
        with contextlib.suppress(OSError):
            conn.close()

    def stop(self) -> None:
        """Stop accepting, end every script, close every connection (idempotent, bounded)."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._acceptor.join(_JOIN_S)
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + _JOIN_S
        for worker in threads:
            worker.join(max(deadline - time.monotonic(), 0.0))

    def __enter__(self) -> ScriptedTcpServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def scripted_tcp(script: Callable[[Peer], None]) -> Iterator[ScriptedTcpServer]:
    server = ScriptedTcpServer(script)
    try:
        yield server
    finally:
        server.stop()


# ---- SNMP over UDP ------------------------------------------------------------------------------
SnmpScript = Callable[[ber.Message], list[bytes]]


class ScriptedSnmpAgent:
    """Answers each SNMP request with whatever ``script`` returns (a list of datagrams)."""

    def __init__(self, script: SnmpScript) -> None:
        self.script = script
        self.requests: list[ber.Message] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-snmp", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            msg = ber.decode_message(data)
            self.requests.append(msg)
            for reply in self.script(msg):
                if self._stop.is_set():
                    return
                self.sock.sendto(reply, peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=_JOIN_S)
        self.sock.close()


def snmp_response(
    msg: ber.Message, var_binds: list[bytes], *, request_id: int | None = None, status: int = 0, index: int = 0
) -> bytes:
    """The v2c Response to ``msg`` carrying ``var_binds`` (encoded with ``ber.encode_var_bind``)."""
    rid = msg.request_id if request_id is None else request_id
    return ber.encode_message(ber.VERSION_2C, msg.community, ber.RESPONSE, rid, status, index, var_binds)
