"""The Redfish tree of a simulated in-rack CDU, shaped like DMTF's public-cooling-unit mockup.

Why a module of its own: a coolant distribution unit is reported through DMTF's ThermalEquipment
model, which shares nothing with a node's tree but the service around it (``redfish_equipment``).

What is served, read from the model (``model.cooling``) at request time:
``ThermalEquipment`` with ``CDUs/1`` (CoolingUnit: identity, coolant, pump redundancy N+M, health
rolled up from pumps, leaks and reservoir) and its ``Pumps/{PumpN}`` (state, speed, ``SpeedControlPercent``; PATCH
``SpeedControlPercent.SetPoint`` sets that pump's speed, POST ``Pump.SetMode`` Enabled/Disabled
starts or stops one pump), ``Filters/1``, ``Reservoirs/1`` (level), ``LeakDetection`` (groups whose detectors are the
chassis' ``Chassis/CDU/LeakDetectors/{id}``, where DMTF now places them),
``PrimaryCoolantConnectors/1`` (facility water) and
``SecondaryCoolantConnectors/1`` (the rack loop: flow, supply/return temperature, pressures, heat;
PATCH ``SupplyTemperatureControlCelsius.SetPoint`` moves the supply setpoint), and
``ThermalEquipment/CoolingLoops/Secondary``; every reading also as a ``Chassis/CDU/Sensors/{id}``
the resources link to through ``DataSourceUri``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rackval.sim.model import RackModel
from rackval.sim.redfish_equipment import EquipmentTree, SensorSpec, start_equipment_redfish
from rackval.sim.redfish_readings import worst
from rackval.sim.redfish_schema import V1, RedfishError, collection, ref, resource, status_doc
from rackval.sim.redfish_server import SIM_EPOCH, RedfishService
from rackval.sim.redfish_state import Route

TE = f"{V1}/ThermalEquipment"
CDU = f"{TE}/CDUs/1"
LOOP = f"{TE}/CoolingLoops/Secondary"
_DETECTOR_TYPE = {"Overflow": "FloatSwitch"}  # by the detector's suffix; Moisture otherwise


class CduTree(EquipmentTree):
    """One CDU's Redfish tree (the CDU is ``state.device``)."""

    chassis_id = "CDU"

    def __init__(self, state: Any) -> None:
        self.cdu = state.device
        super().__init__(state)

    def _r(self) -> Any:
        return self.model.cooling.reading(self.cdu)

    def identity(self) -> tuple[str, str, str, str, str]:
        info = self.model.cooling.cdu(self.cdu).info
        return self.cdu, info.vendor, info.model, info.serial, self.model.firmware(self.cdu)["firmware"]

    def root_links(self) -> dict[str, Any]:
        return {"ThermalEquipment": ref(TE)}

    def chassis_extra(self) -> dict[str, Any]:
        return {"LeakDetectors": ref(f"{self.chassis}/LeakDetectors")}

    def _pump_names(self) -> list[str]:
        return [p.name for p in self.model.cooling.cdu(self.cdu).pumps]

    def _detectors(self) -> list[str]:
        return [d.name for d in self.model.cooling.cdu(self.cdu).detectors if d.where == self.cdu]

    # ---- sensors ------------------------------------------------------------------------------
    def sensor_specs(self) -> list[SensorSpec]:
        def field(name: str, scale: float = 1.0) -> Callable[[], float]:
            return lambda: float(getattr(self._r(), name)) * scale

        def delta(a: str, b: str) -> Callable[[], float]:
            return lambda: float(getattr(self._r(), a)) - float(getattr(self._r(), b))

        specs = [
            SensorSpec("PrimaryFlow", "Primary Flow", "LiquidFlowLPM", "L/min", "Chassis", field("primary_flow_lpm")),
            SensorSpec("PrimarySupplyTemp", "Primary Supply Temperature", "Temperature", "Cel", "LiquidInlet",
                       field("primary_supply_c")),
            SensorSpec("PrimaryReturnTemp", "Primary Return Temperature", "Temperature", "Cel", "LiquidOutlet",
                       field("primary_return_c")),
            SensorSpec("PrimaryDeltaTemp", "Primary Delta Temperature", "Temperature", "Cel", "Chassis",
                       delta("primary_return_c", "primary_supply_c")),
            SensorSpec("PrimaryHeatLoad", "Primary Heat Load", "Heat", "kW", "Chassis", field("heat_w", 1e-3)),
            SensorSpec("SecondaryFlow", "Secondary Flow", "LiquidFlowLPM", "L/min", "Chassis", field("flow_lpm"),
                       self._flow_health),
            SensorSpec("SecondarySupplyTemp", "Secondary Supply Temperature", "Temperature", "Cel", "LiquidOutlet",
                       field("supply_c")),
            SensorSpec("SecondaryReturnTemp", "Secondary Return Temperature", "Temperature", "Cel", "LiquidInlet",
                       field("return_c")),
            SensorSpec("SecondaryDeltaTemp", "Secondary Delta Temperature", "Temperature", "Cel", "Chassis",
                       delta("return_c", "supply_c")),
            SensorSpec("SecondarySupplyPressure", "Secondary Supply Pressure", "PressurekPa", "kPa", "Chassis",
                       field("supply_kpa")),
            SensorSpec("SecondaryReturnPressure", "Secondary Return Pressure", "PressurekPa", "kPa", "Chassis",
                       field("return_kpa")),
            SensorSpec("SecondaryDeltaPressure", "Secondary Delta Pressure", "PressurekPa", "kPa", "Chassis",
                       field("delta_kpa")),
            SensorSpec("SecondaryHeatLoad", "Secondary Heat Load", "Heat", "kW", "Chassis", field("heat_w", 1e-3)),
            SensorSpec("ReservoirLevel", "Reservoir Fluid Level", "Percent", "%", "Chassis", self._level,
                       self._level_health),
        ]  # fmt: skip
        for i, name in enumerate(self._pump_names()):
            speed = SensorSpec(
                f"{name}Speed", f"{name} Speed", "Percent", "%", "Pump",
                lambda i=i: self._r().pumps[i].speed_percent, lambda i=i: self._pump_health(i),
            )  # fmt: skip
            specs.append(speed)
        return specs

    def _level(self) -> float:
        r = self._r()
        return 100.0 * r.reservoir_l / r.reservoir_capacity_l

    def _level_health(self) -> str:
        level = self._level()
        return "OK" if level >= 50 else "Warning" if level >= 20 else "Critical"

    def _flow_health(self) -> str:
        r = self._r()
        return "OK" if sum(p.status == "OK" for p in r.pumps) >= r.pumps_needed and r.flow_lpm > 0 else "Critical"

    def _pump_health(self, i: int) -> str:
        return "Critical" if self._r().pumps[i].status == "Failed" else "OK"

    def health(self) -> str:
        r = self._r()
        healths = [self._level_health(), self._flow_health()]
        healths += ["Critical" if state != "OK" else "OK" for name, _, state in r.leaks if name in self._detectors()]
        healths += ["Warning" if p.status == "Failed" else "OK" for p in r.pumps]
        return worst(healths)

    # ---- routes -------------------------------------------------------------------------------
    def equipment_routes(self) -> dict[str, Route]:
        pumps, detectors = self._pump_names(), self._detectors()
        r: dict[str, Route] = {
            TE: Route(self.thermal_equipment),
            f"{TE}/CDUs": Route(lambda: collection("CoolingUnitCollection", f"{TE}/CDUs", [CDU])),
            CDU: Route(self.cooling_unit),
            f"{CDU}/Pumps": _members("PumpCollection", f"{CDU}/Pumps", pumps),
            f"{CDU}/Filters": _members("FilterCollection", f"{CDU}/Filters", ["1"]),
            f"{CDU}/Filters/1": Route(self.filter),
            f"{CDU}/Reservoirs": _members("ReservoirCollection", f"{CDU}/Reservoirs", ["1"]),
            f"{CDU}/Reservoirs/1": Route(self.reservoir),
            f"{CDU}/LeakDetection": Route(self.leak_detection),
            f"{self.chassis}/LeakDetectors": _members(
                "LeakDetectorCollection", f"{self.chassis}/LeakDetectors", detectors
            ),
            f"{TE}/CoolingLoops": _members("CoolingLoopCollection", f"{TE}/CoolingLoops", ["Secondary"]),
            LOOP: Route(self.cooling_loop),
        }  # fmt: skip
        for side in ("Primary", "Secondary"):
            path = f"{CDU}/{side}CoolantConnectors"
            r[path] = _members("CoolantConnectorCollection", path, ["1"])
            r[f"{path}/1"] = Route(
                lambda side=side: self.connector(side),
                patch=self._patch_setpoint if side == "Secondary" else None,
            )
        for p in pumps:
            r[f"{CDU}/Pumps/{p}"] = Route(lambda p=p: self.pump(p), patch=lambda body, p=p: self._patch_speed(p, body))
            r[f"{CDU}/Pumps/{p}/Actions/Pump.SetMode"] = Route(post=lambda body, p=p: self._set_mode(p, body))
        for d in detectors:
            r[f"{self.chassis}/LeakDetectors/{d}"] = Route(lambda d=d: self.leak_detector(d))
        return r

    def thermal_equipment(self) -> dict[str, Any]:
        return resource(TE, "ThermalEquipment", Id="ThermalEquipment", Name="Cooling Equipment",
                        Status=status_doc("Enabled", "OK", self.health()), CDUs=ref(f"{TE}/CDUs"),
                        CoolingLoops=ref(f"{TE}/CoolingLoops"))  # fmt: skip

    def cooling_unit(self) -> dict[str, Any]:
        name, vendor, model, serial, firmware = self.identity()
        return resource(
            CDU, "CoolingUnit", Id="1", EquipmentType="CDU", Name=f"{name} coolant distribution unit",
            FirmwareVersion=firmware, Manufacturer=vendor, Model=model, SerialNumber=serial,
            Status=status_doc("Enabled", self.health(), self.health()), Coolant=self.model.cooling.coolant(),
            PrimaryCoolantConnectors=ref(f"{CDU}/PrimaryCoolantConnectors"),
            SecondaryCoolantConnectors=ref(f"{CDU}/SecondaryCoolantConnectors"),
            Pumps=ref(f"{CDU}/Pumps"), Filters=ref(f"{CDU}/Filters"), Reservoirs=ref(f"{CDU}/Reservoirs"),
            LeakDetection=ref(f"{CDU}/LeakDetection"), Links={"Chassis": [ref(self.chassis)]},
            PumpRedundancy=[self._pump_redundancy()],
        )  # fmt: skip

    def _pump_redundancy(self) -> dict[str, Any]:
        """N+M over the pumps: OK with a spare running, Warning with none, Critical below N."""
        r = self._r()
        running = sum(p.status == "OK" for p in r.pumps)
        health = "OK" if running > r.pumps_needed else "Warning" if running == r.pumps_needed else "Critical"
        return {
            "RedundancyType": "NPlusM", "MaxSupportedInGroup": len(r.pumps), "MinNeededInGroup": r.pumps_needed,
            "RedundancyGroup": [ref(f"{CDU}/Pumps/{p.name}") for p in r.pumps], "Status": status_doc("Enabled", health),
        }  # fmt: skip

    def pump(self, name: str) -> dict[str, Any]:
        i = self._pump_names().index(name)
        p = self._r().pumps[i]
        state = {"OK": "Enabled", "Stopped": "Disabled", "Failed": "Enabled"}[p.status]
        return resource(
            f"{CDU}/Pumps/{name}", "Pump", Id=name, Name=f"CDU {name}", PumpType="Liquid",
            Status=status_doc(state, self._pump_health(i)),
            PumpSpeedPercent=self.excerpt(f"{name}Speed"),
            SpeedControlPercent={"SetPoint": p.setpoint_percent, "ControlMode": "Manual",
                                 "AllowableMin": 1, "AllowableMax": 100},
            Actions={"#Pump.SetMode": {"target": f"{CDU}/Pumps/{name}/Actions/Pump.SetMode"}},
        )  # fmt: skip

    def _patch_speed(self, pump: str, body: dict[str, Any]) -> None:
        control = body.get("SpeedControlPercent")
        setpoint = control.get("SetPoint") if isinstance(control, dict) else None
        if set(body) != {"SpeedControlPercent"} or not isinstance(setpoint, int | float) or isinstance(setpoint, bool):
            raise RedfishError(400, "PropertyValueFormatError", "Only SpeedControlPercent.SetPoint (1-100) can be set.")
        assert isinstance(control, dict)
        if not set(control) <= {"SetPoint", "ControlMode"} or control.get("ControlMode", "Manual") != "Manual":
            message = "SpeedControlPercent takes SetPoint and ControlMode Manual."
            raise RedfishError(400, "PropertyValueNotInList", message)
        if not 1 <= setpoint <= 100:
            raise RedfishError(400, "PropertyValueOutOfRange", f"SetPoint {setpoint} is outside 1-100.")
        self.model.cooling.set_pump_speed(self.cdu, pump, float(setpoint))

    def _set_mode(self, pump: str, body: dict[str, Any]) -> None:
        mode = body.get("Mode")
        if mode not in ("Enabled", "Disabled"):
            raise RedfishError(400, "ActionParameterValueNotInList", f"Mode must be Enabled or Disabled, got {mode!r}.")
        self.model.cooling.set_pump(self.cdu, pump, mode == "Enabled")

    def _patch_setpoint(self, body: dict[str, Any]) -> None:
        setpoint = (body.get("SupplyTemperatureControlCelsius") or {}).get("SetPoint")
        if set(body) != {"SupplyTemperatureControlCelsius"} or not isinstance(setpoint, int | float):
            message = "Only SupplyTemperatureControlCelsius.SetPoint can be set."
            raise RedfishError(400, "PropertyValueFormatError", message)
        try:
            self.model.cooling.set_setpoint(self.cdu, float(setpoint))
        except ValueError as exc:
            raise RedfishError(400, "PropertyValueOutOfRange", str(exc)) from None

    def filter(self) -> dict[str, Any]:
        return resource(f"{CDU}/Filters/1", "Filter", Id="1", Name="CDU Secondary Filter", ServiceHours=2180,
                        RatedServiceHours=10000, Replaceable=True, HotPluggable=False, Status=status_doc())  # fmt: skip

    def reservoir(self) -> dict[str, Any]:
        r = self._r()
        return resource(
            f"{CDU}/Reservoirs/1", "Reservoir", Id="1", Name="CDU Reservoir", ReservoirType="Inline",
            CapacityLiters=r.reservoir_capacity_l, Status=status_doc("Enabled", self._level_health()),
            FluidLevelStatus=self._level_health(), FluidLevelPercent=self.excerpt("ReservoirLevel"),
        )  # fmt: skip

    def leak_detection(self) -> dict[str, Any]:
        states = {name: state for name, _, state in self._r().leaks}
        detectors = [{"DataSourceUri": f"{self.chassis}/LeakDetectors/{d}", "DeviceName": d,
                      "DetectorState": states[d]} for d in self._detectors()]  # fmt: skip
        health = worst([x["DetectorState"] for x in detectors])
        return resource(
            f"{CDU}/LeakDetection", "LeakDetection", Id="LeakDetection", Name="Leak Detection Systems",
            Status=status_doc("Enabled", health),
            LeakDetectorGroups=[
                {"GroupName": "Detectors in the CDU", "Status": {"Health": health}, "Detectors": detectors}
            ],
        )  # fmt: skip

    def leak_detector(self, name: str) -> dict[str, Any]:
        state = next(s for n, _, s in self._r().leaks if n == name)
        kind = _DETECTOR_TYPE.get(name.rsplit("-", 1)[-1], "Moisture")
        return resource(f"{self.chassis}/LeakDetectors/{name}", "LeakDetector", Id=name, Name=name,
                        LeakDetectorType=kind, DetectorState=state, PhysicalContext="Chassis",
                        Status=status_doc("Enabled", state))  # fmt: skip

    def connector(self, side: str) -> dict[str, Any]:
        path = f"{CDU}/{side}CoolantConnectors/1"
        p = side  # the sensors of this side are named {side}Flow, {side}SupplyTemp ...
        doc = resource(
            path, "CoolantConnector", Id="1", CoolantConnectorType="Pair", Status=status_doc(),
            Name="Facility water supply" if side == "Primary" else "Rack coolant loop",
            FlowLitersPerMinute=self.excerpt(f"{p}Flow"), SupplyTemperatureCelsius=self.excerpt(f"{p}SupplyTemp"),
            ReturnTemperatureCelsius=self.excerpt(f"{p}ReturnTemp"),
            DeltaTemperatureCelsius=self.excerpt(f"{p}DeltaTemp"), HeatRemovedkW=self.excerpt(f"{p}HeatLoad"),
        )  # fmt: skip
        if side == "Secondary":
            r = self._r()
            doc.update(
                Coolant=self.model.cooling.coolant(), SupplyPressurekPa=self.excerpt("SecondarySupplyPressure"),
                ReturnPressurekPa=self.excerpt("SecondaryReturnPressure"),
                DeltaPressurekPa=self.excerpt("SecondaryDeltaPressure"),
                SupplyTemperatureControlCelsius={"SetPoint": r.setpoint_c, "AllowableMin": 5, "AllowableMax": 60,
                                                 "ControlMode": "Automatic"},
                Status=status_doc("Enabled", self._flow_health()),
            )  # fmt: skip
        else:
            doc["Coolant"] = {"CoolantType": "Water"}
        return doc

    def cooling_loop(self) -> dict[str, Any]:
        level = self._level_health()
        return resource(
            LOOP, "CoolingLoop", Id="Secondary", Name="Rack secondary cooling loop", CoolingLoopType="TCS",
            Status=status_doc("Enabled", worst([level, self._flow_health()])), Coolant=self.model.cooling.coolant(),
            CoolantLevelStatus=level, CoolantLevelPercent=self.excerpt("ReservoirLevel"),
            SupplyEquipmentNames=[self.cdu], ConsumingEquipmentNames=self.model.cooling.liquid_nodes(),
            Links={"Chassis": ref(self.chassis)},
        )  # fmt: skip


def _members(kind: str, path: str, ids: list[str]) -> Route:
    """A collection of ``path/{id}`` for each id."""
    return Route(lambda: collection(kind, path, [f"{path}/{i}" for i in ids]))


def start_cdu_redfish(
    model: RackModel, cdu: str, *, host: str = "127.0.0.1", username: str, password: str, max_sessions: int = 8,
    epoch: datetime = SIM_EPOCH,
) -> RedfishService:  # fmt: skip
    """Start the Redfish service of CDU ``cdu`` (``ThermalEquipment/CDUs/1``) on an OS-chosen port."""
    if cdu not in model.cooling.cdus():
        raise ValueError(f"no CDU {cdu!r} in the model (have {model.cooling.cdus() or 'none'})")
    return start_equipment_redfish(model, cdu, CduTree, host=host, username=username, password=password,
                                   max_sessions=max_sessions, epoch=epoch)  # fmt: skip
