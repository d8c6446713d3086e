"""The Redfish resources about the service itself: service root, sessions, manager, firmware.

Why a module of its own: these resources describe the BMC (its identity, its sessions, its own
manager resource, the firmware inventory it reports for itself and its node) rather than the
node's hardware, and the HTTP handler needs two of them before any login (the service root is
served unauthenticated; a new session's document is the answer to the login POST).

What is served: ``/redfish/v1`` (ProtocolFeaturesSupported: ``$expand`` one level),
``SessionService`` and ``Sessions/{id}``, ``Managers/bmc``, ``UpdateService`` and
``FirmwareInventory/{id}`` (the BMC's and the node's firmware; Health is Warning where the
running version differs from the site's baseline).
"""

from __future__ import annotations

from typing import Any

from rackval.sim.redfish_readings import NodeReadings, stable_uuid
from rackval.sim.redfish_schema import (
    CHASSIS,
    FIRMWARE,
    MANAGER,
    MANAGER_ID,
    POWER_SUPPLIES,
    PROTOCOL_FEATURES,
    SESSIONS,
    SYSTEM,
    V1,
    collection,
    ref,
    resource,
    status_doc,
)
from rackval.sim.redfish_state import BmcState, Route, Session


def session_doc(session: Session) -> dict[str, Any]:
    return resource(
        f"{SESSIONS}/{session.id}",
        "Session",
        Id=session.id,
        Name="User Session",
        UserName=session.username,
        SessionType="Redfish",
    )


def session_routes(state: BmcState) -> dict[str, Route]:
    """The SessionService and its Sessions collection (shared by every simulated Redfish service)."""

    def sessions() -> dict[str, Any]:
        with state.lock:
            ids = sorted((s.id for s in state.sessions.values()), key=int)
        return collection("SessionCollection", SESSIONS, [f"{SESSIONS}/{i}" for i in ids])

    def session_service() -> dict[str, Any]:
        return resource(
            f"{V1}/SessionService",
            "SessionService",
            Id="SessionService",
            Name="Session Service",
            Status=status_doc(),
            ServiceEnabled=True,
            SessionTimeout=1800,
            Sessions=ref(SESSIONS),
        )

    return {f"{V1}/SessionService": Route(session_service), SESSIONS: Route(sessions)}


def session_route(state: BmcState, path: str) -> Route | None:
    """The route of an open session's URI (sessions come and go: not in the static table)."""
    with state.lock:
        session = next((x for x in state.sessions.values() if f"{SESSIONS}/{x.id}" == path), None)
    return None if session is None else Route(lambda: session_doc(session))


class ServiceResources:
    """Builds the service root, session, manager and firmware documents of one BMC."""

    def __init__(self, state: BmcState, readings: NodeReadings) -> None:
        self.state = state
        self.model = state.model
        self.readings = readings
        self.firmware_ids = list(readings.firmware())

    def routes(self) -> dict[str, Route]:
        r = {
            V1: Route(self.service_root),
            **session_routes(self.state),
            f"{V1}/Managers": Route(lambda: collection("ManagerCollection", f"{V1}/Managers", [MANAGER])),
            MANAGER: Route(self.manager),
            f"{V1}/UpdateService": Route(self.update_service),
            FIRMWARE: Route(
                lambda: collection(
                    "SoftwareInventoryCollection", FIRMWARE, [f"{FIRMWARE}/{c}" for c in self.firmware_ids]
                )
            ),
        }
        for component in self.firmware_ids:
            r[f"{FIRMWARE}/{component}"] = Route(lambda component=component: self.software_inventory(component))
        return r

    def session_route(self, path: str) -> Route | None:
        return session_route(self.state, path)

    def service_root(self) -> dict[str, Any]:
        n = self.model.nodes[self.state.node]
        return {
            **resource(
                "/redfish/v1/",
                "ServiceRoot",
                Id="RootService",
                Name="Root Service",
                RedfishVersion="1.15.0",
                UUID=stable_uuid(n.bmc_info.serial),
                Product=f"Simulated BMC for {self.state.node}",
                Vendor=n.bmc_info.vendor,
                ProtocolFeaturesSupported=PROTOCOL_FEATURES,
                Systems=ref(f"{V1}/Systems"),
                Chassis=ref(f"{V1}/Chassis"),
                Managers=ref(f"{V1}/Managers"),
                SessionService=ref(f"{V1}/SessionService"),
                UpdateService=ref(f"{V1}/UpdateService"),
                Links={"Sessions": ref(SESSIONS)},
            )
        }

    def manager(self) -> dict[str, Any]:
        n = self.model.nodes[self.state.node]
        info = n.bmc_info
        return resource(
            MANAGER,
            "Manager",
            Id=MANAGER_ID,
            Name="Manager",
            ManagerType="BMC",
            Manufacturer=info.vendor,
            Model=info.model,
            SerialNumber=info.serial,
            UUID=stable_uuid(info.serial),
            FirmwareVersion=self.model.firmware(self.readings.bmc).get("BMC", info.firmware),
            DateTime=self.state.iso(self.model.now()),
            DateTimeLocalOffset="+00:00",
            PowerState="On",
            Status=status_doc(),
            Links={
                "ManagerForServers": [ref(SYSTEM)],
                "ManagerForChassis": [ref(CHASSIS)],
                "ManagerInChassis": ref(CHASSIS),
            },
        )

    def update_service(self) -> dict[str, Any]:
        return resource(
            f"{V1}/UpdateService",
            "UpdateService",
            Id="UpdateService",
            Name="Update Service",
            ServiceEnabled=True,
            Status=status_doc(),
            FirmwareInventory=ref(FIRMWARE),
        )

    def software_inventory(self, component: str) -> dict[str, Any]:
        versions = self.readings.firmware()
        bmc, node = self.readings.bmc, self.state.node
        baseline = {**self.model.baseline_firmware(bmc), **self.model.baseline_firmware(node)}
        related = {"BMC": MANAGER, "CPLD": CHASSIS}.get(component, SYSTEM)
        if component in self.readings.psus:
            related = f"{POWER_SUPPLIES}/{component}"
        return resource(
            f"{FIRMWARE}/{component}",
            "SoftwareInventory",
            Id=component,
            Name=component,
            Version=versions[component],
            Updateable=False,
            # Health says whether the running image is the one the site's baseline expects.
            Status=status_doc("Enabled", "OK" if versions[component] == baseline.get(component) else "Warning"),
            RelatedItem=[ref(related)],
        )
