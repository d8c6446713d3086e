"""A BMC over DMTF Redfish: identity, host power state and reset, power draw, temperatures.

Only standard Redfish resources are used, because vendor differences are in *which* standard
resources a BMC implements, not in their shape: older BMCs have the legacy ``Chassis/{id}/Power``
and ``Thermal`` resources (deprecated since 2020), newer ones ``EnvironmentMetrics``,
``Sensors`` and ``ThermalSubsystem``, many have both. The driver tries them in a documented
order and remembers what worked, so a telemetry loop costs one GET per sample.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rackval.core.errors import ConfigError, DeviceError, DeviceProtocolError
from rackval.drivers.capabilities import Identity
from rackval.drivers.config import DeviceConfig
from rackval.drivers.transport.redfish import RedfishHttpError, RedfishTransport

log = logging.getLogger(__name__)

# Resource_v1 ResetType members (DMTF CSDL): anything else is a typo, refused before any request.
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

POWER_SOURCES = ("auto", "environment", "legacy")

_MAX_LOG_PAGES = 50  # bounds paging through a log whose nextLink never ends (or repeats)


@dataclass(frozen=True)
class LogEntry:
    """One BMC event-log record, in Redfish LogEntry terms (IPMI SEL entries are mapped onto it).

    ``created`` is the BMC's timestamp text as reported (ISO 8601 for Redfish); ``severity`` is
    OK, Warning or Critical; ``message_id`` is empty when the BMC gives none.
    """

    id: str
    created: str
    severity: str
    message: str
    message_id: str


@dataclass(frozen=True)
class PowerSupplyState:
    """One PSU as its BMC sees it: what a power-map check needs to tell "lost input" from "failed".

    ``state`` / ``health`` are the Redfish Status members (empty when not reported);
    ``input_ok`` is True when the PSU has line input, False when it has lost it, None when the
    BMC does not say (see ``RedfishBmc.power_supplies``); ``input_voltage`` / ``input_watts``
    are the BMC's readings, None when not reported.
    """

    name: str
    state: str
    health: str
    input_ok: bool | None
    input_voltage: float | None = None
    input_watts: float | None = None


@dataclass(frozen=True)
class SensorThresholds:
    """A sensor's upper thresholds as the BMC reports them (None when it reports none)."""

    caution: float | None
    critical: float | None


def _number(value: Any) -> float | None:
    """A JSON number as float; None for null, strings and booleans (never coerce silently)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _link(doc: Mapping[str, Any], key: str) -> str | None:
    """The @odata.id a resource links under ``key`` (e.g. chassis["Thermal"]), if any."""
    value = doc.get(key)
    if isinstance(value, dict) and isinstance(value.get("@odata.id"), str):
        return value["@odata.id"]
    return None


def _put_unique(out: dict[str, float], name: str, value: float, member_id: Any) -> None:
    """Store a reading; a repeated sensor name gets its member id appended instead of overwriting."""
    key = name
    if key in out:
        key = f"{name} ({member_id})" if member_id is not None else f"{name} #{len(out)}"
    out[key] = value


class RedfishBmc:
    """A server's BMC reached over Redfish.

    Options (``config.options``), besides the transport's (``scheme``, ``verify``, ``auth``,
    ``retries_503``, ``backoff_s``, ``backoff_max_s``, ``max_body_bytes``: see
    ``rackval.drivers.transport.redfish.RedfishTransport``):

    - ``system_id``, ``chassis_id``, ``manager_id``: which member of /redfish/v1/Systems,
      /Chassis, /Managers this device is (default: the first member listed; set them on
      multi-node enclosures where the first member is not the node under test).
    - ``power_source``: where ``power_watts()`` reads: ``"auto"`` (default: the new
      ``Chassis/{id}/EnvironmentMetrics`` PowerWatts.Reading when the BMC has it, else the legacy
      ``Chassis/{id}/Power`` PowerControl[0].PowerConsumedWatts), ``"environment"`` (only the
      new resource) or ``"legacy"`` (only the legacy one). Pin it when a spec's accuracy was
      established against one of them: BMCs sometimes fill them from different sensors.
    - ``expand``: use ``$expand`` for the Sensors collection when the service root advertises
      it (default true; set false for BMCs whose expand is broken or slow).

    Temperatures come from the legacy ``Chassis/{id}/Thermal`` Temperatures[] (keyed by Name),
    or, when the chassis has no Thermal resource, from its ``Sensors`` (those in Cel, keyed by
    Name), or from ``ThermalSubsystem/ThermalMetrics``. Sensors without a reading (disabled,
    absent) are left out. ``identify()`` fields a BMC does not report are empty strings.
    """

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        opts: Mapping[str, Any] = config.options or {}
        self._power_source = str(opts.get("power_source", "auto")).lower()
        if self._power_source not in POWER_SOURCES:
            raise ConfigError(
                f"device {config.name}: option 'power_source' must be one of {POWER_SOURCES}, "
                f"got {self._power_source!r}"
            )
        self._ids = {
            "system": opts.get("system_id"),
            "chassis": opts.get("chassis_id"),
            "manager": opts.get("manager_id"),
        }
        self._use_expand = bool(opts.get("expand", True))
        self._transport = RedfishTransport(config)
        self._paths: dict[str, str] = {}
        self._chassis_doc: dict[str, Any] | None = None
        self._power_from: str | None = None  # "environment" | "legacy" once one worked
        self._thermal_from: tuple[str, str] | None = None  # (kind, path) once one worked
        self._expand_ok: bool | None = None

    def __repr__(self) -> str:
        return f"RedfishBmc({self.name!r}, {self._config.address!r})"

    # ---- helpers ------------------------------------------------------------------------------
    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self._config.name, self._config.address, operation, detail)

    def _resource_path(self, kind: str) -> str:
        """Path of this device's System / Chassis / Manager: the configured id or the first member."""
        if kind in self._paths:
            return self._paths[kind]
        collection = {
            "system": "/redfish/v1/Systems",
            "chassis": "/redfish/v1/Chassis",
            "manager": "/redfish/v1/Managers",
        }[kind]
        configured = self._ids[kind]
        if configured:
            path = f"{collection}/{configured}"
        else:
            members = self._transport.members(collection)
            if not members:
                raise self._err(DeviceProtocolError, f"find the {kind} (GET {collection})", "collection is empty")
            path = members[0]
        self._paths[kind] = path
        return path

    def _get_optional(self, path: str) -> dict[str, Any] | None:
        """GET a resource that a BMC may not implement: None on 404 (and 405/501)."""
        try:
            return self._transport.get(path)
        except RedfishHttpError as exc:
            if exc.status in (404, 405, 501):
                return None
            raise

    def _chassis(self) -> dict[str, Any]:
        """The chassis resource, read once: only its links are used, and they do not change."""
        if self._chassis_doc is None:
            self._chassis_doc = self._transport.get(self._resource_path("chassis"))
        return self._chassis_doc

    # ---- Device -------------------------------------------------------------------------------
    def identify(self) -> Identity:
        system = self._transport.get(self._resource_path("system"))
        manager = self._transport.get(self._resource_path("manager"))

        def text(doc: Mapping[str, Any], key: str) -> str:
            value = doc.get(key)
            return "" if value is None else str(value)

        return Identity(
            vendor=text(system, "Manufacturer"),
            model=text(system, "Model"),
            serial=text(system, "SerialNumber"),
            firmware=text(manager, "FirmwareVersion"),
        )

    def close(self) -> None:
        """Log out (delete the session) and close the connection; safe to call twice."""
        self._transport.close()

    # ---- Bmc ----------------------------------------------------------------------------------
    def power_state(self) -> str:
        """The host's PowerState as Redfish says it: On, Off, PoweringOn, PoweringOff, Paused."""
        path = self._resource_path("system")
        state = self._transport.get(path).get("PowerState")
        if not isinstance(state, str) or not state:
            raise self._err(DeviceProtocolError, f"read PowerState (GET {path})", f"no PowerState: {state!r}")
        return state

    def temperatures(self) -> dict[str, float]:
        """Every temperature reading the chassis reports, in degrees Celsius, keyed by sensor name."""
        if self._thermal_from is not None:
            kind, path = self._thermal_from
            return self._read_thermal(kind, path)
        chassis = self._chassis()
        base = self._resource_path("chassis")
        candidates: list[tuple[str, str]] = [("legacy", _link(chassis, "Thermal") or f"{base}/Thermal")]
        if sensors := _link(chassis, "Sensors"):
            candidates.append(("sensors", sensors))
        if subsystem := _link(chassis, "ThermalSubsystem"):
            candidates.append(("subsystem", subsystem))
        for kind, path in candidates:
            try:
                readings = self._read_thermal(kind, path)
            except RedfishHttpError as exc:
                if exc.status in (404, 405, 501):
                    continue
                raise
            self._thermal_from = (kind, path)
            return readings
        raise self._err(
            DeviceProtocolError,
            f"read temperatures (chassis {base})",
            "chassis has no Thermal, Sensors or ThermalSubsystem resource",
        )

    def _read_thermal(self, kind: str, path: str) -> dict[str, float]:
        if kind == "legacy":
            return self._legacy_thermal(path)
        if kind == "sensors":
            return self._sensor_temperatures(path)
        return self._thermal_metrics(path)

    def _legacy_thermal(self, path: str) -> dict[str, float]:
        doc = self._transport.get(path)
        temps = doc.get("Temperatures", [])
        if not isinstance(temps, list):
            raise self._err(DeviceProtocolError, f"GET {path}", "'Temperatures' is not an array")
        out: dict[str, float] = {}
        for entry in temps:
            if not isinstance(entry, dict):
                continue
            value = _number(entry.get("ReadingCelsius"))
            if value is None:
                continue
            name = str(entry.get("Name") or entry.get("MemberId") or f"Temperature {len(out)}")
            _put_unique(out, name, value, entry.get("MemberId"))
        return out

    def _supports_expand(self) -> bool:
        if self._expand_ok is None:
            self._expand_ok = False
            if self._use_expand:
                root = self._transport.get("/redfish/v1")
                features = root.get("ProtocolFeaturesSupported")
                expand = features.get("ExpandQuery") if isinstance(features, dict) else None
                self._expand_ok = isinstance(expand, dict) and bool(expand.get("Levels") or expand.get("ExpandAll"))
        return self._expand_ok

    def _sensor_temperatures(self, path: str) -> dict[str, float]:
        """Temperature sensors of a Sensors collection: expanded in one GET if the BMC can."""
        docs: list[dict[str, Any]] = []
        if self._supports_expand():
            collection = self._transport.get(f"{path}?$expand=.($levels=1)")
            members = collection.get("Members")
            if isinstance(members, list) and all(
                isinstance(m, dict) and ("Reading" in m or "ReadingUnits" in m or "ReadingType" in m) for m in members
            ):
                docs = members
        if not docs:
            docs = [self._transport.get(member) for member in self._transport.members(path)]
        out: dict[str, float] = {}
        for doc in docs:
            if doc.get("ReadingType") != "Temperature" and doc.get("ReadingUnits") != "Cel":
                continue
            value = _number(doc.get("Reading"))
            if value is None:
                continue
            _put_unique(out, str(doc.get("Name") or doc.get("Id")), value, doc.get("Id"))
        return out

    def _thermal_metrics(self, subsystem_path: str) -> dict[str, float]:
        subsystem = self._transport.get(subsystem_path)
        path = _link(subsystem, "ThermalMetrics") or f"{subsystem_path}/ThermalMetrics"
        doc = self._transport.get(path)
        out: dict[str, float] = {}
        readings = doc.get("TemperatureReadingsCelsius")
        if isinstance(readings, list):
            for entry in readings:
                if isinstance(entry, dict) and (value := _number(entry.get("Reading"))) is not None:
                    _put_unique(out, str(entry.get("DeviceName") or f"Sensor {len(out)}"), value, None)
        summary = doc.get("TemperatureSummaryCelsius")
        if not out and isinstance(summary, dict):
            for key, entry in summary.items():
                if isinstance(entry, dict) and (value := _number(entry.get("Reading"))) is not None:
                    out[key] = value
        return out

    # ---- PowerMeter ---------------------------------------------------------------------------
    def power_watts(self) -> float:
        """Input power of the chassis in watts, from the source chosen by option 'power_source'."""
        if self._power_from is not None:
            value = self._read_power(self._power_from, required=True)
            assert value is not None
            return value
        order = {"auto": ("environment", "legacy"), "environment": ("environment",), "legacy": ("legacy",)}[
            self._power_source
        ]
        tried = []
        for source in order:
            value = self._read_power(source, required=len(order) == 1)
            if value is not None:
                self._power_from = source
                return value
            tried.append(source)
        base = self._resource_path("chassis")
        raise self._err(
            DeviceProtocolError,
            f"read power (chassis {base})",
            "neither EnvironmentMetrics PowerWatts.Reading nor Power PowerControl[0].PowerConsumedWatts is reported",
        )

    def _power_path(self, source: str) -> str:
        base = self._resource_path("chassis")
        chassis = self._chassis()
        if source == "environment":
            return _link(chassis, "EnvironmentMetrics") or f"{base}/EnvironmentMetrics"
        return _link(chassis, "Power") or f"{base}/Power"

    def _read_power(self, source: str, *, required: bool) -> float | None:
        """Watts from one source; None if the BMC lacks it and ``required`` is false."""
        path = self._power_path(source)
        doc = self._transport.get(path) if required else self._get_optional(path)
        if doc is None:
            return None
        if source == "environment":
            field = "PowerWatts.Reading"
            power = doc.get("PowerWatts")
            value = _number(power.get("Reading")) if isinstance(power, dict) else None
        else:
            field = "PowerControl[0].PowerConsumedWatts"
            control = doc.get("PowerControl")
            first = control[0] if isinstance(control, list) and control else None
            value = _number(first.get("PowerConsumedWatts")) if isinstance(first, dict) else None
        if value is None and required:
            raise self._err(DeviceProtocolError, f"read power (GET {path})", f"no numeric {field}")
        return value

    # ---- actions --------------------------------------------------------------------------------
    def reset(self, reset_type: str) -> None:
        """POST ComputerSystem.Reset with ``reset_type`` once the BMC says it allows that type.

        Destructive: the harness's safety gate decides whether this may be called. Returns as soon
        as the BMC accepts the action; poll ``power_state()`` for the outcome (BMCs take seconds to
        a minute). A type Redfish does not define is refused before any request; a type this BMC
        does not list in ResetType@Redfish.AllowableValues (or its ActionInfo) is refused before
        the POST. A BMC that lists no allowable values allows all types (Redfish semantics).
        """
        op = f"reset host (ComputerSystem.Reset ResetType={reset_type})"
        if reset_type not in RESET_TYPES:
            raise self._err(DeviceError, op, f"unknown ResetType {reset_type!r}; Redfish defines {list(RESET_TYPES)}")
        system_path = self._resource_path("system")
        system = self._transport.get(system_path)
        actions = system.get("Actions")
        action = actions.get("#ComputerSystem.Reset") if isinstance(actions, dict) else None
        if not isinstance(action, dict) or not isinstance(action.get("target"), str):
            raise self._err(DeviceError, op, f"{system_path} offers no ComputerSystem.Reset action")
        allowed = action.get("ResetType@Redfish.AllowableValues")
        info_path = action.get("@Redfish.ActionInfo")
        if allowed is None and isinstance(info_path, str):
            info = self._transport.get(info_path)
            for param in info.get("Parameters", []) if isinstance(info.get("Parameters"), list) else []:
                if isinstance(param, dict) and param.get("Name") == "ResetType":
                    allowed = param.get("AllowableValues")
        if allowed is not None:
            if not isinstance(allowed, list):
                raise self._err(DeviceProtocolError, op, f"ResetType allowable values are not a list: {allowed!r}")
            if reset_type not in allowed:
                raise self._err(
                    DeviceError, op, f"ResetType {reset_type!r} is not allowed by this BMC; allowed: {allowed}"
                )
        else:
            log.info("%s: BMC lists no allowable ResetType values; sending %s", self.name, reset_type)
        self._transport.post(action["target"], {"ResetType": reset_type})

    # ---- power capping ------------------------------------------------------------------------
    def _limit_order(self) -> tuple[str, ...]:
        """Where the power cap lives: legacy Power first (it carries CorrectionInMs), then new."""
        return {"auto": ("legacy", "environment"), "environment": ("environment",), "legacy": ("legacy",)}[
            self._power_source
        ]

    def _read_limit(self, source: str) -> tuple[dict[str, Any], float | None, float | None] | None:
        """(document, watts, correction ms) from one source, or None if the BMC lacks it there."""
        path = self._power_path(source)
        doc = self._get_optional(path)
        if doc is None:
            return None
        if source == "legacy":
            control = doc.get("PowerControl")
            first = control[0] if isinstance(control, list) and control else None
            limit = first.get("PowerLimit") if isinstance(first, dict) else None
            if not isinstance(limit, dict):
                return None
            return doc, _number(limit.get("LimitInWatts")), _number(limit.get("CorrectionInMs"))
        limit = doc.get("PowerLimitWatts")
        if not isinstance(limit, dict):
            return None
        watts = None if limit.get("ControlMode") == "Disabled" else _number(limit.get("SetPoint"))
        return doc, watts, None

    def _limit_source(self, operation: str) -> tuple[str, dict[str, Any], float | None, float | None]:
        for source in self._limit_order():
            found = self._read_limit(source)
            if found is not None:
                return (source, *found)
        raise self._err(
            DeviceError,
            operation,
            f"chassis {self._resource_path('chassis')} reports no power limit "
            "(neither Power PowerControl[0].PowerLimit nor EnvironmentMetrics PowerLimitWatts)",
        )

    def power_limit(self) -> tuple[float | None, float | None]:
        """The chassis power cap: (LimitInWatts or None when uncapped, CorrectionInMs or None).

        From legacy ``Power`` PowerControl[0].PowerLimit, else ``EnvironmentMetrics``
        PowerLimitWatts.SetPoint (which has no correction time: None); option ``power_source``
        pins one of them. CorrectionInMs is the time the BMC allows itself to bring consumption
        under the limit: the pass/fail bound for a power-capping response test.
        """
        _, _, watts, correction = self._limit_source("read power limit")
        return watts, correction

    def set_power_limit(self, watts: float | None) -> None:
        """PATCH the chassis power cap to ``watts``, or remove it (``None``).

        Destructive (the host may throttle): the harness's safety gate decides whether this may
        be called. Legacy: ``PowerControl[0].PowerLimit.LimitInWatts`` (null removes the cap, per
        the Power schema). EnvironmentMetrics: ``PowerLimitWatts.SetPoint``, and ControlMode
        "Disabled" to remove the cap [U: BMCs differ; some want the Control resource instead].
        A value outside AllowableMin/AllowableMax (when reported) is refused before the PATCH.
        Returns when the BMC accepted the PATCH; read ``power_limit()`` back to confirm.
        """
        op = f"set power limit to {'none' if watts is None else f'{watts!r} W'}"
        if watts is not None and (isinstance(watts, bool) or not isinstance(watts, int | float) or watts <= 0):
            raise self._err(DeviceError, op, f"limit must be a positive number of watts or None, got {watts!r}")
        source, doc, _, _ = self._limit_source(op)
        path = self._power_path(source)
        body: dict[str, Any]
        if source == "legacy":
            body = {"PowerControl": [{"PowerLimit": {"LimitInWatts": watts}}]}
        else:
            limit = doc.get("PowerLimitWatts", {})
            low, high = _number(limit.get("AllowableMin")), _number(limit.get("AllowableMax"))
            if watts is not None and ((low is not None and watts < low) or (high is not None and watts > high)):
                raise self._err(
                    DeviceError, op, f"outside the BMC's allowable range {low}..{high} W (AllowableMin/Max)"
                )
            body = (
                {"PowerLimitWatts": {"ControlMode": "Disabled"}}
                if watts is None
                else {"PowerLimitWatts": {"SetPoint": watts}}
            )
        self._transport.patch(path, body)

    # ---- event log ----------------------------------------------------------------------------
    def _log_service_path(self) -> str:
        """The system's SEL log service: option ``log_service``, else Id "SEL", else the first."""
        if "log_service" in self._paths:
            return self._paths["log_service"]
        base = f"{self._resource_path('system')}/LogServices"
        configured = (self._config.options or {}).get("log_service")
        if configured:
            path = f"{base}/{configured}"
        else:
            system = self._transport.get(self._resource_path("system"))
            collection = _link(system, "LogServices") or base
            members = self._transport.members(collection)
            if not members:
                raise self._err(DeviceError, f"find the SEL (GET {collection})", "system has no log services")
            sel = [m for m in members if m.rstrip("/").rsplit("/", 1)[-1].upper() == "SEL"]
            path = (sel or members)[0]
        self._paths["log_service"] = path
        return path

    def sel_entries(self) -> list[LogEntry]:
        """Every entry of the system's event log (SEL), in the order the BMC lists them.

        Follows ``@odata.nextLink`` / ``Members@odata.nextLink`` (bounded, and stopping when a
        page brings no new entry: some BMCs and static mockups ignore $skiptoken). Members that
        are only links are fetched one by one.
        """
        service_path = self._log_service_path()
        service = self._transport.get(service_path)
        page: str | None = _link(service, "Entries") or f"{service_path}/Entries"
        seen: set[str] = set()
        out: list[LogEntry] = []
        for _ in range(_MAX_LOG_PAGES):
            if page is None:
                return out
            doc = self._transport.get(page)
            members = doc.get("Members")
            if not isinstance(members, list):
                raise self._err(DeviceProtocolError, f"GET {page}", "log entry collection has no 'Members' array")
            fresh = 0
            for member in members:
                if not isinstance(member, dict):
                    continue
                oid = member.get("@odata.id")
                key = oid if isinstance(oid, str) else f"#{len(seen)}"
                if key in seen:
                    continue
                seen.add(key)
                fresh += 1
                if "Created" not in member and "Message" not in member and isinstance(oid, str):
                    member = self._transport.get(oid)
                out.append(_log_entry(member))
            next_link = doc.get("Members@odata.nextLink") or doc.get("@odata.nextLink")
            page = next_link if isinstance(next_link, str) and next_link and fresh else None
        log.warning("%s: stopped reading %s after %d pages", self.name, service_path, _MAX_LOG_PAGES)
        return out

    # ---- firmware -----------------------------------------------------------------------------
    def firmware_inventory(self) -> dict[str, str]:
        """{component name: version} from /redfish/v1/UpdateService/FirmwareInventory.

        One ``$expand`` GET when the service root advertises it (and option ``expand`` is not
        false), else one GET per member. Keyed by Name (Id when there is no Name; a repeated
        name gets its Id appended). Components without a Version are left out.
        """
        collection = "/redfish/v1/UpdateService/FirmwareInventory"
        root = self._transport.get("/redfish/v1")
        update = _link(root, "UpdateService")
        if update:
            collection = _link(self._transport.get(update), "FirmwareInventory") or collection
        docs: list[dict[str, Any]] = []
        if self._supports_expand():
            expanded = self._transport.get(f"{collection}?$expand=.($levels=1)")
            members = expanded.get("Members")
            if isinstance(members, list) and members and all(isinstance(m, dict) and "Version" in m for m in members):
                docs = members
        if not docs:
            docs = [self._transport.get(member) for member in self._transport.members(collection)]
        out: dict[str, str] = {}
        for doc in docs:
            version = doc.get("Version")
            if version is None or version == "":
                continue
            name = str(doc.get("Name") or doc.get("Id") or doc.get("@odata.id"))
            if name in out:
                name = f"{name} ({doc.get('Id')})"
            out[name] = str(version)
        return out

    # ---- power supplies -------------------------------------------------------------------------
    def power_supplies(self) -> dict[str, PowerSupplyState]:
        """Every PSU of the chassis, keyed by Name: status, health and whether it has line input.

        Legacy ``Chassis/{id}/Power`` PowerSupplies[] first (one GET for every PSU), else the
        ``PowerSubsystem/PowerSupplies`` members (one GET each, plus their ``Metrics`` for the
        input voltage and power). "Has input" comes from, in this order: ``LineInputStatus``
        (Normal = yes; LossOfInput / OutOfRange = no), a reported line input voltage (0 V = no),
        State ``UnavailableOffline`` (no); otherwise it is None (unknown).
        """
        legacy = self._get_optional(self._power_path("legacy"))
        supplies = legacy.get("PowerSupplies") if legacy is not None else None
        if isinstance(supplies, list) and supplies:
            out: dict[str, PowerSupplyState] = {}
            for i, doc in enumerate(supplies):
                if isinstance(doc, dict):
                    name = str(doc.get("Name") or doc.get("MemberId") or f"PSU {i}")
                    volts = _number(doc.get("LineInputVoltage"))
                    out[name] = _psu_state(name, doc, volts, _number(doc.get("PowerInputWatts")))
            return out
        base = self._resource_path("chassis")
        subsystem_path = _link(self._chassis(), "PowerSubsystem")
        subsystem = self._get_optional(subsystem_path) if subsystem_path else None
        collection = _link(subsystem, "PowerSupplies") if subsystem is not None else None
        if collection is None:
            raise self._err(
                DeviceProtocolError,
                f"read power supplies (chassis {base})",
                "chassis reports neither Power PowerSupplies nor PowerSubsystem PowerSupplies",
            )
        out = {}
        for member in self._transport.members(collection):
            doc = self._transport.get(member)
            name = str(doc.get("Name") or doc.get("Id") or member)
            volts = watts = None
            metrics_path = _link(doc, "Metrics")
            metrics = self._get_optional(metrics_path) if metrics_path else None
            if metrics is not None:
                volts = _reading(metrics.get("InputVoltage"))
                watts = _reading(metrics.get("InputPowerWatts"))
            out[name] = _psu_state(name, doc, volts, watts)
        return out

    def sensor_thresholds(self) -> dict[str, SensorThresholds]:
        """Upper caution / critical thresholds of the temperature sensors, keyed like ``temperatures()``.

        From legacy ``Thermal`` Temperatures[] (UpperThresholdNonCritical / UpperThresholdCritical)
        or, without it, the chassis ``Sensors`` (Thresholds.UpperCaution / UpperCritical .Reading).
        A sensor whose BMC reports no threshold is left out.
        """
        chassis = self._chassis()
        base = self._resource_path("chassis")
        thermal = self._get_optional(_link(chassis, "Thermal") or f"{base}/Thermal")
        out: dict[str, SensorThresholds] = {}
        if thermal is not None and isinstance(thermal.get("Temperatures"), list):
            for entry in thermal["Temperatures"]:
                if not isinstance(entry, dict):
                    continue
                limits = SensorThresholds(
                    _number(entry.get("UpperThresholdNonCritical")), _number(entry.get("UpperThresholdCritical"))
                )
                if limits.caution is not None or limits.critical is not None:
                    out[str(entry.get("Name") or entry.get("MemberId"))] = limits
            return out
        sensors = _link(chassis, "Sensors")
        if sensors is None:
            return out
        for member in self._transport.members(sensors):
            doc = self._transport.get(member)
            if doc.get("ReadingType") != "Temperature" and doc.get("ReadingUnits") != "Cel":
                continue
            thresholds = doc.get("Thresholds") if isinstance(doc.get("Thresholds"), dict) else {}
            limits = SensorThresholds(
                _reading(thresholds.get("UpperCaution")), _reading(thresholds.get("UpperCritical"))
            )
            if limits.caution is not None or limits.critical is not None:
                out[str(doc.get("Name") or doc.get("Id"))] = limits
        return out

    def fans(self) -> dict[str, float | None]:
        """Every chassis fan's speed in RPM, keyed by fan Name (None: the BMC gives no RPM).

        Legacy ``Chassis/{id}/Thermal`` Fans[] (one GET; ``Reading`` in ``ReadingUnits`` RPM)
        first, else the ``ThermalSubsystem/Fans`` members (``SpeedPercent.SpeedRPM``). A stopped
        fan reads 0: load soaks judge fan speeds against a minimum.
        """
        chassis = self._chassis()
        base = self._resource_path("chassis")
        thermal = self._get_optional(_link(chassis, "Thermal") or f"{base}/Thermal")
        out: dict[str, float | None] = {}
        if thermal is not None and isinstance(thermal.get("Fans"), list) and thermal["Fans"]:
            for i, entry in enumerate(thermal["Fans"]):
                if isinstance(entry, dict):
                    rpm = _number(entry.get("Reading")) if entry.get("ReadingUnits", "RPM") == "RPM" else None
                    out[str(entry.get("Name") or entry.get("MemberId") or f"Fan {i}")] = rpm
            return out
        subsystem_path = _link(chassis, "ThermalSubsystem")
        subsystem = self._get_optional(subsystem_path) if subsystem_path else None
        collection = _link(subsystem, "Fans") if subsystem is not None else None
        if collection is None:
            raise self._err(
                DeviceProtocolError,
                f"read fans (chassis {base})",
                "chassis reports neither Thermal Fans nor ThermalSubsystem Fans",
            )
        for member in self._transport.members(collection):
            doc = self._transport.get(member)
            speed = doc.get("SpeedPercent") if isinstance(doc.get("SpeedPercent"), dict) else {}
            out[str(doc.get("Name") or doc.get("Id") or member)] = _number(speed.get("SpeedRPM"))
        return out


def _log_entry(doc: Mapping[str, Any]) -> LogEntry:
    def text(key: str) -> str:
        value = doc.get(key)
        return "" if value is None else str(value)

    return LogEntry(
        id=text("Id"),
        created=text("Created"),
        severity=text("Severity"),
        message=text("Message"),
        message_id=text("MessageId"),
    )


_NO_INPUT_STATUS = frozenset({"LossOfInput", "OutOfRange"})


def _reading(value: Any) -> float | None:
    """``{"Reading": x}`` (Redfish SensorExcerpt / Threshold) as float, else None."""
    return _number(value.get("Reading")) if isinstance(value, dict) else None


def _psu_state(name: str, doc: Mapping[str, Any], volts: float | None, watts: float | None) -> PowerSupplyState:
    status = doc.get("Status") if isinstance(doc.get("Status"), dict) else {}
    state, health = str(status.get("State") or ""), str(status.get("Health") or "")
    line = doc.get("LineInputStatus")
    input_ok: bool | None
    if line == "Normal":
        input_ok = True
    elif line in _NO_INPUT_STATUS:
        input_ok = False
    elif volts is not None:
        input_ok = volts > 0
    elif state == "UnavailableOffline":
        input_ok = False
    else:
        input_ok = None
    return PowerSupplyState(name, state, health, input_ok, volts, watts)
