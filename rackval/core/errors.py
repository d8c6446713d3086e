"""Errors that name the device, its address and the operation, so a failed test says what broke."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from rackval.core.printable import printable


class DeviceError(Exception):
    """A device did not do what was asked: unreachable, refused, or answered nonsense.

    The message always names the device, its address and the operation, because the person
    reading a failed test needs to know which box to walk to, not which library raised. The
    detail often quotes what the device sent, so the message is made terminal-safe
    (``printable``: control characters as visible escapes); ``detail`` keeps the raw text.
    """

    def __init__(self, device: str, address: str, operation: str, detail: str) -> None:
        self.device = device
        self.address = address
        self.operation = operation
        self.detail = detail
        super().__init__(printable(f"{device} ({address}): {operation}: {detail}"))


class DeviceTimeout(DeviceError):
    """The device did not answer within the transport's timeout (after bounded retries)."""


class DeviceAuthError(DeviceError):
    """The device refused our credentials, or its identity (host key, certificate) did not verify."""


class DeviceProtocolError(DeviceError):
    """The device answered, but the answer was malformed, truncated or of the wrong type."""


class DeviceDown(DeviceError):
    """The device is known to be down, so the operation was not sent: it stopped answering
    earlier in the run, or a plan established that it lost power. ``detail`` says since when and
    why (``cause``: the harness's record of it), so a test that needed the device fails at once,
    naming the root cause, instead of waiting out its own timeout."""

    def __init__(self, device: str, address: str, operation: str, detail: str, cause: object = None) -> None:
        super().__init__(device, address, operation, detail)
        self.cause = cause


class NotAvailable(DeviceError):
    """The device answered, and it does not have this: a resource, a column, a command.

    Not a failure: an APC switched PDU without outlet meters, a BMC without FRU 0 or without
    DCMI, an analyzer without a power-factor item. Callers report it as "not available on this
    device" instead of as an error, and go on reading what the device does have; a plan that
    needs the reading fails naming what is missing. It is a DeviceError so that code which only
    knows "the device did not give me this" still handles it.
    """


class ConfigError(Exception):
    """A rack, spec or credential reference is wrong; raised before any device is touched."""


class _NamesErrors(Protocol):
    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError: ...


_Method = TypeVar("_Method", bound=Callable[..., Any])


def protocol_errors(operation: str) -> Callable[[_Method], _Method]:
    """Decorator for a driver method (the driver has ``_err(cls, operation, detail)``): a
    ``ValueError`` raised while reading the device's answer (a value of the wrong type or shape,
    which the parsing helpers report naming the field) becomes a DeviceProtocolError naming
    device, address and ``operation``. DeviceErrors pass through unchanged."""

    def decorate(method: _Method) -> _Method:
        @functools.wraps(method)
        def run(self: _NamesErrors, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except ValueError as exc:
                raise self._err(DeviceProtocolError, operation, str(exc)) from exc

        return run  # type: ignore[return-value]

    return decorate
