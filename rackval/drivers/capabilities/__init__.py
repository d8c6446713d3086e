"""Capabilities: what a device can do, as small Protocols, and the records they return.

Plans ask for what a device can do, not what brand it is. This package is the contract between
the drivers below it and everything above (plans, safety gate, probe, telemetry):

- ``protocols``: one runtime-checkable Protocol per capability (``Device``, ``PowerMeter``,
  ``HostReset``, ``PowerLimit``, ``EventLog``, ...), the ResetType vocabulary; drivers subclass
  the ones they implement, callers check with ``isinstance``;
- ``records``: the frozen dataclasses capabilities return (``Identity``, ``OutletReading``,
  ``LogEntry``, ``PortCounters``, ...), shared by every driver;
- ``counters``: ``CounterTracker``, the wrap- and reset-aware arithmetic over raw port counters.

Import from the package: ``from rackval.drivers.capabilities import Bmc, LogEntry, CounterTracker``.
"""

from __future__ import annotations

from rackval.drivers.capabilities.counters import CounterTracker, counter_delta, port_delta
from rackval.drivers.capabilities.protocols import (
    RESET_TYPES,
    Bmc,
    Device,
    EventLog,
    Fans,
    FirmwareInventory,
    GpuNode,
    HostReset,
    NetSwitch,
    OutletSwitch,
    PortCounterSource,
    PowerAnalyzer,
    PowerLimit,
    PowerMeter,
    PowerSupplies,
    Sensors,
    TemperatureThresholds,
    reset_refusal,
)
from rackval.drivers.capabilities.records import (
    AnalyzerReading,
    DiagResult,
    DiagTestResult,
    GpuTelemetry,
    Identity,
    LldpNeighbor,
    LogEntry,
    OutletReading,
    PortCounterDelta,
    PortCounters,
    PortStatus,
    PowerSupplyState,
    SensorReading,
    SensorThresholds,
)

__all__ = [
    "RESET_TYPES",
    "AnalyzerReading",
    "Bmc",
    "CounterTracker",
    "Device",
    "DiagResult",
    "DiagTestResult",
    "EventLog",
    "Fans",
    "FirmwareInventory",
    "GpuNode",
    "GpuTelemetry",
    "HostReset",
    "Identity",
    "LldpNeighbor",
    "LogEntry",
    "NetSwitch",
    "OutletReading",
    "OutletSwitch",
    "PortCounterDelta",
    "PortCounterSource",
    "PortCounters",
    "PortStatus",
    "PowerAnalyzer",
    "PowerLimit",
    "PowerMeter",
    "PowerSupplies",
    "PowerSupplyState",
    "SensorReading",
    "SensorThresholds",
    "Sensors",
    "TemperatureThresholds",
    "counter_delta",
    "port_delta",
    "reset_refusal",
]
