"""A BMC over DMTF Redfish: identity, host power state and reset, power draw and power cap,
temperatures and their thresholds, fans, power supplies, the event log and the firmware inventory.

Only standard Redfish resources are used, because vendor differences are in *which* standard
resources a BMC implements, not in their shape: older BMCs have the legacy ``Chassis/{id}/Power``
and ``Thermal`` resources (deprecated since 2020), newer ones ``EnvironmentMetrics``,
``Sensors`` and ``ThermalSubsystem``, many have both. The driver tries them in a documented
order and remembers what worked, so a telemetry loop costs one GET per sample. This module is
the navigation (which resource, which GETs, what is cached); what each resource's JSON means is
in ``rackval.drivers.bmc.redfish_payloads``.

Absent is not failed: a resource the BMC does not implement (404/405/501) or a property it leaves
out is reported as such. Identity fields it lacks are empty (a BMC without a Managers member has
no firmware to give); a chassis without any temperature resource has no temperatures (empty); a
reading with no source at all (no power meter, no PowerState, no power limit, no PSU or fan
list, no event log) raises ``NotAvailable`` naming what was looked for, never a protocol error.
"""

from __future__ import annotations

import logging
from typing import Any

from rackval.core.errors import DeviceError, DeviceProtocolError, NotAvailable, protocol_errors
from rackval.drivers.bmc import redfish_payloads as payloads
from rackval.drivers.bmc.redfish_liquid import RedfishNodeCooling
from rackval.drivers.capabilities import (
    Bmc,
    Device,
    EventLog,
    Fans,
    FirmwareInventory,
    HostReset,
    Identity,
    LogEntry,
    PowerLimit,
    PowerMeter,
    PowerSupplies,
    PowerSupplyState,
    SensorThresholds,
    TemperatureThresholds,
    reset_refusal,
)
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import RedfishBmcOptions, parse_options
from rackval.drivers.transport.redfish import RedfishHttpError, RedfishTransport
from rackval.drivers.transport.redfish_json import WrongType, link, member_text, reading
from rackval.drivers.transport.redfish_resources import expand_advertised

log = logging.getLogger(__name__)


_MAX_LOG_PAGES = 50  # bounds paging through a log whose nextLink never ends (or repeats)


class RedfishBmc(
    RedfishNodeCooling,  # LiquidCooledNode, LeakDetection: coolant connectors, pumps, leak detectors
    Device,
    Bmc,
    PowerMeter,
    HostReset,
    PowerLimit,
    EventLog,
    FirmwareInventory,
    PowerSupplies,
    Fans,
    TemperatureThresholds,
):
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

    A liquid-cooled node's ``ThermalSubsystem`` links ``CoolantConnectors``, ``Pumps`` and
    ``LeakDetection`` (read as the CDU driver reads them: ``rackval.drivers.cooling``); an
    air-cooled node has none of them, and those readings are ``NotAvailable``.
    """

    options_model = RedfishBmcOptions

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        self.options = opts = parse_options(self.options_model, config.options, config.name)
        self._power_source = opts.power_source
        self._ids = {"system": opts.system_id, "chassis": opts.chassis_id, "manager": opts.manager_id}
        self._use_expand = opts.expand
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
    @protocol_errors("identify (Manufacturer, Model, SerialNumber, FirmwareVersion)")
    def identify(self) -> Identity:
        """From the System (Manufacturer, Model, SerialNumber) and its Manager (FirmwareVersion);
        what the BMC leaves out, Manager included, is empty."""
        system = self._transport.get(self._resource_path("system"))
        try:
            manager = self._get_optional(self._resource_path("manager")) or {}
        except RedfishHttpError as exc:  # no Managers collection: no firmware to report
            if exc.status not in (404, 405, 501):
                raise
            manager = {}
        except DeviceProtocolError:  # an empty Managers collection: likewise
            manager = {}
        return Identity(
            vendor=member_text(system, "Manufacturer"),
            model=member_text(system, "Model"),
            serial=member_text(system, "SerialNumber"),
            firmware=member_text(manager, "FirmwareVersion"),
        )

    def close(self) -> None:
        """Log out (delete the session) and close the connection; safe to call twice."""
        self._transport.close()

    # ---- Bmc ----------------------------------------------------------------------------------
    def power_state(self) -> str:
        """The host's PowerState as Redfish says it: On, Off, PoweringOn, PoweringOff, Paused."""
        path = self._resource_path("system")
        doc = self._transport.get(path)
        if "PowerState" not in doc or doc["PowerState"] is None:
            raise self._err(NotAvailable, f"read PowerState (GET {path})", "the system reports no PowerState")
        state = doc["PowerState"]
        if not isinstance(state, str) or not state:
            raise self._err(DeviceProtocolError, f"read PowerState (GET {path})", f"no PowerState: {state!r}")
        return state

    @protocol_errors("read temperatures")
    def temperatures(self) -> dict[str, float]:
        """Every temperature reading the chassis reports, in degrees Celsius, keyed by sensor name
        (empty for a chassis with no Thermal, Sensors or ThermalSubsystem resource)."""
        if self._thermal_from is not None:
            kind, path = self._thermal_from
            return self._read_thermal(kind, path)
        chassis = self._chassis()
        base = self._resource_path("chassis")
        candidates: list[tuple[str, str]] = [("legacy", link(chassis, "Thermal") or f"{base}/Thermal")]
        if sensors := link(chassis, "Sensors"):
            candidates.append(("sensors", sensors))
        if subsystem := link(chassis, "ThermalSubsystem"):
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
        log.info("%s: chassis %s has no Thermal, Sensors or ThermalSubsystem resource", self.name, base)
        return {}

    def _read_thermal(self, kind: str, path: str) -> dict[str, float]:
        if kind == "legacy":
            return self._legacy_thermal(path)
        if kind == "sensors":
            return self._sensor_temperatures(path)
        return self._thermal_metrics(path)

    def _legacy_thermal(self, path: str) -> dict[str, float]:
        return payloads.legacy_temperatures(self._transport.get(path))

    def _supports_expand(self) -> bool:
        if self._expand_ok is None:
            self._expand_ok = self._use_expand and expand_advertised(self._transport.get("/redfish/v1"))
        return self._expand_ok

    def _sensor_temperatures(self, path: str) -> dict[str, float]:
        """Temperature sensors of a Sensors collection: expanded in one GET if the BMC can."""
        docs: list[dict[str, Any]] = []
        if self._supports_expand():
            members = self._transport.get(f"{path}?$expand=.($levels=1)").get("Members")
            if payloads.expanded_sensors(members):
                docs = members
        if not docs:
            docs = [self._transport.get(member) for member in self._transport.members(path)]
        return payloads.sensor_temperatures(docs)

    def _thermal_metrics(self, subsystem_path: str) -> dict[str, float]:
        subsystem = self._transport.get(subsystem_path)
        path = link(subsystem, "ThermalMetrics") or f"{subsystem_path}/ThermalMetrics"
        return payloads.thermal_metrics_temperatures(self._transport.get(path))

    # ---- PowerMeter ---------------------------------------------------------------------------
    @protocol_errors("read power")
    def power_watts(self) -> float:
        """Input power of the chassis in watts, from the source chosen by option 'power_source'."""
        if self._power_from is not None:
            value = self._read_power(self._power_from, required=True)
            assert value is not None
            return value
        order = {"auto": ("environment", "legacy"), "environment": ("environment",), "legacy": ("legacy",)}[
            self._power_source
        ]
        for source in order:
            value = self._read_power(source, required=False)
            if value is not None:
                self._power_from = source
                return value
        base = self._resource_path("chassis")
        looked = {"environment": "EnvironmentMetrics PowerWatts.Reading",
                  "legacy": "Power PowerControl[0].PowerConsumedWatts"}  # fmt: skip
        raise self._err(
            NotAvailable,
            f"read power (chassis {base})",
            f"the chassis reports no {' and no '.join(looked[s] for s in order)}",
        )

    def _power_path(self, source: str) -> str:
        base = self._resource_path("chassis")
        chassis = self._chassis()
        if source == "environment":
            return link(chassis, "EnvironmentMetrics") or f"{base}/EnvironmentMetrics"
        return link(chassis, "Power") or f"{base}/Power"

    def _read_power(self, source: str, *, required: bool) -> float | None:
        """Watts from one source; None if the BMC lacks it and ``required`` is false."""
        path = self._power_path(source)
        doc = self._transport.get(path) if required else self._get_optional(path)
        if doc is None:
            return None
        field, value = payloads.power_reading(source, doc)
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
        if (refusal := reset_refusal(reset_type)) is not None:
            raise self._err(DeviceError, op, refusal)
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
        doc = self._get_optional(self._power_path(source))
        limit = payloads.power_limit(source, doc) if doc is not None else None
        return None if doc is None or limit is None else (doc, *limit)

    def _limit_source(self, operation: str) -> tuple[str, dict[str, Any], float | None, float | None]:
        for source in self._limit_order():
            found = self._read_limit(source)
            if found is not None:
                return (source, *found)
        raise self._err(
            NotAvailable,
            operation,
            f"chassis {self._resource_path('chassis')} reports no power limit "
            "(neither Power PowerControl[0].PowerLimit nor EnvironmentMetrics PowerLimitWatts)",
        )

    @protocol_errors("read power limit")
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
        be called. Written where ``power_limit()`` found the cap: legacy ``Power`` LimitInWatts
        (null removes it) or EnvironmentMetrics PowerLimitWatts (``redfish_payloads.power_limit_patch``).
        A value outside AllowableMin/AllowableMax (when reported) is refused before the PATCH.
        Returns when the BMC accepted the PATCH; read ``power_limit()`` back to confirm.
        """
        op = f"set power limit to {'none' if watts is None else f'{watts!r} W'}"
        if watts is not None and (isinstance(watts, bool) or not isinstance(watts, int | float) or watts <= 0):
            raise self._err(DeviceError, op, f"limit must be a positive number of watts or None, got {watts!r}")
        try:
            source, doc, _, _ = self._limit_source(op)
            body = payloads.power_limit_patch(source, doc, watts)
        except ValueError as exc:  # outside the allowable range: refused; a field of the wrong type: a fault
            raise self._err(DeviceProtocolError if isinstance(exc, WrongType) else DeviceError, op, str(exc)) from exc
        self._transport.patch(self._power_path(source), body)

    # ---- event log ----------------------------------------------------------------------------
    def _log_service_path(self) -> str:
        """The system's SEL log service: option ``log_service``, else Id "SEL", else the first."""
        if "log_service" in self._paths:
            return self._paths["log_service"]
        base = f"{self._resource_path('system')}/LogServices"
        configured = self.options.log_service
        if configured:
            path = f"{base}/{configured}"
        else:
            system = self._transport.get(self._resource_path("system"))
            collection = link(system, "LogServices") or base
            members = self._transport.members(collection)
            if not members:
                raise self._err(NotAvailable, f"find the SEL (GET {collection})", "system has no log services")
            sel = [m for m in members if m.rstrip("/").rsplit("/", 1)[-1].upper() == "SEL"]
            path = (sel or members)[0]
        self._paths["log_service"] = path
        return path

    @protocol_errors("read the event log (SEL)")
    def sel_entries(self) -> list[LogEntry]:
        """Every entry of the system's event log (SEL), in the order the BMC lists them.

        Follows ``@odata.nextLink`` / ``Members@odata.nextLink`` (bounded, and stopping when a
        page brings no new entry: some BMCs and static mockups ignore $skiptoken). Members that
        are only links are fetched one by one.
        """
        service_path = self._log_service_path()
        service = self._transport.get(service_path)
        page: str | None = link(service, "Entries") or f"{service_path}/Entries"
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
                out.append(payloads.log_entry(member))
            next_link = doc.get("Members@odata.nextLink") or doc.get("@odata.nextLink")
            page = next_link if isinstance(next_link, str) and next_link and fresh else None
        log.warning("%s: stopped reading %s after %d pages", self.name, service_path, _MAX_LOG_PAGES)
        return out

    # ---- firmware -----------------------------------------------------------------------------
    @protocol_errors("read the firmware inventory")
    def firmware_inventory(self) -> dict[str, str]:
        """{component name: version} from /redfish/v1/UpdateService/FirmwareInventory.

        One ``$expand`` GET when the service root advertises it (and option ``expand`` is not
        false), else one GET per member. Keyed by Name (Id when there is no Name; a repeated
        name gets its Id appended). Components without a Version are left out.
        """
        collection = "/redfish/v1/UpdateService/FirmwareInventory"
        root = self._transport.get("/redfish/v1")
        update = link(root, "UpdateService")
        if update:
            collection = link(self._transport.get(update), "FirmwareInventory") or collection
        docs: list[dict[str, Any]] = []
        if self._supports_expand():
            members = self._transport.get(f"{collection}?$expand=.($levels=1)").get("Members")
            if payloads.expanded_firmware(members):
                docs = members
        if not docs:
            docs = [self._transport.get(member) for member in self._transport.members(collection)]
        return payloads.firmware_versions(docs)

    # ---- power supplies -------------------------------------------------------------------------
    @protocol_errors("read power supplies")
    def power_supplies(self) -> dict[str, PowerSupplyState]:
        """Every PSU of the chassis, keyed by Name: status, health and whether it has line input.

        Legacy ``Chassis/{id}/Power`` PowerSupplies[] first (one GET for every PSU), else the
        ``PowerSubsystem/PowerSupplies`` members (one GET each, plus their ``Metrics`` for the
        input voltage and power). "Has input" comes from, in this order: ``LineInputStatus``
        (Normal = yes; LossOfInput / OutOfRange = no), a reported line input voltage (0 V = no),
        State ``UnavailableOffline`` (no); otherwise it is None (unknown). See ``redfish_payloads``.
        """
        legacy = self._get_optional(self._power_path("legacy"))
        if legacy is not None and (found := payloads.legacy_power_supplies(legacy)) is not None:
            return found
        base = self._resource_path("chassis")
        subsystem_path = link(self._chassis(), "PowerSubsystem")
        subsystem = self._get_optional(subsystem_path) if subsystem_path else None
        collection = link(subsystem, "PowerSupplies") if subsystem is not None else None
        if collection is None:
            raise self._err(
                NotAvailable,
                f"read power supplies (chassis {base})",
                "chassis reports neither Power PowerSupplies nor PowerSubsystem PowerSupplies",
            )
        out: dict[str, PowerSupplyState] = {}
        for member in self._transport.members(collection):
            doc = self._transport.get(member)
            name = member_text(doc, "Name", f"{member} Name") or member_text(doc, "Id", f"{member} Id") or member
            volts = watts = None
            metrics_path = link(doc, "Metrics")
            metrics = self._get_optional(metrics_path) if metrics_path else None
            if metrics is not None:
                volts = reading(metrics, "InputVoltage", f"{metrics_path} InputVoltage")
                watts = reading(metrics, "InputPowerWatts", f"{metrics_path} InputPowerWatts")
            out[name] = payloads.psu_state(name, doc, volts, watts)
        return out

    @protocol_errors("read temperature thresholds")
    def sensor_thresholds(self) -> dict[str, SensorThresholds]:
        """Upper caution / critical thresholds of the temperature sensors, keyed like ``temperatures()``.

        From legacy ``Thermal`` Temperatures[] (UpperThresholdNonCritical / UpperThresholdCritical)
        or, without it, the chassis ``Sensors`` (Thresholds.UpperCaution / UpperCritical .Reading).
        A sensor whose BMC reports no threshold is left out.
        """
        chassis = self._chassis()
        base = self._resource_path("chassis")
        thermal = self._get_optional(link(chassis, "Thermal") or f"{base}/Thermal")
        if thermal is not None and (found := payloads.legacy_thresholds(thermal)) is not None:
            return found
        out: dict[str, SensorThresholds] = {}
        sensors = link(chassis, "Sensors")
        if sensors is None:
            return out
        for member in self._transport.members(sensors):
            if (named := payloads.sensor_thresholds(self._transport.get(member))) is not None:
                out[named[0]] = named[1]
        return out

    @protocol_errors("read fans")
    def fans(self) -> dict[str, float | None]:
        """Every chassis fan's speed in RPM, keyed by fan Name (None: the BMC gives no RPM).

        Legacy ``Chassis/{id}/Thermal`` Fans[] (one GET; ``Reading`` in ``ReadingUnits`` RPM)
        first, else the ``ThermalSubsystem/Fans`` members (``SpeedPercent.SpeedRPM``). A stopped
        fan reads 0: load soaks judge fan speeds against a minimum.
        """
        chassis = self._chassis()
        base = self._resource_path("chassis")
        thermal = self._get_optional(link(chassis, "Thermal") or f"{base}/Thermal")
        if thermal is not None and (found := payloads.legacy_fans(thermal)) is not None:
            return found
        subsystem_path = link(chassis, "ThermalSubsystem")
        subsystem = self._get_optional(subsystem_path) if subsystem_path else None
        collection = link(subsystem, "Fans") if subsystem is not None else None
        if collection is None:
            raise self._err(
                NotAvailable,
                f"read fans (chassis {base})",
                "chassis reports neither Thermal Fans nor ThermalSubsystem Fans",
            )
        out: dict[str, float | None] = {}
        for member in self._transport.members(collection):
            doc = self._transport.get(member)
            name = member_text(doc, "Name", f"{member} Name") or member_text(doc, "Id", f"{member} Id") or member
            out[name] = payloads.fan_rpm(doc)
        return out
