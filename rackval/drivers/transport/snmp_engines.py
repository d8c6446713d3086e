"""The one asyncio loop thread and the pysnmp engines every pysnmp-path SnmpTransport shares.

pysnmp 7 is asyncio-only and drivers are synchronous, so every transport that takes the pysnmp path
(``snmp_pysnmp``) submits its coroutines to ONE shared event-loop thread, started lazily on first
use (never at import; again in a forked child). Its engines are shared too: one per distinct set
of v3 credentials (sharing an engine between *different* keys for the same user name would make
pysnmp's configuration cache swap keys under requests still in flight); an engine is closed when
the last transport using it closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from rackval.drivers.config import Secret


class LoopThread:
    """One asyncio loop in a daemon thread, shared by every SnmpTransport of this process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rackval-snmp-loop", daemon=True)
        self.thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("SNMP event-loop thread did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()


_loop_lock = threading.Lock()
_loop_thread: LoopThread | None = None


def shared_loop() -> LoopThread:
    """Start the shared loop on first use (never at import); restart it in a forked child."""
    global _loop_thread
    with _loop_lock:
        if _loop_thread is None or _loop_thread.pid != os.getpid() or not _loop_thread.thread.is_alive():
            _loop_thread = LoopThread()
        return _loop_thread


# ---- engine pool (touched only from the loop thread) ---------------------------------------------
@dataclass
class _PooledEngine:
    engine: Any
    users: int = 0


@dataclass
class _EnginePool:
    engines: dict[tuple[str, ...], _PooledEngine] = field(default_factory=dict)

    def acquire(self, key: tuple[str, ...]) -> Any:
        from pysnmp.entity.engine import SnmpEngine

        entry = self.engines.get(key)
        if entry is None:
            entry = self.engines[key] = _PooledEngine(SnmpEngine())
        entry.users += 1
        return entry.engine

    def release(self, key: tuple[str, ...]) -> None:
        entry = self.engines.get(key)
        if entry is None:
            return
        entry.users -= 1
        if entry.users <= 0:
            del self.engines[key]
            entry.engine.close_dispatcher()


_pools: dict[int, _EnginePool] = {}  # keyed by loop id so a forked child never reuses a parent's


def engine_pool(loop: asyncio.AbstractEventLoop) -> _EnginePool:
    return _pools.setdefault(id(loop), _EnginePool())


def secret_digest(secret: Secret | None) -> str:
    """Engine-pool key part for a secret: equal secrets share, the secret itself is not kept."""
    return "" if secret is None else hashlib.sha256(secret.reveal().encode()).hexdigest()
