"""Driver names -> driver classes. Built-in drivers are listed here; others come from plugins.

A third-party package adds a driver with an entry point in the group ``rackval.drivers``:
``name = "package.module:Class"``; the class claims the ``rackval.drivers.capabilities`` Protocols
it implements by subclassing them, and a device may use it when it claims every Protocol its kind
requires (``rackval.drivers.kinds``: pdu, switch, bmc, analyzer, node, cdu, power_shelf). Classes are imported only
when a rack uses them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points

from rackval.core.errors import ConfigError
from rackval.drivers.kinds import KIND_NAMES
from rackval.drivers.options import DriverOptions

KINDS = KIND_NAMES


@dataclass(frozen=True)
class DriverEntry:
    name: str
    kind: str | None  # None: a plugin whose kind is known only after import
    target: str  # "module:Class"


BUILTIN: dict[str, DriverEntry] = {
    e.name: e
    for e in (
        DriverEntry("apc-rpdu2", "pdu", "rackval.drivers.pdu.apc:ApcRpdu2Pdu"),
        DriverEntry("raritan-pdu2", "pdu", "rackval.drivers.pdu.raritan:RaritanPdu2Pdu"),
        DriverEntry("servertech-sentry4", "pdu", "rackval.drivers.pdu.servertech:ServerTechSentry4Pdu"),
        DriverEntry("eaton-epdu", "pdu", "rackval.drivers.pdu.eaton:EatonEpduPdu"),
        DriverEntry("redfish-pdu", "pdu", "rackval.drivers.pdu.redfish_pdu:RedfishRackPdu"),
        DriverEntry("sonic", "switch", "rackval.drivers.switch.sonic:SonicSwitch"),
        DriverEntry("arista-eos", "switch", "rackval.drivers.switch.eos:AristaEosSwitch"),
        DriverEntry("snmp-switch", "switch", "rackval.drivers.switch.snmp_switch:SnmpSwitch"),
        DriverEntry("redfish", "bmc", "rackval.drivers.bmc.redfish:RedfishBmc"),
        DriverEntry("ipmi", "bmc", "rackval.drivers.bmc.ipmi:IpmiBmc"),
        DriverEntry("openbmc-ssh", "bmc", "rackval.drivers.bmc.openbmc:OpenBmcSsh"),
        DriverEntry("yokogawa-wt", "analyzer", "rackval.drivers.instrument.yokogawa:YokogawaWtAnalyzer"),
        DriverEntry("chroma-66200", "analyzer", "rackval.drivers.instrument.chroma:Chroma66200"),
        DriverEntry("generic-scpi", "analyzer", "rackval.drivers.instrument.generic:GenericScpiInstrument"),
        DriverEntry("linux-gpu-node", "node", "rackval.drivers.node.linux:LinuxGpuNode"),
        DriverEntry("redfish-cdu", "cdu", "rackval.drivers.cooling.redfish_cdu:RedfishCdu"),
        DriverEntry("modbus-cdu", "cdu", "rackval.drivers.modbus.modbus_device:ModbusCdu"),
        DriverEntry("modbus-power-shelf", "power_shelf", "rackval.drivers.modbus.modbus_device:ModbusPowerShelf"),
        DriverEntry(
            "redfish-power-shelf", "power_shelf", "rackval.drivers.power_shelf.redfish_shelf:RedfishPowerShelf"
        ),
    )
}


def available() -> dict[str, DriverEntry]:
    """Built-in drivers plus those that installed packages declare as entry points."""
    found = dict(BUILTIN)
    for ep in entry_points(group="rackval.drivers"):
        found.setdefault(ep.name, DriverEntry(ep.name, None, ep.value))
    return found


def missing_for_kind(name: str, kind: str) -> list[str]:
    """The Protocols a ``kind`` device needs that the driver registered as ``name`` does not claim
    (by subclassing; see ``rackval.drivers.kinds``); [] when it fits."""
    from rackval.drivers.kinds import DEVICE_KINDS

    mro = load(name).__mro__
    return [p.__name__ for p in DEVICE_KINDS[kind].protocols if p not in mro]


def options_model(name: str) -> type[DriverOptions] | None:
    """The typed options of the driver registered as ``name`` (None: a plugin that declares none,
    whose options are then passed through unchecked)."""
    model = getattr(load(name), "options_model", None)
    return model if isinstance(model, type) and issubclass(model, DriverOptions) else None


def load(name: str) -> type:
    """The driver class registered as ``name``; ConfigError if there is none or it won't import."""
    entries = available()
    if name not in entries:
        raise ConfigError(f"unknown driver {name!r} (available: {', '.join(sorted(entries))})")
    module_name, _, class_name = entries[name].target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"driver {name!r} ({entries[name].target}) cannot be loaded: {exc}") from exc
