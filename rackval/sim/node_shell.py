"""The simulated GPU node's SSH shell: what ``rackval.drivers.node.linux.LinuxGpuNode`` runs, answered from the model.

A real node answers the driver with a Linux userland plus NVIDIA tools; this shell answers the
same command lines (parsed with ``shlex.split``, never run by a shell) from the live
``RackModel``:

- ``cat /sys/class/dmi/id/<field>``: sys_vendor, product_name, product_serial, bios_version
  (the node's BIOS firmware from ``model.firmware``), board_vendor, board_name, chassis_serial.
- ``uname -r``: a kernel release.
- ``nvidia-smi --query-gpu=<fields> --format=csv[,noheader][,nounits] [-i ids]``: the requested
  fields in the requested order, one line per GPU, from ``gpu_power_w``, ``gpu_temperature_c``,
  ``gpu_utilization`` and ``gpu_event_reasons`` (hex mask). A driver generation is simulated:
  by default R535+ (``clocks_event_reasons.*``; the old ``clocks_throttle_reasons.*`` names are
  refused with nvidia-smi's "is not a valid field to query" message, exit 2); with
  ``old_driver=True`` the other way round.
- The driver's detached-load protocol: ``sh -c START_SCRIPT name PIDFILE LOG argv...`` and
  ``sh -c STOP_SCRIPT name PIDFILE PROGRAM GRACE`` (the exact scripts of
  ``rackval.drivers.node.linux``), with the same outputs and exit codes, on a simulated process table
  and pid files. Starting a load sets ``model.set_utilization(node, level)``; stopping it (by
  the PID in the pid file) sets it back to 0. A load also ends by itself when its duration of
  virtual time has passed or the host has been power-cycled (noticed at the next command).
  ``cat``/``rm -f`` of those files and ``kill [-0|-TERM|-KILL] PID`` work on them too.
- ``dcgmi diag -r 1..4 --json``: DCGM 4 JSON; a GPU under an active ``gpu_overheat`` fault or
  currently thermally slowed fails (exit 226, as dcgmi does when a test fails).

Load tools understood (argv[0] basename): ``gpu_burn``/``gpu-burn`` (always full load; the last
integer word is the duration in seconds), ``rackval-gpu-load`` (``--level F`` or
``--level-pct P``, ``--duration S``), ``sleep S`` (a process that loads nothing). Any other
program fails like a missing binary (the start script's exit 5).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import shlex
import threading
import uuid
from dataclasses import dataclass

import paramiko

from rackval.drivers.node.linux import START_SCRIPT, STOP_SCRIPT
from rackval.sim.model import RackModel
from rackval.sim.ssh_server import CommandHandler, CommandOutput, SshServer

KERNEL_RELEASE = "6.8.0-45-generic"
GPU_NAME = "NVIDIA H100 80GB HBM3"
MAX_SM_MHZ = 1980
IDLE_SM_MHZ = 345
MEMORY_TOTAL_MIB = 81559
DRIVER_VERSION = "570.124.06"
OLD_DRIVER_VERSION = "470.239.06"
DCGM_VERSION = "4.2.3"
DCGM_FAIL_STATUS = 226
_DMI = "/sys/class/dmi/id/"
_SLOWDOWN_BITS = 0x4 | 0x8 | 0x20 | 0x40 | 0x80  # SwPowerCap, HwSlowdown, SwThermal, HwThermal, HwPowerBrake
_THERMAL_BITS = 0x20 | 0x40
_NEW_REASONS, _OLD_REASONS = "clocks_event_reasons.", "clocks_throttle_reasons."
_SHELL_BLANKS = re.compile(r"[ \t\r\n]+")

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


@dataclass
class _Process:
    """A simulated process started by the load protocol."""

    pid: int
    argv: list[str]
    level: float
    end_at: float
    host_gen: int
    alive: bool = True


@functools.lru_cache(maxsize=4096)  # constant per GPU; nvidia-smi reports it every second
def _gpu_uuid(seed: int, node: str, gpu: int) -> str:
    digest = hashlib.sha256(f"{seed}/{node}/GPU{gpu}".encode()).digest()
    return f"GPU-{uuid.UUID(bytes=digest[:16], version=4)}"


@functools.lru_cache(maxsize=4096)
def _gpu_serial(seed: int, node: str, gpu: int) -> str:
    digest = hashlib.sha256(f"{seed}/{node}/GPU{gpu}/serial".encode()).digest()
    return f"1654{int.from_bytes(digest[:4], 'big') % 10**9:09d}"


def _option(argv: list[str], *names: str) -> str | None:
    """``--name=value`` or ``--name value`` (the last one wins), None when absent."""
    found = None
    for i, word in enumerate(argv):
        for name in names:
            if word.startswith(name + "="):
                found = word.split("=", 1)[1]
            elif word == name and i + 1 < len(argv):
                found = argv[i + 1]
    return found


def interpret_load(argv: list[str]) -> tuple[float, float] | str:
    """(level 0..1, duration s) a load argv would run, or the error a missing binary gives."""
    if not argv:
        return "nohup: missing operand"
    program = argv[0].rsplit("/", 1)[-1]
    try:
        if program in ("gpu_burn", "gpu-burn"):
            numbers = [w for w in argv[1:] if w.isdigit()]
            return 1.0, float(numbers[-1]) if numbers else 10.0
        if program == "rackval-gpu-load":
            level = _option(argv, "--level")
            pct = _option(argv, "--level-pct")
            value = float(level) if level is not None else float(pct) / 100 if pct is not None else 1.0
            if not 0.0 <= value <= 1.0 or math.isnan(value):
                return f"rackval-gpu-load: level must be within 0..1, got {value}"
            return value, float(_option(argv, "--duration") or 3600)
        if program == "sleep":
            return 0.0, float(argv[1]) if len(argv) > 1 else 0.0
    except ValueError as exc:
        return f"{program}: invalid argument: {exc}"
    return f"nohup: failed to run command '{argv[0]}': No such file or directory"


class NodeShell:
    """The command handler of one node's simulated shell (state: processes and pid files)."""

    def __init__(self, model: RackModel, node: str, *, old_driver: bool = False, serial_readable: bool = True) -> None:
        if node not in model.nodes:
            raise KeyError(f"no node {node!r} in the rack model (have: {', '.join(model.nodes)})")
        self._model = model
        self._node = node
        self._old_driver = old_driver
        self._serial_readable = serial_readable
        self._lock = threading.Lock()  # one command at a time changes the process table
        self._files: dict[str, str] = {}
        self._procs: dict[int, _Process] = {}
        self._next_pid = 4242

    # ---- dispatch -----------------------------------------------------------------------------
    def __call__(self, command: str) -> CommandOutput:
        try:
            words = _split(command)
        except ValueError as exc:
            return CommandOutput("", f"bash: -c: line 1: {exc}\n", 2)
        if not words:
            return CommandOutput("")
        with self._lock:
            self._reap()
            cmd = words[0]
            if cmd == "sh" and len(words) >= 3 and words[1] == "-c":
                return self._sh(words)
            if cmd == "cat" and len(words) == 2:
                return self._cat(words[1])
            if words == ["uname", "-r"]:
                return CommandOutput(KERNEL_RELEASE + "\n")
            if cmd.rsplit("/", 1)[-1] == "nvidia-smi":
                return self._nvidia_smi(words)
            if cmd.rsplit("/", 1)[-1] == "dcgmi":
                return self._dcgmi(words)
            if cmd == "kill":
                return self._kill(words)
            if cmd == "rm":
                for path in (w for w in words[1:] if not w.startswith("-")):
                    self._files.pop(path, None)
                return CommandOutput("")
        return CommandOutput("", f"bash: line 1: {cmd}: command not found\n", 127)

    # ---- processes ----------------------------------------------------------------------------
    def _host_gen(self) -> int:
        return self._model.nodes[self._node].host_gen

    def _reap(self) -> None:
        """End loads whose time is up or whose host was power-cycled since they started."""
        now, gen = self._model.now(), self._host_gen()
        for proc in self._procs.values():
            if proc.alive and (now >= proc.end_at or proc.host_gen != gen):
                self._end(proc)

    def _alive(self, pid: int) -> bool:
        proc = self._procs.get(pid)
        return proc is not None and proc.alive

    def _end(self, proc: _Process) -> None:
        proc.alive = False
        if proc.level > 0:
            running = [p.level for p in self._procs.values() if p.alive and p.level > 0]
            self._model.set_utilization(self._node, max(running, default=0.0))

    def _start(self, argv: list[str]) -> _Process | str:
        found = interpret_load(argv)
        if isinstance(found, str):
            return found
        level, duration = found
        pid, self._next_pid = self._next_pid, self._next_pid + 1
        proc = _Process(pid, list(argv), level, self._model.now() + duration, self._host_gen())
        self._procs[pid] = proc
        if level > 0:
            running = [p.level for p in self._procs.values() if p.alive and p.level > 0]
            self._model.set_utilization(self._node, max(running))
        return proc

    # ---- sh -c: the driver's two scripts --------------------------------------------------------
    def _sh(self, words: list[str]) -> CommandOutput:
        script, args = words[2], words[4:]  # words[3] is $0
        if script == START_SCRIPT and len(args) >= 3:
            return self._start_script(args[0], args[1], args[2:])
        if script == STOP_SCRIPT and len(args) == 3:
            return self._stop_script(*args)
        return CommandOutput("", "sh: 1: rackval simulator: only the rackval load scripts run here\n", 2)

    def _start_script(self, pid_file: str, log: str, argv: list[str]) -> CommandOutput:
        old = self._files.get(pid_file, "").strip()
        if old.isdigit() and self._alive(int(old)):
            return CommandOutput("", f"a load is already running as pid {old} ({pid_file})\n", 3)
        started = self._start(argv)
        if isinstance(started, str):
            self._files[log] = started + "\n"
            return CommandOutput("", f"load command exited at once:\n{started}\n", 5)
        self._files[pid_file] = f"{started.pid}\n"
        self._files[log] = ""
        return CommandOutput(f"{started.pid}\n")

    def _stop_script(self, pid_file: str, name: str, grace: str) -> CommandOutput:
        if pid_file not in self._files:
            return CommandOutput("no pid file\n")
        pid = self._files[pid_file].strip()
        if not pid.isdigit():
            return CommandOutput("", f"pid file {pid_file} does not hold a pid: {pid}\n", 4)
        proc = self._procs.get(int(pid))
        if proc is None or not proc.alive:
            del self._files[pid_file]
            return CommandOutput(f"not running {pid}\n")
        if not any(name in word for word in proc.argv):
            return CommandOutput("", f"pid {pid} no longer runs {name}; not killing it\n", 4)
        self._end(proc)
        del self._files[pid_file]
        return CommandOutput(f"stopped {pid}\n")

    def _kill(self, words: list[str]) -> CommandOutput:
        args = words[1:]
        probe = bool(args) and args[0] == "-0"
        if args and args[0].startswith("-"):
            args = args[1:]
        failed = []
        for arg in args:
            if not arg.isdigit() or not self._alive(int(arg)):
                failed.append(f"sh: 1: kill: ({arg}) - No such process\n")
            elif not probe:
                self._end(self._procs[int(arg)])
        return CommandOutput("", "".join(failed), 1 if failed or not args else 0)

    def _cat(self, path: str) -> CommandOutput:
        if path.startswith(_DMI):
            return self._dmi(path)
        if path in self._files:
            return CommandOutput(self._files[path])
        return CommandOutput("", f"cat: {path}: No such file or directory\n", 1)

    def _dmi(self, path: str) -> CommandOutput:
        info = self._model.nodes[self._node].info
        field = path[len(_DMI) :]
        values = {
            "sys_vendor": info.vendor,
            "product_name": info.model,
            "board_vendor": info.vendor,
            "board_name": f"{info.model}-MB",
            "bios_version": self._model.firmware(self._node).get("BIOS", info.firmware),
            "bios_vendor": "American Megatrends International, LLC.",
        }
        if field in ("product_serial", "chassis_serial", "board_serial"):
            if not self._serial_readable:
                return CommandOutput("", f"cat: {path}: Permission denied\n", 1)
            return CommandOutput(info.serial + "\n")
        if field not in values:
            return CommandOutput("", f"cat: {path}: No such file or directory\n", 1)
        return CommandOutput(values[field] + "\n")

    # ---- nvidia-smi ---------------------------------------------------------------------------
    def _valid_field(self, field: str) -> bool:
        if field.startswith(_NEW_REASONS):
            return not self._old_driver
        if field.startswith(_OLD_REASONS):
            return self._old_driver
        return field in _FIELDS

    def _nvidia_smi(self, words: list[str]) -> CommandOutput:
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
        ids = _option(words, "-i", "--id")
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

    def _dcgmi(self, words: list[str]) -> CommandOutput:
        if len(words) < 2 or words[1] != "diag":
            return CommandOutput("", "rackval simulator: only dcgmi diag is simulated\n", 2)
        level_text = _option(words, "-r", "--run")
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


_ALL_VALUES = frozenset(
    {"clocks.current.sm" if f == "clocks.sm" else f for f in _FIELDS if not f.startswith((_NEW_REASONS, _OLD_REASONS))}
    | {"reasons"}
)


# Fields that come from the model's live state (the rest are constants of the GPU).
_DYNAMIC = frozenset(
    {"power.draw", "clocks.current.sm", "utilization.gpu", "memory.used", "reasons", "temperature.gpu"}
)


def _split(command: str) -> list[str]:
    """``shlex.split``, with a fast road for the common command without quotes or backslashes
    (where shlex's character-by-character scan gives the same words as a split on blanks)."""
    if "'" in command or '"' in command or "\\" in command:
        return shlex.split(command)
    return [w for w in _SHELL_BLANKS.split(command) if w]


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


def node_cli(model: RackModel, node: str, *, old_driver: bool = False, serial_readable: bool = True) -> CommandHandler:
    """A handler answering the GPU node's commands for ``model.nodes[node]``."""
    return NodeShell(model, node, old_driver=old_driver, serial_readable=serial_readable)


def start_node_ssh(
    model: RackModel,
    node: str,
    *,
    host: str = "127.0.0.1",
    username: str,
    password: str,
    host_key: paramiko.PKey,
    old_driver: bool = False,
    serial_readable: bool = True,
    protocol_faults: bool = True,
) -> SshServer:
    """Serve ``node``'s shell (see the module docstring) over SSH on ``host``, port chosen by the OS.

    The node is reachable only while its OS is up (``model.os_up``): while the host is off or
    booting, connections and commands get no answer, as from a host that is down. Protocol
    faults injected on ``node`` act on the server (``protocol_faults=False`` turns that off).
    ``old_driver`` plays a pre-R535 NVIDIA driver; ``serial_readable=False`` refuses
    product_serial like a non-root login.
    """
    handler = node_cli(model, node, old_driver=old_driver, serial_readable=serial_readable)
    faults = (lambda: model.active_faults(node)) if protocol_faults else None
    server = SshServer(
        handler,
        host=host,
        username=username,
        password=password,
        host_key=host_key,
        name=node,
        faults=faults,
        reachable=lambda: model.os_up(node),
        shell_sessions=True,  # a Linux host has sh: the driver samples telemetry in one session
    )
    return server.start()
