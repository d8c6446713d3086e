"""Simulated Redfish services of rack equipment that is not a node: a CDU and a power shelf.

Why a module of its own: a CDU's or a power shelf's controller speaks the same Redfish as a node's
BMC (sessions, ``$expand``, ETags, protocol faults: ``redfish_http``, served by
``redfish_server.RedfishService``) but its tree is different: ``ThermalEquipment`` or
``PowerEquipment`` instead of Systems, one chassis whose ``Sensors`` the equipment's resources link
to through ``DataSourceUri``. ``EquipmentTree`` is that common part (service root, sessions, the
chassis and its sensors, ``$expand``); ``redfish_cdu.CduTree`` and ``redfish_shelf.ShelfTree`` add
their equipment (and their ``start_*_redfish``, through ``start_equipment_redfish``), reading the
shared ``RackModel`` at request time.

A sensor is declared once, as data (``SensorSpec``: id, name, ReadingType, unit, context and the
function reading it), and serves both the ``Sensors/{id}`` resource and the excerpt
(``{"Reading", "DataSourceUri"}``) the equipment's resources embed, so the two always agree.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rackval.sim.model import RackModel
from rackval.sim.redfish_readings import stable_uuid
from rackval.sim.redfish_schema import PROTOCOL_FEATURES, SESSIONS, V1, collection, ref, resource, status_doc
from rackval.sim.redfish_server import RedfishService
from rackval.sim.redfish_service import session_route, session_routes
from rackval.sim.redfish_state import BmcState, Route
from rackval.sim.redfish_tree import expand


@dataclass(frozen=True)
class SensorSpec:
    """One sensor of the equipment's chassis: what it is and how to read it (None: no reading)."""

    id: str
    name: str
    reading_type: str  # Sensor.ReadingType
    units: str  # UCUM, as DMTF's mockups write them
    context: str  # PhysicalContext
    read: Callable[[], float | None]
    health: Callable[[], str] = lambda: "OK"


class EquipmentTree:
    """The common part of a CDU's or power shelf's tree; subclasses add their equipment's routes."""

    singletons: tuple[str, ...] = ("Chassis", "SessionService")
    chassis_id = "Equipment"
    chassis_type = "RackMount"

    def __init__(self, state: BmcState) -> None:
        self.state = state
        self.model: RackModel = state.model
        self.chassis = f"{V1}/Chassis/{self.chassis_id}"
        self.sensors: dict[str, SensorSpec] = {s.id: s for s in self.sensor_specs()}
        self.routes: dict[str, Route] = {
            f"{V1}": Route(self.service_root),
            **session_routes(state),
            f"{V1}/Chassis": Route(lambda: collection("ChassisCollection", f"{V1}/Chassis", [self.chassis])),
            self.chassis: Route(self.chassis_doc),
            f"{self.chassis}/Sensors": Route(self.sensor_collection),
            **{self.sensor_uri(s): Route(lambda s=s: self.sensor_doc(s)) for s in self.sensors},
            **self.equipment_routes(),
        }

    # ---- what a subclass says -----------------------------------------------------------------
    def identity(self) -> tuple[str, str, str, str, str]:
        """(name, vendor, model, serial, firmware) of the equipment."""
        raise NotImplementedError

    def sensor_specs(self) -> list[SensorSpec]:
        raise NotImplementedError

    def equipment_routes(self) -> dict[str, Route]:
        raise NotImplementedError

    def root_links(self) -> dict[str, Any]:
        """The service root's link to the equipment (ThermalEquipment or PowerEquipment)."""
        raise NotImplementedError

    def health(self) -> str:
        return "OK"

    # ---- ServiceTree --------------------------------------------------------------------------
    def power_state(self) -> str:
        return "Ready"  # the controller runs from its own supply

    def route(self, path: str) -> Route | None:
        found = self.routes.get(path)
        if found is None and path.startswith(SESSIONS + "/"):
            return session_route(self.state, path)
        return found

    def expand(self, doc: dict[str, Any], mode: str) -> dict[str, Any]:
        return expand(doc, mode, self.route)

    def service_root(self) -> dict[str, Any]:
        name, vendor, model, serial, _ = self.identity()
        return resource(
            "/redfish/v1/",
            "ServiceRoot",
            Id="RootService",
            Name="Root Service",
            RedfishVersion="1.15.0",
            UUID=stable_uuid(serial),
            Product=f"Simulated {model} controller for {name}",
            Vendor=vendor,
            ProtocolFeaturesSupported=PROTOCOL_FEATURES,
            Chassis=ref(f"{V1}/Chassis"),
            SessionService=ref(f"{V1}/SessionService"),
            Links={"Sessions": ref(SESSIONS)},
            **self.root_links(),
        )

    def chassis_doc(self) -> dict[str, Any]:
        name, vendor, model, serial, _ = self.identity()
        return resource(
            self.chassis,
            "Chassis",
            Id=self.chassis_id,
            Name=f"{name} chassis",
            ChassisType=self.chassis_type,
            Manufacturer=vendor,
            Model=model,
            SerialNumber=serial,
            UUID=stable_uuid(f"{serial}/chassis"),
            Status=status_doc("Enabled", self.health()),
            Sensors=ref(f"{self.chassis}/Sensors"),
            **self.chassis_extra(),
        )

    def chassis_extra(self) -> dict[str, Any]:
        return {}

    # ---- sensors ------------------------------------------------------------------------------
    def sensor_collection(self) -> dict[str, Any]:
        return collection("SensorCollection", f"{self.chassis}/Sensors", [self.sensor_uri(s) for s in self.sensors])

    def sensor_uri(self, sensor_id: str) -> str:
        return f"{self.chassis}/Sensors/{sensor_id}"

    def sensor_doc(self, sensor_id: str) -> dict[str, Any]:
        spec = self.sensors[sensor_id]
        value = spec.read()
        return resource(
            self.sensor_uri(sensor_id),
            "Sensor",
            Id=sensor_id,
            Name=spec.name,
            ReadingType=spec.reading_type,
            ReadingUnits=spec.units,
            Reading=None if value is None else round(value, 2),
            PhysicalContext=spec.context,
            Status=status_doc("Enabled", spec.health()),
        )

    def excerpt(self, sensor_id: str) -> dict[str, Any]:
        """The ``{"Reading", "DataSourceUri"}`` object a resource embeds for one of its sensors."""
        value = self.sensors[sensor_id].read()
        return {"Reading": None if value is None else round(value, 2), "DataSourceUri": self.sensor_uri(sensor_id)}


def start_equipment_redfish(
    model: RackModel, device: str, tree_class: type[EquipmentTree], *, host: str, username: str, password: str,
    max_sessions: int, epoch: datetime,
) -> RedfishService:  # fmt: skip
    """Start the Redfish service of ``device`` with ``tree_class``'s tree, on an OS-chosen port."""
    if max_sessions < 1:
        raise ValueError("max_sessions must be at least 1")
    if epoch.tzinfo is None:
        raise ValueError("epoch must be timezone-aware")
    state = BmcState(
        model, device, device, username, password, max_sessions, epoch, 0, rng=random.Random(f"redfish/{device}")
    )
    return RedfishService(state, tree_class(state), host, f"redfish-{device}")
