"""Capabilities as small Protocols: plans ask for what a device can do, not what brand it is.

A driver implements the Protocols that fit its device; the harness checks with ``isinstance``
(the Protocols are runtime-checkable) before it calls. Every method may raise
``drivers.errors.DeviceError`` naming device, address and operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Identity:
    """What a device says it is."""

    vendor: str
    model: str
    serial: str
    firmware: str


@dataclass(frozen=True)
class OutletReading:
    """One outlet's switch state and meter readings, in SI units (already scaled)."""

    outlet: int
    name: str
    on: bool
    power_w: float | None
    current_a: float | None


@dataclass(frozen=True)
class PortStatus:
    """One switch port as the switch reports it."""

    name: str
    oper_up: bool
    admin_up: bool
    speed_mbps: int | None
    alias: str = ""


@dataclass(frozen=True)
class LldpNeighbor:
    """What a switch port sees at the other end of its cable."""

    local_port: str
    remote_system: str
    remote_port: str


@dataclass(frozen=True)
class AnalyzerReading:
    """A power analyzer's reading on one element: RMS voltage, RMS current, active power."""

    voltage_v: float
    current_a: float
    power_w: float
    power_factor: float | None = None


@runtime_checkable
class Device(Protocol):
    """Every driver: it can say who it is and release its connections."""

    name: str

    def identify(self) -> Identity: ...

    def close(self) -> None: ...


@runtime_checkable
class PowerMeter(Protocol):
    """A device that measures the active power flowing through it (PDU total, analyzer, BMC)."""

    def power_watts(self) -> float: ...


@runtime_checkable
class OutletSwitch(Protocol):
    """A PDU that can read and switch its outlets. Switching is destructive: go through the gate."""

    def outlets(self) -> list[OutletReading]: ...

    def set_outlet(self, outlet: int, on: bool) -> None: ...


@runtime_checkable
class NetSwitch(Protocol):
    """A network switch: its ports and what LLDP sees on them."""

    def ports(self) -> list[PortStatus]: ...

    def lldp_neighbors(self) -> list[LldpNeighbor]: ...


@runtime_checkable
class Bmc(Protocol):
    """A baseboard management controller: host power state, power draw and temperatures."""

    def power_state(self) -> str: ...

    def temperatures(self) -> dict[str, float]: ...


@runtime_checkable
class PowerAnalyzer(Protocol):
    """A bench power analyzer on a feed."""

    def read(self) -> AnalyzerReading: ...
