"""Test doubles for the telemetry sampler: a clock that only moves when slept, and a rack of
fake devices whose readings are functions of that clock (known values, known failures)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from rackval.core.errors import DeviceError, DeviceTimeout
from rackval.harness.telemetry import Channel


class FakeClock:
    """Virtual seconds that move only when slept (like a frozen simulator clock)."""

    def __init__(self, start: float = 100.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)


@dataclass
class FakeDevice:
    """``values(t) -> {suffix: value}``; ``fail(t)`` True raises a DeviceError at that tick;
    ``delay_s`` blocks each read in real time (a slow device)."""

    name: str
    clock: Any
    values: Callable[[float], dict[str, float | None]]
    fail: Callable[[float], bool] = lambda t: False
    delay_s: float = 0.0
    calls: int = 0
    concurrent: int = 0
    max_concurrent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self) -> dict[str, float | None]:
        with self._lock:
            self.calls += 1
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            t = self.clock.now()
            if self.fail(t):
                raise DeviceTimeout(self.name, "127.0.0.1", "read everything", f"no answer at t={t:g}")
            return self.values(t)
        finally:
            with self._lock:
                self.concurrent -= 1

    def close(self) -> None:
        pass


class FakeRack:
    """Just what the sampler uses of a Rack: ``driver(name)`` and the devices' ``timeout_s``."""

    def __init__(self, devices: list[FakeDevice], timeout_s: float = 5.0) -> None:
        self.devices = {d.name: d for d in devices}
        self.inventory = SimpleNamespace(configs={d.name: SimpleNamespace(timeout_s=timeout_s) for d in devices})

    def driver(self, name: str) -> FakeDevice:
        if name not in self.devices:
            raise DeviceError(name, "-", "look up", "no such device")
        return self.devices[name]


def channels_of(dev: FakeDevice, suffixes: dict[str, str], wrap_bits: int | None = None) -> list[Channel]:
    """One channel per ``suffix -> unit``, all sharing the device's single read."""

    def reader(drv: Any) -> dict[str, float | None]:
        return {f"{dev.name}/{k}": v for k, v in drv.read().items()}

    return [Channel(f"{dev.name}/{k}", dev.name, unit, reader, wrap_bits=wrap_bits) for k, unit in suffixes.items()]
