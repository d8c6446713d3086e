"""The rack model's parts assembled on one state, and the time loop that advances them.

Time: state advances lazily. Every read integrates from the last update to ``clock.now()`` with
exact closed-form steps (exponentials, and the exact time a GPU reaches its limit), processing
scheduled events (boot complete, fault start ...) at their own times, so a 30-minute jump costs a
few microseconds and is as accurate as many small steps. After every event or state change the
discrete states are derived again (``reconcile``): PSU status, BMC and host sequencing, overload,
link power.
"""

from __future__ import annotations

import heapq

from rackval.sim.clock import SimClock
from rackval.sim.physics.cooling import Cooling
from rackval.sim.physics.inventory import Inventory
from rackval.sim.physics.network import Network
from rackval.sim.physics.power import Power
from rackval.sim.physics.sequencing import Sequencing
from rackval.sim.physics.shelves import Shelves
from rackval.sim.physics.state import RackState
from rackval.sim.physics.thermal import Thermal
from rackval.sim.physics.topology import Topology
from rackval.sim.reference import ModelParams, RackSize

UPDATE_RESOLUTION_WALL_S = 0.1


class ModelParts:
    """One rack's state and the parts that compute over it (what fault effects act on)."""

    def __init__(self, size: RackSize, clock: SimClock, params: ModelParams) -> None:
        self.state = RackState(size, clock, params)
        self.inventory = Inventory(self.state)
        self.thermal = Thermal(self.state)
        self.power = Power(self.state, self.thermal)
        self.sequencing = Sequencing(self.state, self.power)
        self.network = Network(self.state)
        self.cooling = Cooling(self.state, self.power.dc_w)
        self.shelves = Shelves(self.state, self.power.psu_input_w)
        self.power.feed_loads.append(self.shelves.feed_input_w)
        Topology(self.state, self.inventory).build()
        with self.state.lock:  # start settled: every GPU at its steady temperature
            self.reconcile(log=False)
            self.thermal.settle()
            self.integrate(0.0)

    def reconcile(self, log: bool = True) -> None:
        """Derived states after a change at the present time: the busbar, sequencing, link power,
        then the coolant loop (its heat follows the nodes' new states)."""
        self.shelves.reconcile()
        self.sequencing.reconcile(log)
        self.network.update_peer_power()
        self.cooling.reconcile()

    def integrate(self, dt: float) -> None:
        """Advance by ``dt``, in steps short enough for the coolant's supply-temperature lag (one
        step when it is settled or the rack has no CDU)."""
        s, t0, total = self.state, self.state.t, dt
        step = self.cooling.max_step_s()
        while dt > step:
            self._integrate_step(step)
            s.t += step
            dt -= step
            step = self.cooling.max_step_s()
        self._integrate_step(dt)
        s.t = t0
        self.network.integrate(total)  # link counters do not depend on the coolant: one exact step

    def _integrate_step(self, dt: float) -> None:
        self.cooling.begin_step(dt)
        for n in self.state.nodes.values():
            self.power.integrate_node(n, dt)
        self.cooling.end_step(dt)
        self.shelves.integrate(dt)

    def update(self) -> None:
        """Bring the state up to ``clock.now()``: due events at their own times, then integrate."""
        s = self.state
        now = max(s.clock.now(), s.t)
        while s.events and s.events[0][0] <= now:
            t_evt, _, action = heapq.heappop(s.events)
            if t_evt > s.t:
                self.integrate(t_evt - s.t)
                s.t = t_evt
            action()
            self.reconcile()
            s.dirty = True
        # Integrating the whole rack costs ~1 ms at 32 nodes; a telemetry poll reads thousands of
        # values a second. With a running clock, state is brought forward at most every 100 ms of
        # wall time (events and state changes still land exactly); a frozen clock is exact.
        if now - s.t >= UPDATE_RESOLUTION_WALL_S * s.clock.time_scale or s.dirty:
            if now > s.t:
                self.integrate(now - s.t)
                s.t = now
            s.dirty = False

    def changed(self) -> None:
        """After a state change at the present time: derived states, zero-delay events, settle."""
        self.reconcile()
        self.state.dirty = True
        self.update()
