"""Hard deadlines for blocking I/O that a library does not bound: one daemon thread per process.

Per-read timeouts do not bound an operation: a peer that trickles one byte just inside each
read's timeout (headers of an HTTP response, a HiSLIP data message, an RPC record) keeps a
client waiting for ever, and some waits have no timeout at all (paramiko waits for the reply to
a channel request without one). A transport schedules here what ends such a wait when the
operation's deadline passes, and cancels it when the operation ends in time:

* ``SshTransport`` closes the channel, which wakes paramiko's wait for a channel request reply;
* ``HttpConnection`` (Redfish) and ``ScpiTransport`` (VXI-11, HiSLIP, raw socket) shut the
  socket down with ``abort_socket``, which wakes a ``recv`` blocked in another thread at once
  (closing the file descriptor would not, and might hand its number to another socket).

After a deadline fired, the transport reports a DeviceTimeout naming device, address and
operation (the scheduled deadline's ``fired`` tells a wake-up by the watchdog from a failure of
the peer).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable


class _Watchdog:
    """One daemon thread that runs the deadlines of every pending operation in the process.

    A ``threading.Timer`` per request costs a thread start and join per command (a fifth of the
    client's CPU per command when 32 nodes are sampled at once); operations that time out are
    rare, so one thread keeps the deadlines and starts a thread only for a callback that is due.
    Started on first use (never at import).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, seconds: float, callback: Callable[[], None]) -> _Deadline:
        deadline = _Deadline(callback, self._cond)
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._seq), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="rackval-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._cond.notify()  # the new deadline is the earliest: re-arm the wait
        return deadline

    def _loop(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].state != _Deadline.PENDING:
                    heapq.heappop(self._heap)  # cancelled: dropped lazily
                if not self._heap:
                    self._cond.wait(60.0)
                    if not self._heap:
                        self._thread = None  # idle for a minute: let the thread end
                        return
                    continue
                due, _, deadline = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                deadline.state = _Deadline.FIRED
                threading.Thread(target=deadline.run, name="rackval-watchdog-fire", daemon=True).start()


class _Deadline:
    """One scheduled callback: ``cancel()`` stops it, or waits until it has run if it fired."""

    PENDING, CANCELLED, FIRED = 0, 1, 2

    def __init__(self, callback: Callable[[], None], cond: threading.Condition) -> None:
        self.state = self.PENDING
        self._callback = callback
        self._cond = cond
        self._done = threading.Event()

    @property
    def fired(self) -> bool:
        return self.state == self.FIRED

    def run(self) -> None:
        try:
            self._callback()
        finally:
            self._done.set()

    def cancel(self) -> None:
        with self._cond:
            if self.state == self.PENDING:
                self.state = self.CANCELLED
                return
        if self.state == self.FIRED:
            self._done.wait()


def abort_socket(sock: socket.socket | None) -> None:
    """Wake every thread blocked on ``sock`` now: shut both directions down (never raises).

    ``socket.socket.shutdown`` is called on the plain socket even for a TLS socket, whose own
    ``shutdown`` would tear its TLS state down under the thread that is reading it.
    """
    if sock is None:
        return
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


WATCHDOG = _Watchdog()
