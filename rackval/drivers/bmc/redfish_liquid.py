"""A liquid-cooled node's cooling as its BMC reports it over Redfish: coolant connectors, pumps
and leak detectors under the node's chassis ``ThermalSubsystem``.

Split from ``rackval.drivers.bmc.redfish`` (the BMC driver subclasses ``RedfishNodeCooling``),
which owns the navigation to the node's chassis; each resource's JSON is read as the CDU driver
reads it (``rackval.drivers.cooling.redfish_payloads``). An air-cooled node (DMTF's
public-rackmount1) links none of ``CoolantConnectors``, ``Pumps``, ``LeakDetection``: each of
those readings is then ``NotAvailable``, and the node's other readings are unaffected. A
collection the ThermalSubsystem does not link is looked for at its canonical URI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rackval.core.errors import DeviceError, NotAvailable, protocol_errors
from rackval.drivers.capabilities import CoolantReading, LeakDetection, LeakDetectorState, LiquidCooledNode, PumpState
from rackval.drivers.cooling import redfish_payloads as cooling
from rackval.drivers.transport.redfish import RedfishTransport
from rackval.drivers.transport.redfish_json import link
from rackval.drivers.transport.redfish_resources import linked, members


class RedfishNodeCooling(LiquidCooledNode, LeakDetection):
    """LiquidCooledNode and LeakDetection for a Redfish BMC (mixed into ``RedfishBmc``)."""

    # provided by RedfishBmc, which owns the navigation to the node's chassis
    _transport: RedfishTransport
    if TYPE_CHECKING:

        def _resource_path(self, kind: str) -> str: ...

        def _chassis(self) -> dict[str, Any]: ...

        def _get_optional(self, path: str) -> dict[str, Any] | None: ...

        def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError: ...

    def _thermal_linked(self, key: str, wanted: str) -> tuple[str, dict[str, Any]] | None:
        """What the chassis ThermalSubsystem links under ``key`` (or has at its canonical URI)."""
        base = self._resource_path("chassis")
        path = link(self._chassis(), "ThermalSubsystem") or f"{base}/ThermalSubsystem"
        subsystem = self._get_optional(path)
        return linked(self._transport, subsystem, key, f"{path}/{key}", wanted) if subsystem else None

    def _thermal_members(self, key: str, operation: str) -> list[str]:
        """Members of the ThermalSubsystem's ``key`` collection; NotAvailable when there is none."""
        base = self._resource_path("chassis")
        found = self._thermal_linked(key, "Members")
        if found is None:
            raise self._err(NotAvailable, f"{operation} (chassis {base})", f"the chassis ThermalSubsystem has no {key}")
        return members(self._transport, found[0])

    @protocol_errors("read coolant connectors")
    def coolant_connectors(self) -> list[CoolantReading]:
        """Every ThermalSubsystem CoolantConnector: flow, supply / return temperature, pressures."""
        paths = self._thermal_members("CoolantConnectors", "read coolant connectors")
        return [cooling.coolant(self._transport.get(p), p, "") for p in paths]

    @protocol_errors("read pumps")
    def pumps(self) -> list[PumpState]:
        """Every pump of the node's ThermalSubsystem."""
        return [cooling.pump(self._transport.get(p), p) for p in self._thermal_members("Pumps", "read pumps")]

    @protocol_errors("read leak detectors")
    def leak_detectors(self) -> list[LeakDetectorState]:
        """The ThermalSubsystem LeakDetection's detectors, else the chassis LeakDetectors, else the
        LeakDetection's groups (``rackval.drivers.cooling.redfish_payloads.leak_detectors``)."""
        base = self._resource_path("chassis")
        found = cooling.leak_detectors(self._transport, self._thermal_linked("LeakDetection", "Id"), base)
        if found is None:
            raise self._err(NotAvailable, f"read leak detectors (chassis {base})", "no LeakDetection or LeakDetectors")
        return found
