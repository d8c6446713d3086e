"""A Linux GPU node over SSH: identity from DMI, GPU telemetry from nvidia-smi, load, DCGM diag.

Everything runs as argv lists through ``SshTransport.run`` (quoted with ``shlex.join``), so a
value from the rack file (a path, a load-tool argument) always arrives as one word and is never
interpreted by the remote shell. The two small shell scripts below are constants; the values
they work on are passed to them as positional parameters (``sh -c SCRIPT name arg...``).

The load tool is started detached (``nohup``, all three standard streams redirected, so the SSH
channel closes at once instead of waiting for the tool) and its PID written to a pid file; it is
stopped by that PID, after checking that the PID still runs the same program, so a stale pid
file can never kill an unrelated process that reused the number.
"""

from __future__ import annotations

import math
import shlex
import threading
from collections.abc import Sequence

from rackval.core.errors import DeviceError, DeviceProtocolError
from rackval.drivers.capabilities import Device, DiagResult, GpuNode, GpuTelemetry, Identity
from rackval.drivers.config import DeviceConfig
from rackval.drivers.node.parsers import (
    OLD_REASONS_FIELD,
    REASONS_FIELD,
    invalid_query_field,
    parse_dcgm_diag,
    parse_gpu_query,
    query_gpu_argv,
)
from rackval.drivers.options import LinuxNodeOptions, parse_options
from rackval.drivers.transport.ssh import CommandResult, SshTransport

DMI = "/sys/class/dmi/id/"
DEFAULT_LOAD_COMMAND = ("gpu_burn", "{duration}")
UNBOUNDED_DURATION_S = 168 * 3600  # "until stop_load": the longest burn-in plans run (domain.md §6)
# [S] dcgmi diag -r 1 takes seconds, -r 2 ~2 min, -r 3 ~15 min, -r 4 longer: generous limits.
DIAG_TIMEOUT_S = {1: 300.0, 2: 900.0, 3: 3600.0, 4: 4 * 3600.0}

# $1 pid file, $2 log file, $3.. the load argv. Exit 3: already running; 5: died at once.
START_SCRIPT = r"""pidfile=$1; log=$2; shift 2
if [ -s "$pidfile" ]; then
  old=$(cat "$pidfile")
  if kill -0 "$old" 2>/dev/null; then echo "a load is already running as pid $old ($pidfile)" >&2; exit 3; fi
fi
nohup "$@" >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pidfile"
sleep 0.2
state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
if ! kill -0 "$pid" 2>/dev/null || [ "$state" = Z ]; then
  rm -f "$pidfile"; echo "load command exited at once:" >&2; tail -n 5 "$log" >&2; exit 5
fi
echo "$pid"
"""

# $1 pid file, $2 program name the pid must still run, $3 seconds to wait after SIGTERM.
# Prints "stopped <pid>", "not running <pid>" or "no pid file". Exit 4: pid file unusable or the
# pid now belongs to another program. A zombie counts as stopped (its parent may never reap it).
STOP_SCRIPT = r"""pidfile=$1; name=$2; grace=$3
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ "$st" != Z ]
}
if [ ! -e "$pidfile" ]; then echo "no pid file"; exit 0; fi
pid=$(cat "$pidfile")
case $pid in ''|*[!0-9]*) echo "pid file $pidfile does not hold a pid: $pid" >&2; exit 4;; esac
if ! alive "$pid"; then rm -f "$pidfile"; echo "not running $pid"; exit 0; fi
if [ -r "/proc/$pid/cmdline" ] && ! tr '\000' '\n' <"/proc/$pid/cmdline" | grep -qF -- "$name"; then
  echo "pid $pid no longer runs $name; not killing it" >&2; exit 4
fi
kill -TERM "$pid" 2>/dev/null
i=0
while alive "$pid" && [ "$i" -lt $((grace * 10)) ]; do sleep 0.1; i=$((i + 1)); done
if alive "$pid"; then kill -KILL "$pid" 2>/dev/null; sleep 0.1; fi
if alive "$pid"; then echo "pid $pid survived SIGKILL" >&2; exit 6; fi
rm -f "$pidfile"
echo "stopped $pid"
"""


def _load_template(value: str | tuple[str, ...]) -> tuple[str, ...]:
    """The load tool's argv: a list as given, or one string split as a shell would."""
    return tuple(shlex.split(value)) if isinstance(value, str) else value


class LinuxGpuNode(Device, GpuNode):
    """Device + GpuNode for a Linux server with NVIDIA GPUs, driven over SSH.

    Credentials: ``username`` with ``key_file`` or ``password``. Reading product_serial from DMI
    usually needs root; without it the serial is "" (not an error).

    Options (``config.options``): those of ``SshTransport`` (``known_hosts``,
    ``trust_on_first_use``, ``allow_agent``, ``look_for_keys``, ``keepalive_s``, ``encoding``), plus

    - ``command_timeout_s`` (float, default ``config.timeout_s``): limit for one short command
      (nvidia-smi can take seconds on an 8-GPU node with persistence mode off).
    - ``nvidia_smi`` (default ``nvidia-smi``) and ``dcgmi`` (default ``dcgmi``): tool paths.
    - ``load_command`` (list of strings, or one string split with shlex; default
      ``["gpu_burn", "{duration}"]``): the load tool's argv template. Placeholders, replaced in
      each element: ``{duration}`` whole seconds, ``{level}`` the requested level as a fraction
      0..1, ``{level_pct}`` as a whole percent. gpu-burn has no load-level setting, so a
      template without ``{level}``/``{level_pct}`` can only run full load and ``start_load``
      refuses levels below 1 rather than silently running at 100 %.
    - ``load_pid_file`` (default ``/tmp/rackval-load.pid``) and ``load_log_file`` (default
      ``/tmp/rackval-load.log``): where the detached load keeps its PID and output.
    - ``load_stop_grace_s`` (int, default 5): wait after SIGTERM before SIGKILL.
    - ``diag_timeout_s`` (float): limit for ``dcgmi diag``; default by level 300/900/3600/14400 s.
    - ``persistent_session`` (bool, default true): telemetry reads (``gpus``) run in one
      long-lived ``sh`` session per connection (``SshTransport.run_persistent``: a tenth of an
      exec channel's cost, which is what lets a 1 Hz soak sample every node); a node that gives
      no shell falls back to exec by itself. Commands that change state always use exec.
    """

    options_model = LinuxNodeOptions

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        self._address = config.address
        opts = parse_options(self.options_model, config.options, config.name)
        self._timeout = opts.command_timeout_s or config.timeout_s
        self._nvidia_smi = opts.nvidia_smi
        self._dcgmi = opts.dcgmi
        self._load = _load_template(opts.load_command or DEFAULT_LOAD_COMMAND)
        self._pid_file = opts.load_pid_file
        self._log_file = opts.load_log_file
        self._grace = opts.load_stop_grace_s
        self._diag_timeout = opts.diag_timeout_s
        self._ssh = SshTransport(config)
        self._read = self._ssh.run_persistent if opts.persistent_session else self._ssh.run
        self._lock = threading.Lock()
        self._reasons_field = REASONS_FIELD  # switched to the old name once a driver refuses it
        self.load_pid: int | None = None  # PID of the load this instance started, if any

    def __repr__(self) -> str:
        return f"LinuxGpuNode({self.name!r}, {self._address!r})"

    # ---- helpers ----------------------------------------------------------------------------
    def _run(self, argv: Sequence[str], timeout: float | None = None) -> CommandResult:
        return self._ssh.run(list(argv), timeout=self._timeout if timeout is None else timeout)

    def _failed(self, result: CommandResult, what: str | None = None) -> DeviceError:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
        detail = f"exit status {result.exit_status}: {lines[-1] if lines else 'no output'}"
        return DeviceError(self.name, self._address, what or f"SSH command {result.command!r}", detail)

    def _read_dmi(self, field: str) -> CommandResult:
        return self._run(["cat", DMI + field])

    # ---- Device -----------------------------------------------------------------------------
    def identify(self) -> Identity:
        """Vendor / product from DMI, serial from DMI ("" if unreadable), firmware = BIOS version.

        Firmware falls back to "kernel <uname -r>" when the BIOS version is unreadable (some
        virtual machines), so the field is never blank but says what it is.
        """
        with self._lock:
            found: dict[str, str] = {}
            for field in ("sys_vendor", "product_name"):
                result = self._read_dmi(field)
                if not result.ok:
                    raise self._failed(result, f"read the node's identity ({DMI}{field})")
                found[field] = result.stdout.strip()
            serial = self._read_dmi("product_serial")  # root-only on most distributions
            bios = self._read_dmi("bios_version")
            firmware = bios.stdout.strip() if bios.ok else ""
            if not firmware:
                result = self._run(["uname", "-r"])
                if not result.ok or not result.stdout.strip():
                    raise self._failed(result, "read the BIOS version or kernel release")
                firmware = "kernel " + result.stdout.strip()
        return Identity(
            vendor=found["sys_vendor"],
            model=found["product_name"],
            serial=serial.stdout.strip() if serial.ok else "",
            firmware=firmware,
        )

    def close(self) -> None:
        self._ssh.close()

    # ---- telemetry --------------------------------------------------------------------------
    def gpus(self) -> list[GpuTelemetry]:
        """One nvidia-smi query for every GPU; retried once with the pre-R535 reason field name."""
        with self._lock:
            for _attempt in (1, 2):
                argv = query_gpu_argv(self._nvidia_smi, self._reasons_field)
                result = self._read(list(argv), timeout=self._timeout)
                rejected = invalid_query_field(result.stdout + "\n" + result.stderr)
                if rejected == REASONS_FIELD and self._reasons_field == REASONS_FIELD:
                    self._reasons_field = OLD_REASONS_FIELD  # older driver: remember for next time
                    continue
                if not result.ok:
                    raise self._failed(result)
                return parse_gpu_query(result.stdout, device=self.name, address=self._address, command=result.command)
        raise DeviceProtocolError(
            self.name,
            self._address,
            "nvidia-smi --query-gpu",
            f"refused both {REASONS_FIELD} and {OLD_REASONS_FIELD}",
        )

    # ---- load -------------------------------------------------------------------------------
    def _load_argv(self, level: float, duration_s: float | None) -> list[str]:
        duration = UNBOUNDED_DURATION_S if duration_s is None else max(1, math.ceil(duration_s))
        values = {"{level}": f"{level:g}", "{level_pct}": str(round(level * 100)), "{duration}": str(duration)}
        argv = []
        for word in self._load:
            for key, value in values.items():
                word = word.replace(key, value)
            argv.append(word)
        return argv

    def start_load(self, level: float, duration_s: float | None = None) -> None:
        """Start the load tool detached at ``level`` (0..1) for ``duration_s`` (None: until stop_load).

        Refuses if a load started from the same pid file is still running.
        """
        operation = f"start GPU load at {level:.0%} ({' '.join(self._load)})"
        if not 0.0 < level <= 1.0 or math.isnan(level):
            raise ValueError(f"load level must be in (0, 1], got {level!r}")
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s must be positive or None, got {duration_s!r}")
        if level < 1.0 and not any(p in w for w in self._load for p in ("{level}", "{level_pct}")):
            raise DeviceError(
                self.name,
                self._address,
                operation,
                "the configured load_command has no {level} or {level_pct} placeholder, so it can only "
                "run full load; configure a tool that takes a level",
            )
        argv = ["sh", "-c", START_SCRIPT, "rackval-load", self._pid_file, self._log_file]
        argv += self._load_argv(level, duration_s)
        with self._lock:
            result = self._run(argv, timeout=self._timeout + 1.0)
            if not result.ok:
                raise self._failed(result, operation)
            try:
                self.load_pid = int(result.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise DeviceProtocolError(
                    self.name, self._address, operation, f"expected the load's PID, got {result.stdout[:80]!r}"
                ) from None

    def stop_load(self) -> None:
        """Stop the load by the PID in the pid file (SIGTERM, then SIGKILL after the grace time).

        Idempotent: no pid file or a process that already ended is not an error.
        """
        program = self._load[0].rsplit("/", 1)[-1]
        argv = ["sh", "-c", STOP_SCRIPT, "rackval-load-stop", self._pid_file, program, str(self._grace)]
        with self._lock:
            result = self._run(argv, timeout=self._timeout + self._grace + 1.0)
            if not result.ok:
                raise self._failed(result, f"stop GPU load (pid file {self._pid_file})")
            self.load_pid = None

    # ---- diagnostics ------------------------------------------------------------------------
    def run_diag(self, level: int) -> DiagResult:
        """``dcgmi diag -r level --json``; dcgmi exits non-zero when a test fails, so the JSON decides."""
        if level not in DIAG_TIMEOUT_S:
            raise ValueError(f"dcgmi diag level must be 1..4, got {level!r}")
        limit = self._diag_timeout if self._diag_timeout is not None else DIAG_TIMEOUT_S[level]
        argv = [self._dcgmi, "diag", "-r", str(level), "--json"]
        with self._lock:
            result = self._run(argv, timeout=limit)
        if "{" not in result.stdout:
            raise self._failed(result)
        return parse_dcgm_diag(result.stdout, level, device=self.name, address=self._address, command=result.command)
