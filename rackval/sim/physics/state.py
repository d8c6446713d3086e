"""The state every part of the rack model shares: the devices, the virtual time, the event queue.

``RackState`` holds what the parts read and change (nodes, PDUs, switches, analyzers, feeds,
firmware tables), the virtual time ``t`` the state is at, and the queue of scheduled events (boot
complete, fault start ...), which ``rackval.sim.physics.parts.ModelParts`` processes at their own
times. It also answers the questions every part asks: which PSUs of a node have input, what a
GPU's workload demands, where a port or a node's BMC is, and it writes the node's SEL.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable

from rackval.sim.clock import SimClock
from rackval.sim.physics.devices import (
    HOST_ON,
    PSU_FAILED,
    PSU_NO_INPUT,
    PSU_OK,
    Analyzer,
    Node,
    Pdu,
    Port,
    Psu,
    SelEntry,
    Switch,
)
from rackval.sim.physics.equipment import BUSBAR, Cdu, ColdPlate, PowerShelf
from rackval.sim.reference import ModelParams, RackSize


class RackState:
    """The devices of one simulated rack at virtual time ``t``; ``lock`` guards all of it."""

    def __init__(self, size: RackSize, clock: SimClock, params: ModelParams) -> None:
        self.size = size
        self.clock = clock
        self.params = params
        self.lock = threading.RLock()
        self.ambient_c = params.ambient_c
        self.nodes: dict[str, Node] = {}
        self.pdus: dict[str, Pdu] = {}
        self.switches: dict[str, Switch] = {}
        self.analyzers: dict[str, Analyzer] = {}
        self.feed_up: dict[str, bool] = {}
        self.firmware: dict[str, dict[str, str]] = {}
        self.baseline: dict[str, dict[str, str]] = {}
        self.device_kind: dict[str, str] = {}  # device name -> node | bmc | pdu | switch | analyzer | cdu | ...
        # Liquid cooling and power shelves: empty unless the design has them (``physics.equipment``).
        self.cdus: dict[str, Cdu] = {}
        self.cold_plates: dict[str, ColdPlate] = {}  # by node name: the liquid-cooled node trays
        self.shelves: dict[str, PowerShelf] = {}
        self.busbar_up = True  # the DC busbar the shelves feed (busbar PSUs have input while it is up)
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.t = clock.now()
        self.dirty = True  # state changed since the last integration

    # ---- time -------------------------------------------------------------------------------
    def schedule(self, at: float, action: Callable[[], None]) -> None:
        """Run ``action`` at virtual time ``at`` (or now, if that has passed)."""
        heapq.heappush(self.events, (max(at, self.t), next(self._seq), action))

    def serial(self) -> int:
        """A number never handed out before (event order, fault incarnations)."""
        return next(self._seq)

    # ---- event log --------------------------------------------------------------------------
    def log(self, n: Node, severity: str, message_id: str, message: str, at: float | None = None) -> None:
        """Append to the node BMC's SEL, at ``at`` or the state's present time."""
        entry_id = n.sel[-1].id + 1 if n.sel else 1
        n.sel.append(SelEntry(entry_id, self.t if at is None else at, severity, message_id, message))

    # ---- questions every part asks ----------------------------------------------------------
    def psu_has_input(self, psu: Psu) -> bool:
        if psu.feed == BUSBAR:
            return self.busbar_up
        return self.feed_up[psu.feed] and self.pdus[psu.pdu].outlets[psu.outlet].on

    def psu_status(self, psu: Psu) -> str:
        if psu.failed:
            return PSU_FAILED
        return PSU_OK if self.psu_has_input(psu) else PSU_NO_INPUT

    def live_psus(self, n: Node) -> list[Psu]:
        return [p for p in n.psus if not p.failed and self.psu_has_input(p)]

    def psu(self, node: str, name: str) -> Psu:
        return next(p for p in self.nodes[node].psus if p.name == name)

    def gpu_util(self, n: Node, i: int) -> float:
        """The utilisation GPU ``i`` runs at: 0 unless the host is on with its OS up."""
        if n.host_state != HOST_ON or not n.os_up:
            return 0.0
        o = n.gpu_state[i].util_override
        return n.utilization if o is None else o

    def gpu_demand_w(self, n: Node, i: int) -> float:
        """The power GPU ``i``'s workload asks for, before capping and throttling."""
        return n.gpu_idle_w + self.gpu_util(n, i) * (n.gpu_max_w - n.gpu_idle_w)

    def port(self, switch: str, port: str | int) -> Port:
        for p in self.switches[switch].ports:
            if p.name == port or p.index == port:
                return p
        raise KeyError(f"no port {port!r} on {switch}")

    def node_by_any(self, name: str) -> Node:
        """A node by its name or its BMC's name."""
        if name in self.nodes:
            return self.nodes[name]
        for n in self.nodes.values():
            if n.bmc == name:
                return n
        raise KeyError(f"no node or BMC {name!r}")
