"""A liquid-cooled node's coolant connection and leak detector, as its BMC reports them in Redfish.

Why a module of its own: only nodes of a liquid-cooled design have them (``model.cooling.node``
is None for an air-cooled node, whose tree stays exactly as it was), and they follow DMTF's
ThermalSubsystem additions rather than the fan and temperature resources of ``redfish_chassis``.

What is served for a liquid-cooled node: ``ThermalSubsystem/CoolantConnectors/1`` (flow, supply
and return temperature, differential pressure, heat removed, each linked to its sensor),
``ThermalSubsystem/LeakDetection`` (one group with the tray's detector) and the chassis'
``LeakDetectors/Tray``; the sensors ``Sensors/Coolant*`` are listed in the chassis' Sensors.
"""

from __future__ import annotations

from typing import Any

from rackval.sim.equipment_model import CoolantConnectorReading
from rackval.sim.model import RackModel
from rackval.sim.redfish_schema import CHASSIS, SENSORS, collection, ref, resource, status_doc
from rackval.sim.redfish_state import Route

CONNECTORS = f"{CHASSIS}/ThermalSubsystem/CoolantConnectors"
LEAK_DETECTION = f"{CHASSIS}/ThermalSubsystem/LeakDetection"
LEAK_DETECTORS = f"{CHASSIS}/LeakDetectors"

# sensor id -> (name, ReadingType, units, physical context, reading field, scale)
COOLANT_SENSORS: dict[str, tuple[str, str, str, str, str, float]] = {
    "CoolantFlow": ("Coolant Flow", "LiquidFlowLPM", "L/min", "LiquidInlet", "flow_lpm", 1.0),
    "CoolantSupplyTemp": ("Coolant Supply Temperature", "Temperature", "Cel", "LiquidInlet", "supply_c", 1.0),
    "CoolantReturnTemp": ("Coolant Return Temperature", "Temperature", "Cel", "LiquidOutlet", "return_c", 1.0),
    "CoolantDeltaPressure": ("Coolant Delta Pressure", "PressurekPa", "kPa", "Chassis", "delta_kpa", 1.0),
    "CoolantHeat": ("Coolant Heat Removed", "Heat", "kW", "Chassis", "heat_w", 1e-3),
}
# CoolantConnector property -> its sensor
_CONNECTOR_FIELDS = {
    "FlowLitersPerMinute": "CoolantFlow",
    "SupplyTemperatureCelsius": "CoolantSupplyTemp",
    "ReturnTemperatureCelsius": "CoolantReturnTemp",
    "DeltaPressurekPa": "CoolantDeltaPressure",
    "HeatRemovedkW": "CoolantHeat",
}


class CoolantResources:
    """The coolant connector, leak detection and coolant sensors of one liquid-cooled node."""

    def __init__(self, model: RackModel, node: str) -> None:
        self.model = model
        self.node = node
        self.liquid = model.cooling.node(node) is not None

    def _reading(self) -> CoolantConnectorReading:
        reading = self.model.cooling.node(self.node)
        assert reading is not None
        return reading

    def sensor_ids(self) -> list[str]:
        return list(COOLANT_SENSORS) if self.liquid else []

    def thermal_links(self) -> dict[str, Any]:
        """What the ThermalSubsystem links to (nothing for an air-cooled node)."""
        return {"CoolantConnectors": ref(CONNECTORS), "LeakDetection": ref(LEAK_DETECTION)} if self.liquid else {}

    def chassis_links(self) -> dict[str, Any]:
        return {"LeakDetectors": ref(LEAK_DETECTORS)} if self.liquid else {}

    def health(self) -> list[str]:
        """The healths the chassis rolls up from (a wet tray is Critical)."""
        return [self._leak_health()] if self.liquid else []

    def _leak_health(self) -> str:
        return "Critical" if self._reading().leak != "OK" else "OK"

    def routes(self) -> dict[str, Route]:
        if not self.liquid:
            return {}
        r = {
            CONNECTORS: Route(lambda: collection("CoolantConnectorCollection", CONNECTORS, [f"{CONNECTORS}/1"])),
            f"{CONNECTORS}/1": Route(self.connector),
            LEAK_DETECTION: Route(self.leak_detection),
            LEAK_DETECTORS: Route(
                lambda: collection("LeakDetectorCollection", LEAK_DETECTORS, [f"{LEAK_DETECTORS}/Tray"])
            ),
            f"{LEAK_DETECTORS}/Tray": Route(self.leak_detector),
        }
        for sensor in COOLANT_SENSORS:
            r[f"{SENSORS}/{sensor}"] = Route(lambda sensor=sensor: self.sensor(sensor))
        return r

    def _value(self, reading: CoolantConnectorReading, sensor: str) -> float:
        *_, attr, scale = COOLANT_SENSORS[sensor]
        return round(float(getattr(reading, attr)) * scale, 2)

    def connector(self) -> dict[str, Any]:
        r = self._reading()
        excerpts = {
            prop: {"Reading": self._value(r, sensor), "DataSourceUri": f"{SENSORS}/{sensor}"}
            for prop, sensor in _CONNECTOR_FIELDS.items()
        }
        health = "OK" if r.flow_lpm >= self.model.params.cooling.min_node_flow_lpm else "Warning"
        return resource(
            f"{CONNECTORS}/1", "CoolantConnector", Id="1", Name=f"{self.node} tray coolant connection",
            CoolantConnectorType="Pair", Coolant=self.model.cooling.coolant(), Status=status_doc("Enabled", health),
            **excerpts,
        )  # fmt: skip

    def leak_detection(self) -> dict[str, Any]:
        r = self._reading()
        detector = {
            "DataSourceUri": f"{LEAK_DETECTORS}/Tray", "DeviceName": f"{self.node} tray", "DetectorState": r.leak
        }  # fmt: skip
        return resource(
            LEAK_DETECTION, "LeakDetection", Id="LeakDetection", Name="Leak Detection",
            Status=status_doc("Enabled", self._leak_health()),
            LeakDetectorGroups=[{"GroupName": "Node tray", "Status": {"Health": self._leak_health()},
                                 "Detectors": [detector]}],
        )  # fmt: skip

    def leak_detector(self) -> dict[str, Any]:
        state = self._reading().leak
        return resource(f"{LEAK_DETECTORS}/Tray", "LeakDetector", Id="Tray", Name=f"{self.node} tray leak detector",
                        LeakDetectorType="Moisture", DetectorState=state, PhysicalContext="Chassis",
                        Status=status_doc("Enabled", state))  # fmt: skip

    def sensor(self, sensor: str) -> dict[str, Any]:
        name, reading_type, units, context, *_ = COOLANT_SENSORS[sensor]
        return resource(
            f"{SENSORS}/{sensor}", "Sensor", Id=sensor, Name=name, ReadingType=reading_type, ReadingUnits=units,
            Reading=self._value(self._reading(), sensor), PhysicalContext=context, Status=status_doc(),
        )  # fmt: skip
