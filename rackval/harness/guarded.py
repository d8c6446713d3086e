"""Drivers whose capability methods go through the run's ``DeviceHealth``.

``Rack.driver()`` hands out drivers built from ``guarded_class(cls)``: a subclass, generated once
per driver class, that overrides every method of every capability Protocol the class claims
(the Protocols in its MRO, as ``tests/unit/test_capabilities_conformance.py`` finds them) with a
wrapper that asks the device's ``DeviceGuard`` first. A subclass, not a proxy: ``isinstance(drv,
SomeProtocol)`` answers exactly as for the plain driver (a ``__getattr__`` proxy would appear to
implement every runtime-checkable Protocol), the class keeps its name for messages, and each
wrapper keeps the method's signature (``functools.wraps``).

``close`` is never guarded (releasing a down device's sockets must always work), nor are methods
outside the Protocols (a driver's own extras). A capability method that calls another one of the
same driver (``identify`` reading ``firmware_inventory``) is one operation: the inner call goes
straight through.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, Protocol

from rackval.drivers.config import DeviceConfig
from rackval.harness.health import DeviceHealth

UNGUARDED = frozenset({"close"})
"""Protocol methods that always run, down or not."""

_MADE: dict[type, type] = {}
_MADE_LOCK = threading.Lock()


def capability_methods(cls: type) -> list[str]:
    """Names of the methods of every capability Protocol ``cls`` claims (its MRO's Protocols)."""
    names: list[str] = []
    for base in cls.__mro__:
        if Protocol not in base.__bases__:
            continue
        for name, value in vars(base).items():
            if inspect.isfunction(value) and not name.startswith("_") and name not in UNGUARDED and name not in names:
                names.append(name)
    return names


class DeviceGuard:
    """One device's way through the health registry; re-entrant per thread (see module docstring)."""

    def __init__(self, health: DeviceHealth, device: str) -> None:
        self.health = health
        self.device = device
        self._inside = threading.local()

    def call(self, operation: str, method: Callable[..., Any], driver: Any, args: Any, kwargs: Any) -> Any:
        if getattr(self._inside, "active", False):
            return method(driver, *args, **kwargs)
        self._inside.active = True
        try:
            return self.health.call(self.device, operation, lambda: method(driver, *args, **kwargs))
        finally:
            self._inside.active = False


def _through_guard(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        guard = self._device_guard
        if guard is None:
            return method(self, *args, **kwargs)
        return guard.call(name, method, self, args, kwargs)

    return guarded


def guarded_class(cls: type) -> type:
    """The guarded subclass of driver class ``cls`` (made on first use, then reused)."""
    with _MADE_LOCK:
        made = _MADE.get(cls)
        if made is None:
            namespace: dict[str, Any] = {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
                "_device_guard": None,
            }
            for name in capability_methods(cls):
                method = inspect.getattr_static(cls, name)
                if inspect.isfunction(method):  # a property or a static method is left as it is
                    namespace[name] = _through_guard(name, method)
            made = _MADE[cls] = type(cls)(cls.__name__, (cls,), namespace)
        return made


def guarded_driver(cls: type, config: DeviceConfig, health: DeviceHealth) -> Any:
    """A driver of class ``cls`` for ``config`` whose capability methods go through ``health``."""
    driver = guarded_class(cls)(config)
    driver._device_guard = DeviceGuard(health, config.name)
    return driver
