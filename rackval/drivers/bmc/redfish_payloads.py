"""What a Redfish BMC's JSON documents mean: pure functions from one resource to readings and records.

``rackval.drivers.bmc.redfish.RedfishBmc`` decides *where* to read (which of the standard
resources a BMC implements, in which order, cached once found) and does the GETs; this module
knows what each resource's payload says: the legacy ``Power`` / ``Thermal`` resources
(deprecated since 2020, still on most BMCs), their successors ``EnvironmentMetrics``,
``Sensors``, ``ThermalSubsystem`` and ``PowerSubsystem``, log entries and the firmware
inventory. Being pure (documents in, values out), every rule here can be tested on captured
payloads of real BMCs without a server.

Rules for every function: a JSON number is a float, anything else (null, a string, a boolean)
is "not reported" (``None``), never coerced; a sensor or component without a value is left out;
a repeated name gets its member id appended instead of overwriting. A payload whose *shape* is
wrong raises ``ValueError`` (the driver turns it into a DeviceProtocolError naming the GET).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rackval.drivers.capabilities import LogEntry, PowerSupplyState, SensorThresholds

_NO_INPUT_STATUS = frozenset({"LossOfInput", "OutOfRange"})


# ---- values and links ----------------------------------------------------------------------------
def number(value: Any) -> float | None:
    """A JSON number as float; None for null, strings and booleans (never coerce silently)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def reading(value: Any) -> float | None:
    """``{"Reading": x}`` (Redfish SensorExcerpt / Threshold) as float, else None."""
    return number(value.get("Reading")) if isinstance(value, dict) else None


def link(doc: Mapping[str, Any], key: str) -> str | None:
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


def expand_advertised(service_root: Mapping[str, Any]) -> bool:
    """True when the service root's ProtocolFeaturesSupported.ExpandQuery offers $expand."""
    features = service_root.get("ProtocolFeaturesSupported")
    expand = features.get("ExpandQuery") if isinstance(features, dict) else None
    return isinstance(expand, dict) and bool(expand.get("Levels") or expand.get("ExpandAll"))


# ---- temperatures -------------------------------------------------------------------------------
def legacy_temperatures(thermal: Mapping[str, Any]) -> dict[str, float]:
    """``Chassis/{id}/Thermal`` Temperatures[] -> {Name: ReadingCelsius}."""
    temps = thermal.get("Temperatures", [])
    if not isinstance(temps, list):
        raise ValueError("'Temperatures' is not an array")
    out: dict[str, float] = {}
    for entry in temps:
        if not isinstance(entry, dict):
            continue
        value = number(entry.get("ReadingCelsius"))
        if value is None:
            continue
        name = str(entry.get("Name") or entry.get("MemberId") or f"Temperature {len(out)}")
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
    for doc in sensors:
        if not is_temperature_sensor(doc):
            continue
        value = number(doc.get("Reading"))
        if value is None:
            continue
        _put_unique(out, str(doc.get("Name") or doc.get("Id")), value, doc.get("Id"))
    return out


def thermal_metrics_temperatures(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``ThermalSubsystem/ThermalMetrics``: TemperatureReadingsCelsius[] by DeviceName, else the summary."""
    out: dict[str, float] = {}
    readings = metrics.get("TemperatureReadingsCelsius")
    if isinstance(readings, list):
        for entry in readings:
            if isinstance(entry, dict) and (value := number(entry.get("Reading"))) is not None:
                _put_unique(out, str(entry.get("DeviceName") or f"Sensor {len(out)}"), value, None)
    summary = metrics.get("TemperatureSummaryCelsius")
    if not out and isinstance(summary, dict):
        for key, entry in summary.items():
            if isinstance(entry, dict) and (value := number(entry.get("Reading"))) is not None:
                out[key] = value
    return out


def legacy_thresholds(thermal: Mapping[str, Any]) -> dict[str, SensorThresholds] | None:
    """Thermal Temperatures[] UpperThresholdNonCritical / UpperThresholdCritical by Name; None
    when the resource has no Temperatures array. Sensors without either threshold are left out."""
    temps = thermal.get("Temperatures")
    if not isinstance(temps, list):
        return None
    out: dict[str, SensorThresholds] = {}
    for entry in temps:
        if not isinstance(entry, dict):
            continue
        limits = SensorThresholds(
            number(entry.get("UpperThresholdNonCritical")), number(entry.get("UpperThresholdCritical"))
        )
        if limits.caution is not None or limits.critical is not None:
            out[str(entry.get("Name") or entry.get("MemberId"))] = limits
    return out


def sensor_thresholds(sensor: Mapping[str, Any]) -> tuple[str, SensorThresholds] | None:
    """(Name, Thresholds.UpperCaution / UpperCritical) of a temperature Sensor; None for another
    kind of sensor or one without either threshold."""
    if not is_temperature_sensor(sensor):
        return None
    thresholds = sensor.get("Thresholds") if isinstance(sensor.get("Thresholds"), dict) else {}
    limits = SensorThresholds(reading(thresholds.get("UpperCaution")), reading(thresholds.get("UpperCritical")))
    if limits.caution is None and limits.critical is None:
        return None
    return str(sensor.get("Name") or sensor.get("Id")), limits


# ---- fans ---------------------------------------------------------------------------------------
def legacy_fans(thermal: Mapping[str, Any]) -> dict[str, float | None] | None:
    """Thermal Fans[] -> {Name: Reading in RPM, None when in another unit}; None without fans there."""
    fans = thermal.get("Fans")
    if not isinstance(fans, list) or not fans:
        return None
    out: dict[str, float | None] = {}
    for i, entry in enumerate(fans):
        if isinstance(entry, dict):
            rpm = number(entry.get("Reading")) if entry.get("ReadingUnits", "RPM") == "RPM" else None
            out[str(entry.get("Name") or entry.get("MemberId") or f"Fan {i}")] = rpm
    return out


def fan_rpm(fan: Mapping[str, Any]) -> float | None:
    """A ThermalSubsystem Fan's SpeedPercent.SpeedRPM."""
    speed = fan.get("SpeedPercent") if isinstance(fan.get("SpeedPercent"), dict) else {}
    return number(speed.get("SpeedRPM"))


# ---- power draw and power limit ----------------------------------------------------------------
def power_reading(source: str, doc: Mapping[str, Any]) -> tuple[str, float | None]:
    """(field read, watts or None) from ``EnvironmentMetrics`` PowerWatts.Reading (source
    "environment") or legacy ``Power`` PowerControl[0].PowerConsumedWatts (source "legacy")."""
    if source == "environment":
        power = doc.get("PowerWatts")
        return "PowerWatts.Reading", number(power.get("Reading")) if isinstance(power, dict) else None
    control = doc.get("PowerControl")
    first = control[0] if isinstance(control, list) and control else None
    value = number(first.get("PowerConsumedWatts")) if isinstance(first, dict) else None
    return "PowerControl[0].PowerConsumedWatts", value


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
        return number(limit.get("LimitInWatts")), number(limit.get("CorrectionInMs"))
    limit = doc.get("PowerLimitWatts")
    if not isinstance(limit, dict):
        return None
    return (None if limit.get("ControlMode") == "Disabled" else number(limit.get("SetPoint"))), None


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
    low, high = number(limit.get("AllowableMin")), number(limit.get("AllowableMax"))
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


def legacy_power_supplies(power: Mapping[str, Any]) -> dict[str, PowerSupplyState] | None:
    """Legacy ``Power`` PowerSupplies[] by Name (LineInputVoltage, PowerInputWatts); None without any."""
    supplies = power.get("PowerSupplies")
    if not isinstance(supplies, list) or not supplies:
        return None
    out: dict[str, PowerSupplyState] = {}
    for i, doc in enumerate(supplies):
        if isinstance(doc, dict):
            name = str(doc.get("Name") or doc.get("MemberId") or f"PSU {i}")
            out[name] = psu_state(name, doc, number(doc.get("LineInputVoltage")), number(doc.get("PowerInputWatts")))
    return out


# ---- event log and firmware ---------------------------------------------------------------------
def log_entry(doc: Mapping[str, Any]) -> LogEntry:
    """A LogEntry resource as a record (missing members are empty strings)."""

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


def expanded_firmware(members: Any) -> bool:
    """True when an ``$expand``-ed FirmwareInventory's members are the components themselves."""
    return isinstance(members, list) and bool(members) and all(isinstance(m, dict) and "Version" in m for m in members)


def firmware_versions(components: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """SoftwareInventory resources -> {Name (Id without a Name): Version}; without a Version, left out."""
    out: dict[str, str] = {}
    for doc in components:
        version = doc.get("Version")
        if version is None or version == "":
            continue
        name = str(doc.get("Name") or doc.get("Id") or doc.get("@odata.id"))
        if name in out:
            name = f"{name} ({doc.get('Id')})"
        out[name] = str(version)
    return out
