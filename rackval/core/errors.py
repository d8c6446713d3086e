"""Errors that name the device, its address and the operation, so a failed test says what broke."""

from __future__ import annotations


class DeviceError(Exception):
    """A device did not do what was asked: unreachable, refused, or answered nonsense.

    The message always names the device, its address and the operation, because the person
    reading a failed test needs to know which box to walk to, not which library raised.
    """

    def __init__(self, device: str, address: str, operation: str, detail: str) -> None:
        self.device = device
        self.address = address
        self.operation = operation
        self.detail = detail
        super().__init__(f"{device} ({address}): {operation}: {detail}")


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


class ConfigError(Exception):
    """A rack, spec or credential reference is wrong; raised before any device is touched."""
