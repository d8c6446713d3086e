"""Cooling part of the rack model: the CDU's secondary loop, cold plates, coolant temperatures, leaks.

Only a design with ``cooling.mode: liquid`` has a CDU and cold plates; for an air-cooled design
every method here is a no-op and ``thermal`` computes exactly as before. Figures are in
``ModelParams.cooling`` (units: flow L/min, pressure kPa, temperature C, heat W).

Hydraulics (quadratic losses, turbulent flow: dp = k q^2; Idelchik, Handbook of Hydraulic
Resistance, ch. 1; pump laws: Karassik et al., Pump Handbook, 4th ed., ch. 2):

- pump curve at speed s (fraction of rated): H_i(q) = h_i s^2 H0 - a q^2, the affinity laws
  (q ~ s, H ~ s^2) applied to the shutoff head; h_i < 1 is a degraded pump. Pumps run in parallel
  behind check valves: at head H pump i delivers q_i = sqrt((h_i s^2 H0 - H) / a), or 0 when
  H >= its shutoff head (the check valve closes, no backflow);
- system curve: H = (k_loop + k_par) Q^2 with k_loop the CDU, filter and manifolds, k_par the node
  branches and the switch-tray branch in parallel: 1/sqrt(k_par) = sum_j 1/sqrt(k_j), where each
  branch's k_j = dp_rated / q_rated^2 (times the clog factor of a clogged plate). The operating
  point Q solves sum_i q_i(H) = Q with H = k_sys Q^2 (monotone, solved by bisection); branch j
  carries q_j = sqrt(k_par Q^2 / k_j);
- an empty reservoir (a leak ran it dry) makes the pumps cavitate: no flow.

Heat (energy balance Q = m_dot c_p dT; coolant properties ``reference.COOLANTS``):

- supply temperature T_s: the CDU's control holds it at setpoint (+ a drift fault's offset) as a
  first-order lag, tau = ``supply_tau_s``;
- a node tray's cold plates take ``liquid_fraction`` of its DC power; its return is
  T_s + f P / (m_dot_node c_p); the loop return T_s + (sum of heat) / (m_dot_loop c_p); the primary
  (facility) side carries the same heat at its own flow: T_p,ret = T_p,sup + Q / (m_dot_p c_p,water);
- GPU temperature on a cold plate: T_gpu = T_s + P x R, R = R_cp [(1 - c) + c (q_rated / q)^0.8]
  + 1 / (2 m_dot_gpu c_p): the conduction part of the plate resistance is constant, the convective
  part scales as h ~ Re^0.8 (Dittus-Boelter, Incropera & DeWitt eq. 8.60), and the plate sees the
  coolant's mean temperature, half its own caloric rise; m_dot_gpu is the tray's flow over its GPUs.
  ``thermal`` integrates this as it does the air model (first-order lag, throttling), so a
  starved plate throttles its GPUs exactly like a failed fan does on an air-cooled node.

Leaks: a leaking node tray or CDU sets its detector wet and drains the reservoir at the leak's
rate; the moment it runs dry is a scheduled event.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rackval.sim.physics.devices import Node
from rackval.sim.physics.equipment import Cdu, ColdPlate
from rackval.sim.physics.shelves import switch_trays_w
from rackval.sim.physics.state import RackState
from rackval.sim.reference import COOLANTS, ModelParams

MIN_FLOW_LPM = 1e-3  # below this a plate is treated as starved (resistances stay finite)
WATER_CP = 4178.0


def coolant(params: ModelParams) -> tuple[float, float]:
    """(density kg/m^3, specific heat J/(kg K)) of the design's coolant."""
    return COOLANTS[params.cooling.coolant]


def mass_flow_kg_s(params: ModelParams, lpm: float) -> float:
    return coolant(params)[0] * lpm / 60_000.0


def gpu_r_th(params: ModelParams, plate: ColdPlate, gpus: int) -> float:
    """GPU-to-supply thermal resistance (C/W) of one GPU on ``plate``, at the plate's present flow."""
    c = params.cooling
    q = max(plate.flow_lpm, MIN_FLOW_LPM)
    conv = c.cold_plate_conv_fraction
    plate_r = c.cold_plate_r_c_per_w * ((1 - conv) + conv * (c.cold_plate_rated_flow_lpm / q) ** 0.8)
    m_dot_gpu = mass_flow_kg_s(params, q / max(gpus, 1))
    return plate_r + 1.0 / (2.0 * m_dot_gpu * coolant(params)[1])


class Cooling:
    """The CDU's loop: flows, pressures, coolant temperatures, heat, leaks (no-op without a CDU)."""

    def __init__(self, state: RackState, node_dc_w: Callable[[Node], float]) -> None:
        self.s = state
        self.node_dc_w = node_dc_w  # ``power.dc_w``: a node's DC power, the heat its plates take a share of
        self._dry_at: float | None = None

    @property
    def cdu(self) -> Cdu | None:
        return next(iter(self.s.cdus.values()), None)

    # ---- hydraulics ---------------------------------------------------------------------------
    def _branches(self) -> list[tuple[ColdPlate | None, float]]:
        """(plate, k) of every parallel branch: node trays, then the switch trays (plate None)."""
        c = self.s.params.cooling
        k_plate = c.cold_plate_dp_kpa / c.cold_plate_rated_flow_lpm**2
        out: list[tuple[ColdPlate | None, float]] = [
            (p, k_plate * p.resistance_factor) for p in self.s.cold_plates.values()
        ]
        if c.switch_trays > 0:
            out.append((None, c.switch_tray_dp_kpa / (c.switch_tray_rated_flow_lpm * c.switch_trays) ** 2))
        return out

    def solve(self) -> None:
        """The loop's operating point from the pumps' state and the branches' resistances."""
        cdu = self.cdu
        if cdu is None:
            return
        c = self.s.params.cooling
        pumps = [p for p in cdu.pumps if p.running and not p.failed] if cdu.reservoir_l > 0 else []
        shutoff = [(p, p.head_factor * (p.speed_percent / 100.0) ** 2 * c.pump_shutoff_head_kpa) for p in pumps]
        branches = self._branches()
        k_par = 1.0 / sum(1.0 / math.sqrt(k) for _, k in branches) ** 2
        k_sys = c.loop_dp_kpa / c.loop_rated_flow_lpm**2 + k_par
        a = c.pump_curve_kpa_per_lpm2

        def delivered(head: float) -> float:
            return sum(math.sqrt((h0 - head) / a) for _, h0 in shutoff if h0 > head)

        lo, hi = 0.0, max((h0 for _, h0 in shutoff), default=0.0)
        for _ in range(60):  # k_sys Q(H)^2 - H falls monotonically from >= 0 at H = 0
            mid = (lo + hi) / 2
            if k_sys * delivered(mid) ** 2 > mid:
                lo = mid
            else:
                hi = mid
        head = (lo + hi) / 2
        flow = delivered(head)
        cdu.head_kpa, cdu.flow_lpm = head, flow
        for p in cdu.pumps:
            h0 = next((h for q, h in shutoff if q is p), 0.0)
            p.flow_lpm = math.sqrt((h0 - head) / a) if h0 > head else 0.0
        dp_par = k_par * flow**2
        cdu.switch_flow_lpm = 0.0
        for plate, k in branches:
            q = math.sqrt(dp_par / k)
            if plate is None:
                cdu.switch_flow_lpm = q
            else:
                plate.flow_lpm, plate.dp_kpa = q, dp_par

    def reconcile(self) -> None:
        """After a change: the new operating point, and when a leaking loop runs dry."""
        cdu = self.cdu
        if cdu is None:
            return
        self.solve()
        dry_at = None
        if cdu.leak_lpm > 0 and cdu.reservoir_l > 0:
            dry_at = self.s.t + cdu.reservoir_l / cdu.leak_lpm * 60.0
        if dry_at is not None and (self._dry_at is None or abs(dry_at - self._dry_at) > 1e-6):
            self.s.schedule(dry_at, lambda: None)  # the update at that instant re-solves with no fluid
        self._dry_at = dry_at

    # ---- time ---------------------------------------------------------------------------------
    def target_c(self, cdu: Cdu) -> float:
        return cdu.setpoint_c + cdu.drift_c

    def max_step_s(self) -> float:
        """Longest integration step that keeps the supply temperature's lag accurate for the GPUs."""
        cdu = self.cdu
        tau = self.s.params.cooling.supply_tau_s
        if cdu is None or tau <= 0 or abs(cdu.supply_c - self.target_c(cdu)) < 1e-3:
            return math.inf
        return tau / 4.0

    def begin_step(self, dt: float) -> None:
        """Before the GPUs integrate ``dt``: the supply's mean over the step is what the plates see."""
        cdu = self.cdu
        if cdu is None or dt <= 0:
            return
        target, tau = self.target_c(cdu), self.s.params.cooling.supply_tau_s
        if tau <= 0:
            cdu.step_supply_c = target
        else:
            cdu.step_supply_c = target + (cdu.supply_c - target) * tau / dt * (1.0 - math.exp(-dt / tau))

    def end_step(self, dt: float) -> None:
        """After the GPUs integrated ``dt``: advance the supply temperature and the reservoir."""
        cdu = self.cdu
        if cdu is None:
            return
        cdu.step_supply_c = None
        target, tau = self.target_c(cdu), self.s.params.cooling.supply_tau_s
        cdu.supply_c = target if tau <= 0 else target + (cdu.supply_c - target) * math.exp(-dt / tau)
        cdu.reservoir_l = max(cdu.reservoir_l - cdu.leak_lpm * dt / 60.0, 0.0)

    # ---- heat and temperatures ----------------------------------------------------------------
    def node_heat_w(self, n: Node) -> float:
        """Heat the node's cold plates put into the coolant (0 for an air-cooled node)."""
        if n.name not in self.s.cold_plates:
            return 0.0
        return self.s.params.cooling.liquid_fraction * self.node_dc_w(n)

    def switch_heat_w(self) -> float:
        return switch_trays_w(self.s)

    def heat_w(self) -> float:
        """Heat the secondary loop carries: the node trays' and the switch trays'."""
        return sum(self.node_heat_w(self.s.nodes[name]) for name in self.s.cold_plates) + self.switch_heat_w()

    def _rise_c(self, heat_w: float, lpm: float) -> float:
        if lpm < MIN_FLOW_LPM:
            return 0.0  # no flow: nothing reaches the return sensor
        return heat_w / (mass_flow_kg_s(self.s.params, lpm) * coolant(self.s.params)[1])

    def node_return_c(self, n: Node) -> float:
        cdu, plate = self.cdu, self.s.cold_plates[n.name]
        assert cdu is not None
        return cdu.supply_c + self._rise_c(self.node_heat_w(n), plate.flow_lpm)

    def return_c(self) -> float:
        cdu = self.cdu
        assert cdu is not None
        return cdu.supply_c + self._rise_c(self.heat_w(), cdu.flow_lpm)

    def primary_return_c(self) -> float:
        c = self.s.params.cooling
        m_dot = c.primary_flow_lpm * 997.0 / 60_000.0
        return c.facility_supply_c + self.heat_w() / (m_dot * WATER_CP)

    def supply_pressure_kpa(self) -> float:
        cdu = self.cdu
        assert cdu is not None
        return self.s.params.cooling.static_pressure_kpa + cdu.head_kpa
