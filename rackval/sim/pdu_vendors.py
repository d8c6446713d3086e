"""The SNMP PDU vendors the simulator can serve: every registered driver that binds a vendor map.

The simulator has no vendor list of its own. A PDU driver registered in
``rackval.drivers.registry`` whose class is an ``SnmpPdu`` with a ``MAP`` that has an agent
profile can be simulated: the model takes a typical unit's identity from the profile, the
simulated agent (``rackval.sim.snmp_agent``) serves the map, and the simulated rack's file names
the driver. A sim-params file (``size.pdu_vendor_a`` / ``pdu_vendor_b``) chooses a vendor by its
driver name ("raritan-pdu2") or by the map's vendor ("raritan", any case).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from rackval.drivers import registry
from rackval.drivers.pdu.snmp_pdu import SnmpPdu
from rackval.drivers.pdu.snmp_pdu_map import AgentProfile, SnmpPduMap


@dataclass(frozen=True)
class SnmpPduVendor:
    """One servable vendor: its registered driver name and the map that driver reads."""

    driver: str
    map: SnmpPduMap

    @property
    def agent(self) -> AgentProfile:
        assert self.map.agent is not None  # vendors() keeps only maps with a profile
        return self.map.agent


@functools.cache
def vendors() -> tuple[SnmpPduVendor, ...]:
    """Every registered SNMP PDU driver whose map the simulator can serve, in registry order."""
    found = []
    for name, entry in registry.available().items():
        if entry.kind != "pdu":
            continue
        cls = registry.load(name)
        if issubclass(cls, SnmpPdu) and cls.MAP is not None and cls.MAP.agent is not None:
            found.append(SnmpPduVendor(name, cls.MAP))
    return tuple(found)


def vendor(choice: str) -> SnmpPduVendor:
    """The vendor ``choice`` names (driver name, or the map's vendor in any case)."""
    by_driver = [v for v in vendors() if v.driver == choice]
    by_vendor = [v for v in vendors() if v.map.vendor.lower() == choice.lower()]
    matches = by_driver or by_vendor
    if len(matches) == 1:
        return matches[0]
    known = sorted({v.map.vendor.lower() for v in vendors()} | {v.driver for v in vendors()})
    if matches:
        drivers = ", ".join(v.driver for v in matches)
        raise ValueError(f"PDU make {choice!r} is served by several drivers ({drivers}): name one")
    raise ValueError(f"unknown PDU make {choice!r} (known: {', '.join(known)})")
