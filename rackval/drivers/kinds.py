"""Device kinds, declared once: what each ``kind:`` of a rack file means.

A rack file gives every device a kind (pdu, switch, bmc, analyzer, node, cdu, power_shelf). The kind decides which
drivers fit the device (a driver declares its kind in the registry), which capability Protocols
such a driver implements, and which test argument the pytest plugin parametrises with the
devices of that kind. Every part of rackval that needs one of these facts reads it from
``DEVICE_KINDS``; a new kind is one row here (plus its drivers).
"""

from __future__ import annotations

from dataclasses import dataclass

from rackval.drivers.capabilities import (
    Bmc,
    CoolingUnit,
    Device,
    GpuNode,
    LeakDetection,
    NetSwitch,
    OutletSwitch,
    PowerMeter,
    PowerShelf,
)

DEVICES = "devices"
"""``DeviceKind.params_over``: the test argument takes the name of every device of the kind."""
RACK_NODES = "nodes"
"""``DeviceKind.params_over``: the test argument takes every entry of the rack file's ``nodes:``
section (a compute node: its BMC, its OS, its PSUs and NICs), whether or not its OS is a device."""

ANY_DEVICE_PARAM = "device_name"
"""A test argument parametrised with every device of the rack, whatever its kind."""


@dataclass(frozen=True)
class DeviceKind:
    """One kind of device.

    ``protocols`` are the capabilities every driver of the kind implements (a driver may have
    more: a BMC that also meters power is a PowerMeter too). ``param`` is the test argument the
    plugin parametrises with the names ``params_over`` says (``DEVICES`` or ``RACK_NODES``).
    """

    name: str
    label: str
    protocols: tuple[type, ...]
    param: str
    params_over: str = DEVICES


DEVICE_KINDS: dict[str, DeviceKind] = {
    k.name: k
    for k in (
        DeviceKind("pdu", "power distribution unit", (Device, PowerMeter, OutletSwitch), "pdu_name"),
        DeviceKind("switch", "network switch", (Device, NetSwitch), "switch_name"),
        # power readings are optional on a BMC (OpenBMC over SSH has none)
        DeviceKind("bmc", "baseboard management controller", (Device, Bmc), "bmc_name"),
        DeviceKind("analyzer", "power analyzer", (Device, PowerMeter), "analyzer_name"),
        # node_name names a compute node of the rack file (BMC, OS, PSUs, NICs), not only its OS
        DeviceKind("node", "GPU node operating system", (Device, GpuNode), "node_name", params_over=RACK_NODES),
        # liquid cooling: a CDU always has leak detectors to report (an empty list when it has none)
        DeviceKind("cdu", "coolant distribution unit", (Device, CoolingUnit, LeakDetection), "cdu_name"),
        DeviceKind("power_shelf", "power shelf (rectifiers, DC busbar, batteries)", (Device, PowerShelf), "shelf_name"),
    )
}

KIND_NAMES: tuple[str, ...] = tuple(DEVICE_KINDS)


def describe_kinds() -> str:
    """The valid kinds for an error message: ``pdu (power distribution unit), switch (...)``."""
    return ", ".join(f"{k.name} ({k.label})" for k in DEVICE_KINDS.values())
