"""What a driver needs to reach one device: address, driver options and resolved credentials.

The harness builds these from the rack file; drivers never read YAML or the environment
themselves, which keeps them usable from scripts and tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Secret:
    """A credential value that never prints: repr, str and format all give '***'.

    Call ``reveal()`` only at the point where the value goes on the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Credentials:
    """Resolved credentials for one device. Which fields matter depends on the protocol.

    SNMP v2c uses ``community``; SNMP v3 uses ``username`` with ``auth_protocol``/``auth_key`` and
    ``priv_protocol``/``priv_key``; SSH uses ``username`` with ``password`` or ``key_file``;
    Redfish uses ``username``/``password``.
    """

    username: str | None = None
    password: Secret | None = None
    community: Secret | None = None
    snmp_version: str = "2c"
    auth_protocol: str | None = None
    auth_key: Secret | None = None
    priv_protocol: str | None = None
    priv_key: Secret | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class DeviceConfig:
    """One device as the rack file describes it, ready for a driver."""

    name: str
    kind: str
    driver: str
    host: str
    port: int | None = None
    credentials: Credentials = field(default_factory=Credentials)
    options: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 5.0

    @property
    def address(self) -> str:
        """host:port as it appears in error messages."""
        return f"{self.host}:{self.port}" if self.port is not None else self.host
