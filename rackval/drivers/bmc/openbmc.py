"""An OpenBMC BMC driven over SSH with ``obmcutil``, ``/etc/os-release`` and ``busctl``.

Why SSH when OpenBMC has Redfish: during bring-up bmcweb is often the component that is
broken or not yet configured, while the BMC's shell works; engineers then check and switch
host power with ``obmcutil``. The parsers are pure functions over the text these tools print
(``obmcutil`` is a shell script in openbmc/phosphor-state-manager that prints
``printf "%-20s: %s\\n" Property Value`` lines).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from rackval.core.errors import DeviceError, DeviceProtocolError
from rackval.drivers.capabilities import Bmc, Device, HostReset, Identity, reset_refusal
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import OpenBmcOptions, parse_options
from rackval.drivers.transport.ssh import CommandResult, SshTransport

INVENTORY_SERVICE = "xyz.openbmc_project.Inventory.Manager"
ASSET_INTERFACE = "xyz.openbmc_project.Inventory.Decorator.Asset"

# xyz.openbmc_project.State.Host.HostState -> Redfish PowerState, as bmcweb maps it
# (redfish-core/lib/systems.hpp) [S]: a quiesced or diagnostic host is still powered.
HOST_TO_POWER: dict[str, str] = {
    "Running": "On",
    "Quiesced": "On",
    "DiagnosticMode": "On",
    "Off": "Off",
    "TransitioningToRunning": "PoweringOn",
    "TransitioningToOff": "PoweringOff",
    "Standby": "Paused",
}
CHASSIS_TO_POWER: dict[str, str] = {
    "On": "On",
    "Off": "Off",
    "TransitioningToOn": "PoweringOn",
    "TransitioningToOff": "PoweringOff",
}

# Redfish ResetType -> obmcutil subcommand. poweroff asks the host to shut down
# (RequestedHostTransition Off); chassisoff cuts chassis power at once (RequestedPowerTransition Off).
RESET_COMMANDS: dict[str, str] = {
    "On": "poweron",
    "ForceOn": "poweron",
    "GracefulShutdown": "poweroff",
    "ForceOff": "chassisoff",
}

_STATE_LINE = re.compile(r"^\s*(\w+)\s*:\s*(\S+)\s*$")
_BUSCTL_STRING = re.compile(r'^\s*s\s+"(.*)"\s*$')


def parse_obmcutil_state(text: str) -> dict[str, str]:
    """``obmcutil state`` -> {"CurrentHostState": "Running", ...}: the last dotted component."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = _STATE_LINE.match(line)
        if match and match.group(2).startswith("xyz.openbmc_project."):
            out[match.group(1)] = match.group(2).rsplit(".", 1)[-1]
    return out


def power_from_state(state: Mapping[str, str]) -> str:
    """Redfish-style PowerState from parsed ``obmcutil state``: host state first, then chassis."""
    host = state.get("CurrentHostState")
    if host is not None and host in HOST_TO_POWER:
        return HOST_TO_POWER[host]
    chassis = state.get("CurrentPowerState")
    if chassis is not None and chassis in CHASSIS_TO_POWER:
        return CHASSIS_TO_POWER[chassis]
    raise ValueError(f"no known CurrentHostState or CurrentPowerState in {dict(state)!r}")


def parse_os_release(text: str) -> dict[str, str]:
    """``/etc/os-release`` (shell-quoted KEY=value lines) -> dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value.strip("\"'")]
        out[key] = " ".join(words)
    return out


def parse_busctl_strings(text: str) -> list[str]:
    """``busctl get-property ... P1 P2 ...`` of string properties -> their values in order."""
    values = []
    for line in text.splitlines():
        match = _BUSCTL_STRING.match(line)
        if match:
            values.append(match.group(1).encode("latin-1", "backslashreplace").decode("unicode_escape"))
    return values


class OpenBmcSsh(Device, Bmc, HostReset):
    """An OpenBMC BMC reached over SSH (``rackval.drivers.transport.ssh.SshTransport``).

    Options: those of ``SshTransport`` (``known_hosts``, ``trust_on_first_use``, ...), plus

    - ``inventory_object`` (default ``/xyz/openbmc_project/inventory/system``): the D-Bus
      inventory object whose ``xyz.openbmc_project.Inventory.Decorator.Asset`` Manufacturer,
      Model and SerialNumber identify the server. When busctl fails (object absent, older
      image) identity falls back to /etc/os-release: vendor = NAME, model =
      OPENBMC_TARGET_MACHINE, serial empty.
    - ``command_timeout_s`` (float, default ``config.timeout_s``): bound on each command.

    ``identify().firmware`` is os-release VERSION_ID (the BMC image version).
    """

    options_model = OpenBmcOptions

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        opts = parse_options(self.options_model, config.options, config.name)
        self._inventory_object = opts.inventory_object
        self._timeout = opts.command_timeout_s or config.timeout_s
        self._transport = SshTransport(config)
        self._identity: Identity | None = None

    def __repr__(self) -> str:
        return f"OpenBmcSsh({self.name!r}, {self._config.address!r})"

    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self._config.name, self._config.address, operation, detail)

    def _run(self, argv: list[str], operation: str, *, check: bool = True) -> CommandResult:
        result = self._transport.run(argv, timeout=self._timeout)
        if check and not result.ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise self._err(
                DeviceError, operation, f"exit status {result.exit_status}: {' / '.join(detail[-3:]) or '(no output)'}"
            )
        return result

    # ---- Device -------------------------------------------------------------------------------
    def identify(self) -> Identity:
        """Manufacturer / Model / SerialNumber from the inventory (busctl), firmware from os-release."""
        if self._identity is None:
            release = parse_os_release(self._run(["cat", "/etc/os-release"], "read /etc/os-release").stdout)
            asset = self._run(
                [
                    "busctl",
                    "get-property",
                    INVENTORY_SERVICE,
                    self._inventory_object,
                    ASSET_INTERFACE,
                    "Manufacturer",
                    "Model",
                    "SerialNumber",
                ],
                "read inventory asset (busctl get-property)",
                check=False,
            )
            values = parse_busctl_strings(asset.stdout) if asset.ok else []
            vendor, model, serial = values if len(values) == 3 else ("", "", "")
            self._identity = Identity(
                vendor=vendor or release.get("NAME", ""),
                model=model or release.get("OPENBMC_TARGET_MACHINE", ""),
                serial=serial,
                firmware=release.get("VERSION_ID", ""),
            )
        return self._identity

    def close(self) -> None:
        self._transport.close()

    # ---- Bmc ----------------------------------------------------------------------------------
    def state(self) -> dict[str, str]:
        """``obmcutil state`` as {property: short value}, e.g. CurrentBMCState: Ready."""
        op = "read BMC/chassis/host state (obmcutil state)"
        parsed = parse_obmcutil_state(self._run(["obmcutil", "state"], op).stdout)
        if not parsed:
            raise self._err(DeviceProtocolError, op, "no 'Property : xyz.openbmc_project...' lines in the output")
        return parsed

    def power_state(self) -> str:
        """Host power as Redfish names it: On, Off, PoweringOn, PoweringOff, Paused."""
        state = self.state()
        try:
            return power_from_state(state)
        except ValueError as exc:
            raise self._err(DeviceProtocolError, "read host power (obmcutil state)", str(exc)) from exc

    def bmc_ready(self) -> bool:
        """True when CurrentBMCState is Ready (the BMC finished booting its services)."""
        return self.state().get("CurrentBMCState") == "Ready"

    def temperatures(self) -> dict[str, float]:
        """Not read over SSH (use the Redfish driver for sensors): always raises DeviceError."""
        raise self._err(
            DeviceError,
            "read temperatures",
            "the OpenBMC SSH driver does not read sensors; use the 'redfish' driver for this BMC",
        )

    # ---- actions ------------------------------------------------------------------------------
    def reset(self, reset_type: str) -> None:
        """``obmcutil poweron`` (On / ForceOn), ``poweroff`` (GracefulShutdown) or ``chassisoff``
        (ForceOff); any other Redfish ResetType is refused before anything is sent. Destructive:
        the harness's safety gate decides. Returns once the transition was requested; poll
        ``power_state()`` for the outcome.
        """
        refusal = reset_refusal(reset_type, RESET_COMMANDS, "obmcutil")
        if refusal is not None:
            raise self._err(DeviceError, f"reset host ({reset_type})", refusal)
        command = RESET_COMMANDS[reset_type]
        self._run(["obmcutil", command], f"reset host (obmcutil {command})")

    def power_on(self) -> None:
        """``obmcutil poweron`` (ResetType On)."""
        self.reset("On")

    def power_off(self) -> None:
        """``obmcutil poweroff``: ask the host to shut down (ResetType GracefulShutdown)."""
        self.reset("GracefulShutdown")
