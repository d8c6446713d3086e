"""The rack under test: drivers built lazily from the inventory, and fan-out over many devices.

A rack has dozens of slow devices; ``fan_out`` runs one operation on many of them at once, with
one result per device, so one dead BMC fails only what needs it and hides nothing else.

Every driver the rack hands out goes through its ``health`` (``rackval.harness.health``): a
device found down (it stopped answering, or a plan knows it lost power) fails later operations
at once with ``DeviceDown`` naming the cause, instead of each waiting out its own timeout.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rackval.core.errors import ConfigError, DeviceError
from rackval.drivers import registry
from rackval.drivers.capabilities import Identity
from rackval.harness.guarded import guarded_driver
from rackval.harness.health import DeviceHealth
from rackval.harness.inventory import Inventory

T = TypeVar("T")


@dataclass(frozen=True)
class DeviceResult(Generic[T]):
    """What one device gave for a fan-out operation: a value or the error that stopped it."""

    device: str
    value: T | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class FanOutError(DeviceError):
    """An operation failed on some of the devices it fanned out to; names each failure."""

    def __init__(self, operation: str, failures: list[DeviceResult[Any]], total: int) -> None:
        names = ", ".join(r.device for r in failures)
        detail = f"failed on {len(failures)} of {total} devices: " + "; ".join(str(r.error) for r in failures)
        super().__init__(names, "-", operation, detail)
        self.failures = failures


def values_or_raise(results: dict[str, DeviceResult[T]], operation: str) -> dict[str, T]:
    """Every device's value, or a FanOutError naming every device that failed."""
    failures = [r for r in results.values() if not r.ok]
    if failures:
        raise FanOutError(operation, failures, len(results))
    return {name: r.value for name, r in results.items()}  # type: ignore[misc]


class Rack:
    """Drivers for every device in a rack file, created on first use and closed together.

    ``health`` is the run's DeviceHealth (default: one of its own, re-checking a down device with
    ``recheck``); every driver's capability methods go through it."""

    def __init__(
        self,
        inventory: Inventory,
        on_identity: Callable[[str, Identity], None] | None = None,
        health: DeviceHealth | None = None,
    ) -> None:
        self.inventory = inventory
        self.health = health if health is not None else DeviceHealth(addresses=self.addresses(), recheck=self.recheck)
        self._drivers: dict[str, Any] = {}
        self._identities: dict[str, Identity] = {}
        self._lock = threading.Lock()
        self._on_identity = on_identity

    @property
    def name(self) -> str:
        return self.inventory.meta.name

    def names(self, kind: str | None = None) -> list[str]:
        """Device names in rack-file order, optionally only those of one kind."""
        devices = self.inventory.data.devices
        return [n for n, d in devices.items() if kind is None or d.kind == kind]

    def addresses(self) -> dict[str, str]:
        """Device name -> address, as the rack file gives them."""
        return {name: config.address for name, config in self.inventory.configs.items()}

    def driver(self, name: str) -> Any:
        """The driver instance for device ``name`` (created on first use, then reused), its
        capability methods guarded by ``health``."""
        with self._lock:
            if name in self._drivers:
                return self._drivers[name]
            config = self.inventory.configs.get(name)
            if config is None:
                raise ConfigError(f"rack {self.inventory.path}: no device named {name!r}")
            cls = registry.load(config.driver)
            self._drivers[name] = drv = guarded_driver(cls, config, self.health)
            return drv

    def recheck(self, name: str) -> None:
        """One real attempt to reach a device marked down: ``identify()`` on a fresh, unguarded
        driver (never the rack's own, which a plan may be using). Raises its DeviceError."""
        config = self.inventory.configs[name]
        drv = registry.load(config.driver)(config)
        try:
            drv.identify()
        finally:
            with contextlib.suppress(Exception):
                drv.close()

    def identity(self, name: str) -> Identity:
        """Ask the device who it is (once per run; later calls return the first answer)."""
        with self._lock:
            cached = self._identities.get(name)
        if cached is not None:
            return cached
        identity = self.driver(name).identify()
        with self._lock:
            self._identities[name] = identity
        if self._on_identity is not None:
            self._on_identity(name, identity)
        return identity

    def fan_out(
        self, names: Iterable[str], operation: Callable[[Any], T], *, max_workers: int = 32
    ) -> dict[str, DeviceResult[T]]:
        """Run ``operation(driver)`` on every named device concurrently; one result per device."""
        names = list(names)

        def one(name: str) -> DeviceResult[T]:
            try:
                return DeviceResult(name, value=operation(self.driver(name)))
            except (DeviceError, ConfigError) as exc:
                return DeviceResult(name, error=exc)

        if not names:
            return {}
        with ThreadPoolExecutor(max_workers=min(max_workers, len(names)), thread_name_prefix="fanout") as pool:
            return {r.device: r for r in pool.map(one, names)}

    def close(self) -> None:
        """Close every driver that was opened; a failing close does not stop the others."""
        self.health.close()
        with self._lock:
            drivers, self._drivers = self._drivers, {}
        for drv in drivers.values():
            with contextlib.suppress(Exception):  # teardown must reach every device
                drv.close()
