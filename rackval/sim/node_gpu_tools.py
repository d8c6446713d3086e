"""What NVIDIA's tools print on a simulated GPU node: ``nvidia-smi --query-gpu`` and ``dcgmi diag``.

Why a module of its own: the node's shell (``rackval.sim.node_shell``) is a small Linux userland
with a process table; what these two tools answer is a separate matter — NVIDIA's field names,
units and formats, which differ between driver generations — read from the live ``RackModel``:

- ``nvidia-smi --query-gpu=<fields> --format=csv[,noheader][,nounits] [-i ids]``: the requested
  fields in the requested order, one line per GPU, from ``gpu_power_w``, ``gpu_temperature_c``,
  ``gpu_utilization`` and ``gpu_event_reasons`` (hex mask). A driver generation is simulated:
  by default R535+ (``clocks_event_reasons.*``; the old ``clocks_throttle_reasons.*`` names are
  refused with nvidia-smi's "is not a valid field to query" message, exit 2); with
  ``old_driver=True`` the other way round.
- ``dcgmi diag -r 1..4 --json``: DCGM 4 JSON; a GPU under an active ``gpu_overheat`` fault or
  currently thermally slowed fails (exit 226, as dcgmi does when a test fails).
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid

from rackval.sim.model import RackModel
from rackval.sim.ssh_server import CommandOutput

GPU_NAME = "NVIDIA H100 80GB HBM3"
MAX_SM_MHZ = 1980
IDLE_SM_MHZ = 345
MEMORY_TOTAL_MIB = 81559
DRIVER_VERSION = "570.124.06"
OLD_DRIVER_VERSION = "470.239.06"
DCGM_VERSION = "4.2.3"
DCGM_FAIL_STATUS = 226
_SLOWDOWN_BITS = 0x4 | 0x8 | 0x20 | 0x40 | 0x80  # SwPowerCap, HwSlowdown, SwThermal, HwThermal, HwPowerBrake
_THERMAL_BITS = 0x20 | 0x40
_NEW_REASONS, _OLD_REASONS = "clocks_event_reasons.", "clocks_throttle_reasons."

# field -> unit shown in the header and after the value (without nounits)
_FIELDS: dict[str, str] = {
    "index": "",
    "uuid": "",
    "name": "",
    "serial": "",
    "pci.bus_id": "",
    "driver_version": "",
    "power.draw": "W",
    "power.limit": "W",
    "enforced.power.limit": "W",
    "temperature.gpu": "",
    "clocks.current.sm": "MHz",
    "clocks.sm": "MHz",
    "clocks.max.sm": "MHz",
    "utilization.gpu": "%",
    "memory.total": "MiB",
    "memory.used": "MiB",
    "fan.speed": "%",
    "ecc.errors.uncorrected.volatile.total": "",
    "clocks_event_reasons.active": "",
    "clocks_throttle_reasons.active": "",
}


_ALL_VALUES = frozenset(
    {"clocks.current.sm" if f == "clocks.sm" else f for f in _FIELDS if not f.startswith((_NEW_REASONS, _OLD_REASONS))}
    | {"reasons"}
)


# Fields that come from the model's live state (the rest are constants of the GPU).
_DYNAMIC = frozenset(
    {"power.draw", "clocks.current.sm", "utilization.gpu", "memory.used", "reasons", "temperature.gpu"}
)


@functools.lru_cache(maxsize=4096)  # constant per GPU; nvidia-smi reports it every second
def _gpu_uuid(seed: int, node: str, gpu: int) -> str:
    digest = hashlib.sha256(f"{seed}/{node}/GPU{gpu}".encode()).digest()
    return f"GPU-{uuid.UUID(bytes=digest[:16], version=4)}"


@functools.lru_cache(maxsize=4096)
def _gpu_serial(seed: int, node: str, gpu: int) -> str:
    digest = hashlib.sha256(f"{seed}/{node}/GPU{gpu}/serial".encode()).digest()
    return f"1654{int.from_bytes(digest[:4], 'big') % 10**9:09d}"


def argv_option(argv: list[str], *names: str) -> str | None:
    """``--name=value`` or ``--name value`` (the last one wins), None when absent."""
    found = None
    for i, word in enumerate(argv):
        for name in names:
            if word.startswith(name + "="):
                found = word.split("=", 1)[1]
            elif word == name and i + 1 < len(argv):
                found = argv[i + 1]
    return found


def _canonical(field: str) -> str:
    if field.startswith((_NEW_REASONS, _OLD_REASONS)):
        return "reasons"
    return "clocks.current.sm" if field == "clocks.sm" else field


def _unit(field: str) -> str:
    return _FIELDS.get(field, "")


def _with_unit(value: str, unit: str, units: bool) -> str:
    if not units or not unit or value.startswith("["):
        return value
    return f"{value} {unit}"


class GpuTools:
    """The NVIDIA tools of one node: ``nvidia_smi`` and ``dcgmi`` answer their command lines (split in words)."""

    def __init__(self, model: RackModel, node: str, *, old_driver: bool = False) -> None:
        self._model = model
        self._node = node
        self._old_driver = old_driver

    # ---- nvidia-smi ---------------------------------------------------------------------------
    def _valid_field(self, field: str) -> bool:
        if field.startswith(_NEW_REASONS):
            return not self._old_driver
        if field.startswith(_OLD_REASONS):
            return self._old_driver
        return field in _FIELDS

    def nvidia_smi(self, words: list[str]) -> CommandOutput:
        query = next((w.split("=", 1)[1] for w in words if w.startswith("--query-gpu=")), None)
        fmt = next((w.split("=", 1)[1] for w in words if w.startswith("--format=")), None)
        if query is None:
            return CommandOutput("", "rackval simulator: only nvidia-smi --query-gpu is simulated\n", 2)
        fields = [f.strip() for f in query.split(",") if f.strip()]
        for field in fields:
            if not self._valid_field(field):
                return CommandOutput(f'Field "{field}" is not a valid field to query.\n\n', "", 2)
        if fmt is None or "csv" not in fmt.split(","):
            return CommandOutput('"--format" option is required with "--query-gpu"\n\n', "", 2)
        options = set(fmt.split(","))
        units = "nounits" not in options
        gpus = list(range(self._model.nodes[self._node].gpus))
        ids = argv_option(words, "-i", "--id")
        if ids is not None:
            try:
                wanted = [int(x) for x in ids.split(",")]
            except ValueError:
                return CommandOutput("", f"Invalid combination of input arguments. ({ids})\n", 2)
            if any(i not in gpus for i in wanted):
                return CommandOutput("No devices were found\n", "", 6)
            gpus = wanted
        lines = []
        if "noheader" not in options:
            lines.append(", ".join(f"{f} [{_unit(f)}]" if units and _unit(f) else f for f in fields))
        wanted = {_canonical(f) for f in fields}
        readings = self._model.gpu_readings(self._node) if wanted & _DYNAMIC else None
        columns = [(_canonical(f), _unit(f) if units else "") for f in fields]
        for i in gpus:
            values = self._gpu_values(i, wanted, readings[i] if readings is not None else None)
            cells = (_with_unit(values[key], unit, True) if unit else values[key] for key, unit in columns)
            lines.append(", ".join(cells))
        return CommandOutput("\n".join(lines) + "\n")

    def _gpu_values(
        self, i: int, wanted: set[str] | None = None, reading: tuple[float, float, int, float] | None = None
    ) -> dict[str, str]:
        """The GPU's fields as nvidia-smi prints them; only those in ``wanted`` (default: all) are
        computed. ``reading``: the GPU's (power, utilisation, mask, temperature) from
        ``RackModel.gpu_readings`` (read here if not given)."""
        m, node = self._model, self._node
        n = m.nodes[node]
        want = _ALL_VALUES if wanted is None else wanted
        out: dict[str, str] = {}
        if reading is None:
            reading = m.gpu_readings(node)[i]
        power, util, mask, temperature = reading
        if "clocks.current.sm" in want:
            if util < 0.01:
                clock = IDLE_SM_MHZ
            elif mask & _SLOWDOWN_BITS:
                demand = n.gpu_idle_w + util * (n.gpu_max_w - n.gpu_idle_w)
                clock = round(MAX_SM_MHZ * min(max(power / demand, 0.35), 1.0))
            else:
                clock = MAX_SM_MHZ
            out["clocks.current.sm"] = str(clock)
        cap = f"{n.gpu_max_w:.2f}"
        for key in want:
            if key == "index":
                out[key] = str(i)
            elif key == "uuid":
                out[key] = _gpu_uuid(m.size.seed, node, i)
            elif key == "name":
                out[key] = GPU_NAME
            elif key == "serial":
                out[key] = _gpu_serial(m.size.seed, node, i)
            elif key == "pci.bus_id":
                out[key] = f"00000000:{0x18 + 0x10 * i:02X}:00.0"
            elif key == "driver_version":
                out[key] = OLD_DRIVER_VERSION if self._old_driver else DRIVER_VERSION
            elif key == "power.draw":
                out[key] = f"{power:.2f}"
            elif key in ("power.limit", "enforced.power.limit"):
                out[key] = cap
            elif key == "temperature.gpu":
                out[key] = str(round(temperature))
            elif key == "clocks.max.sm":
                out[key] = str(MAX_SM_MHZ)
            elif key == "utilization.gpu":
                out[key] = str(round(util * 100))
            elif key == "memory.total":
                out[key] = str(MEMORY_TOTAL_MIB)
            elif key == "memory.used":
                out[key] = str(round(1 + util * 0.9 * MEMORY_TOTAL_MIB))
            elif key == "fan.speed":
                out[key] = "[N/A]"
            elif key == "ecc.errors.uncorrected.volatile.total":
                out[key] = "0"
            elif key == "reasons":
                out[key] = f"0x{mask:016x}"
        return out

    # ---- dcgmi diag ---------------------------------------------------------------------------
    def _faulty_gpus(self) -> dict[int, str]:
        """GPU -> why it fails the diagnostic (an active cooling fault or thermal slowdown)."""
        n = self._model.nodes[self._node]
        bad: dict[int, str] = {}
        for fault in self._model.active_faults(self._node):
            if fault.kind == "gpu_overheat":
                gpus = [int(fault.component[3:])] if fault.component else list(range(n.gpus))
                for i in gpus:
                    bad[i] = f"GPU {i}: cooling fault: temperature {self._model.gpu_temperature_c(self._node, i):.0f} C"
        for i in range(n.gpus):
            mask = self._model.gpu_event_reasons(self._node, i)
            if mask & _THERMAL_BITS and i not in bad:
                bad[i] = f"GPU {i}: clocks slowed by a thermal violation (reasons 0x{mask:x})"
        return bad

    def dcgmi(self, words: list[str]) -> CommandOutput:
        if len(words) < 2 or words[1] != "diag":
            return CommandOutput("", "rackval simulator: only dcgmi diag is simulated\n", 2)
        level_text = argv_option(words, "-r", "--run")
        as_json = "--json" in words or "-j" in words
        if level_text not in ("1", "2", "3", "4"):
            return CommandOutput("", f"Error: invalid diagnostic level or test name '{level_text}'.\n", 255)
        level = int(level_text or 0)
        n = self._model.nodes[self._node]
        bad = self._faulty_gpus()
        plan = [("Deployment", "software")]
        if level >= 2:
            plan += [("Integration", "pcie"), ("Hardware", "memory")]
        if level >= 3:
            plan += [("Stress", "targeted_stress"), ("Stress", "targeted_power"), ("Stress", "diagnostic")]
        if level >= 4:
            plan += [("Hardware", "memtest"), ("Stress", "pulse_test")]
        thermal_tests = {"software", "targeted_power", "diagnostic", "pulse_test"}
        categories: dict[str, list[dict[str, object]]] = {}
        failed = False
        for category, test in plan:
            results = []
            for i in range(n.gpus):
                result: dict[str, object] = {"entity_group": "GPU", "entity_group_id": 1, "entity_id": i}
                if i in bad and test in thermal_tests:
                    result["status"] = "Fail"
                    result["warnings"] = [{"warning": bad[i], "error_category": 4, "error_severity": 2}]
                    failed = True
                else:
                    result["status"] = "Pass"
                results.append(result)
            status = "Fail" if any(r["status"] == "Fail" for r in results) else "Pass"
            categories.setdefault(category, []).append(
                {"name": test, "results": results, "test_summary": {"status": status}}
            )
        doc = {
            "DCGM Diagnostic": {
                "test_categories": [{"category": c, "tests": t} for c, t in categories.items()],
            },
            "entity_groups": [
                {
                    "entity_group": "GPU",
                    "entity_group_id": 1,
                    "entities": [
                        {
                            "entity_id": i,
                            "device_id": "2330",
                            "serial_num": _gpu_serial(self._model.size.seed, self._node, i),
                        }
                        for i in range(n.gpus)
                    ],
                }
            ],
            "metadata": {"version": DCGM_VERSION, "Driver Version Detected": DRIVER_VERSION},
        }
        status = DCGM_FAIL_STATUS if failed else 0
        if as_json:
            return CommandOutput(json.dumps(doc, indent=4) + "\n", "", status)
        lines = [f"Successfully ran diagnostic for group. Level {level}."]
        for category, tests in categories.items():
            for t in tests:
                summary = t["test_summary"]
                assert isinstance(summary, dict)
                lines.append(f"| {category:<22}| {t['name']:<20}| {summary['status']:<8}|")
        return CommandOutput("\n".join(lines) + "\n", "", status)
