"""The DMTF shapes the simulated BMC's Redfish documents follow: schema versions, URIs, annotations.

Why a module of its own: every resource builder, the HTTP handler and the ``$metadata`` document
must agree on the same schema versions and the same URIs, so they are kept in one table here
(data, not logic). Versions come from the CSDL in DMTF's Redfish-Publications (csdl/), the
newest in DMTF release 2025.4; the layout follows the public-rackmount1 mockup (a node BMC),
public-cooling-unit (a CDU) and public-power-shelf (a power shelf), so a driver cannot tell these
services from real ones except by address.

Also here: the few helpers that shape any document the same way (``@odata.type`` from the
table, a resource's common annotations, references, the Status object, collections) and the
Redfish error answer (``RedfishError`` raised by a builder for bad input, ``error_body`` the
document sent).
"""

from __future__ import annotations

import re
from typing import Any

SYSTEM_ID = "1"
CHASSIS_ID = "1"
MANAGER_ID = "bmc"
SEL_ID = "SEL"
MESSAGE_PREFIX = "Base.1.19.0"  # the Base message registry the error message ids come from

# URIs of the resources one BMC serves.
V1 = "/redfish/v1"
SESSIONS = f"{V1}/SessionService/Sessions"
SYSTEM = f"{V1}/Systems/{SYSTEM_ID}"
CHASSIS = f"{V1}/Chassis/{CHASSIS_ID}"
MANAGER = f"{V1}/Managers/{MANAGER_ID}"
RESET_TARGET = f"{SYSTEM}/Actions/ComputerSystem.Reset"
SEL = f"{SYSTEM}/LogServices/{SEL_ID}"
SEL_ENTRIES = f"{SEL}/Entries"
FIRMWARE = f"{V1}/UpdateService/FirmwareInventory"
SENSORS = f"{CHASSIS}/Sensors"
POWER_SUPPLIES = f"{CHASSIS}/PowerSubsystem/PowerSupplies"
FANS = f"{CHASSIS}/ThermalSubsystem/Fans"

# Resource schemas served, with the version of each (the newest in DMTF release 2025.4). The
# @odata.type of every payload and the $metadata document are both built from this table.
SCHEMA_VERSIONS: dict[str, str] = {
    "ServiceRoot": "v1_20_0",
    "SessionService": "v1_2_0",
    "Session": "v1_8_0",
    "ComputerSystem": "v1_27_0",
    "Chassis": "v1_28_0",
    "Power": "v1_7_3",
    "Thermal": "v1_7_3",
    "PowerSubsystem": "v1_1_3",
    "PowerSupply": "v1_6_0",
    "PowerSupplyMetrics": "v1_2_0",
    "ThermalSubsystem": "v1_5_0",
    "Fan": "v1_6_0",
    "ThermalMetrics": "v1_3_2",
    "EnvironmentMetrics": "v1_5_0",
    "Sensor": "v1_12_0",
    "LogService": "v1_9_0",
    "LogEntry": "v1_21_0",
    "UpdateService": "v1_17_0",
    "SoftwareInventory": "v1_13_0",
    "Manager": "v1_24_0",
    "Message": "v1_3_0",
    # liquid cooling (CDU, node coolant connectors) and power shelves
    "ThermalEquipment": "v1_2_0",
    "CoolingUnit": "v1_5_0",
    "CoolingLoop": "v1_1_0",
    "CoolantConnector": "v1_3_0",
    "Pump": "v1_2_0",
    "Filter": "v1_1_0",
    "Reservoir": "v1_0_2",
    "LeakDetection": "v1_2_0",
    "LeakDetector": "v1_6_0",
    "PowerEquipment": "v1_2_3",
    "PowerDistribution": "v1_6_0",
    "Circuit": "v1_9_0",
    "Battery": "v1_5_0",
    "BatteryMetrics": "v1_1_0",
}
COLLECTIONS = (
    "ComputerSystemCollection",
    "ChassisCollection",
    "ManagerCollection",
    "SessionCollection",
    "PowerSupplyCollection",
    "FanCollection",
    "SensorCollection",
    "LogServiceCollection",
    "LogEntryCollection",
    "SoftwareInventoryCollection",
    "CoolingUnitCollection",
    "CoolingLoopCollection",
    "CoolantConnectorCollection",
    "PumpCollection",
    "FilterCollection",
    "ReservoirCollection",
    "LeakDetectorCollection",
    "PowerDistributionCollection",
    "CircuitCollection",
    "BatteryCollection",
)
PROTOCOL_FEATURES: dict[str, Any] = {
    "ExpandQuery": {"ExpandAll": True, "Levels": True, "MaxLevels": 1, "Links": True, "NoLinks": True},
    "SelectQuery": False,
    "FilterQuery": False,
    "OnlyMemberQuery": False,
    "ExcerptQuery": False,
}


def odata_type(schema: str, entity: str | None = None) -> str:
    """The @odata.type of a schema's resource, e.g. '#Chassis.v1_28_0.Chassis'."""
    if schema in SCHEMA_VERSIONS:
        return f"#{schema}.{SCHEMA_VERSIONS[schema]}.{entity or schema}"
    return f"#{schema}.{entity or schema}"


def resource(path: str, schema: str, **props: Any) -> dict[str, Any]:
    """A resource document: its @odata annotations, then ``props``."""
    return {
        "@odata.id": path,
        "@odata.type": odata_type(schema),
        "@odata.context": f"{V1}/$metadata#{schema}.{schema}",
        **props,
    }


def ref(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def status_doc(state: str = "Enabled", health: str = "OK", rollup: str | None = None) -> dict[str, str]:
    out = {"State": state, "Health": health}
    if rollup is not None:
        out["HealthRollup"] = rollup
    return out


def collection(kind: str, path: str, members: list[str]) -> dict[str, Any]:
    """A resource collection of ``kind`` (e.g. 'ChassisCollection') referring to ``members``."""
    name = re.sub(r"(?<!^)(?=[A-Z])", " ", kind)
    return {
        "@odata.id": path,
        "@odata.type": odata_type(kind),
        "@odata.context": f"{V1}/$metadata#{kind}.{kind}",
        "Name": name,
        "Members@odata.count": len(members),
        "Members": [ref(m) for m in members],
    }


def metadata_document() -> str:
    """The service's $metadata: a Reference per schema used, as DMTF's mockups serve it."""
    root_version = SCHEMA_VERSIONS["ServiceRoot"]
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">',
    ]
    for schema in sorted([*SCHEMA_VERSIONS, *COLLECTIONS]):
        lines.append(f'  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/{schema}_v1.xml">')
        lines.append(f'    <edmx:Include Namespace="{schema}"/>')
        if schema in SCHEMA_VERSIONS:
            lines.append(f'    <edmx:Include Namespace="{schema}.{SCHEMA_VERSIONS[schema]}"/>')
        lines.append("  </edmx:Reference>")
    lines += [
        '  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/RedfishExtensions_v1.xml">',
        '    <edmx:Include Namespace="RedfishExtensions.v1_0_0" Alias="Redfish"/>',
        "  </edmx:Reference>",
        "  <edmx:DataServices>",
        '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">',
        f'      <EntityContainer Name="Service" Extends="ServiceRoot.{root_version}.ServiceContainer"/>',
        "    </Schema>",
        "  </edmx:DataServices>",
        "</edmx:Edmx>",
    ]
    return "\n".join(lines) + "\n"


class RedfishError(Exception):
    """Answer the request with a Redfish error (Base registry message id)."""

    def __init__(self, status: int, message_id: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message_id = message_id
        self.message = message
        self.headers = headers or {}


def error_body(message_id: str, message: str) -> dict[str, Any]:
    """A Redfish error response (Base registry message ids)."""
    full_id = f"{MESSAGE_PREFIX}.{message_id}"
    return {
        "error": {
            "code": full_id,
            "message": message,
            "@Message.ExtendedInfo": [
                {
                    "@odata.type": odata_type("Message"),
                    "MessageId": full_id,
                    "Message": message,
                    "Severity": "Critical",
                    "Resolution": "See the message.",
                }
            ],
        }
    }
