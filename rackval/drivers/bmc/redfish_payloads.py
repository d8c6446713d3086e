"""What a Redfish BMC's JSON documents mean: pure functions from one resource to readings and records.

``rackval.drivers.bmc.redfish.RedfishBmc`` decides *where* to read (which of the standard
resources a BMC implements, in which order, cached once found) and does the GETs; this module
knows what each resource's payload says: the legacy ``Power`` / ``Thermal`` resources
(deprecated since 2020, still on most BMCs), their successors ``EnvironmentMetrics``,
``Sensors``, ``ThermalSubsystem`` and ``PowerSubsystem``, log entries and the firmware
inventory. Being pure (documents in, values out), every rule here can be tested on captured
payloads of real BMCs without a server.

Rules for every function: a reading is a finite JSON number (a float here) or null / absent
("not reported": ``None``); a name or a status is a JSON string or null. Anything else (a
string for a number, an object for a name, ``1e999``) is a device fault, never coerced: the
accessors of ``rackval.drivers.transport.redfish_json`` raise ``WrongType`` naming the field
(e.g. ``Temperatures[2].ReadingCelsius``) and what arrived. A sensor or component without a
value is left out; a repeated name gets its member id appended instead of overwriting. A
payload whose *shape* is wrong raises ``ValueError`` too; the driver turns both into a
DeviceProtocolError naming what it was reading (``rackval.core.errors.protocol_errors``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rackval.drivers.capabilities import LogEntry, PowerSupplyState, SensorThresholds
from rackval.drivers.transport.redfish_json import number, reading, text

_NO_INPUT_STATUS = frozenset({"LossOfInput", "OutOfRange"})


# ---- values and names ----------------------------------------------------------------------------
def _name(doc: Mapping[str, Any], where: str, *keys: str) -> str | None:
    """The first of ``keys`` that ``doc`` reports as a non-empty string (each must be a string)."""
    for key in keys:
        value = text(doc.get(key), f"{where}.{key}" if where else key)
        if value:
            return value
    return None


def _entries(doc: Mapping[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    """``doc[key]`` (an array, or absent) as (field path, member object); members that are not
    objects are skipped (a null in an array is a BMC's way of saying "not populated")."""
    items = doc.get(key, [])
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError(f"{key!r} is not an array")
    return [(f"{key}[{i}]", entry) for i, entry in enumerate(items) if isinstance(entry, dict)]


def _put_unique(out: dict[str, float], name: str, value: float, member_id: Any) -> None:
    """Store a reading; a repeated sensor name gets its member id appended instead of overwriting."""
    key = name
    if key in out:
        key = f"{name} ({member_id})" if member_id is not None else f"{name} #{len(out)}"
    out[key] = value


# ---- temperatures -------------------------------------------------------------------------------
def legacy_temperatures(thermal: Mapping[str, Any]) -> dict[str, float]:
    """``Chassis/{id}/Thermal`` Temperatures[] -> {Name: ReadingCelsius}."""
    out: dict[str, float] = {}
    for where, entry in _entries(thermal, "Temperatures"):
        value = number(entry.get("ReadingCelsius"), f"{where}.ReadingCelsius")
        if value is None:
            continue
        name = _name(entry, where, "Name", "MemberId") or f"Temperature {len(out)}"
        _put_unique(out, name, value, entry.get("MemberId"))
    return out


def expanded_sensors(members: Any) -> bool:
    """True when a ``$expand``-ed Sensors collection's members are the sensors themselves (not links)."""
    return isinstance(members, list) and all(
        isinstance(m, dict) and ("Reading" in m or "ReadingUnits" in m or "ReadingType" in m) for m in members
    )


def is_temperature_sensor(sensor: Mapping[str, Any]) -> bool:
    return sensor.get("ReadingType") == "Temperature" or sensor.get("ReadingUnits") == "Cel"


def sensor_temperatures(sensors: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The temperature sensors (ReadingType Temperature or units Cel) of a Sensors collection -> {Name: Reading}."""
    out: dict[str, float] = {}
    for i, doc in enumerate(sensors):
        if not is_temperature_sensor(doc):
            continue
        where = _where(doc, f"Sensors member {i}")
        value = number(doc.get("Reading"), f"{where} Reading")
        if value is None:
            continue
        _put_unique(out, _name(doc, where, "Name", "Id") or where, value, doc.get("Id"))
    return out


def _where(doc: Mapping[str, Any], fallback: str) -> str:
    """How an error names a resource: its @odata.id when it has one."""
    oid = doc.get("@odata.id")
    return oid if isinstance(oid, str) and oid else fallback


def thermal_metrics_temperatures(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``ThermalSubsystem/ThermalMetrics``: TemperatureReadingsCelsius[] by DeviceName, else the summary."""
    out: dict[str, float] = {}
    for where, entry in _entries(metrics, "TemperatureReadingsCelsius"):
        if (value := number(entry.get("Reading"), f"{where}.Reading")) is not None:
            _put_unique(out, _name(entry, where, "DeviceName") or f"Sensor {len(out)}", value, None)
    summary = metrics.get("TemperatureSummaryCelsius")
    if not out and isinstance(summary, dict):
        for key, entry in summary.items():
            value = reading(summary, key, f"TemperatureSummaryCelsius.{key}") if isinstance(entry, dict) else None
            if value is not None:
                out[key] = value
    return out


def legacy_thresholds(thermal: Mapping[str, Any]) -> dict[str, SensorThresholds] | None:
    """Thermal Temperatures[] UpperThresholdNonCritical / UpperThresholdCritical by Name; None
    when the resource has no Temperatures array. Sensors without either threshold are left out."""
    if not isinstance(thermal.get("Temperatures"), list):
        return None
    out: dict[str, SensorThresholds] = {}
    for where, entry in _entries(thermal, "Temperatures"):
        limits = SensorThresholds(
            number(entry.get("UpperThresholdNonCritical"), f"{where}.UpperThresholdNonCritical"),
            number(entry.get("UpperThresholdCritical"), f"{where}.UpperThresholdCritical"),
        )
        if limits.caution is not None or limits.critical is not None:
            out[_name(entry, where, "Name", "MemberId") or where] = limits
    return out


def sensor_thresholds(sensor: Mapping[str, Any]) -> tuple[str, SensorThresholds] | None:
    """(Name, Thresholds.UpperCaution / UpperCritical) of a temperature Sensor; None for another
    kind of sensor or one without either threshold."""
    if not is_temperature_sensor(sensor):
        return None
    where = _where(sensor, "sensor")
    thresholds = sensor.get("Thresholds") if isinstance(sensor.get("Thresholds"), dict) else {}
    limits = SensorThresholds(
        reading(thresholds, "UpperCaution", f"{where} Thresholds.UpperCaution"),
        reading(thresholds, "UpperCritical", f"{where} Thresholds.UpperCritical"),
    )
    if limits.caution is None and limits.critical is None:
        return None
    return _name(sensor, where, "Name", "Id") or where, limits


# ---- fans ---------------------------------------------------------------------------------------
def legacy_fans(thermal: Mapping[str, Any]) -> dict[str, float | None] | None:
    """Thermal Fans[] -> {Name: Reading in RPM, None when in another unit}; None without fans there."""
    fans = thermal.get("Fans")
    if not isinstance(fans, list) or not fans:
        return None
    out: dict[str, float | None] = {}
    for i, (where, entry) in enumerate(_entries(thermal, "Fans")):
        units = text(entry.get("ReadingUnits"), f"{where}.ReadingUnits") or "RPM"
        rpm = number(entry.get("Reading"), f"{where}.Reading") if units == "RPM" else None
        out[_name(entry, where, "Name", "MemberId") or f"Fan {i}"] = rpm
    return out


def fan_rpm(fan: Mapping[str, Any]) -> float | None:
    """A ThermalSubsystem Fan's SpeedPercent.SpeedRPM."""
    speed = fan.get("SpeedPercent") if isinstance(fan.get("SpeedPercent"), dict) else {}
    return number(speed.get("SpeedRPM"), f"{_where(fan, 'fan')} SpeedPercent.SpeedRPM")


# ---- power draw and power limit ----------------------------------------------------------------
def power_reading(source: str, doc: Mapping[str, Any]) -> tuple[str, float | None]:
    """(field read, watts or None) from ``EnvironmentMetrics`` PowerWatts.Reading (source
    "environment") or legacy ``Power`` PowerControl[0].PowerConsumedWatts (source "legacy")."""
    if source == "environment":
        return "PowerWatts.Reading", reading(doc, "PowerWatts")
    field = "PowerControl[0].PowerConsumedWatts"
    control = doc.get("PowerControl")
    first = control[0] if isinstance(control, list) and control else None
    return field, number(first.get("PowerConsumedWatts"), field) if isinstance(first, dict) else None


def power_limit(source: str, doc: Mapping[str, Any]) -> tuple[float | None, float | None] | None:
    """(limit W or None when uncapped, CorrectionInMs or None) from legacy ``Power``
    PowerControl[0].PowerLimit or ``EnvironmentMetrics`` PowerLimitWatts (ControlMode "Disabled"
    = uncapped; no correction time); None when the resource carries no limit at all."""
    if source == "legacy":
        control = doc.get("PowerControl")
        first = control[0] if isinstance(control, list) and control else None
        limit = first.get("PowerLimit") if isinstance(first, dict) else None
        if not isinstance(limit, dict):
            return None
        where = "PowerControl[0].PowerLimit"
        return number(limit.get("LimitInWatts"), f"{where}.LimitInWatts"), number(
            limit.get("CorrectionInMs"), f"{where}.CorrectionInMs"
        )
    limit = doc.get("PowerLimitWatts")
    if not isinstance(limit, dict):
        return None
    if text(limit.get("ControlMode"), "PowerLimitWatts.ControlMode") == "Disabled":
        return None, None
    return number(limit.get("SetPoint"), "PowerLimitWatts.SetPoint"), None


def power_limit_patch(source: str, doc: Mapping[str, Any], watts: float | None) -> dict[str, Any]:
    """The PATCH body that sets the cap to ``watts`` (None removes it) on the resource ``doc``.

    Legacy: ``PowerControl[0].PowerLimit.LimitInWatts`` (null removes the cap, per the Power
    schema). EnvironmentMetrics: ``PowerLimitWatts.SetPoint``, and ControlMode "Disabled" to
    remove the cap [U: BMCs differ; some want the Control resource instead]. ValueError for a
    value outside AllowableMin/AllowableMax (when reported).
    """
    if source == "legacy":
        return {"PowerControl": [{"PowerLimit": {"LimitInWatts": watts}}]}
    limit = doc.get("PowerLimitWatts", {})
    low = number(limit.get("AllowableMin"), "PowerLimitWatts.AllowableMin")
    high = number(limit.get("AllowableMax"), "PowerLimitWatts.AllowableMax")
    if watts is not None and ((low is not None and watts < low) or (high is not None and watts > high)):
        raise ValueError(f"outside the BMC's allowable range {low}..{high} W (AllowableMin/Max)")
    return (
        {"PowerLimitWatts": {"ControlMode": "Disabled"}} if watts is None else {"PowerLimitWatts": {"SetPoint": watts}}
    )


# ---- power supplies -----------------------------------------------------------------------------
def psu_state(name: str, doc: Mapping[str, Any], volts: float | None, watts: float | None) -> PowerSupplyState:
    """One PSU. "Has input" from, in this order: ``LineInputStatus`` (Normal = yes; LossOfInput /
    OutOfRange = no), the line input voltage (0 V = no), State ``UnavailableOffline`` (no);
    otherwise None (unknown)."""
    status = doc.get("Status") if isinstance(doc.get("Status"), dict) else {}
    state = text(status.get("State"), f"{name} Status.State") or ""
    health = text(status.get("Health"), f"{name} Status.Health") or ""
    line = text(doc.get("LineInputStatus"), f"{name} LineInputStatus")
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


def legacy_power_supplies(power: Mapping[str, Any]) -> dict[str, PowerSupplyState] | None:
    """Legacy ``Power`` PowerSupplies[] by Name (LineInputVoltage, PowerInputWatts); None without any."""
    supplies = power.get("PowerSupplies")
    if not isinstance(supplies, list) or not supplies:
        return None
    out: dict[str, PowerSupplyState] = {}
    for i, (where, doc) in enumerate(_entries(power, "PowerSupplies")):
        name = _name(doc, where, "Name", "MemberId") or f"PSU {i}"
        volts = number(doc.get("LineInputVoltage"), f"{where}.LineInputVoltage")
        out[name] = psu_state(name, doc, volts, number(doc.get("PowerInputWatts"), f"{where}.PowerInputWatts"))
    return out


# ---- event log and firmware ---------------------------------------------------------------------
def log_entry(doc: Mapping[str, Any]) -> LogEntry:
    """A LogEntry resource as a record (missing members are empty strings)."""
    where = _where(doc, "log entry")

    def field(key: str) -> str:
        return text(doc.get(key), f"{where} {key}") or ""

    return LogEntry(
        id=field("Id"),
        created=field("Created"),
        severity=field("Severity"),
        message=field("Message"),
        message_id=field("MessageId"),
    )


def expanded_firmware(members: Any) -> bool:
    """True when an ``$expand``-ed FirmwareInventory's members are the components themselves."""
    return isinstance(members, list) and bool(members) and all(isinstance(m, dict) and "Version" in m for m in members)


def firmware_versions(components: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """SoftwareInventory resources -> {Name (Id without a Name): Version}; without a Version, left out."""
    out: dict[str, str] = {}
    for i, doc in enumerate(components):
        where = _where(doc, f"FirmwareInventory member {i}")
        version = text(doc.get("Version"), f"{where} Version")
        if not version:
            continue
        name = _name(doc, where, "Name", "Id") or where
        if name in out:
            name = f"{name} ({doc.get('Id')})"
        out[name] = version
    return out
