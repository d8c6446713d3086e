"""The capability contract: one small runtime-checkable Protocol per thing a caller asks a device.

Plans, the safety gate, the probe and the telemetry sampler ask for what a device can do, never
for its brand and never for a method by its name in a string: they test ``isinstance(driver,
Capability)`` and then call. A driver claims each Protocol it implements by subclassing it
(``class IpmiBmc(Device, Bmc, PowerMeter, HostReset, EventLog)``): the class statement is the
list of what the driver can do, and ``tests/unit/test_capabilities_conformance.py`` checks that
every claimed method exists there with the Protocol's parameter names, kinds and defaults.

A kind of device (pdu, switch, bmc, analyzer, node, cdu, power_shelf) has the Protocols every driver of that kind
must claim (``Device`` plus one per kind, see ``tests/unit/test_registry.py``); the others are
optional and a caller that needs one checks for it. Every method may raise
``rackval.core.errors.DeviceError`` naming device, address and operation; methods that change
the rack (switching outlets, resetting hosts, capping power, loading GPUs) are called only
through ``rackval.harness.safety.SafetyGate``.

The per-capability rule: a driver tries each reading on its own, and a reading the device does
not have raises ``rackval.core.errors.NotAvailable`` (a whole list: no filters, no batteries) or is
``None`` in its record (one field: a pump without a speed sensor), never 0, so one missing
reading never hides the others.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol, runtime_checkable

from rackval.drivers.capabilities.records import (
    AnalyzerReading,
    BatteryState,
    CoolantReading,
    DcOutput,
    DiagResult,
    FeedReading,
    FilterState,
    GpuTelemetry,
    Identity,
    LeakDetectorState,
    LldpNeighbor,
    LogEntry,
    OutletReading,
    PortCounters,
    PortStatus,
    PowerSupplyState,
    PumpState,
    RectifierState,
    RedundancyGroup,
    ReservoirState,
    SensorReading,
    SensorThresholds,
)

# ---- every device ---------------------------------------------------------------------------------


@runtime_checkable
class Device(Protocol):
    """Every driver: it can say who it is and release its connections."""

    name: str

    def identify(self) -> Identity:
        """Vendor, model, serial and firmware as the device reports them (empty when it does not)."""

    def close(self) -> None:
        """Release the device's connections (log out, close sockets); safe to call twice."""


# ---- power: PDUs, analyzers, BMCs -------------------------------------------------------------------


@runtime_checkable
class PowerMeter(Protocol):
    """A device that measures the active power flowing through it (PDU total, analyzer, BMC)."""

    def power_watts(self) -> float:
        """Active power in watts now."""


@runtime_checkable
class OutletSwitch(Protocol):
    """A PDU that can read and switch its outlets. Switching is destructive: go through the gate."""

    def outlets(self) -> list[OutletReading]:
        """Every outlet's switch state and meter readings, in outlet order."""

    def set_outlet(self, outlet: int, on: bool) -> None:
        """Switch outlet number ``outlet`` (1-based, as the PDU numbers it) on or off."""


@runtime_checkable
class PowerAnalyzer(Protocol):
    """A bench power analyzer on a feed."""

    def read(self) -> AnalyzerReading:
        """RMS voltage, RMS current, active power (and power factor when measured) of one reading."""


# ---- BMCs: host power, power cap, event log, health ---------------------------------------------------

# Resource_v1 ResetType members (DMTF CSDL): the one vocabulary of ``HostReset.reset``.
RESET_TYPES: tuple[str, ...] = (
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "ForceOn",
    "PushPowerButton",
    "PowerCycle",
    "Suspend",
    "Pause",
    "Resume",
    "FullPowerCycle",
)


def reset_refusal(reset_type: str, supported: Collection[str] | None = None, means: str = "") -> str | None:
    """Why a driver must refuse ``reset_type`` before sending anything, or None when it may go ahead.

    A name that is not a Redfish ResetType is unknown (a typo); one that is, but that the driver
    cannot do with its ``means`` (e.g. "ipmitool chassis power"), is refused naming what it can
    do. ``supported`` None: every ResetType (the device decides).
    """
    if reset_type not in RESET_TYPES:
        return f"unknown ResetType {reset_type!r}; Redfish defines {list(RESET_TYPES)}"
    if supported is not None and reset_type not in supported:
        can = [t for t in RESET_TYPES if t in supported]
        return f"ResetType {reset_type!r} cannot be done with {means}; it can do {can}"
    return None


@runtime_checkable
class Bmc(Protocol):
    """A baseboard management controller: host power state and temperatures."""

    def power_state(self) -> str:
        """The host's power state in Redfish PowerState words: On, Off, PoweringOn, PoweringOff, Paused."""

    def temperatures(self) -> dict[str, float]:
        """Every temperature sensor with a reading, in degrees Celsius, keyed by sensor name."""


@runtime_checkable
class HostReset(Protocol):
    """A BMC that can power, power off and reset its host. Destructive: go through the gate."""

    def reset(self, reset_type: str) -> None:
        """Ask for ``reset_type``, a Redfish ResetType (``RESET_TYPES``: On, ForceOff, GracefulShutdown,
        ForceRestart, PowerCycle, ...); a type the BMC cannot do is refused (DeviceError) before
        anything is sent (see ``reset_refusal``). Returns when the BMC accepted the request: poll
        ``Bmc.power_state()`` for the outcome.
        """


@runtime_checkable
class PowerLimit(Protocol):
    """A BMC that caps the power its chassis draws. Setting the cap is destructive: go through the gate."""

    def power_limit(self) -> tuple[float | None, float | None]:
        """(limit in watts or None when uncapped, correction time in ms or None when not reported).

        The correction time is how long the BMC allows itself to bring consumption under the
        limit: the pass/fail bound for a power-capping response test.
        """

    def set_power_limit(self, watts: float | None) -> None:
        """Cap the chassis at ``watts``, or remove the cap (None); read ``power_limit()`` back to confirm."""


@runtime_checkable
class EventLog(Protocol):
    """A BMC with a system event log (Redfish LogService "SEL", IPMI SEL)."""

    def sel_entries(self) -> list[LogEntry]:
        """Every entry of the event log, in the order the BMC lists them."""


@runtime_checkable
class PowerSupplies(Protocol):
    """A BMC that reports its node's power supplies and whether each has line input."""

    def power_supplies(self) -> dict[str, PowerSupplyState]:
        """Every PSU keyed by name: state, health and whether it has input (None: not said)."""


@runtime_checkable
class Fans(Protocol):
    """A BMC that reports its chassis fans."""

    def fans(self) -> dict[str, float | None]:
        """Every fan's speed in RPM keyed by fan name; None when the fan gives no RPM reading."""


@runtime_checkable
class TemperatureThresholds(Protocol):
    """A BMC that reports its own upper thresholds for its temperature sensors."""

    def sensor_thresholds(self) -> dict[str, SensorThresholds]:
        """Upper caution / critical thresholds keyed like ``Bmc.temperatures()``; sensors without any are left out."""


@runtime_checkable
class FirmwareInventory(Protocol):
    """A device that lists the firmware of its components (BIOS, BMC, CPLD, PSUs, GPUs ...)."""

    def firmware_inventory(self) -> dict[str, str]:
        """{component name: version}; components that report no version are left out."""


# ---- switches ---------------------------------------------------------------------------------------


@runtime_checkable
class NetSwitch(Protocol):
    """A network switch: its ports and what LLDP sees on them."""

    def ports(self) -> list[PortStatus]:
        """Every port with its oper / admin state and negotiated speed."""

    def lldp_neighbors(self) -> list[LldpNeighbor]:
        """What LLDP sees at the other end of each cabled port."""


@runtime_checkable
class PortCounterSource(Protocol):
    """A switch that reports per-port traffic and error counters."""

    def counters(self) -> list[PortCounters]:
        """Raw cumulative counters of every port, with their wrap widths (feed them to ``CounterTracker``)."""


@runtime_checkable
class Sensors(Protocol):
    """A device that reports its environmental sensors (temperatures, fans, PSU power ...)."""

    def sensors(self) -> list[SensorReading]:
        """Every sensor, scaled to its unit; ``value`` None when the sensor has no valid reading."""


# ---- GPU nodes --------------------------------------------------------------------------------------


@runtime_checkable
class GpuNode(Protocol):
    """A GPU compute node: per-GPU telemetry, a load generator and the vendor diagnostic.

    Starting load and running diagnostics change what the node does: go through the gate.
    """

    def gpus(self) -> list[GpuTelemetry]:
        """One telemetry record per GPU, in GPU index order."""

    def start_load(self, level: float, duration_s: float | None = None) -> None:
        """Start the GPU load at ``level`` (0..1] for ``duration_s`` (None: until ``stop_load``)."""

    def stop_load(self) -> None:
        """Stop the load; idempotent (no load running is not an error)."""

    def run_diag(self, level: int) -> DiagResult:
        """Run the vendor GPU diagnostic at ``level`` and return every test's result."""


# ---- liquid cooling: CDUs, leak detection, liquid-cooled nodes ---------------------------------------


@runtime_checkable
class CoolingUnit(Protocol):
    """A coolant distribution unit (CDU): its mode, pumps, filters, reservoirs and the two loops.

    Each method raises NotAvailable when the CDU has none of the thing (a CDU without a reservoir
    it reports); a list never comes back empty for that reason.
    """

    def cooling_mode(self) -> str:
        """The unit's operating mode in Redfish Status.State words (Enabled, Disabled, StandbyOffline, ...)."""

    def pumps(self) -> list[PumpState]:
        """Every pump: state, health, speed in percent, speed set point and control mode."""

    def pump_redundancy(self) -> RedundancyGroup:
        """How many pumps the CDU needs of how many (NotAvailable when it does not say)."""

    def filters(self) -> list[FilterState]:
        """Every coolant filter: health and service hours."""

    def reservoirs(self) -> list[ReservoirState]:
        """Every reservoir: fluid level status and percent, capacity."""

    def loops(self) -> list[CoolantReading]:
        """The primary (facility) and secondary (rack) loop readings, primary first."""


@runtime_checkable
class PumpControl(Protocol):
    """A CDU whose pumps can be stopped, started and set to a speed. Destructive: go through the gate."""

    def set_pump(self, pump: str, on: bool) -> None:
        """Enable (start) or disable (stop) the pump named as in ``CoolingUnit.pumps()``."""

    def set_pump_speed(self, pump: str, percent: float) -> None:
        """Run ``pump`` at ``percent`` (0..100) of full speed under manual control; read ``pumps()`` back."""


@runtime_checkable
class LeakDetection(Protocol):
    """A device with leak detectors (a CDU, a liquid-cooled node's chassis, a rack manifold)."""

    def leak_detectors(self) -> list[LeakDetectorState]:
        """Every leak detector and its state (OK: dry; Warning / Critical: a leak)."""


@runtime_checkable
class LiquidCooledNode(Protocol):
    """A node BMC whose chassis reports its liquid cooling: coolant connectors and pumps."""

    def coolant_connectors(self) -> list[CoolantReading]:
        """Every coolant connector of the node: flow, supply / return temperature, pressures."""

    def pumps(self) -> list[PumpState]:
        """Every pump under the node's chassis (NotAvailable: the node has none it reports)."""


# ---- power shelves: feeds, rectifiers, DC busbar, batteries ------------------------------------------------


@runtime_checkable
class PowerShelf(Protocol):
    """A power shelf: AC feeds in, rectifiers, a DC output to the busbar, battery backup units."""

    def feeds(self) -> list[FeedReading]:
        """Every input feed: voltage, current, power (and frequency, energised) as reported."""

    def rectifiers(self) -> list[RectifierState]:
        """Every rectifier / PSU bay: state, input, output power and efficiency."""

    def rectifier_redundancy(self) -> RedundancyGroup:
        """How many rectifiers the shelf needs of how many (NotAvailable when it does not say)."""

    def dc_output(self) -> DcOutput:
        """The DC output to the busbar: voltage, current, power."""

    def batteries(self) -> list[BatteryState]:
        """Every battery backup unit: state of charge and health, charge state, holdup estimate."""


@runtime_checkable
class ShelfControl(Protocol):
    """A power shelf whose rectifiers and feeds can be switched. Destructive: go through the gate."""

    def set_rectifier(self, rectifier: str, on: bool) -> None:
        """Switch the rectifier named as in ``PowerShelf.rectifiers()`` on or off."""

    def set_feed(self, feed: str, on: bool) -> None:
        """Open (off) or close (on) the input breaker of the feed named as in ``PowerShelf.feeds()``."""
