"""Power-shelf part of the rack model: rectifiers, the DC busbar, battery backup units (BBUs).

Only a design with ``power_shelves.count`` > 0 has shelves; its nodes' PSUs are then DC-DC stages
on the busbar (``equipment.BUSBAR``) and every method here is a no-op for any other design.
Figures are in ``ModelParams.power_shelves``.

- Load: the busbar carries the input power of every busbar-fed node PSU (node DC / its stage's
  efficiency, ``power.node_input_w``), the liquid-cooled switch trays' constant draw
  (``cooling.switch_trays`` x ``switch_tray_heat_w``) and the BBUs' recharge.
- Rectifiers: the working ones with input (their feed up and the shelf's breaker on it closed, not
  failed, not switched off) share the
  load equally (droop load sharing); each draws out / efficiency(out / rating) from its feed
  (the efficiency curve is interpolated as for node PSUs); N+1 means the load still fits in the
  ratings with one rectifier gone.
- BBUs: when the rectifiers cannot carry the load (input lost, too many rectifiers gone) the BBUs
  with charge above the floor deliver the deficit, shared equally, at most ``bbu_rated_w`` each.
  State of charge falls as dSoC/dt = -P_bbu / (eta_d x E x SoH) (energy counting, E the rated
  energy, SoH the state of health a capacity fault lowers); the busbar then sits at the discharge
  curve's voltage V(SoC). The moment the last BBU reaches its floor is a scheduled event: the
  busbar drops and every busbar-fed node loses power. Holdup estimate at the present load:
  t = sum((SoC - floor) x E x SoH x eta_d) / P_load (IEEE 1188 / OCP ORv3 BBU spec state holdup
  the same way, as usable energy over load).
- Recharge: with input back, each BBU below full draws ``bbu_charge_w`` from the rectifiers'
  spare capacity (constant-power charge, dSoC/dt = P_charge / (E x SoH)); the rack restarts as
  its nodes' restore policy says once the busbar is back.
- An overloaded busbar (load above rectifiers plus BBUs) drops and stays down until the input
  capacity grows again (a rectifier or feed comes back): a shelf's overcurrent latch.
"""

from __future__ import annotations

from collections.abc import Callable

from rackval.sim.physics.devices import Node, Psu, interp, psu_efficiency
from rackval.sim.physics.equipment import BUSBAR, Bbu, PowerShelf, Rectifier
from rackval.sim.physics.state import RackState

SOC_EPS = 1e-9


def switch_trays_w(state: RackState) -> float:
    """The switch trays' draw (and heat into the coolant): constant while they have power."""
    c = state.params.cooling
    if c.mode != "liquid" or not state.busbar_up:
        return 0.0
    return c.switch_trays * c.switch_tray_heat_w


class Shelves:
    """The shelves, their rectifiers and BBUs, and the busbar they hold up (no-op without shelves)."""

    def __init__(self, state: RackState, psu_input_w: Callable[[Node, Psu, dict[int, float]], float]) -> None:
        self.s = state
        self.psu_input_w = psu_input_w  # ``power.psu_input_w``: what a node PSU draws (memo: node DC)
        self._next_at: float | None = None
        self._tripped_capacity: float | None = None  # the input capacity when the busbar tripped

    # ---- what flows -----------------------------------------------------------------------------
    def live_rectifiers(self, shelf: PowerShelf | None = None) -> list[Rectifier]:
        shelves = [shelf] if shelf is not None else list(self.s.shelves.values())
        return [r for sh in shelves for r in sh.rectifiers if self.rectifier_live(sh, r)]

    def rectifier_live(self, shelf: PowerShelf, r: Rectifier) -> bool:
        return r.enabled and not r.failed and shelf.has_input(self.s.feed_up, r.feed)

    def capacity_w(self) -> float:
        return sum(r.rated_w for r in self.live_rectifiers())

    def bbus(self) -> list[Bbu]:
        return [b for sh in self.s.shelves.values() for b in sh.bbus]

    def available_bbus(self) -> list[Bbu]:
        floor = self.s.params.power_shelves.bbu_soc_floor
        return [b for b in self.bbus() if b.soc > floor + SOC_EPS and b.capacity_factor > 0]

    def load_w(self) -> float:
        """Power the busbar delivers to the nodes (their busbar-fed PSUs' input)."""
        if not self.s.shelves or not self.s.busbar_up:
            return 0.0
        memo: dict[int, float] = {}
        nodes = sum(self.psu_input_w(n, p, memo) for n in self.s.nodes.values() for p in n.psus if p.feed == BUSBAR)
        return nodes + switch_trays_w(self.s)

    def flows(self) -> tuple[float, float, float]:
        """(rectifier output W in all, BBU discharge W in all, BBU charge W in all) at present."""
        load, capacity = self.load_w(), self.capacity_w()
        ps = self.s.params.power_shelves
        if load <= capacity:
            wanting = [b for b in self.bbus() if b.soc < 1.0 - SOC_EPS and b.capacity_factor > 0]
            charge = min(len(wanting) * ps.bbu_charge_w, capacity - load)
            return load + charge, 0.0, charge
        deficit = load - capacity
        return capacity, deficit, 0.0

    def rectifier_output_w(self, r: Rectifier) -> float:
        live = self.live_rectifiers()
        return self.flows()[0] / len(live) if r in live else 0.0

    def rectifier_input_w(self, r: Rectifier) -> float:
        out = self.rectifier_output_w(r)
        if out <= 0:
            return 0.0
        return out / psu_efficiency(out / r.rated_w, self.s.params.power_shelves.efficiency_curve)

    def feed_input_w(self, feed: str) -> float:
        """AC power the shelves draw from ``feed`` (what an analyzer on that feed measures)."""
        return sum(self.rectifier_input_w(r) for sh in self.s.shelves.values() for r in sh.rectifiers if r.feed == feed)

    def bbu_powers(self) -> dict[int, float]:
        """Every BBU's power by ``id``, from one computation of the flows. Positive: discharging
        onto the busbar (the deficit shared by the BBUs above their floor); negative: charging."""
        _, discharge, charge = self.flows()
        if discharge > 0:
            avail = self.available_bbus()
            return {id(b): discharge / len(avail) if b in avail else 0.0 for b in self.bbus()}
        wanting = [x for x in self.bbus() if x.soc < 1.0 - SOC_EPS and x.capacity_factor > 0]
        return {id(b): -charge / len(wanting) if b in wanting else 0.0 for b in self.bbus()}

    def bbu_power_w(self, b: Bbu) -> float:
        return self.bbu_powers()[id(b)]

    def busbar_voltage_v(self) -> float:
        if not self.s.busbar_up:
            return 0.0
        ps = self.s.params.power_shelves
        if self.flows()[1] > 0:
            avail = self.available_bbus()
            return interp(ps.bbu_discharge_curve, sum(b.soc for b in avail) / len(avail)) if avail else 0.0
        return ps.busbar_v

    def holdup_s(self) -> float:
        """Seconds the BBUs carry the present load alone (inf with no load)."""
        ps = self.s.params.power_shelves
        usable = sum(
            max(b.soc - ps.bbu_soc_floor, 0.0) * b.capacity_wh * b.capacity_factor * ps.bbu_discharge_efficiency
            for b in self.bbus()
        ) * 3600.0  # fmt: skip
        load = self.load_w()
        return usable / load if load > 0 else float("inf")

    # ---- state ----------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """After a change: is the busbar up, what each BBU does, when the next one is empty or full."""
        s = self.s
        if not s.shelves:
            return
        ps = s.params.power_shelves
        capacity = self.capacity_w()
        if self._tripped_capacity is not None:  # the latch resets when input capacity comes back
            if capacity > self._tripped_capacity + 1e-9:
                self._tripped_capacity = None
            else:
                self._tripped_capacity = capacity
        if not s.busbar_up and self._tripped_capacity is None and (capacity > 0 or self.available_bbus()):
            s.busbar_up = True
        load = self.load_w()
        avail = self.available_bbus()
        if s.busbar_up and load > capacity + len(avail) * ps.bbu_rated_w + 1e-9:
            s.busbar_up = False
            self._tripped_capacity = capacity
        powers = self.bbu_powers()
        for b in self.bbus():
            power = powers[id(b)]
            b.mode = "Discharging" if power > 0 else "Charging" if power < 0 else "Idle"
        # The next moment a BBU reaches its floor (discharging) or full (charging): the flows change.
        times = []
        for b in self.bbus():
            power, energy_wh = powers[id(b)], b.capacity_wh * b.capacity_factor
            if power > 0:
                times.append((b.soc - ps.bbu_soc_floor) * energy_wh * ps.bbu_discharge_efficiency * 3600.0 / power)
            elif power < 0:
                times.append((1.0 - b.soc) * energy_wh * 3600.0 / -power)
        next_at = s.t + min(times) if times else None
        if next_at is not None and (self._next_at is None or abs(next_at - self._next_at) > 1e-6):
            s.schedule(next_at, lambda: None)  # the update at that instant reconciles with that BBU empty/full
        self._next_at = next_at

    def integrate(self, dt: float) -> None:
        """State of charge of every BBU over ``dt`` at the present flows (clamped to floor and full)."""
        if not self.s.shelves or dt <= 0:
            return
        ps = self.s.params.power_shelves
        powers = self.bbu_powers()
        for b in self.bbus():
            power = powers[id(b)]
            energy_wh = b.capacity_wh * b.capacity_factor
            if power > 0:
                b.soc = max(b.soc - power * dt / 3600.0 / (ps.bbu_discharge_efficiency * energy_wh), ps.bbu_soc_floor)
            elif power < 0:
                b.soc = min(b.soc - power * dt / 3600.0 / energy_wh, 1.0)
            if b.soc > 1.0 - SOC_EPS:
                b.soc = 1.0  # full (rounding of the step that reached it)
            elif b.soc < ps.bbu_soc_floor + SOC_EPS:
                b.soc = ps.bbu_soc_floor
