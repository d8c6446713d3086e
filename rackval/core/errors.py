"""Errors that name the device, its address and the operation, so a failed test says what broke."""

from __future__ import annotations

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


class ConfigError(Exception):
    """A rack, spec or credential reference is wrong; raised before any device is touched."""
