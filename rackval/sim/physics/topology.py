"""How a simulated rack is built from a ``RackSize``: names, cabling, identities, firmware.

PSU p of every node goes to feed A when p is odd, B when even; a feed gets as many PDUs of
``outlets_per_pdu`` outlets as its PSUs need (pdu-a, or pdu-a1, pdu-a2 ... when more than one),
filled in node order; outlets are named after the PSU they feed. NIC i of every node is cabled to
switch i % switches (tor1, tor2 ...), in node order on its free ports. A PDU is a typical unit of
its feed's make (``size.pdu_vendor_a`` / ``_b``, see ``rackval.sim.pdu_vendors``). One analyzer measures both
feeds, or one per feed. A busbar design (power shelves) has shelves on both feeds instead of PDUs;
a liquid design one CDU with a cold plate and a leak detector per node tray. Serial numbers and
meter seeds derive from the size's seed and the device name, so a rack is the same in every process.
"""

from __future__ import annotations

from rackval.sim import pdu_vendors
from rackval.sim.physics.devices import (
    Analyzer,
    DeviceInfo,
    GpuState,
    Meter,
    Node,
    Outlet,
    Pdu,
    Port,
    Psu,
    Switch,
    stable_seed,
)
from rackval.sim.physics.equipment import BUSBAR, Bbu, Cdu, ColdPlate, LeakDetector, PowerShelf, Pump, Rectifier
from rackval.sim.physics.inventory import Inventory
from rackval.sim.physics.state import RackState

FEEDS = ("A", "B")


class Topology:
    """Builds the devices of a rack into its state (once, at construction)."""

    def __init__(self, state: RackState, inventory: Inventory) -> None:
        self.s = state
        self.inventory = inventory

    def _serial(self, prefix: str, name: str) -> str:
        return f"{prefix}{stable_seed(self.s.size.seed, name) % 10**8:08d}"

    def _meter(self, accuracy: float, name: str) -> Meter:
        return Meter(accuracy, stable_seed(self.s.size.seed, "meter", name))

    def build(self) -> None:
        busbar = self.s.params.power_shelves.count > 0
        pdus_by_feed = self._shelves() if busbar else self._pdus()
        self._nodes(pdus_by_feed)
        self._switches()
        self._analyzers()
        if self.s.params.cooling.mode == "liquid":
            self._cdu()

    def _shelves(self) -> dict[str, list[str]]:
        """A busbar design: power shelves on both feeds (rectifier r on feed A when odd, B when
        even), BBUs in every shelf, and no PDUs (nodes draw from the busbar)."""
        s, ps = self.s, self.s.params.power_shelves
        for feed in FEEDS:
            s.feed_up[feed] = True
        for i in range(1, ps.count + 1):
            name = f"shelf{i}"
            s.shelves[name] = PowerShelf(
                name=name,
                info=DeviceInfo("SimCo", "SC-PS33", self._serial("PS", name), "1.2.1"),
                feeds=FEEDS,
                rectifiers=[
                    Rectifier(f"PSU{r}", FEEDS[(r - 1) % 2], ps.psu_rated_w) for r in range(1, ps.psus_per_shelf + 1)
                ],
                bbus=[Bbu(f"BBU{b}", ps.bbu_capacity_wh) for b in range(1, ps.bbus_per_shelf + 1)],
                meter=self._meter(0.01, name),
            )
            self.inventory.add(name, "power_shelf", {"firmware": "1.2.1"})
        return {}

    def _cdu(self) -> None:
        """A liquid design: one in-rack CDU, a cold plate and a leak detector per node tray."""
        s, c = self.s, self.s.params.cooling
        name = "cdu1"
        detectors = [LeakDetector(f"{node}-tray", node) for node in s.nodes]
        detectors += [LeakDetector("CDU-Moisture", name), LeakDetector("CDU-Overflow", name)]
        s.cdus[name] = Cdu(
            name=name,
            info=DeviceInfo("SimCo", "SC-CDU150", self._serial("CDU", name), "3.2.0"),
            pumps=[Pump(f"Pump{p}", c.pump_speed_percent) for p in range(1, c.pumps + 1)],
            detectors=detectors,
            setpoint_c=c.supply_setpoint_c,
            supply_c=c.supply_setpoint_c,
            reservoir_l=c.reservoir_l,
            reservoir_capacity_l=c.reservoir_l,
            meter=self._meter(0.02, name),
        )
        for node in s.nodes:
            s.cold_plates[node] = ColdPlate(node)
        self.inventory.add(name, "cdu", {"firmware": "3.2.0"})

    def _pdus(self) -> dict[str, list[str]]:
        s, size, prm = self.s, self.s.size, self.s.params
        psus_on = {f: sum(1 for p in range(1, size.psus_per_node + 1) if FEEDS[(p - 1) % 2] == f) for f in FEEDS}
        pdus_by_feed: dict[str, list[str]] = {}
        for feed in FEEDS:
            s.feed_up[feed] = True
            needed = max(size.nodes * psus_on[feed], 1)
            count = max(-(-needed // size.outlets_per_pdu), 1)
            names = [f"pdu-{feed.lower()}"] if count == 1 else [f"pdu-{feed.lower()}{i}" for i in range(1, count + 1)]
            pdus_by_feed[feed] = names
            for name in names:
                outlets = min(size.outlets_per_pdu, needed) if count == 1 else size.outlets_per_pdu
                s.pdus[name] = Pdu(
                    name=name,
                    feed=feed,
                    info=self._pdu_info(getattr(size, f"pdu_vendor_{feed.lower()}"), name),
                    outlets={i: Outlet(index=i, name=f"Outlet {i}") for i in range(1, outlets + 1)},
                    voltage_v=prm.pdu_voltage_v,
                    self_power_w=prm.pdu_self_power_w,
                    meter=self._meter(0.01, name),
                )
                self.inventory.add(name, "pdu", {"AOS": s.pdus[name].info.firmware})
        return pdus_by_feed

    def _pdu_info(self, make: str, name: str) -> DeviceInfo:
        """A typical unit of the make's family (its map's agent profile), with its own serial."""
        vendor = pdu_vendors.vendor(make)
        unit = vendor.agent
        return DeviceInfo(vendor.map.vendor, unit.model, self._serial(unit.serial_prefix, name), unit.firmware)

    def _nodes(self, pdus_by_feed: dict[str, list[str]]) -> None:
        s, size, prm = self.s, self.s.size, self.s.params
        next_outlet = dict.fromkeys(FEEDS, 1)
        pw = prm.power
        for n in range(1, size.nodes + 1):
            node_name = f"node{n:02d}"
            psus = []
            for p in range(1, size.psus_per_node + 1):
                if not pdus_by_feed:  # a busbar design: the node's PSUs are DC-DC stages on the busbar
                    psus.append(Psu(name=f"PSU{p}", feed=BUSBAR, pdu="", outlet=0, rated_w=prm.psu.rated_w))
                    continue
                feed = FEEDS[(p - 1) % 2]
                slot = next_outlet[feed] - 1
                next_outlet[feed] += 1
                pdu = s.pdus[pdus_by_feed[feed][min(slot // size.outlets_per_pdu, len(pdus_by_feed[feed]) - 1)]]
                outlet = slot % size.outlets_per_pdu + 1 if len(pdus_by_feed[feed]) > 1 else slot + 1
                psu = Psu(name=f"PSU{p}", feed=feed, pdu=pdu.name, outlet=outlet, rated_w=prm.psu.rated_w)
                if outlet not in pdu.outlets:  # odd PSU counts: give the PDU the outlet it needs
                    pdu.outlets[outlet] = Outlet(index=outlet, name=f"Outlet {outlet}")
                pdu.outlets[outlet].psu = (node_name, psu.name)
                pdu.outlets[outlet].name = f"{node_name}-{psu.name}"
                psus.append(psu)
            node = Node(
                name=node_name,
                bmc=f"bmc-{node_name}",
                info=DeviceInfo("SimCo", "SC-8GPU-1", self._serial("SN", node_name), "1.4.2"),
                bmc_info=DeviceInfo("SimCo", "SC-BMC", self._serial("BMC", node_name), "2.18.0"),
                psus=psus,
                gpus=size.gpus_per_node,
                base_w=pw.base_w,
                standby_w=pw.standby_w,
                gpu_idle_w=pw.gpu_idle_w,
                gpu_max_w=pw.gpu_max_w,
                bmc_meter=self._meter(0.03, f"bmc-{node_name}"),
                fans=prm.fans.count,
                gpu_state=[GpuState(temp_c=s.ambient_c) for _ in range(size.gpus_per_node)],
            )
            s.nodes[node_name] = node
            fw = {"BIOS": "1.4.2", "CPLD": "0.9.3", "NIC": "28.39.1002"}
            fw |= {f"GPU{i}": "96.00.99.00.01" for i in range(size.gpus_per_node)}
            fw |= {p.name: "3.1.0" for p in psus}
            self.inventory.add(node_name, "node", fw)
            self.inventory.add(node.bmc, "bmc", {"BMC": "2.18.0"})

    def _switches(self) -> None:
        s, size = self.s, self.s.size
        for i in range(1, max(size.switches, 1) + 1):
            name = f"tor{i}"
            ports = [
                Port(name=f"Ethernet{8 * p}", index=p + 1, speed_mbps=400_000, alias=f"etp{p + 1}")
                for p in range(size.switch_ports)
            ]
            s.switches[name] = Switch(
                name=name,
                info=DeviceInfo("SONiC", "Mellanox-SN4600C-C64", self._serial("MT", name), "SONiC.202311.1"),
                ports=ports,
                mgmt_mac=f"b8:59:9f:00:00:{i:02x}",
            )
            self.inventory.add(name, "switch", {"SONiC": "SONiC.202311.1", "ONIE": "2022.05", "ASIC": "2012.2120.0"})
        switches = list(s.switches.values())
        for nic in range(max(size.nics_per_node, 1)):
            switch = switches[nic % len(switches)]
            free = [p for p in switch.ports if p.peer is None]
            for node_name, port in zip(s.nodes, free, strict=False):
                port.peer = (node_name, f"eth{nic}")

    def _analyzers(self) -> None:
        s, size = self.s, self.s.size
        groups = [(f"analyzer-{f.lower()}", (f,)) for f in FEEDS] if size.analyzer_per_feed else [("analyzer", FEEDS)]
        for name, measured in groups:
            s.analyzers[name] = Analyzer(
                name=name,
                info=DeviceInfo("YOKOGAWA", "WT5000", self._serial("91N", name), "F1.05"),
                feeds=measured,
                voltage_v=s.params.pdu_voltage_v,
                meter=self._meter(0.001, name),
            )
            self.inventory.add(name, "analyzer", {"firmware": "F1.05"})
