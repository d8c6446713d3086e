"""The Redfish power resources of a simulated node's chassis, and its power limit.

Why a module of its own: the node power limit can be set through two schemas — the legacy
``Power`` resource (PowerControl[0].PowerLimit: LimitInWatts, CorrectionInMs, LimitException)
and ``EnvironmentMetrics`` (PowerLimitWatts: SetPoint, ControlMode) — and both must check the
same allowed range and leave the same cap on the model, so both live here with that range.

What is served, read from the model at request time: ``Chassis/1/Power`` (PowerControl with a
PATCH-able PowerLimit, PowerSupplies), ``PowerSubsystem``, ``PowerSupplies/{id}`` (+ ``Metrics``)
and ``EnvironmentMetrics`` (power, exhaust temperature, fan speeds, PATCH-able PowerLimitWatts).
"""

from __future__ import annotations

import math
from typing import Any

from rackval.sim.model import psu_efficiency
from rackval.sim.redfish_readings import NodeReadings, psu_status, worst
from rackval.sim.redfish_schema import (
    CHASSIS,
    POWER_SUPPLIES,
    SENSORS,
    SYSTEM,
    RedfishError,
    collection,
    ref,
    resource,
    status_doc,
)
from rackval.sim.redfish_state import BmcState, Route

LIMIT_EXCEPTIONS = ("NoAction", "HardPowerOff", "LogEventOnly", "Oem")
CONTROL_MODES = ("Automatic", "Override", "Manual", "Disabled")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class PowerResources:
    """Builds the power documents of one node's chassis and applies power-limit PATCHes."""

    def __init__(self, state: BmcState, readings: NodeReadings) -> None:
        self.state = state
        self.model = state.model
        self.readings = readings

    def routes(self) -> dict[str, Route]:
        psus = self.readings.psus
        r = {
            f"{CHASSIS}/Power": Route(self.power, patch=self.patch_power),
            f"{CHASSIS}/EnvironmentMetrics": Route(self.environment_metrics, patch=self.patch_environment),
            f"{CHASSIS}/PowerSubsystem": Route(self.power_subsystem),
            POWER_SUPPLIES: Route(
                lambda: collection("PowerSupplyCollection", POWER_SUPPLIES, [f"{POWER_SUPPLIES}/{p}" for p in psus])
            ),
        }
        for psu in psus:
            r[f"{POWER_SUPPLIES}/{psu}"] = Route(lambda psu=psu: self.power_supply(psu))
            r[f"{POWER_SUPPLIES}/{psu}/Metrics"] = Route(lambda psu=psu: self.power_supply_metrics(psu))
        return r

    # ---- the power limit ----------------------------------------------------------------------
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

    def _check_limit(self, watts: Any, where: str) -> float:
        if not _number(watts):
            raise RedfishError(400, "PropertyValueTypeError", f"The value for the property {where} must be a number.")
        low, high = self._limit_range()
        if not low <= watts <= high:
            message = f"The value {watts} for the property {where} is outside the supported range {low}..{high}."
            raise RedfishError(400, "PropertyValueOutOfRange", message)
        return float(watts)

    # ---- legacy Power -------------------------------------------------------------------------
    def power(self) -> dict[str, Any]:
        model, node = self.model, self.state.node
        n = model.nodes[node]
        cap = model.power_cap(node)
        with self.state.lock:
            correction, exception = self.state.correction_ms, self.state.limit_exception
        supplies = []
        for i, psu in enumerate(self.readings.psus):
            r = self.readings.psu_readings(psu)
            supplies.append(
                {
                    "@odata.id": f"{CHASSIS}/Power#/PowerSupplies/{i}",
                    "MemberId": str(i),
                    "Name": psu,
                    "Status": psu_status(r["status"]),
                    "PowerSupplyType": "AC",
                    "LineInputVoltageType": "ACWideRange",
                    "LineInputVoltage": r["volts"],
                    "PowerInputWatts": r["input_w"],
                    "LastPowerOutputWatts": r["output_w"],
                    "PowerCapacityWatts": r["rated_w"],
                    "FirmwareVersion": model.firmware(node).get(psu, ""),
                    "RelatedItem": [ref(CHASSIS)],
                }
            )
        return resource(
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
                    "Status": status_doc(),
                    "RelatedItem": [ref(SYSTEM), ref(CHASSIS)],
                }
            ],
            PowerSupplies=supplies,
        )

    def patch_power(self, body: dict[str, Any]) -> None:
        """PATCH PowerControl[0].PowerLimit: LimitInWatts (null removes), CorrectionInMs, LimitException."""
        for key in body:
            if key != "PowerControl":
                raise RedfishError(400, "PropertyNotWritable", f"The property {key} is a read only property.")
        controls = body["PowerControl"]
        if not isinstance(controls, list) or len(controls) != 1 or not isinstance(controls[0], dict):
            raise RedfishError(400, "PropertyValueFormatError", "PowerControl must be an array of one object.")
        for key in controls[0]:
            if key != "PowerLimit":
                raise RedfishError(400, "PropertyNotWritable", f"The property PowerControl/0/{key} is not writable.")
        limit = controls[0].get("PowerLimit", {})
        if not isinstance(limit, dict):
            raise RedfishError(400, "PropertyValueTypeError", "PowerLimit must be an object.")
        unknown = set(limit) - {"LimitInWatts", "CorrectionInMs", "LimitException"}
        if unknown:
            raise RedfishError(
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
                raise RedfishError(400, "PropertyValueTypeError", "CorrectionInMs must be a non-negative integer.")
            correction = value
        exception = limit.get("LimitException")
        if exception is not None and exception not in LIMIT_EXCEPTIONS:
            raise RedfishError(
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

    # ---- PowerSubsystem -----------------------------------------------------------------------
    def power_subsystem(self) -> dict[str, Any]:
        n = self.model.nodes[self.state.node]
        healths = [psu_status(self.model.psu_status(self.state.node, p))["Health"] for p in self.readings.psus]
        return resource(
            f"{CHASSIS}/PowerSubsystem",
            "PowerSubsystem",
            Id="PowerSubsystem",
            Name="Power Subsystem",
            CapacityWatts=sum(p.rated_w for p in n.psus),
            PowerSupplies=ref(POWER_SUPPLIES),
            Status=status_doc("Enabled", "OK", worst(healths)),
        )

    def power_supply(self, psu: str) -> dict[str, Any]:
        r = self.readings.psu_readings(psu)
        return resource(
            f"{POWER_SUPPLIES}/{psu}",
            "PowerSupply",
            Id=psu,
            Name=psu,
            Status=psu_status(r["status"]),
            LineInputStatus="LossOfInput" if r["status"] == "NoInput" else "Normal",
            PowerSupplyType="AC",
            PowerCapacityWatts=r["rated_w"],
            FirmwareVersion=self.model.firmware(self.state.node).get(psu, ""),
            HotPluggable=True,
            Metrics=ref(f"{POWER_SUPPLIES}/{psu}/Metrics"),
        )

    def power_supply_metrics(self, psu: str) -> dict[str, Any]:
        r = self.readings.psu_readings(psu)
        return resource(
            f"{POWER_SUPPLIES}/{psu}/Metrics",
            "PowerSupplyMetrics",
            Id="Metrics",
            Name=f"Metrics for {psu}",
            Status=psu_status(r["status"]),
            InputVoltage={"Reading": r["volts"], "DataSourceUri": f"{SENSORS}/{psu}InputVoltage"},
            InputPowerWatts={"Reading": r["input_w"], "DataSourceUri": f"{SENSORS}/{psu}InputPower"},
            OutputPowerWatts={"Reading": r["output_w"], "DataSourceUri": f"{SENSORS}/{psu}OutputPower"},
        )

    # ---- EnvironmentMetrics -------------------------------------------------------------------
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
        return resource(
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
                for i, rpm, duty, _ in self.readings.fan_readings()
            ],
            PowerLimitWatts=limit,
        )

    def patch_environment(self, body: dict[str, Any]) -> None:
        """PATCH PowerLimitWatts: SetPoint applies a cap, ControlMode Disabled removes it."""
        for key in body:
            if key != "PowerLimitWatts":
                raise RedfishError(400, "PropertyNotWritable", f"The property {key} is a read only property.")
        limit = body["PowerLimitWatts"]
        if not isinstance(limit, dict):
            raise RedfishError(400, "PropertyValueTypeError", "PowerLimitWatts must be an object.")
        for key in limit:
            if key not in ("SetPoint", "ControlMode"):
                raise RedfishError(400, "PropertyNotWritable", f"The property PowerLimitWatts/{key} is not writable.")
        mode = limit.get("ControlMode")
        if mode is not None and mode not in CONTROL_MODES:
            raise RedfishError(400, "PropertyValueNotInList", f"The value {mode!r} for ControlMode is not allowed.")
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
                raise RedfishError(400, "PropertyMissing", "The property SetPoint is needed to enable the power limit.")
            return
        model.set_power_cap(node, watts, correction)
