"""A simulated node BMC speaking Redfish over HTTP on 127.0.0.1, reading the shared RackModel.

Payloads follow the DMTF schemas (versions from the CSDL in DMTF's CSDL (Redfish-Publications, csdl/)) and the
shape of the public-rackmount1 mockup, so the driver cannot tell this BMC from a real one except
by address; the DMTF Redfish Service Validator checks the tree (tests/test_redfish_service_validator.py).

What it serves (all values read from the model at request time, so physics shows through):

- ``/redfish/v1`` (+ ``$metadata`` and the OData service document, unauthenticated), sessions.
- ``Systems/1``: PowerState from the model's host sequencing (Off / PoweringOn / On), Reset
  (answers 204 at once; the state follows the model's timeline), Boot override (PATCH), processor
  and memory summaries, ``LogServices/SEL`` with its entries and ClearLog.
- ``Chassis/1``: legacy ``Power`` (PowerControl with a PATCH-able PowerLimit, PowerSupplies) and
  ``Thermal``; ``PowerSubsystem/PowerSupplies/{id}`` (+ ``Metrics``), ``ThermalSubsystem/Fans/{id}``
  and ``ThermalMetrics``; ``EnvironmentMetrics`` (PATCH-able PowerLimitWatts); ``Sensors/{id}``.
- ``UpdateService/FirmwareInventory/{id}`` (the node's and the BMC's firmware), ``Managers/bmc``.
- ``$expand`` (``*``, ``.``, ``~``; one level), as advertised in ProtocolFeaturesSupported.

Like a real BMC it enforces authentication (session token or basic auth), caps the number of open
sessions (503 when exhausted), keeps connections alive (with Nagle's algorithm disabled, which
otherwise costs ~40 ms per keep-alive request), and goes quiet when its node loses all input power
(503 while it boots again). Protocol faults injected on the BMC's device name (``bmc-<node>``) act
per request: ``device_silent``, ``device_slow``, ``malformed_reply``, ``auth_failure``,
``session_exhaustion``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import select
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from rackval.sim.model import RackModel, SelEntry, psu_efficiency

SYSTEM_ID = "1"
CHASSIS_ID = "1"
MANAGER_ID = "bmc"
SEL_ID = "SEL"
RESET_ALLOWED = ("On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "ForceOn")
BOOT_TARGETS = ("None", "Pxe", "Hdd", "Cd", "Usb", "BiosSetup", "UefiShell")
LIMIT_EXCEPTIONS = ("NoAction", "HardPowerOff", "LogEventOnly", "Oem")
CONTROL_MODES = ("Automatic", "Override", "Manual", "Disabled")
# Virtual time 0 of the model, as wall-clock time: SEL Created and DateTime are epoch + virtual
# seconds. Fixed (not "now") so that every BMC of a simulated rack and every run agree.
SIM_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SILENT_HOLD_S = 30.0  # a silent BMC holds a request this long at most (bounds handler threads)
_MAX_REQUEST_BODY = 64 * 1024
_MESSAGE_PREFIX = "Base.1.19.0"

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
)
PROTOCOL_FEATURES: dict[str, Any] = {
    "ExpandQuery": {"ExpandAll": True, "Levels": True, "MaxLevels": 1, "Links": True, "NoLinks": True},
    "SelectQuery": False,
    "FilterQuery": False,
    "OnlyMemberQuery": False,
    "ExcerptQuery": False,
}
_EXPAND = re.compile(r"^([.*~])(?:\(\$levels=(\d+)\))?$")
_NOT_SUBORDINATE = frozenset({"Links", "RelatedItem", "RedundancyGroup"})  # skipped by $expand=.


def _type(schema: str, entity: str | None = None) -> str:
    """The @odata.type of a schema's resource, e.g. '#Chassis.v1_28_0.Chassis'."""
    if schema in SCHEMA_VERSIONS:
        return f"#{schema}.{SCHEMA_VERSIONS[schema]}.{entity or schema}"
    return f"#{schema}.{entity or schema}"


def _resource(path: str, schema: str, **props: Any) -> dict[str, Any]:
    return {
        "@odata.id": path,
        "@odata.type": _type(schema),
        "@odata.context": f"{V1}/$metadata#{schema}.{schema}",
        **props,
    }


def _ref(path: str) -> dict[str, str]:
    return {"@odata.id": path}


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


class _HttpError(Exception):
    """Answer the request with a Redfish error (Base registry message id)."""

    def __init__(self, status: int, message_id: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message_id = message_id
        self.message = message
        self.headers = headers or {}


def _error_body(message_id: str, message: str) -> dict[str, Any]:
    """A Redfish error response (Base registry message ids)."""
    full_id = f"{_MESSAGE_PREFIX}.{message_id}"
    return {
        "error": {
            "code": full_id,
            "message": message,
            "@Message.ExtendedInfo": [
                {
                    "@odata.type": _type("Message"),
                    "MessageId": full_id,
                    "Message": message,
                    "Severity": "Critical",
                    "Resolution": "See the message.",
                }
            ],
        }
    }


def _status(state: str = "Enabled", health: str = "OK", rollup: str | None = None) -> dict[str, str]:
    out = {"State": state, "Health": health}
    if rollup is not None:
        out["HealthRollup"] = rollup
    return out


_HEALTH_ORDER = {"OK": 0, "Warning": 1, "Critical": 2}


def _worst(healths: list[str]) -> str:
    return max(healths, key=lambda h: _HEALTH_ORDER[h], default="OK")


def _threshold_health(value: float, caution: float, critical: float) -> str:
    if value >= critical:
        return "Critical"
    return "Warning" if value >= caution else "OK"


def _psu_status(status: str) -> dict[str, str]:
    """Model PSU status -> Redfish Status: no input is offline, a failed unit is enabled but critical."""
    if status == "OK":
        return _status()
    if status == "NoInput":
        return _status("UnavailableOffline", "Critical")
    return _status("Enabled", "Critical")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class _Session:
    id: str
    token: str
    username: str


@dataclass
class _State:
    """What the BMC remembers between requests; every handler thread shares it."""

    model: RackModel
    node: str
    device: str  # the BMC's device name: protocol faults are injected on it
    username: str
    password: str
    max_sessions: int
    epoch: datetime
    correction_ms: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: dict[str, _Session] = field(default_factory=dict)  # by token
    next_session: int = 1
    counts: Counter[str] = field(default_factory=Counter)
    limit_exception: str = "LogEventOnly"
    last_setpoint: float | None = None
    boot: dict[str, str] = field(
        default_factory=lambda: {
            "BootSourceOverrideEnabled": "Disabled",
            "BootSourceOverrideTarget": "None",
            "BootSourceOverrideMode": "UEFI",
        }
    )
    stopping: threading.Event = field(default_factory=threading.Event)
    rng: random.Random = field(default_factory=random.Random)


@dataclass(frozen=True)
class _Route:
    """What a URI answers: GET builds the resource; PATCH applies a body; POST runs an action."""

    get: Callable[[], dict[str, Any]] | None = None
    patch: Callable[[dict[str, Any]], None] | None = None
    post: Callable[[dict[str, Any]], None] | None = None

    @property
    def allow(self) -> str:
        methods = ["GET", "HEAD"] if self.get else []
        methods += ["PATCH"] if self.patch else []
        methods += ["POST"] if self.post else []
        return ", ".join(methods)


class _Tree:
    """The Redfish resource tree of one BMC: builds payloads from the model and applies changes.

    Knows nothing of HTTP: builders return documents, changes raise ``_HttpError`` for bad input.
    """

    def __init__(self, state: _State) -> None:
        self.state = state
        self.model = state.model
        node = self.model.nodes[state.node]
        self.psus = [p.name for p in node.psus]
        self.gpus = node.gpus
        self.fans = node.fans
        self.bmc = node.bmc
        self.firmware_ids = list(self._firmware())
        self.routes = self._build_routes()

    # ---- routing ----------------------------------------------------------------------------
    def _build_routes(self) -> dict[str, _Route]:
        r: dict[str, _Route] = {
            V1: _Route(self.service_root),
            f"{V1}/SessionService": _Route(self.session_service),
            SESSIONS: _Route(self.sessions),
            f"{V1}/Systems": _Route(lambda: self.collection("ComputerSystemCollection", f"{V1}/Systems", [SYSTEM])),
            SYSTEM: _Route(self.system, patch=self.patch_system),
            RESET_TARGET: _Route(post=self.reset),
            f"{SYSTEM}/LogServices": _Route(
                lambda: self.collection("LogServiceCollection", f"{SYSTEM}/LogServices", [SEL])
            ),
            SEL: _Route(self.sel_service),
            SEL_ENTRIES: _Route(self.sel_entries),
            f"{SEL}/Actions/LogService.ClearLog": _Route(post=self.clear_sel),
            f"{V1}/Chassis": _Route(lambda: self.collection("ChassisCollection", f"{V1}/Chassis", [CHASSIS])),
            CHASSIS: _Route(self.chassis),
            f"{CHASSIS}/Power": _Route(self.power, patch=self.patch_power),
            f"{CHASSIS}/Thermal": _Route(self.thermal),
            f"{CHASSIS}/EnvironmentMetrics": _Route(self.environment_metrics, patch=self.patch_environment),
            f"{CHASSIS}/PowerSubsystem": _Route(self.power_subsystem),
            f"{CHASSIS}/PowerSubsystem/PowerSupplies": _Route(
                lambda: self.collection(
                    "PowerSupplyCollection",
                    f"{CHASSIS}/PowerSubsystem/PowerSupplies",
                    [self._psu_path(p) for p in self.psus],
                )
            ),
            f"{CHASSIS}/ThermalSubsystem": _Route(self.thermal_subsystem),
            f"{CHASSIS}/ThermalSubsystem/Fans": _Route(
                lambda: self.collection(
                    "FanCollection",
                    f"{CHASSIS}/ThermalSubsystem/Fans",
                    [self._fan_path(i) for i in range(1, self.fans + 1)],
                )
            ),
            f"{CHASSIS}/ThermalSubsystem/ThermalMetrics": _Route(self.thermal_metrics),
            SENSORS: _Route(
                lambda: self.collection("SensorCollection", SENSORS, [f"{SENSORS}/{s}" for s in self._sensor_ids()])
            ),
            f"{V1}/Managers": _Route(lambda: self.collection("ManagerCollection", f"{V1}/Managers", [MANAGER])),
            MANAGER: _Route(self.manager),
            f"{V1}/UpdateService": _Route(self.update_service),
            FIRMWARE: _Route(
                lambda: self.collection(
                    "SoftwareInventoryCollection", FIRMWARE, [f"{FIRMWARE}/{c}" for c in self.firmware_ids]
                )
            ),
        }
        for psu in self.psus:
            r[self._psu_path(psu)] = _Route(lambda psu=psu: self.power_supply(psu))
            r[f"{self._psu_path(psu)}/Metrics"] = _Route(lambda psu=psu: self.power_supply_metrics(psu))
        for i in range(1, self.fans + 1):
            r[self._fan_path(i)] = _Route(lambda i=i: self.fan(i))
        for sensor in self._sensor_ids():
            r[f"{SENSORS}/{sensor}"] = _Route(lambda sensor=sensor: self.sensor(sensor))
        for component in self.firmware_ids:
            r[f"{FIRMWARE}/{component}"] = _Route(lambda component=component: self.software_inventory(component))
        return r

    def route(self, path: str) -> _Route | None:
        """The route of a path (without query, trailing slash removed); SEL entries are dynamic."""
        found = self.routes.get(path)
        if found is None and path.startswith(SESSIONS + "/"):
            with self.state.lock:
                session = next((x for x in self.state.sessions.values() if f"{SESSIONS}/{x.id}" == path), None)
            return None if session is None else _Route(lambda: self.session_doc(session))
        if found is None and path.startswith(SEL_ENTRIES + "/"):
            entry_id = path[len(SEL_ENTRIES) + 1 :]
            if entry_id.isdigit() and any(str(e.id) == entry_id for e in self.model.sel(self.state.node)):
                return _Route(lambda: self.sel_entry(int(entry_id)))
        return found

    def expand(self, doc: dict[str, Any], mode: str) -> dict[str, Any]:
        """One level of $expand: references replaced by the resources they point to.

        ``*`` expands every reference, ``.`` those not under Links (subordinate resources), ``~``
        only those under Links.
        """

        def walk(value: Any, in_links: bool) -> Any:
            if isinstance(value, dict):
                oid = value.get("@odata.id")
                if len(value) == 1 and isinstance(oid, str) and "#" not in oid:
                    wanted = mode == "*" or (mode == "." and not in_links) or (mode == "~" and in_links)
                    route = self.route(oid.rstrip("/") or "/") if wanted else None
                    return route.get() if route is not None and route.get is not None else value
                return {k: walk(v, in_links or k in _NOT_SUBORDINATE) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, in_links) for v in value]
            return value

        return walk(doc, False)

    # ---- helpers ----------------------------------------------------------------------------
    def _iso(self, virtual_s: float) -> str:
        moment = self.state.epoch + timedelta(seconds=virtual_s)
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")

    @staticmethod
    def _psu_path(psu: str) -> str:
        return f"{CHASSIS}/PowerSubsystem/PowerSupplies/{psu}"

    @staticmethod
    def _fan_path(i: int) -> str:
        return f"{CHASSIS}/ThermalSubsystem/Fans/Fan{i}"

    def _sensor_ids(self) -> list[str]:
        ids = ["InletTemp", *(f"GPU{i}Temp" for i in range(self.gpus)), "ExhaustTemp", "TotalPower"]
        for psu in self.psus:
            ids += [f"{psu}InputPower", f"{psu}InputVoltage", f"{psu}OutputPower"]
        ids += [f"Fan{i}" for i in range(1, self.fans + 1)]
        return ids

    def _uuid(self, serial: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"rackval-sim/{serial}"))

    def _firmware(self) -> dict[str, str]:
        """BMC firmware first, then the node's components (BIOS, CPLD, NIC, GPUs, PSUs)."""
        return {**self.model.firmware(self.bmc), **self.model.firmware(self.state.node)}

    def _temperature_limits(self) -> dict[str, tuple[float, float]]:
        """(UpperCaution, UpperCritical) per temperature sensor: GPUs from the model's slowdown limits."""
        th = self.model.params.thermal
        limits = {"InletTemp": (35.0, 40.0), "ExhaustTemp": (60.0, 70.0)}
        limits |= {f"GPU{i}Temp": (th.gpu_slowdown_c, th.gpu_hw_slowdown_c) for i in range(self.gpus)}
        return limits

    def _temperatures(self) -> list[tuple[str, str, float, str]]:
        """(sensor id, name, reading C, physical context), inlet first, exhaust last."""
        model, node = self.model, self.state.node
        out = [("InletTemp", "Inlet Temp", model.ambient_c, "Intake")]
        out += [(f"GPU{i}Temp", f"GPU{i} Temp", model.gpu_temperature_c(node, i), "GPU") for i in range(self.gpus)]
        out.append(("ExhaustTemp", "Exhaust Temp", model.node_outlet_temperature_c(node), "Exhaust"))
        return [(sid, name, round(value, 1), ctx) for sid, name, value, ctx in out]

    def _fan_readings(self) -> list[tuple[int, int, float, bool]]:
        """(fan number, RPM, duty percent, failed) for each fan."""
        model, node = self.model, self.state.node
        duty = round(model.fan_speed_percent(node), 1)
        failed = model.nodes[node].failed_fans
        return [(i, model.fan_rpm(node, i), 0.0 if i in failed else duty, i in failed) for i in range(1, self.fans + 1)]

    def _fan_status(self, rpm: int, failed: bool) -> dict[str, str]:
        if failed:
            return _status("Enabled", "Critical")
        return _status() if rpm > 0 else _status("StandbyOffline", "OK")

    def _psu_readings(self, psu: str) -> dict[str, Any]:
        """Status, line voltage, input and output watts of one PSU, through the BMC's meter."""
        model, node = self.model, self.state.node
        n = model.nodes[node]
        p = next(x for x in n.psus if x.name == psu)
        status = model.psu_status(node, psu)
        live = [x.name for x in n.psus if model.psu_status(node, x.name) == "OK"]
        meter = n.bmc_meter
        volts = meter.read(model.pdus[p.pdu].voltage_v) if status != "NoInput" else 0.0
        out_w = model.node_dc_power_w(node) / len(live) if psu in live else 0.0
        in_w = model.psu_input_power_w(node, psu)
        return {
            "status": status,
            "rated_w": p.rated_w,
            "volts": round(volts, 1),
            "input_w": round(meter.read(in_w), 1) if in_w else 0.0,
            "output_w": round(meter.read(out_w), 1) if out_w else 0.0,
        }

    def _limit_range(self) -> tuple[int, int]:
        """(AllowableMin, AllowableMax) of the node power limit, in input watts.

        The cap controller cannot push a busy GPU below ``gpu_min_w``, so the lowest limit it can
        hold is the input power of base + every GPU at that floor; the highest is the PSU rating.
        """
        n = self.model.nodes[self.state.node]
        prm = self.model.params
        dc = n.base_w + n.gpus * prm.power.gpu_min_w
        share = dc / len(n.psus)
        rated = n.psus[0].rated_w
        input_w = len(n.psus) * share / psu_efficiency(share / rated, prm.psu.efficiency_curve)
        return int(math.ceil(input_w / 10.0) * 10), int(sum(p.rated_w for p in n.psus))

    def _health_rollup(self) -> str:
        model, node = self.model, self.state.node
        healths = [_psu_status(model.psu_status(node, p))["Health"] for p in self.psus]
        healths += [self._fan_status(rpm, failed)["Health"] for _, rpm, _, failed in self._fan_readings()]
        limits = self._temperature_limits()
        healths += [_threshold_health(v, *limits[sid]) for sid, _, v, _ in self._temperatures()]
        return _worst(healths)

    # ---- service root, sessions, collections ------------------------------------------------
    @staticmethod
    def collection(kind: str, path: str, members: list[str]) -> dict[str, Any]:
        name = re.sub(r"(?<!^)(?=[A-Z])", " ", kind)
        return {
            "@odata.id": path,
            "@odata.type": _type(kind),
            "@odata.context": f"{V1}/$metadata#{kind}.{kind}",
            "Name": name,
            "Members@odata.count": len(members),
            "Members": [_ref(m) for m in members],
        }

    def service_root(self) -> dict[str, Any]:
        n = self.model.nodes[self.state.node]
        return {
            **_resource(
                "/redfish/v1/",
                "ServiceRoot",
                Id="RootService",
                Name="Root Service",
                RedfishVersion="1.15.0",
                UUID=self._uuid(n.bmc_info.serial),
                Product=f"Simulated BMC for {self.state.node}",
                Vendor=n.bmc_info.vendor,
                ProtocolFeaturesSupported=PROTOCOL_FEATURES,
                Systems=_ref(f"{V1}/Systems"),
                Chassis=_ref(f"{V1}/Chassis"),
                Managers=_ref(f"{V1}/Managers"),
                SessionService=_ref(f"{V1}/SessionService"),
                UpdateService=_ref(f"{V1}/UpdateService"),
                Links={"Sessions": _ref(SESSIONS)},
            )
        }

    def session_service(self) -> dict[str, Any]:
        return _resource(
            f"{V1}/SessionService",
            "SessionService",
            Id="SessionService",
            Name="Session Service",
            Status=_status(),
            ServiceEnabled=True,
            SessionTimeout=1800,
            Sessions=_ref(SESSIONS),
        )

    def sessions(self) -> dict[str, Any]:
        with self.state.lock:
            ids = sorted((s.id for s in self.state.sessions.values()), key=int)
        return self.collection("SessionCollection", SESSIONS, [f"{SESSIONS}/{i}" for i in ids])

    @staticmethod
    def session_doc(session: _Session) -> dict[str, Any]:
        return _resource(
            f"{SESSIONS}/{session.id}",
            "Session",
            Id=session.id,
            Name="User Session",
            UserName=session.username,
            SessionType="Redfish",
        )

    # ---- system -----------------------------------------------------------------------------
    def system(self) -> dict[str, Any]:
        model, node = self.model, self.state.node
        n = model.nodes[node]
        host = model.host_state(node)
        state = {"On": "Enabled", "PoweringOn": "Starting"}.get(host, "StandbyOffline")
        with self.state.lock:
            boot = dict(self.state.boot)
        return _resource(
            SYSTEM,
            "ComputerSystem",
            Id=SYSTEM_ID,
            Name=node,
            SystemType="Physical",
            Manufacturer=n.info.vendor,
            Model=n.info.model,
            SerialNumber=n.info.serial,
            UUID=self._uuid(n.info.serial),
            BiosVersion=model.firmware(node).get("BIOS", n.info.firmware),
            PowerState=host,
            Status=_status(state, "OK", self._health_rollup()),
            Boot={**boot, "BootSourceOverrideTarget@Redfish.AllowableValues": list(BOOT_TARGETS)},
            ProcessorSummary={"Count": 2, "CoreCount": 112, "Model": "Simulated x86-64 CPU"},
            MemorySummary={"TotalSystemMemoryGiB": 2048},
            LogServices=_ref(f"{SYSTEM}/LogServices"),
            Actions={
                "#ComputerSystem.Reset": {
                    "target": RESET_TARGET,
                    "ResetType@Redfish.AllowableValues": list(RESET_ALLOWED),
                }
            },
            Links={"Chassis": [_ref(CHASSIS)], "ManagedBy": [_ref(MANAGER)]},
        )

    def patch_system(self, body: dict[str, Any]) -> None:
        allowed = {
            "BootSourceOverrideEnabled": ("Disabled", "Once", "Continuous"),
            "BootSourceOverrideTarget": BOOT_TARGETS,
            "BootSourceOverrideMode": ("Legacy", "UEFI"),
        }
        for key in body:
            if key != "Boot":
                raise _HttpError(400, "PropertyNotWritable", f"The property {key} is a read only property.")
        boot = body["Boot"]
        if not isinstance(boot, dict):
            raise _HttpError(400, "PropertyValueTypeError", "The value for the property Boot is of a different type.")
        for key, value in boot.items():
            if key not in allowed:
                raise _HttpError(400, "PropertyNotWritable", f"The property Boot/{key} is not writable.")
            if value not in allowed[key]:
                message = f"The value {value!r} for the property Boot/{key} is not an acceptable value."
                raise _HttpError(400, "PropertyValueNotInList", message)
        with self.state.lock:
            self.state.boot.update(boot)

    def reset(self, body: dict[str, Any]) -> None:
        reset_type = body.get("ResetType")
        if reset_type is None:
            raise _HttpError(400, "ActionParameterMissing", "The action requires the parameter ResetType.")
        if reset_type not in RESET_ALLOWED:
            raise _HttpError(
                400,
                "ActionParameterNotSupported",
                f"The parameter ResetType value {reset_type!r} is not supported by this action.",
            )
        model, node = self.model, self.state.node
        if reset_type in ("On", "ForceOn"):
            model.host_power_on(node)
        elif reset_type in ("ForceOff", "GracefulShutdown"):
            model.host_power_off(node)
        else:  # a restart: off, then on again through the model's power-on sequence
            with model.lock:
                model.host_power_off(node)
                model.host_power_on(node)

    # ---- event log ----------------------------------------------------------------------------
    def sel_service(self) -> dict[str, Any]:
        return _resource(
            SEL,
            "LogService",
            Id=SEL_ID,
            Name="System Event Log",
            LogEntryType="SEL",
            OverWritePolicy="NeverOverWrites",
            DateTime=self._iso(self.model.now()),
            DateTimeLocalOffset="+00:00",
            ServiceEnabled=True,
            Status=_status(),
            Entries=_ref(SEL_ENTRIES),
            Actions={"#LogService.ClearLog": {"target": f"{SEL}/Actions/LogService.ClearLog"}},
        )

    def sel_entries(self) -> dict[str, Any]:
        """The entries collection; LogEntryCollection members are auto-expanded (OData.AutoExpand)."""
        entries = self.model.sel(self.state.node)
        doc = self.collection("LogEntryCollection", SEL_ENTRIES, [])
        doc["Name"] = "System Event Log Entries"
        doc["Members@odata.count"] = len(entries)
        doc["Members"] = [self._sel_doc(e) for e in entries]
        return doc

    def sel_entry(self, entry_id: int) -> dict[str, Any]:
        entry = next((e for e in self.model.sel(self.state.node) if e.id == entry_id), None)
        if entry is None:  # cleared between routing and building
            raise _HttpError(
                404, "ResourceMissingAtURI", f"The resource at the URI {SEL_ENTRIES}/{entry_id} was not found."
            )
        return self._sel_doc(entry)

    def _sel_doc(self, entry: SelEntry) -> dict[str, Any]:
        doc = _resource(
            f"{SEL_ENTRIES}/{entry.id}",
            "LogEntry",
            Id=str(entry.id),
            Name=f"SEL Entry {entry.id}",
            EntryType="SEL",
            Severity=entry.severity,
            Created=self._iso(entry.created_s),
            Message=entry.message,
            MessageId=entry.message_id,
        )
        sensor_type = self._sel_sensor_type(entry.message_id, entry.message)
        if sensor_type:
            doc["SensorType"] = sensor_type
        return doc

    @staticmethod
    def _sel_sensor_type(message_id: str, message: str) -> str | None:
        """The IPMI sensor type a SEL record of this kind carries (LogEntry.SensorType)."""
        if "PowerSupply" in message_id:
            return "Power Supply / Converter"
        if "PowerLimit" in message_id:
            return "PowerUnit"
        if message.startswith("Fan"):
            return "Fan"
        if "temperature" in message:
            return "Temperature"
        return None

    def clear_sel(self, body: dict[str, Any]) -> None:
        self.model.clear_sel(self.state.node)

    # ---- chassis ------------------------------------------------------------------------------
    def chassis(self) -> dict[str, Any]:
        model, node = self.model, self.state.node
        n = model.nodes[node]
        return _resource(
            CHASSIS,
            "Chassis",
            Id=CHASSIS_ID,
            Name=f"{node} chassis",
            ChassisType="RackMount",
            Manufacturer=n.info.vendor,
            Model=n.info.model,
            SerialNumber=n.info.serial,
            PowerState=model.host_state(node),
            Status=_status("Enabled", "OK", self._health_rollup()),
            EnvironmentMetrics=_ref(f"{CHASSIS}/EnvironmentMetrics"),
            PowerSubsystem=_ref(f"{CHASSIS}/PowerSubsystem"),
            ThermalSubsystem=_ref(f"{CHASSIS}/ThermalSubsystem"),
            Sensors=_ref(SENSORS),
            Power=_ref(f"{CHASSIS}/Power"),
            **{"Power@Redfish.Deprecated": "Please migrate to use PowerSubsystem."},
            Thermal=_ref(f"{CHASSIS}/Thermal"),
            **{"Thermal@Redfish.Deprecated": "Please migrate to use ThermalSubsystem."},
            Links={
                "ComputerSystems": [_ref(SYSTEM)],
                "ManagedBy": [_ref(MANAGER)],
                "ManagersInChassis": [_ref(MANAGER)],
            },
        )

    def power(self) -> dict[str, Any]:
        model, node = self.model, self.state.node
        n = model.nodes[node]
        cap = model.power_cap(node)
        with self.state.lock:
            correction, exception = self.state.correction_ms, self.state.limit_exception
        supplies = []
        for i, psu in enumerate(self.psus):
            r = self._psu_readings(psu)
            supplies.append(
                {
                    "@odata.id": f"{CHASSIS}/Power#/PowerSupplies/{i}",
                    "MemberId": str(i),
                    "Name": psu,
                    "Status": _psu_status(r["status"]),
                    "PowerSupplyType": "AC",
                    "LineInputVoltageType": "ACWideRange",
                    "LineInputVoltage": r["volts"],
                    "PowerInputWatts": r["input_w"],
                    "LastPowerOutputWatts": r["output_w"],
                    "PowerCapacityWatts": r["rated_w"],
                    "FirmwareVersion": model.firmware(node).get(psu, ""),
                    "RelatedItem": [_ref(CHASSIS)],
                }
            )
        return _resource(
            f"{CHASSIS}/Power",
            "Power",
            Id="Power",
            Name="Power",
            PowerControl=[
                {
                    "@odata.id": f"{CHASSIS}/Power#/PowerControl/0",
                    "MemberId": "0",
                    "Name": "System Input Power",
                    "PowerConsumedWatts": round(model.bmc_reading_power_w(node), 1),
                    "PowerCapacityWatts": sum(p.rated_w for p in n.psus),
                    "PowerLimit": {"LimitInWatts": cap, "LimitException": exception, "CorrectionInMs": correction},
                    "Status": _status(),
                    "RelatedItem": [_ref(SYSTEM), _ref(CHASSIS)],
                }
            ],
            PowerSupplies=supplies,
        )

    def _check_limit(self, watts: Any, where: str) -> float:
        if not _number(watts):
            raise _HttpError(400, "PropertyValueTypeError", f"The value for the property {where} must be a number.")
        low, high = self._limit_range()
        if not low <= watts <= high:
            message = f"The value {watts} for the property {where} is outside the supported range {low}..{high}."
            raise _HttpError(400, "PropertyValueOutOfRange", message)
        return float(watts)

    def patch_power(self, body: dict[str, Any]) -> None:
        """PATCH PowerControl[0].PowerLimit: LimitInWatts (null removes), CorrectionInMs, LimitException."""
        for key in body:
            if key != "PowerControl":
                raise _HttpError(400, "PropertyNotWritable", f"The property {key} is a read only property.")
        controls = body["PowerControl"]
        if not isinstance(controls, list) or len(controls) != 1 or not isinstance(controls[0], dict):
            raise _HttpError(400, "PropertyValueFormatError", "PowerControl must be an array of one object.")
        for key in controls[0]:
            if key != "PowerLimit":
                raise _HttpError(400, "PropertyNotWritable", f"The property PowerControl/0/{key} is not writable.")
        limit = controls[0].get("PowerLimit", {})
        if not isinstance(limit, dict):
            raise _HttpError(400, "PropertyValueTypeError", "PowerLimit must be an object.")
        unknown = set(limit) - {"LimitInWatts", "CorrectionInMs", "LimitException"}
        if unknown:
            raise _HttpError(
                400, "PropertyUnknown", f"The property {sorted(unknown)[0]} is not in the PowerLimit object."
            )
        model, node = self.model, self.state.node
        watts = model.power_cap(node)
        if "LimitInWatts" in limit:
            watts = None if limit["LimitInWatts"] is None else self._check_limit(limit["LimitInWatts"], "LimitInWatts")
        with self.state.lock:
            correction = self.state.correction_ms
        if "CorrectionInMs" in limit:
            value = limit["CorrectionInMs"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _HttpError(400, "PropertyValueTypeError", "CorrectionInMs must be a non-negative integer.")
            correction = value
        exception = limit.get("LimitException")
        if exception is not None and exception not in LIMIT_EXCEPTIONS:
            raise _HttpError(
                400, "PropertyValueNotInList", f"The value {exception!r} for LimitException is not allowed."
            )
        with self.state.lock:
            self.state.correction_ms = correction
            if exception is not None:
                self.state.limit_exception = exception
            if watts is not None:
                self.state.last_setpoint = watts
        if "LimitInWatts" in limit or ("CorrectionInMs" in limit and watts is not None):
            model.set_power_cap(node, watts, correction)

    def thermal(self) -> dict[str, Any]:
        limits = self._temperature_limits()
        temps = []
        for i, (sid, name, value, context) in enumerate(self._temperatures()):
            caution, critical = limits[sid]
            temps.append(
                {
                    "@odata.id": f"{CHASSIS}/Thermal#/Temperatures/{i}",
                    "MemberId": str(i),
                    "Name": name,
                    "ReadingCelsius": value,
                    "UpperThresholdNonCritical": caution,
                    "UpperThresholdCritical": critical,
                    "PhysicalContext": context,
                    "Status": _status("Enabled", _threshold_health(value, caution, critical)),
                }
            )
        fans = [
            {
                "@odata.id": f"{CHASSIS}/Thermal#/Fans/{i - 1}",
                "MemberId": str(i - 1),
                "Name": f"Fan{i}",
                "Reading": rpm,
                "ReadingUnits": "RPM",
                "PhysicalContext": "Backplane",
                "Status": self._fan_status(rpm, failed),
            }
            for i, rpm, _, failed in self._fan_readings()
        ]
        return _resource(f"{CHASSIS}/Thermal", "Thermal", Id="Thermal", Name="Thermal", Temperatures=temps, Fans=fans)

    def power_subsystem(self) -> dict[str, Any]:
        n = self.model.nodes[self.state.node]
        healths = [_psu_status(self.model.psu_status(self.state.node, p))["Health"] for p in self.psus]
        return _resource(
            f"{CHASSIS}/PowerSubsystem",
            "PowerSubsystem",
            Id="PowerSubsystem",
            Name="Power Subsystem",
            CapacityWatts=sum(p.rated_w for p in n.psus),
            PowerSupplies=_ref(f"{CHASSIS}/PowerSubsystem/PowerSupplies"),
            Status=_status("Enabled", "OK", _worst(healths)),
        )

    def power_supply(self, psu: str) -> dict[str, Any]:
        r = self._psu_readings(psu)
        return _resource(
            self._psu_path(psu),
            "PowerSupply",
            Id=psu,
            Name=psu,
            Status=_psu_status(r["status"]),
            LineInputStatus="LossOfInput" if r["status"] == "NoInput" else "Normal",
            PowerSupplyType="AC",
            PowerCapacityWatts=r["rated_w"],
            FirmwareVersion=self.model.firmware(self.state.node).get(psu, ""),
            HotPluggable=True,
            Metrics=_ref(f"{self._psu_path(psu)}/Metrics"),
        )

    def power_supply_metrics(self, psu: str) -> dict[str, Any]:
        r = self._psu_readings(psu)
        return _resource(
            f"{self._psu_path(psu)}/Metrics",
            "PowerSupplyMetrics",
            Id="Metrics",
            Name=f"Metrics for {psu}",
            Status=_psu_status(r["status"]),
            InputVoltage={"Reading": r["volts"], "DataSourceUri": f"{SENSORS}/{psu}InputVoltage"},
            InputPowerWatts={"Reading": r["input_w"], "DataSourceUri": f"{SENSORS}/{psu}InputPower"},
            OutputPowerWatts={"Reading": r["output_w"], "DataSourceUri": f"{SENSORS}/{psu}OutputPower"},
        )

    def thermal_subsystem(self) -> dict[str, Any]:
        healths = [self._fan_status(rpm, failed)["Health"] for _, rpm, _, failed in self._fan_readings()]
        return _resource(
            f"{CHASSIS}/ThermalSubsystem",
            "ThermalSubsystem",
            Id="ThermalSubsystem",
            Name="Thermal Subsystem",
            Fans=_ref(f"{CHASSIS}/ThermalSubsystem/Fans"),
            ThermalMetrics=_ref(f"{CHASSIS}/ThermalSubsystem/ThermalMetrics"),
            Status=_status("Enabled", "OK", _worst(healths)),
        )

    def fan(self, number: int) -> dict[str, Any]:
        _, rpm, duty, failed = self._fan_readings()[number - 1]
        return _resource(
            self._fan_path(number),
            "Fan",
            Id=f"Fan{number}",
            Name=f"Fan{number}",
            PhysicalContext="Chassis",
            Status=self._fan_status(rpm, failed),
            SpeedPercent={"Reading": duty, "SpeedRPM": rpm, "DataSourceUri": f"{SENSORS}/Fan{number}"},
            HotPluggable=True,
        )

    def thermal_metrics(self) -> dict[str, Any]:
        temps = self._temperatures()
        hottest_gpu = max((t for t in temps if t[3] == "GPU"), key=lambda t: t[2], default=temps[0])
        inlet, exhaust = temps[0], temps[-1]
        return _resource(
            f"{CHASSIS}/ThermalSubsystem/ThermalMetrics",
            "ThermalMetrics",
            Id="ThermalMetrics",
            Name="Chassis Thermal Metrics",
            TemperatureSummaryCelsius={
                "Intake": {"Reading": inlet[2], "DataSourceUri": f"{SENSORS}/{inlet[0]}"},
                "Internal": {"Reading": hottest_gpu[2], "DataSourceUri": f"{SENSORS}/{hottest_gpu[0]}"},
                "Exhaust": {"Reading": exhaust[2], "DataSourceUri": f"{SENSORS}/{exhaust[0]}"},
            },
            TemperatureReadingsCelsius=[
                {"DeviceName": name, "Reading": value, "DataSourceUri": f"{SENSORS}/{sid}"}
                for sid, name, value, _ in temps
            ],
        )

    def environment_metrics(self) -> dict[str, Any]:
        model, node = self.model, self.state.node
        cap = model.power_cap(node)
        low, high = self._limit_range()
        with self.state.lock:
            last = self.state.last_setpoint
        limit: dict[str, Any] = {
            "SetPoint": cap if cap is not None else last,
            "AllowableMin": low,
            "AllowableMax": high,
            "ControlMode": "Automatic" if cap is not None else "Disabled",
        }
        return _resource(
            f"{CHASSIS}/EnvironmentMetrics",
            "EnvironmentMetrics",
            Id="EnvironmentMetrics",
            Name="Chassis Environment Metrics",
            PowerWatts={"Reading": round(model.bmc_reading_power_w(node), 1), "DataSourceUri": f"{SENSORS}/TotalPower"},
            TemperatureCelsius={
                "Reading": round(model.node_outlet_temperature_c(node), 1),
                "DataSourceUri": f"{SENSORS}/ExhaustTemp",
            },
            FanSpeedsPercent=[
                {"DeviceName": f"Fan{i}", "Reading": duty, "SpeedRPM": rpm, "DataSourceUri": f"{SENSORS}/Fan{i}"}
                for i, rpm, duty, _ in self._fan_readings()
            ],
            PowerLimitWatts=limit,
        )

    def patch_environment(self, body: dict[str, Any]) -> None:
        """PATCH PowerLimitWatts: SetPoint applies a cap, ControlMode Disabled removes it."""
        for key in body:
            if key != "PowerLimitWatts":
                raise _HttpError(400, "PropertyNotWritable", f"The property {key} is a read only property.")
        limit = body["PowerLimitWatts"]
        if not isinstance(limit, dict):
            raise _HttpError(400, "PropertyValueTypeError", "PowerLimitWatts must be an object.")
        for key in limit:
            if key not in ("SetPoint", "ControlMode"):
                raise _HttpError(400, "PropertyNotWritable", f"The property PowerLimitWatts/{key} is not writable.")
        mode = limit.get("ControlMode")
        if mode is not None and mode not in CONTROL_MODES:
            raise _HttpError(400, "PropertyValueNotInList", f"The value {mode!r} for ControlMode is not allowed.")
        setpoint = self._check_limit(limit["SetPoint"], "SetPoint") if "SetPoint" in limit else None
        model, node = self.model, self.state.node
        with self.state.lock:
            if setpoint is not None:
                self.state.last_setpoint = setpoint
            last, correction = self.state.last_setpoint, self.state.correction_ms
        if mode == "Disabled":
            if model.power_cap(node) is not None:
                model.set_power_cap(node, None, correction)
            return
        watts = setpoint if setpoint is not None else (last if mode is not None else None)
        if watts is None:
            if mode is not None:
                raise _HttpError(400, "PropertyMissing", "The property SetPoint is needed to enable the power limit.")
            return
        model.set_power_cap(node, watts, correction)

    def sensor(self, sensor_id: str) -> dict[str, Any]:
        doc = _resource(f"{SENSORS}/{sensor_id}", "Sensor", Id=sensor_id)
        limits = self._temperature_limits()
        if sensor_id in limits:
            _, name, value, context = next(t for t in self._temperatures() if t[0] == sensor_id)
            caution, critical = limits[sensor_id]
            doc.update(
                Name=name,
                ReadingType="Temperature",
                ReadingUnits="Cel",
                Reading=value,
                PhysicalContext=context,
                Status=_status("Enabled", _threshold_health(value, caution, critical)),
                Thresholds={
                    "UpperCaution": {"Reading": caution, "Activation": "Increasing"},
                    "UpperCritical": {"Reading": critical, "Activation": "Increasing"},
                },
            )
        elif sensor_id == "TotalPower":
            watts = round(self.model.bmc_reading_power_w(self.state.node), 1)
            doc.update(
                Name="Total Input Power",
                ReadingType="Power",
                ReadingUnits="W",
                Reading=watts,
                PhysicalContext="Chassis",
                ElectricalContext="Total",
                Status=_status(),
            )
        elif sensor_id.startswith("Fan"):
            number = int(sensor_id[3:])
            _, rpm, duty, failed = self._fan_readings()[number - 1]
            doc.update(
                Name=f"Fan{number} Speed",
                ReadingType="Percent",
                ReadingUnits="%",
                Reading=duty,
                SpeedRPM=rpm,
                PhysicalContext="Fan",
                Status=self._fan_status(rpm, failed),
            )
        else:
            psu = max((p for p in self.psus if sensor_id.startswith(p)), key=len)
            kind = sensor_id[len(psu) :]
            r = self._psu_readings(psu)
            reading_type, unit, key, label = {
                "InputPower": ("Power", "W", "input_w", "Input Power"),
                "OutputPower": ("Power", "W", "output_w", "Output Power"),
                "InputVoltage": ("Voltage", "V", "volts", "Input Voltage"),
            }[kind]
            doc.update(
                Name=f"{psu} {label}",
                ReadingType=reading_type,
                ReadingUnits=unit,
                Reading=r[key],
                PhysicalContext="PowerSupply",
                Status=_psu_status(r["status"]),
            )
        return doc

    # ---- manager and firmware -------------------------------------------------------------
    def manager(self) -> dict[str, Any]:
        n = self.model.nodes[self.state.node]
        info = n.bmc_info
        return _resource(
            MANAGER,
            "Manager",
            Id=MANAGER_ID,
            Name="Manager",
            ManagerType="BMC",
            Manufacturer=info.vendor,
            Model=info.model,
            SerialNumber=info.serial,
            UUID=self._uuid(info.serial),
            FirmwareVersion=self.model.firmware(self.bmc).get("BMC", info.firmware),
            DateTime=self._iso(self.model.now()),
            DateTimeLocalOffset="+00:00",
            PowerState="On",
            Status=_status(),
            Links={
                "ManagerForServers": [_ref(SYSTEM)],
                "ManagerForChassis": [_ref(CHASSIS)],
                "ManagerInChassis": _ref(CHASSIS),
            },
        )

    def update_service(self) -> dict[str, Any]:
        return _resource(
            f"{V1}/UpdateService",
            "UpdateService",
            Id="UpdateService",
            Name="Update Service",
            ServiceEnabled=True,
            Status=_status(),
            FirmwareInventory=_ref(FIRMWARE),
        )

    def software_inventory(self, component: str) -> dict[str, Any]:
        versions = self._firmware()
        baseline = {**self.model.baseline_firmware(self.bmc), **self.model.baseline_firmware(self.state.node)}
        related = {"BMC": MANAGER, "CPLD": CHASSIS}.get(component, SYSTEM)
        if component in self.psus:
            related = self._psu_path(component)
        return _resource(
            f"{FIRMWARE}/{component}",
            "SoftwareInventory",
            Id=component,
            Name=component,
            Version=versions[component],
            Updateable=False,
            # Health says whether the running image is the one the site's baseline expects.
            Status=_status("Enabled", "OK" if versions[component] == baseline.get(component) else "Warning"),
            RelatedItem=[_ref(related)],
        )


def _corrupt(data: bytes, mode: str, rng: random.Random) -> tuple[bytes, int]:
    """(body to send, Content-Length to declare) for a malformed reply."""
    if mode == "garbage":
        noise = bytes(rng.randrange(128, 256) for _ in range(max(len(data) // 4, 16)))
        return b"\xff\xfe" + noise, len(noise) + 2
    if mode == "wrong_length":
        return data, len(data) + max(len(data) // 2, 16)
    cut = data[: max(len(data) // 2, 1)]  # truncate: a complete HTTP message, half a JSON document
    return cut, len(cut)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 60  # an idle keep-alive connection is dropped after this (bounds handler threads)
    server_version = "SimBMC-Redfish/1.0"
    server: _Httpd

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a BMC under a telemetry loop answers thousands of requests."""

    # ---- plumbing -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        declared = len(data)
        malformed = self._malformed
        if malformed is not None and data:
            with self.server.state.lock:
                data, declared = _corrupt(data, malformed, self.server.state.rng)
            if declared != len(data):
                self.close_connection = True  # the client waits for bytes that never come: close
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("OData-Version", "4.0")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(declared))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode("utf-8")
        if status == 200 and self.command in ("GET", "HEAD"):
            headers = {"ETag": f'W/"{hashlib.sha1(data).hexdigest()[:16]}"', **(headers or {})}
        self._send(status, data, "application/json; charset=utf-8", headers)

    def _send_no_content(self) -> None:
        self.send_response(204)
        self.send_header("OData-Version", "4.0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_error(self, status: int, message_id: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._send_json(status, _error_body(message_id, message), headers)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 413 for an oversized one."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_REQUEST_BODY:
            self.close_connection = True
            self._send_error(413, "GeneralError", "Request body too large or Content-Length invalid.")
            return None
        return self.rfile.read(length) if length else b""

    @staticmethod
    def _json_body(raw: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            doc = None
        if not isinstance(doc, dict):
            raise _HttpError(400, "MalformedJSON", "The request body was malformed JSON or not an object.")
        return doc

    def _authenticated(self, refuse_credentials: bool) -> bool:
        state = self.server.state
        token = self.headers.get("X-Auth-Token")
        if token:
            with state.lock:
                return token in state.sessions
        auth = self.headers.get("Authorization", "")
        if auth[:6].lower() == "basic " and not refuse_credentials:
            try:
                user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return self._credentials_ok(user, password)
        return False

    def _credentials_ok(self, user: Any, password: Any) -> bool:
        state = self.server.state
        if not isinstance(user, str) or not isinstance(password, str):
            return False
        user_ok = hmac.compare_digest(user.encode(), state.username.encode())
        password_ok = hmac.compare_digest(password.encode(), state.password.encode())
        return user_ok and password_ok

    # ---- protocol faults and BMC power --------------------------------------------------------
    def _hold_silent(self) -> None:
        """Never answer: hold the request until the fault clears, the server stops or the bound."""
        state = self.server.state
        waited = 0.0
        while waited < SILENT_HOLD_S and not state.stopping.wait(0.1):
            waited += 0.1
            if not self._silent_now() or self._client_gone():
                break
        self.close_connection = True

    def _client_gone(self) -> bool:
        """True once the client closed its end (it gave up waiting): no need to hold any longer."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _silent_now(self) -> bool:
        state = self.server.state
        if state.model.bmc_state(state.node) == "Off":
            return True  # no input power: the BMC is dead, nothing answers
        return any(f.kind == "device_silent" for f in state.model.active_faults(state.device))

    def _apply_faults(self) -> dict[str, Any] | None:
        """Act on this BMC's protocol faults; None when the request got no answer at all."""
        state = self.server.state
        faults = {f.kind: f for f in state.model.active_faults(state.device)}
        if "device_silent" in faults or state.model.bmc_state(state.node) == "Off":
            self._hold_silent()
            return None
        slow = faults.get("device_slow")
        if slow is not None:
            with state.lock:
                jitter = state.rng.uniform(0.0, float(slow.param("jitter_s")))
            delay = float(slow.param("delay_s")) + jitter
            if state.stopping.wait(max(delay, 0.0)):
                self.close_connection = True
                return None
        bad = faults.get("malformed_reply")
        if bad is not None:
            with state.lock:
                hit = state.rng.random() < float(bad.param("probability"))
            self._malformed = str(bad.param("mode")) if hit else None
        if "auth_failure" in faults:
            with state.lock:  # the account is refused: its sessions end too, as on a password change
                state.sessions.clear()
        return faults

    # ---- routing ----------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        state = self.server.state
        self._malformed: str | None = None
        with state.lock:
            state.counts[method] += 1
            state.counts["total"] += 1
        raw = self._read_body()
        if raw is None:
            return
        faults = self._apply_faults()
        if faults is None:
            return
        try:
            self._route(method, raw, faults)
        except _HttpError as exc:
            self._send_error(exc.status, exc.message_id, exc.message, exc.headers)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away mid-answer
        except Exception as exc:  # a bug must cost one request (500), never the server thread
            self.close_connection = True
            self._send_error(500, "InternalError", f"Internal error: {type(exc).__name__}: {exc}")

    def _route(self, method: str, raw: bytes, faults: dict[str, Any]) -> None:
        state = self.server.state
        tree: _Tree = self.server.tree
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        read = method in ("GET", "HEAD")
        if state.model.bmc_state(state.node) == "Booting":
            raise _HttpError(503, "ServiceTemporarilyUnavailable", "The BMC is starting.", {"Retry-After": "5"})
        if path == "/redfish" and read:
            self._send_json(200, {"v1": "/redfish/v1/"})
            return
        if path == f"{V1}/$metadata" and read:
            self._send(200, metadata_document().encode(), "application/xml")
            return
        if path == f"{V1}/odata" and read:
            self._send_json(200, self._odata_document())
            return
        if path == V1 and read:
            self._send_json(200, tree.service_root())
            return
        if path == SESSIONS and method == "POST":
            self._login(raw, faults)
            return
        if path in ("/redfish", V1, f"{V1}/$metadata", f"{V1}/odata"):
            raise _HttpError(405, "OperationNotAllowed", f"{method} is not allowed on {path}.", {"Allow": "GET, HEAD"})
        if not self._authenticated(refuse_credentials="auth_failure" in faults):
            raise _HttpError(
                401,
                "NoValidSession",
                "There is no valid session established with the implementation.",
                {"WWW-Authenticate": 'Basic realm="Redfish"'},
            )
        if path.startswith(SESSIONS + "/"):
            self._session_member(method, path)
            return
        with state.model.lock:  # one consistent instant of the model per document
            route = tree.route(path)
        if route is None:
            raise _HttpError(404, "ResourceMissingAtURI", f"The resource at the URI {path} was not found.")
        allow = route.allow if path != SESSIONS else "GET, HEAD, POST"
        if read and route.get is not None:
            expand = self._expand_mode(parts.query)
            with state.model.lock:
                doc = route.get()
                if expand is not None:
                    doc = tree.expand(doc, expand)
            self._send_json(200, doc, {"Allow": allow})
        elif method == "PATCH" and route.patch is not None:
            route.patch(self._json_body(raw))
            assert route.get is not None
            with state.model.lock:
                doc = route.get()
            self._send_json(200, doc, {"Allow": allow})
        elif method == "POST" and route.post is not None:
            route.post(self._json_body(raw) if raw else {})
            self._send_no_content()
        else:
            raise _HttpError(405, "OperationNotAllowed", f"{method} is not allowed on {path}.", {"Allow": allow})

    @staticmethod
    def _expand_mode(query: str) -> str | None:
        """The $expand mode of a query (None without one); other $ options are not implemented."""
        mode = None
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == "$expand":
                match = _EXPAND.match(value)
                if match is None:
                    raise _HttpError(
                        400, "QueryParameterValueFormatError", f"The value {value!r} for $expand is malformed."
                    )
                if match.group(2) is not None and int(match.group(2)) != 1:
                    raise _HttpError(400, "QueryParameterOutOfRange", "$levels must be 1 (MaxLevels is 1).")
                mode = match.group(1)
            elif key.startswith("$"):
                raise _HttpError(501, "QueryNotSupported", f"The query parameter {key} is not supported.")
        return mode

    @staticmethod
    def _odata_document() -> dict[str, Any]:
        names = ("Systems", "Chassis", "Managers", "SessionService", "UpdateService")
        return {
            "@odata.context": f"{V1}/$metadata",
            "value": [{"name": "Service", "kind": "Singleton", "url": "/redfish/v1/"}]
            + [{"name": n, "kind": "Singleton", "url": f"{V1}/{n}"} for n in names],
        }

    # ---- sessions -----------------------------------------------------------------------------
    def _login(self, raw: bytes, faults: dict[str, Any]) -> None:
        body = self._json_body(raw)
        if "UserName" not in body or "Password" not in body:
            raise _HttpError(400, "CreateFailedMissingReqProperties", "UserName and Password are required.")
        if "auth_failure" in faults or not self._credentials_ok(body["UserName"], body["Password"]):
            raise _HttpError(401, "ResourceAtUriUnauthorized", "Invalid username or password.")
        state = self.server.state
        limit = state.max_sessions
        if "session_exhaustion" in faults:
            limit = min(limit, int(faults["session_exhaustion"].param("max_sessions")))
        with state.lock:
            full = len(state.sessions) >= limit
            if not full:
                session = _Session(str(state.next_session), secrets.token_hex(16), body["UserName"])
                state.next_session += 1
                state.sessions[session.token] = session
        if full:
            raise _HttpError(
                503,
                "SessionLimitExceeded",
                "The session establishment failed due to the number of simultaneous sessions exceeding "
                "the limit of the implementation.",
                {"Retry-After": "1"},
            )
        location = f"{SESSIONS}/{session.id}"
        self._send_json(201, _Tree.session_doc(session), {"X-Auth-Token": session.token, "Location": location})

    def _session_member(self, method: str, path: str) -> None:
        state = self.server.state
        session_id = path[len(SESSIONS) + 1 :]
        with state.lock:
            match = next((s for s in state.sessions.values() if s.id == session_id), None)
            if match is not None and method == "DELETE":
                del state.sessions[match.token]
        if match is None:
            raise _HttpError(404, "ResourceMissingAtURI", f"The resource at the URI {path} was not found.")
        if method == "DELETE":
            self._send_no_content()
        elif method in ("GET", "HEAD"):
            self._send_json(200, _Tree.session_doc(match), {"Allow": "GET, HEAD, DELETE"})
        else:
            raise _HttpError(
                405, "OperationNotAllowed", f"{method} is not allowed on {path}.", {"Allow": "GET, HEAD, DELETE"}
            )


class _Httpd(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connection threads so stop() can close and join them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        self.state = state
        self.tree = _Tree(state)
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True, name="redfish-conn"
        )
        with self._conns_lock:
            self._conns[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.pop(threading.current_thread(), None)

    def connections(self) -> list[socket.socket]:
        with self._conns_lock:
            return list(self._conns.values())

    def close_connections(self, timeout_s: float) -> None:
        with self._conns_lock:
            items = list(self._conns.items())
        for _, sock in items:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread, _ in items:
            thread.join(timeout_s)


class RedfishServer:
    """A running simulated BMC. ``host``/``port`` is where it listens; ``stop()`` ends it.

    ``device`` is the BMC's device name (protocol faults injected on it act on this server).
    """

    def __init__(
        self,
        model: RackModel,
        node: str,
        host: str,
        username: str,
        password: str,
        max_sessions: int,
        epoch: datetime = SIM_EPOCH,
    ) -> None:
        nodes = model.nodes
        if node not in nodes:  # the BMC's own name is accepted too
            node = next((n.name for n in nodes.values() if n.bmc == node), node)
        if node not in nodes:
            raise ValueError(f"no node or BMC {node!r} in the model (have {sorted(nodes)})")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if epoch.tzinfo is None:
            raise ValueError("epoch must be timezone-aware")
        self.node = node
        self.device = nodes[node].bmc
        correction = round(model.params.timing.power_cap_correction_ms)
        self._state = _State(
            model, node, self.device, username, password, max_sessions, epoch, correction,
            rng=random.Random(f"redfish/{self.device}"),
        )  # fmt: skip
        self._httpd = _Httpd((host, 0), self._state)
        self.host: str = self._httpd.server_address[0]
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name=f"redfish-{node}",
        )
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._thread.start()

    def __repr__(self) -> str:
        return f"RedfishServer({self.node!r}, {self.host}:{self.port})"

    @property
    def open_sessions(self) -> int:
        """Sessions currently open (a driver that logs out properly brings this back to 0)."""
        with self._state.lock:
            return len(self._state.sessions)

    def drop_sessions(self) -> None:
        """Forget every session, as a BMC does on reboot or session timeout."""
        with self._state.lock:
            self._state.sessions.clear()

    def request_count(self, method: str = "total") -> int:
        """Requests received so far, all methods ("total") or one ("GET", "POST", ...)."""
        with self._state.lock:
            return self._state.counts[method]

    def connection_sockets(self) -> list[socket.socket]:
        """The server-side sockets of open client connections (for checking socket options)."""
        return self._httpd.connections()

    def stop(self) -> None:
        """Stop serving, close every connection and join the threads; safe to call twice."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._state.stopping.set()  # wakes handlers held by device_silent / device_slow
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections(timeout_s=5.0)
        self._thread.join(5.0)


def start_bmc_redfish(
    model: RackModel,
    node: str,
    *,
    host: str = "127.0.0.1",
    username: str,
    password: str,
    max_sessions: int = 8,
    epoch: datetime = SIM_EPOCH,
) -> RedfishServer:
    """Start a simulated Redfish BMC for ``node`` (or its BMC's name) on ``host`` (OS-chosen port).

    ``epoch`` is the wall-clock time of the model's virtual time 0 (SEL Created, DateTime).
    """
    return RedfishServer(model, node, host, username, password, max_sessions, epoch)
