"""IPMI over LAN by running ``ipmitool``: one subprocess per command, password never on argv.

Why a subprocess and not a Python IPMI library: ipmitool is what every BMC vendor tests
against and what engineers reproduce failures with, so a failing check can be re-run by hand
with the same argv (printed in the error, password excluded). The password travels in the
``IPMI_PASSWORD`` environment variable with ``-E``: anything on the command line is visible
to every user through ``ps`` and ``/proc/<pid>/cmdline``.

ipmitool reports a wrong password, an unknown user and an unreachable BMC with the same line
("Unable to establish IPMI v2 / RMCP+ session") unless ``-v`` is given, and ``-v`` changes the
output format of ``sdr``/``fru``. So commands run without ``-v``; when a session cannot be
established, one read-only probe (``chassis power status``) runs with ``-v`` to tell
DeviceAuthError from DeviceTimeout. The probe never repeats the failed command, so a power
action is never sent twice.

Bounds: ipmitool runs in its own process group and is read through pipes with a budget, so an
operation (the command, and the probe after a failed session) ends within ``config.timeout_s``
(the whole group is killed then, grandchildren holding the pipes included; ``subprocess.run``
would wait for them) and its output is at most option ``max_output_bytes``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rackval.core.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import IpmiOptions, parse_options

DEFAULT_IPMI_PORT = 623
CIPHER_SUITES = (3, 17)  # 3: HMAC-SHA1/AES-128 (old BMCs); 17: HMAC-SHA256/AES-128 (current default)
INTERFACES = ("lanplus", "lan")

# Substrings of ipmitool's stderr (ipmitool 1.8.19, src/plugins/lanplus/lanplus.c and lan.c).
_SESSION_FAILED = ("Unable to establish", "Error: Unable to establish IPMI")
_AUTH_MARKERS = (
    "RAKP 2 HMAC is invalid",
    "unauthorized name",
    "invalid integrity check value",
    "Invalid user name",
    "Authentication type NONE not supported",
    "Activate Session error",
    "RAKP 4 message has invalid integrity check value",
    "invalid authentication algorithm",
    "invalid role",
    "Set Session Privilege Level to",
)
_NO_ANSWER_MARKERS = (
    "Get Auth Capabilities error",
    "No response from remote controller",
    "Error issuing Get Channel Authentication Capabilities request",
    "Address lookup for",
)


@dataclass(frozen=True)
class IpmiResult:
    """One ipmitool run that exited 0: its subcommand words, stdout and stderr."""

    args: tuple[str, ...]
    stdout: str
    stderr: str
    duration_s: float


def _last_lines(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-n:]) if lines else "(no output)"


class IpmiTransport:
    """Runs ipmitool subcommands against one BMC over IPMI-over-LAN.

    Credentials: ``username`` and ``password`` (the password goes to ipmitool through the
    ``IPMI_PASSWORD`` environment variable, never on the command line).

    Options (``config.options``):

    - ``cipher_suite`` (int, default 17): RMCP+ cipher suite (``-C``). 17 (HMAC-SHA256) is what
      current BMCs and ipmitool >= 1.8.19 default to; 3 (HMAC-SHA1) for older BMCs and
      OpenIPMI's ipmi_sim. Other values are refused: 0-2 send no or weak integrity protection.
    - ``interface`` (``lanplus`` default, or ``lan`` for IPMI 1.5-only BMCs; ``-C`` is not sent
      with ``lan``).
    - ``retries`` (int >= 1, default 2): ipmitool's own retransmissions (``-R``) of each request.
    - ``retransmit_s`` (int, default 1): ipmitool's wait per attempt (``-N``, whole seconds).
    - ``privilege`` (str, optional): ``-L`` session privilege (e.g. ``OPERATOR`` for read-only
      accounts); ipmitool's default (ADMINISTRATOR) when absent.
    - ``ipmitool`` (path, default ``ipmitool`` on PATH).
    - ``max_output_bytes`` (default 8 MiB): more output than this (stdout and stderr together)
      is a DeviceProtocolError and ipmitool is killed.

    Each operation (a run, with the diagnostic probe a failed session needs) ends within
    ``config.timeout_s``: ipmitool's own retransmission budget ((retries + 1) * retransmit_s)
    should fit in it; a hung ipmitool is killed rather than waited on. The default port is 623
    (``config.port`` overrides it).
    """

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        # (ipmitool treats -R 0 as "use the built-in 20 s budget", not "no retry": the model refuses it)
        opts = parse_options(IpmiOptions, config.options, config.name, known_only=True)
        self._cipher = opts.cipher_suite
        self._interface = opts.interface
        self._retries = opts.retries
        self._retransmit_s = opts.retransmit_s
        self._privilege = opts.privilege
        self._ipmitool = opts.ipmitool
        self._max_output = opts.max_output_bytes
        self._port = config.port if config.port is not None else DEFAULT_IPMI_PORT

    def __repr__(self) -> str:
        return f"IpmiTransport({self.name!r}, {self._config.address!r}, cipher_suite={self._cipher})"

    @property
    def _retry_budget_s(self) -> float:
        return float((self._retries + 1) * self._retransmit_s)

    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self._config.name, self._config.address, operation, detail)

    def argv(self, args: Sequence[str], *, verbose: bool = False) -> list[str]:
        """The full ipmitool argv for ``args`` (no password in it: it goes in the environment)."""
        creds = self._config.credentials
        argv = [self._ipmitool, "-I", self._interface, "-H", self._config.host, "-p", str(self._port)]
        if creds.username is not None:
            argv += ["-U", creds.username]
        if self._interface == "lanplus":
            argv += ["-C", str(self._cipher)]
        if self._privilege:
            argv += ["-L", self._privilege]
        argv += ["-N", str(self._retransmit_s), "-R", str(self._retries), "-E"]
        if verbose:
            argv.append("-v")
        return argv + list(args)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("IPMI_PASSWORD", None)
        env["LC_ALL"] = "C"  # ipmitool's dates and messages in one known format
        password = self._config.credentials.password
        env["IPMI_PASSWORD"] = password.reveal() if password is not None else ""
        return env

    def _spawn(
        self, args: Sequence[str], operation: str, deadline: float, *, verbose: bool = False
    ) -> tuple[int, str, str, float]:
        """Run ipmitool to its end, ``deadline`` (monotonic) and the output cap permitting."""
        if shutil.which(self._ipmitool) is None:
            detail = f"ipmitool not found ({self._ipmitool!r}); install package ipmitool"
            raise self._err(DeviceError, operation, detail)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                self.argv(args, verbose=verbose),
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: killed whole at the deadline
            )
        except OSError as exc:
            raise self._err(DeviceError, operation, f"cannot run ipmitool: {exc}") from exc
        try:
            out, err = self._collect(proc, operation, deadline)
            status = proc.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired as exc:
            raise self._late(operation) from exc
        finally:
            _reap(proc)
        return (
            status,
            out.decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
            (time.monotonic() - start),
        )

    def _late(self, operation: str) -> DeviceError:
        return self._err(DeviceTimeout, operation, f"ipmitool did not finish within {self._config.timeout_s:g} s")

    def _collect(self, proc: subprocess.Popen[bytes], operation: str, deadline: float) -> tuple[bytes, bytes]:
        """stdout and stderr read together until both end, by ``deadline``, at most the cap."""
        assert proc.stdout is not None and proc.stderr is not None
        bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        with selectors.DefaultSelector() as sel:
            for fd in bufs:
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._late(operation)
                for key, _ in sel.select(remaining):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fd)
                        continue
                    bufs[key.fd] += chunk
                    if sum(len(b) for b in bufs.values()) > self._max_output:
                        detail = f"output larger than {self._max_output} bytes (option 'max_output_bytes')"
                        raise self._err(DeviceProtocolError, operation, detail)
        return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()])

    def run(self, args: Sequence[str], operation: str | None = None) -> IpmiResult:
        """Run ``ipmitool <connection options> <args...>``; return its output if it exited 0.

        ``args`` are the subcommand words (e.g. ``["chassis", "power", "status"]``), passed as
        an argv list (no shell). A non-zero exit raises: DeviceAuthError when the BMC refused the
        user, password or cipher suite, DeviceTimeout when it did not answer, DeviceError
        otherwise (with ipmitool's last stderr lines, e.g. "Invalid command").
        """
        op = operation or f"ipmitool {' '.join(args)}"
        deadline = time.monotonic() + self._config.timeout_s
        status, out, err, duration = self._spawn(args, op, deadline)
        if status == 0:
            return IpmiResult(tuple(args), out, err, duration)
        if any(marker in err for marker in _SESSION_FAILED):
            if duration >= 0.9 * self._retry_budget_s:
                # A BMC that answers refuses a login at once; spending the whole retransmission
                # budget means nothing answered. Skip the probe: it would only wait again.
                raise self._no_answer(op)
            raise self._diagnose_session(op, err, deadline)
        raise self._err(DeviceError, op, f"ipmitool exited {status}: {_last_lines(err or out)}")

    def _no_answer(self, op: str) -> DeviceError:
        return self._err(
            DeviceTimeout,
            op,
            f"no answer from the BMC on UDP port {self._port} ({self._retries + 1} attempts x {self._retransmit_s} s)",
        )

    def _diagnose_session(self, op: str, first_err: str, deadline: float) -> DeviceError:
        """Tell a refused login from a silent BMC with one read-only ``-v`` probe (same deadline)."""
        try:
            _, _, err, _ = self._spawn(["chassis", "power", "status"], op, deadline, verbose=True)
        except DeviceTimeout:
            err = "No response from remote controller"
        text = err + "\n" + first_err
        if any(marker in text for marker in _AUTH_MARKERS):
            detail = next(m for m in _AUTH_MARKERS if m in text)
            return self._err(
                DeviceAuthError,
                op,
                f"BMC refused the IPMI session ({detail}): check user, password, privilege and "
                f"cipher suite {self._cipher}",
            )
        if any(marker in text for marker in _NO_ANSWER_MARKERS):
            return self._no_answer(op)
        return self._err(DeviceError, op, f"IPMI session failed: {_last_lines(text)}")

    def close(self) -> None:
        """Nothing stays open between runs (each is its own session); kept for the driver contract."""


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Kill what is left of ipmitool's process group, close its pipes and collect its status.

    Only while its leader is not reaped (``returncode`` None: alive, or a zombie that keeps the
    group's id from being reused); a run read to the end of both pipes leaves nothing behind.
    """
    if proc.returncode is None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    proc.wait()
