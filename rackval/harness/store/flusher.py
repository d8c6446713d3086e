"""When journaled measurements reach the database without another call: the process's one
background flusher thread, and the flush of every journaling store at interpreter exit.

A store asks for a flush when its first measurement starts to wait (``SqlStore._schedule_flush``)
and the thread calls it back when that is due, so a live report in another process sees it even
if nothing follows.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from typing import Any, Protocol

log = logging.getLogger("rackval.store")


class Flushable(Protocol):
    """A store as the flusher sees it (held weakly: a dropped store is not kept alive)."""

    path: Any

    def _flush_in_background(self) -> None: ...

    def _flush_at_exit(self) -> None: ...


class _Flusher:
    """The process's one background thread that writes due batches (one for all stores, since
    starting a thread costs as much as recording dozens of measurements). Entries are taken in
    deadline order; a store is held weakly, so a dropped store is not kept alive by its entry."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._due: list[tuple[float, int, weakref.ref[Flushable]]] = []
        self._count = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        threading.Thread(target=self._run, name="rackval-store-flusher", daemon=True).start()

    def schedule(self, store: Flushable, delay: float) -> None:
        with self._cond:
            entry = (time.monotonic() + delay, next(self._count), weakref.ref(store))
            heapq.heappush(self._due, entry)
            if self._due[0] is entry:
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._due:
                    self._cond.wait()
                    continue
                delay = self._due[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                store = heapq.heappop(self._due)[2]()
                if store is None:
                    continue
                self._cond.release()
                try:
                    store._flush_in_background()
                except Exception:  # never let one store's trouble stop the flushing of all
                    log.exception("results store %s: background flush failed", store.path)
                finally:
                    del store
                    self._cond.acquire()


_flusher: _Flusher | None = None
_flusher_lock = threading.Lock()
_journaling: weakref.WeakSet[Flushable] = weakref.WeakSet()  # stores with a journal, for the exit flush
_exit_flush_registered = False


def _flush_all_at_exit() -> None:
    """A script that exits without closing its store still leaves its measurements in the
    database, as when every measurement was committed at once (the journal would keep them for
    the next open anyway). Stores stay open: later exit handlers may still use them."""
    for store in list(_journaling):
        store._flush_at_exit()


def register_for_exit_flush(store: Flushable) -> None:
    global _exit_flush_registered
    with _flusher_lock:
        _journaling.add(store)
        if not _exit_flush_registered:
            atexit.register(_flush_all_at_exit)
            _exit_flush_registered = True


def background_flusher() -> _Flusher:
    """Started on first use, and again in a forked child (which inherits no thread)."""
    global _flusher
    flusher = _flusher
    if flusher is not None and flusher.pid == os.getpid():
        return flusher
    with _flusher_lock:
        if _flusher is None or _flusher.pid != os.getpid():
            _flusher = _Flusher()
        return _flusher
