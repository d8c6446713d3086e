"""DMTF liquid-cooling resources as capability records: pure functions of the JSON a service sent.

Shared by the Redfish CDU driver (``ThermalEquipment/CDUs``) and the Redfish BMC driver (coolant
connectors, pumps and leak detectors under a liquid-cooled node's chassis), so both read a
CoolantConnector, a Pump or a LeakDetector the same way. What each function reads [V: as
DMTF's public-cooling-unit mockup shows it]:

* Pump: Status, ``PumpSpeedPercent.Reading``, ``SpeedControlPercent.SetPoint`` / ``ControlMode``;
* CoolantConnector: ``SupplyTemperatureCelsius``, ``ReturnTemperatureCelsius``,
  ``DeltaTemperatureCelsius``, ``FlowLitersPerMinute``, ``SupplyPressurekPa``,
  ``ReturnPressurekPa``, ``DeltaPressurekPa``, ``HeatRemovedkW`` (each ``.Reading``) and
  ``SupplyTemperatureControlCelsius.SetPoint``;
* LeakDetector: ``DetectorState``, ``LeakDetectorType``, ``Location.PartLocation.ServiceLabel``;
  a ``LeakDetection`` group entry (``LeakDetectorGroups[].Detectors[]``: ``DeviceName``,
  ``DetectorState``) when the service lists detectors only there;
* Filter: ``ServiceHours``, ``RatedServiceHours``; Reservoir: ``FluidLevelStatus``,
  ``FluidLevelPercent.Reading``, ``CapacityLiters``, ``InternalPressurekPa.Reading``;
* a redundancy entry (``PumpRedundancy[]``, ``PowerSupplyRedundancy[]``): RedundancyType,
  MinNeededInGroup, MaxSupportedInGroup, RedundancyGroup.

A property the resource leaves out is None / "" in the record; a value of the wrong type is a
ValueError naming the resource and property (the drivers turn it into a DeviceProtocolError).

``leak_detectors`` is the one walk to a device's leak detectors both drivers share: the
``LeakDetection`` resource's ``LeakDetectors`` collection, else the chassis ``LeakDetectors``
collection (where DMTF now places them), else the detectors listed in ``LeakDetectorGroups``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rackval.drivers.capabilities import (
    CoolantReading,
    FilterState,
    LeakDetectorState,
    PumpState,
    RedundancyGroup,
    ReservoirState,
)
from rackval.drivers.transport.redfish import RedfishTransport
from rackval.drivers.transport.redfish_json import link, member_text, number, reading, text
from rackval.drivers.transport.redfish_resources import linked, members, name_of, optional, status


def _block(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} {key}: expected an object")
    return value


def pump(doc: Mapping[str, Any], path: str) -> PumpState:
    state, health = status(doc, path)
    control = _block(doc, "SpeedControlPercent", path)
    return PumpState(
        name=name_of(doc, path),
        state=state,
        health=health,
        speed_pct=reading(doc, "PumpSpeedPercent", f"{path} PumpSpeedPercent"),
        setpoint_pct=number(control.get("SetPoint"), f"{path} SpeedControlPercent.SetPoint"),
        control_mode=text(control.get("ControlMode"), f"{path} SpeedControlPercent.ControlMode") or "",
    )


def coolant(doc: Mapping[str, Any], path: str, loop: str) -> CoolantReading:
    state, health = status(doc, path)

    def excerpt(key: str) -> float | None:
        return reading(doc, key, f"{path} {key}")

    control = _block(doc, "SupplyTemperatureControlCelsius", path)
    return CoolantReading(
        name=name_of(doc, path),
        loop=loop,
        state=state,
        health=health,
        supply_temp_c=excerpt("SupplyTemperatureCelsius"),
        return_temp_c=excerpt("ReturnTemperatureCelsius"),
        delta_temp_c=excerpt("DeltaTemperatureCelsius"),
        flow_lpm=excerpt("FlowLitersPerMinute"),
        supply_pressure_kpa=excerpt("SupplyPressurekPa"),
        return_pressure_kpa=excerpt("ReturnPressurekPa"),
        delta_pressure_kpa=excerpt("DeltaPressurekPa"),
        heat_kw=excerpt("HeatRemovedkW"),
        supply_setpoint_c=number(control.get("SetPoint"), f"{path} SupplyTemperatureControlCelsius.SetPoint"),
    )


def leak_detector(doc: Mapping[str, Any], path: str) -> LeakDetectorState:
    _, health = status(doc, path)
    location = _block(_block(doc, "Location", path), "PartLocation", f"{path} Location")
    return LeakDetectorState(
        name=name_of(doc, path),
        detector_state=member_text(doc, "DetectorState", f"{path} DetectorState"),
        health=health,
        detector_type=member_text(doc, "LeakDetectorType", f"{path} LeakDetectorType"),
        location=text(location.get("ServiceLabel"), f"{path} Location.PartLocation.ServiceLabel") or "",
    )


def grouped_detectors(leak_detection: Mapping[str, Any], path: str) -> list[LeakDetectorState]:
    """Detectors listed inside ``LeakDetectorGroups[].Detectors[]`` (name: DeviceName)."""
    groups = leak_detection.get("LeakDetectorGroups")
    out: list[LeakDetectorState] = []
    if not isinstance(groups, list):
        return out
    for g, group in enumerate(groups):
        detectors = group.get("Detectors") if isinstance(group, dict) else None
        for d, entry in enumerate(detectors if isinstance(detectors, list) else []):
            where = f"{path} LeakDetectorGroups[{g}].Detectors[{d}]"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected an object")
            name = member_text(entry, "DeviceName", f"{where}.DeviceName") or f"group{g}-detector{d}"
            out.append(LeakDetectorState(name, member_text(entry, "DetectorState", f"{where}.DetectorState")))
    return out


def filter_state(doc: Mapping[str, Any], path: str) -> FilterState:
    state, health = status(doc, path)
    return FilterState(
        name=name_of(doc, path),
        state=state,
        health=health,
        service_hours=number(doc.get("ServiceHours"), f"{path} ServiceHours"),
        rated_service_hours=number(doc.get("RatedServiceHours"), f"{path} RatedServiceHours"),
    )


def reservoir(doc: Mapping[str, Any], path: str) -> ReservoirState:
    state, health = status(doc, path)
    return ReservoirState(
        name=name_of(doc, path),
        state=state,
        health=health,
        level_status=member_text(doc, "FluidLevelStatus", f"{path} FluidLevelStatus"),
        level_pct=reading(doc, "FluidLevelPercent", f"{path} FluidLevelPercent"),
        capacity_l=number(doc.get("CapacityLiters"), f"{path} CapacityLiters"),
        pressure_kpa=reading(doc, "InternalPressurekPa", f"{path} InternalPressurekPa"),
    )


def redundancy(doc: Mapping[str, Any], key: str, where: str) -> RedundancyGroup | None:
    """The first entry of the redundancy array ``doc[key]``; None when there is none."""
    entries = doc.get(key)
    if not isinstance(entries, list) or not entries:
        return None
    entry = entries[0]
    if not isinstance(entry, dict):
        raise ValueError(f"{where} {key}[0]: expected an object")
    at = f"{where} {key}[0]"
    group = entry.get("RedundancyGroup")
    names = tuple(
        m["@odata.id"].rstrip("/").rsplit("/", 1)[-1]
        for m in (group if isinstance(group, list) else [])
        if isinstance(m, dict) and isinstance(m.get("@odata.id"), str)
    )
    minimum = number(entry.get("MinNeededInGroup"), f"{at}.MinNeededInGroup")
    maximum = number(entry.get("MaxSupportedInGroup"), f"{at}.MaxSupportedInGroup")
    state, health = status(entry, at)
    return RedundancyGroup(
        kind=member_text(entry, "RedundancyType", f"{at}.RedundancyType"),
        min_needed=None if minimum is None else int(minimum),
        max_supported=None if maximum is None else int(maximum),
        members=names,
        state=state,
        health=health,
    )


def leak_detectors(
    transport: RedfishTransport, detection: tuple[str, dict[str, Any]] | None, chassis: str | None
) -> list[LeakDetectorState] | None:
    """The detectors of ``detection`` ((path, LeakDetection resource) or None) or of the chassis at
    path ``chassis``; None when neither lists any (the caller says NotAvailable)."""
    if detection is not None:
        path, doc = detection
        found = linked(transport, doc, "LeakDetectors", f"{path}/LeakDetectors", "Members")
        if found is not None:
            return [leak_detector(transport.get(p), p) for p in members(transport, found[0])]
    chassis_doc = optional(transport, chassis)
    collection = link(chassis_doc, "LeakDetectors") if chassis_doc is not None else None
    if collection is not None:
        return [leak_detector(transport.get(p), p) for p in members(transport, collection)]
    if detection is not None and (grouped := grouped_detectors(detection[1], detection[0])):
        return grouped
    return None
