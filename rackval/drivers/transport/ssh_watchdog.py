"""Deadlines for SSH channel requests: one daemon thread for the whole process.

paramiko waits for the server's reply to a channel request (exec, pty, shell) without a timeout;
``SshTransport`` schedules the channel's ``close`` here so a reply that never comes wakes that
wait after the command's limit.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class _Watchdog:
    """One daemon thread that runs the deadlines of every pending channel request in the process.

    A ``threading.Timer`` per request costs a thread start and join per command (a fifth of the
    client's CPU per command when 32 nodes are sampled at once); requests that time out are rare,
    so one thread keeps the deadlines and starts a thread only for a callback that is due.
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
                self._thread = threading.Thread(target=self._loop, name="ssh-watchdog", daemon=True)
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
                threading.Thread(target=deadline.run, name="ssh-watchdog-fire", daemon=True).start()


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


WATCHDOG = _Watchdog()
