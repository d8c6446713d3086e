"""A small threaded TCP server frame for the simulator's LAN instrument protocols.

Why: the raw SCPI socket, VXI-11 and HiSLIP servers all need the same things — a loopback
listener on a port chosen at run time, a daemon thread per client, reads that give up when the
server stops (every wait bounded), TCP_NODELAY (without it each reply waits ~40 ms for the
peer's delayed ACK) and an idempotent ``stop()`` that joins what it started.
"""

from __future__ import annotations

import contextlib
import socket
import threading

# The longest a server thread blocks in one call before it looks at its stop flag again.
POLL_S = 0.2


class StopAwareSocket:
    """Blocking reads on a client socket that give up when the server stops (bounded waits)."""

    def __init__(self, conn: socket.socket, stopping: threading.Event) -> None:
        self.conn = conn
        self.stopping = stopping
        conn.settimeout(POLL_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def recv_exact(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes, or None on EOF, error or server stop."""
        buf = bytearray()
        while len(buf) < n:
            if self.stopping.is_set():
                return None
            try:
                chunk = self.conn.recv(min(n - len(buf), 1 << 16))
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def recv_some(self, n: int = 4096) -> bytes | None:
        """Whatever arrives next (up to ``n`` bytes), or None on EOF, error or server stop."""
        while not self.stopping.is_set():
            try:
                chunk = self.conn.recv(n)
            except TimeoutError:
                continue
            except OSError:
                return None
            return chunk or None
        return None

    def discard(self, n: int) -> bool:
        """Read and drop ``n`` bytes (a payload we refuse); False if the connection ended."""
        while n > 0:
            chunk = self.recv_exact(min(n, 1 << 16))
            if chunk is None:
                return False
            n -= len(chunk)
        return True

    def close(self) -> None:
        """Shut the connection down so its serving thread sees EOF (the thread closes it)."""
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)

    def send(self, data: bytes) -> bool:
        """Send everything; False if the peer went away (or stalls past the socket timeout)."""
        self.conn.settimeout(5.0)  # a stalled reader must not hold the thread forever
        try:
            self.conn.sendall(data)
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                self.conn.settimeout(POLL_S)
        return True


class TcpServerShell:
    """Listener on 127.0.0.1, one daemon thread per connection, idempotent ``stop()``.

    Subclasses implement ``serve(sock)``; it must return when ``self.stopping`` is set (use
    ``StopAwareSocket`` for every read). The connection is closed after ``serve`` returns.
    """

    thread_prefix = "lan"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.stopping = threading.Event()
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self._clients: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"{self.thread_prefix}-accept-{self.port}", daemon=True
        )
        self._acceptor.start()

    def serve(self, sock: StopAwareSocket) -> None:
        raise NotImplementedError

    def _accept_loop(self) -> None:
        self._listener.settimeout(POLL_S)  # poll the stop flag; close() does not wake accept()
        while not self.stopping.is_set():
            try:
                conn, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            thread = threading.Thread(
                target=self._run, args=(conn,), name=f"{self.thread_prefix}-client-{self.port}", daemon=True
            )
            with self._lock:
                if self.stopping.is_set():
                    conn.close()
                    break
                self._clients.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.serve(StopAwareSocket(conn, self.stopping))
        except OSError:
            pass  # the peer went away mid-message
        finally:
            with self._lock:
                self._clients.discard(conn)
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def stop(self) -> None:
        """Stop accepting, disconnect clients, join threads. Idempotent."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() at once on Linux
        self._acceptor.join(timeout=2)
        self._listener.close()
        with self._lock:
            clients, threads = list(self._clients), list(self._threads)
        for conn in clients:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=2)

    def __enter__(self) -> TcpServerShell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
