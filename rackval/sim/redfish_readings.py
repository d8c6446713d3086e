"""What the simulated BMC's sensors read from the model, and the health it derives from them.

Why a module of its own: several Redfish resources show the same reading (a PSU's input watts is
in the legacy Power resource, in PowerSupplyMetrics and in a Sensor; a GPU temperature in
Thermal, ThermalMetrics and a Sensor), so each reading is taken in one place — through the BMC's
meter where a real BMC has one — and every resource builder asks ``NodeReadings`` for it. The
health rules (thresholds, a PSU without input, a failed fan, the worst of a set) live here too,
so the Status of a sensor and the HealthRollup of its chassis cannot disagree.
"""

from __future__ import annotations

import uuid
from typing import Any

from rackval.sim.model import RackModel
from rackval.sim.redfish_schema import status_doc

_HEALTH_ORDER = {"OK": 0, "Warning": 1, "Critical": 2}


def worst(healths: list[str]) -> str:
    return max(healths, key=lambda h: _HEALTH_ORDER[h], default="OK")


def threshold_health(value: float, caution: float, critical: float) -> str:
    if value >= critical:
        return "Critical"
    return "Warning" if value >= caution else "OK"


def psu_status(status: str) -> dict[str, str]:
    """Model PSU status -> Redfish Status: no input is offline, a failed unit is enabled but critical."""
    if status == "OK":
        return status_doc()
    if status == "NoInput":
        return status_doc("UnavailableOffline", "Critical")
    return status_doc("Enabled", "Critical")


def fan_status(rpm: int, failed: bool) -> dict[str, str]:
    if failed:
        return status_doc("Enabled", "Critical")
    return status_doc() if rpm > 0 else status_doc("StandbyOffline", "OK")


def stable_uuid(serial: str) -> str:
    """A UUID derived from a serial number: the same device has the same UUID in every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"rackval-sim/{serial}"))


class NodeReadings:
    """The readings of one node's sensors as its BMC reports them (call under the model's lock)."""

    def __init__(self, model: RackModel, node: str) -> None:
        self.model = model
        self.node = node
        n = model.nodes[node]
        self.psus = [p.name for p in n.psus]
        self.gpus = n.gpus
        self.fans = n.fans
        self.bmc = n.bmc

    def sensor_ids(self) -> list[str]:
        ids = ["InletTemp", *(f"GPU{i}Temp" for i in range(self.gpus)), "ExhaustTemp", "TotalPower"]
        for psu in self.psus:
            ids += [f"{psu}InputPower", f"{psu}InputVoltage", f"{psu}OutputPower"]
        ids += [f"Fan{i}" for i in range(1, self.fans + 1)]
        return ids

    def firmware(self) -> dict[str, str]:
        """BMC firmware first, then the node's components (BIOS, CPLD, NIC, GPUs, PSUs)."""
        return {**self.model.firmware(self.bmc), **self.model.firmware(self.node)}

    def temperature_limits(self) -> dict[str, tuple[float, float]]:
        """(UpperCaution, UpperCritical) per temperature sensor: GPUs from the model's slowdown limits."""
        th = self.model.params.thermal
        limits = {"InletTemp": (35.0, 40.0), "ExhaustTemp": (60.0, 70.0)}
        limits |= {f"GPU{i}Temp": (th.gpu_slowdown_c, th.gpu_hw_slowdown_c) for i in range(self.gpus)}
        return limits

    def temperatures(self) -> list[tuple[str, str, float, str]]:
        """(sensor id, name, reading C, physical context), inlet first, exhaust last."""
        model, node = self.model, self.node
        out = [("InletTemp", "Inlet Temp", model.ambient_c, "Intake")]
        out += [(f"GPU{i}Temp", f"GPU{i} Temp", model.gpu_temperature_c(node, i), "GPU") for i in range(self.gpus)]
        out.append(("ExhaustTemp", "Exhaust Temp", model.node_outlet_temperature_c(node), "Exhaust"))
        return [(sid, name, round(value, 1), ctx) for sid, name, value, ctx in out]

    def fan_readings(self) -> list[tuple[int, int, float, bool]]:
        """(fan number, RPM, duty percent, failed) for each fan."""
        model, node = self.model, self.node
        duty = round(model.fan_speed_percent(node), 1)
        failed = model.nodes[node].failed_fans
        return [(i, model.fan_rpm(node, i), 0.0 if i in failed else duty, i in failed) for i in range(1, self.fans + 1)]

    def psu_readings(self, psu: str) -> dict[str, Any]:
        """Status, line voltage, input and output watts of one PSU, through the BMC's meter."""
        model, node = self.model, self.node
        n = model.nodes[node]
        p = next(x for x in n.psus if x.name == psu)
        status = model.psu_status(node, psu)
        live = [x.name for x in n.psus if model.psu_status(node, x.name) == "OK"]
        meter = n.bmc_meter
        volts = meter.read(model.psu_input_voltage_v(node, p.name)) if status != "NoInput" else 0.0
        out_w = model.node_dc_power_w(node) / len(live) if psu in live else 0.0
        in_w = model.psu_input_power_w(node, psu)
        return {
            "status": status,
            "rated_w": p.rated_w,
            "volts": round(volts, 1),
            "input_w": round(meter.read(in_w), 1) if in_w else 0.0,
            "output_w": round(meter.read(out_w), 1) if out_w else 0.0,
        }

    def health_rollup(self) -> str:
        """The worst health of the node's PSUs, fans and temperatures (system and chassis rollup)."""
        model, node = self.model, self.node
        healths = [psu_status(model.psu_status(node, p))["Health"] for p in self.psus]
        healths += [fan_status(rpm, failed)["Health"] for _, rpm, _, failed in self.fan_readings()]
        limits = self.temperature_limits()
        healths += [threshold_health(v, *limits[sid]) for sid, _, v, _ in self.temperatures()]
        return worst(healths)
