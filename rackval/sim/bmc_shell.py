"""The simulated OpenBMC's SSH shell: what ``rackval.drivers.bmc.openbmc.OpenBmcSsh`` runs, answered from the model.

Commands (parsed with ``shlex.split``, never run by a shell):

- ``obmcutil state``: CurrentBMCState / CurrentPowerState / CurrentHostState / BootProgress /
  OperatingSystemState in phosphor-state-manager's ``printf "%-20s: %s\\n"`` layout, from
  ``model.bmc_state`` and ``model.host_state`` (PoweringOn is TransitioningToRunning).
- ``obmcutil poweron`` / ``poweroff`` / ``chassisoff`` (also ``chassison``, ``status``): host
  power requests on the model; anything else is "ERROR: Invalid command" (exit 1) as obmcutil
  prints it.
- ``cat /etc/os-release``: a Phosphor OpenBMC os-release whose VERSION_ID is the BMC firmware
  from ``model.firmware(bmc)`` (so a ``firmware_off_baseline`` fault shows up here).
- ``busctl get-property xyz.openbmc_project.Inventory.Manager /xyz/openbmc_project/inventory/system
  xyz.openbmc_project.Inventory.Decorator.Asset <Property>...``: the node's Manufacturer, Model,
  SerialNumber, PartNumber as ``s "value"`` lines.
"""

from __future__ import annotations

import shlex

import paramiko

from rackval.sim.model import RackModel
from rackval.sim.ssh_server import CommandHandler, CommandOutput, SshServer

_BMC_STATE = {"Ready": "Ready", "Booting": "NotReady", "Off": "NotReady"}
_HOST_STATE = {"On": "Running", "PoweringOn": "TransitioningToRunning", "Off": "Off"}
_INVENTORY = ("xyz.openbmc_project.Inventory.Manager", "/xyz/openbmc_project/inventory/system")
_ASSET = "xyz.openbmc_project.Inventory.Decorator.Asset"


def resolve_node(model: RackModel, name: str) -> tuple[str, str]:
    """(node, bmc) for a node name or a BMC name."""
    for node, n in model.nodes.items():
        if name in (node, n.bmc):
            return node, n.bmc
    raise KeyError(f"no node or BMC {name!r} in the rack model")


def format_obmcutil_state(bmc_state: str, host_state: str, os_up: bool) -> str:
    """``obmcutil state`` text for the model's BMC and host states."""
    host = _HOST_STATE.get(host_state, "Off")
    chassis = "Off" if host_state == "Off" else "On"
    progress = "OSRunning" if os_up else ("PrimaryProcInit" if host != "Off" else "Unspecified")
    os_status = "Standby" if os_up else "Inactive"
    rows = [
        ("CurrentBMCState", f"xyz.openbmc_project.State.BMC.BMCState.{_BMC_STATE.get(bmc_state, 'NotReady')}"),
        ("CurrentPowerState", f"xyz.openbmc_project.State.Chassis.PowerState.{chassis}"),
        ("CurrentHostState", f"xyz.openbmc_project.State.Host.HostState.{host}"),
        ("BootProgress", f"xyz.openbmc_project.State.Boot.Progress.ProgressStages.{progress}"),
        ("OperatingSystemState", f"xyz.openbmc_project.State.OperatingSystem.Status.OSStatus.{os_status}"),
    ]
    return "".join(f"{name:<20}: {value}\n" for name, value in rows)


def format_os_release(version_id: str, machine: str) -> str:
    """/etc/os-release of a Phosphor OpenBMC image with ``version_id`` as its version."""
    return (
        "ID=openbmc-phosphor\n"
        'NAME="Phosphor OpenBMC (Phosphor OpenBMC Project Reference Distro)"\n'
        f'VERSION="{version_id}"\n'
        f"VERSION_ID={version_id}\n"
        f'PRETTY_NAME="Phosphor OpenBMC (Phosphor OpenBMC Project Reference Distro) {version_id}"\n'
        'BUILD_ID="20240115093000"\n'
        f'OPENBMC_TARGET_MACHINE="{machine}"\n'
        'EXTENDED_VERSION=""\n'
    )


def bmc_cli(model: RackModel, node: str) -> CommandHandler:
    """A handler answering the OpenBMC shell commands of ``node``'s BMC (node or BMC name)."""
    node, bmc = resolve_node(model, node)

    def obmcutil(words: list[str]) -> CommandOutput:
        sub = words[1] if len(words) > 1 else ""
        if sub == "state":
            with model.lock:
                text = format_obmcutil_state(model.bmc_state(node), model.host_state(node), model.os_up(node))
            return CommandOutput(text)
        if sub == "status":
            return obmcutil(["obmcutil", "state"])
        if sub in ("poweron", "chassison"):
            model.host_power_on(node)
            return CommandOutput("")
        if sub in ("poweroff", "chassisoff"):
            model.host_power_off(node)
            return CommandOutput("")
        return CommandOutput("", f"ERROR: Invalid command '{sub}'\n", 1)

    def busctl(words: list[str]) -> CommandOutput:
        if words[1:2] != ["get-property"] or len(words) < 6:
            return CommandOutput("", "rackval simulator: only busctl get-property is simulated\n", 1)
        service, path, interface, props = words[2], words[3], words[4], words[5:]
        if (service, path) != _INVENTORY or interface != _ASSET:
            return CommandOutput("", f"Failed to get property {props[0]} on interface {interface}: Unknown object\n", 1)
        info = model.nodes[node].info
        values = {"Manufacturer": info.vendor, "Model": info.model, "SerialNumber": info.serial, "PartNumber": "P1"}
        unknown = [p for p in props if p not in values]
        if unknown:
            return CommandOutput(
                "", f"Failed to get property {unknown[0]} on interface {interface}: Unknown property\n", 1
            )
        return CommandOutput("".join(f's "{values[p]}"\n' for p in props))

    def handle(command: str) -> CommandOutput:
        try:
            words = shlex.split(command)
        except ValueError as exc:
            return CommandOutput("", f"sh: syntax error: {exc}\n", 2)
        if not words:
            return CommandOutput("")
        if words[0] == "obmcutil":
            return obmcutil(words)
        if words == ["cat", "/etc/os-release"]:
            firmware = model.firmware(bmc).get("BMC", model.nodes[node].bmc_info.firmware)
            return CommandOutput(format_os_release(firmware, model.nodes[node].bmc_info.model.lower()))
        if words[0] == "busctl":
            return busctl(words)
        return CommandOutput("", f"sh: {words[0]}: not found\n", 127)

    return handle


def start_bmc_ssh(
    model: RackModel,
    node: str,
    *,
    host: str = "127.0.0.1",
    username: str,
    password: str,
    host_key: paramiko.PKey,
    protocol_faults: bool = True,
) -> SshServer:
    """Serve the OpenBMC shell of ``node``'s BMC (``node`` = node or BMC name) over SSH on ``host``.

    The BMC is reachable while it has booted (``model.bmc_state`` Ready): with no input power
    or while booting, connections and commands get no answer. Protocol faults injected on the
    BMC's name act on the server (``protocol_faults=False`` turns that off).
    """
    node, bmc = resolve_node(model, node)
    handler = bmc_cli(model, node)
    faults = (lambda: model.active_faults(bmc)) if protocol_faults else None
    server = SshServer(
        handler,
        host=host,
        username=username,
        password=password,
        host_key=host_key,
        name=bmc,
        faults=faults,
        reachable=lambda: model.bmc_ready(node),
    )
    return server.start()
