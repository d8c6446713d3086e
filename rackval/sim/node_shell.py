"""The simulated GPU node's SSH shell: what ``rackval.drivers.node.linux.LinuxGpuNode`` runs, answered from the model.

A real node answers the driver with a Linux userland plus NVIDIA tools; this shell answers the
same command lines (parsed with ``shlex.split``, never run by a shell) from the live
``RackModel``:

- ``cat /sys/class/dmi/id/<field>``: sys_vendor, product_name, product_serial, bios_version
  (the node's BIOS firmware from ``model.firmware``), board_vendor, board_name, chassis_serial.
- ``uname -r``: a kernel release.
- ``nvidia-smi --query-gpu=...`` and ``dcgmi diag``: answered by ``rackval.sim.node_gpu_tools``
  (NVIDIA's formats, per driver generation).
- The driver's detached-load protocol: ``sh -c START_SCRIPT name PIDFILE LOG argv...`` and
  ``sh -c STOP_SCRIPT name PIDFILE PROGRAM GRACE`` (the exact scripts of
  ``rackval.drivers.node.linux``), with the same outputs and exit codes, on a simulated process table
  and pid files. Starting a load sets ``model.set_utilization(node, level)``; stopping it (by
  the PID in the pid file) sets it back to 0. A load also ends by itself when its duration of
  virtual time has passed or the host has been power-cycled (noticed at the next command).
  ``cat``/``rm -f`` of those files and ``kill [-0|-TERM|-KILL] PID`` work on them too.

Load tools understood (argv[0] basename): ``gpu_burn``/``gpu-burn`` (always full load; the last
integer word is the duration in seconds), ``rackval-gpu-load`` (``--level F`` or
``--level-pct P``, ``--duration S``), ``sleep S`` (a process that loads nothing). Any other
program fails like a missing binary (the start script's exit 5).
"""

from __future__ import annotations

import math
import re
import shlex
import threading
from dataclasses import dataclass

import paramiko

from rackval.drivers.node.linux import START_SCRIPT, STOP_SCRIPT
from rackval.sim.model import RackModel
from rackval.sim.node_gpu_tools import GpuTools, argv_option
from rackval.sim.ssh_server import CommandHandler, CommandOutput, SshServer

KERNEL_RELEASE = "6.8.0-45-generic"
_DMI = "/sys/class/dmi/id/"
_SHELL_BLANKS = re.compile(r"[ \t\r\n]+")


@dataclass
class _Process:
    """A simulated process started by the load protocol."""

    pid: int
    argv: list[str]
    level: float
    end_at: float
    host_gen: int
    alive: bool = True


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
            level = argv_option(argv, "--level")
            pct = argv_option(argv, "--level-pct")
            value = float(level) if level is not None else float(pct) / 100 if pct is not None else 1.0
            if not 0.0 <= value <= 1.0 or math.isnan(value):
                return f"rackval-gpu-load: level must be within 0..1, got {value}"
            return value, float(argv_option(argv, "--duration") or 3600)
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
        self._gpu = GpuTools(model, node, old_driver=old_driver)
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
                return self._gpu.nvidia_smi(words)
            if cmd.rsplit("/", 1)[-1] == "dcgmi":
                return self._gpu.dcgmi(words)
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


def _split(command: str) -> list[str]:
    """``shlex.split``, with a fast road for the common command without quotes or backslashes
    (where shlex's character-by-character scan gives the same words as a split on blanks)."""
    if "'" in command or '"' in command or "\\" in command:
        return shlex.split(command)
    return [w for w in _SHELL_BLANKS.split(command) if w]


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
