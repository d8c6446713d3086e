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
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rackval.core.errors import ConfigError, DeviceAuthError, DeviceError, DeviceTimeout
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


def _int_option(options: Mapping[str, Any], key: str, default: int, device: str) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"device {device}: option {key!r} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"device {device}: option {key!r} must be an integer, got {value!r}") from exc


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

    Each run is bounded by ``config.timeout_s`` plus ipmitool's own retransmission budget
    ((retries + 1) * retransmit_s), so a hung ipmitool is killed rather than waited on.
    The default port is 623 (``config.port`` overrides it).
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
        self._port = config.port if config.port is not None else DEFAULT_IPMI_PORT

    def __repr__(self) -> str:
        return f"IpmiTransport({self.name!r}, {self._config.address!r}, cipher_suite={self._cipher})"

    @property
    def _retry_budget_s(self) -> float:
        return float((self._retries + 1) * self._retransmit_s)

    @property
    def limit_s(self) -> float:
        """Wall-clock bound of one ipmitool run."""
        return self._config.timeout_s + self._retry_budget_s

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

    def _spawn(self, args: Sequence[str], operation: str, *, verbose: bool = False) -> tuple[int, str, str, float]:
        if shutil.which(self._ipmitool) is None:
            detail = f"ipmitool not found ({self._ipmitool!r}); install package ipmitool"
            raise self._err(DeviceError, operation, detail)
        start = time.monotonic()
        try:
            proc = subprocess.run(
                self.argv(args, verbose=verbose),
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.limit_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise self._err(DeviceTimeout, operation, f"ipmitool did not finish within {self.limit_s:.0f} s") from exc
        except OSError as exc:
            raise self._err(DeviceError, operation, f"cannot run ipmitool: {exc}") from exc
        out = proc.stdout.decode("utf-8", errors="replace")
        err = proc.stderr.decode("utf-8", errors="replace")
        return proc.returncode, out, err, time.monotonic() - start

    def run(self, args: Sequence[str], operation: str | None = None) -> IpmiResult:
        """Run ``ipmitool <connection options> <args...>``; return its output if it exited 0.

        ``args`` are the subcommand words (e.g. ``["chassis", "power", "status"]``), passed as
        an argv list (no shell). A non-zero exit raises: DeviceAuthError when the BMC refused the
        user, password or cipher suite, DeviceTimeout when it did not answer, DeviceError
        otherwise (with ipmitool's last stderr lines, e.g. "Invalid command").
        """
        op = operation or f"ipmitool {' '.join(args)}"
        status, out, err, duration = self._spawn(args, op)
        if status == 0:
            return IpmiResult(tuple(args), out, err, duration)
        if any(marker in err for marker in _SESSION_FAILED):
            if duration >= 0.9 * self._retry_budget_s:
                # A BMC that answers refuses a login at once; spending the whole retransmission
                # budget means nothing answered. Skip the probe: it would only wait again.
                raise self._no_answer(op)
            raise self._diagnose_session(op, err)
        raise self._err(DeviceError, op, f"ipmitool exited {status}: {_last_lines(err or out)}")

    def _no_answer(self, op: str) -> DeviceError:
        return self._err(
            DeviceTimeout,
            op,
            f"no answer from the BMC on UDP port {self._port} ({self._retries + 1} attempts x {self._retransmit_s} s)",
        )

    def _diagnose_session(self, op: str, first_err: str) -> DeviceError:
        """Tell a refused login from a silent BMC with one read-only ``-v`` probe."""
        try:
            _, _, err, _ = self._spawn(["chassis", "power", "status"], op, verbose=True)
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
