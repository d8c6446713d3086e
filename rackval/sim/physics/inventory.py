"""Inventory part of the rack model: firmware per device component, against a baseline.

Every device (node, BMC, PDU, switch, analyzer) has firmware components; the version the device
reports as its own (``DeviceInfo.firmware``) is its main component's. The baseline is what the
rack was built with: a firmware_off_baseline fault moves a component away from it and back.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rackval.sim.physics.state import RackState

# The component holding each kind's main firmware ("AOS" names a PDU's, whatever its make).
MAIN_FIRMWARE = {
    "node": "BIOS", "bmc": "BMC", "pdu": "AOS", "switch": "SONiC", "analyzer": "firmware",
    "cdu": "firmware", "power_shelf": "firmware",
}  # fmt: skip


class Inventory:
    """Firmware versions of every device component, and their baseline."""

    def __init__(self, state: RackState) -> None:
        self.s = state

    def add(self, device: str, kind: str, components: dict[str, str]) -> None:
        """Register a device of ``kind`` with its components' versions (also its baseline)."""
        self.s.device_kind[device] = kind
        self.s.firmware[device] = dict(components)
        self.s.baseline[device] = dict(components)

    def main_component(self, device: str) -> str:
        return MAIN_FIRMWARE[self.s.device_kind[device]]

    def set_firmware(self, device: str, component: str, version: str) -> None:
        """Set a component's version; the main component's also becomes the device's own."""
        s = self.s
        s.firmware[device][component] = version
        kind = s.device_kind[device]
        if component != MAIN_FIRMWARE[kind]:
            return
        if kind == "node":
            n = s.nodes[device]
            n.info = dataclasses.replace(n.info, firmware=version)
        elif kind == "bmc":
            n = next(x for x in s.nodes.values() if x.bmc == device)
            n.bmc_info = dataclasses.replace(n.bmc_info, firmware=version)
        else:
            table: dict[str, Any] = {
                "pdu": s.pdus, "switch": s.switches, "analyzer": s.analyzers, "cdu": s.cdus, "power_shelf": s.shelves,
            }[kind]  # fmt: skip
            table[device].info = dataclasses.replace(table[device].info, firmware=version)
