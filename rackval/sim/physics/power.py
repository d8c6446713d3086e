"""Power part of the rack model: feeds, outlets, PSUs, node power, inrush and power capping.

Physics (figures in ``ModelParams.power`` and ``.psu``):

- GPU power = idle + utilisation x (max - idle) (node utilisation, or a per-GPU override), scaled
  by the node's cap factor and held down while the GPU throttles (``thermal``); node DC = base +
  GPUs while the host is on, standby while only the BMC is powered, standby + the powering-on
  extra while it powers on.
- The DC load is shared equally by the working PSUs with input; each draws DC / efficiency(load
  fraction) from its outlet; outlet current = P / (V x PF) plus an inrush transient (peak, then an
  exponential decay) after the outlet switched on or its feed came back; outlets sit on 3 phases
  round-robin; a PDU's total is its outlets plus itself; an analyzer sums its feeds' PDUs.
- Power capping: a node limit is met by scaling GPU power; the scale factor is a first-order lag
  with tau = CorrectionInMs / 5 (times a power_cap_slow fault's factor), aiming a margin below
  the limit (SwPowerCap 0x4), integrated exactly with the mean factor over each sub-step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rackval.sim.physics.devices import HOST_OFF, HOST_ON, HOST_POWERING_ON, SEV_OK, Node, Outlet, Psu, psu_efficiency
from rackval.sim.physics.state import RackState
from rackval.sim.physics.thermal import Thermal


class Power:
    """Every power reading of the rack, the switching that changes them, and the capping loop."""

    def __init__(self, state: RackState, thermal: Thermal) -> None:
        self.s = state
        self.thermal = thermal
        # Other loads on the feeds than PDUs (feed -> W): the power shelves of a busbar design.
        self.feed_loads: list[Callable[[str], float]] = []

    # ---- node -----------------------------------------------------------------------------------
    def gpu_power_w(self, n: Node, i: int, has_input: bool | None = None) -> float:
        """``has_input``: whether the node has a live PSU, if the caller already knows."""
        s = self.s
        if n.host_state != HOST_ON or not (s.live_psus(n) if has_input is None else has_input):
            return 0.0
        d = s.gpu_demand_w(n, i) * n.cap_factor
        g = n.gpu_state[i]
        return self.thermal.throttled_power(n, g, d) if g.throttled else d

    def dc_w(self, n: Node) -> float:
        if not self.s.live_psus(n):
            return 0.0
        if n.host_state == HOST_OFF:
            return n.standby_w
        if n.host_state == HOST_POWERING_ON:
            return n.standby_w + self.s.params.power.powering_on_w
        return n.base_w + sum(self.gpu_power_w(n, i, True) for i in range(len(n.gpu_state)))

    def _input_for_dc(self, dc: float, live: list[Psu]) -> float:
        share = dc / len(live)
        return sum(share / psu_efficiency(share / p.rated_w, self.s.params.psu.efficiency_curve) for p in live)

    def psu_input_w(self, n: Node, psu: Psu, memo: dict[int, float] | None = None) -> float:
        """``memo`` (node id -> DC load) lets a sum over many outlets compute each node's load
        once instead of once per PSU (an analyzer reading covers every outlet of a feed)."""
        live = self.s.live_psus(n)
        if psu not in live:
            return 0.0
        if memo is None:
            dc = self.dc_w(n)
        else:
            dc = memo.get(id(n))
            if dc is None:
                dc = memo[id(n)] = self.dc_w(n)
        share = dc / len(live)
        return share / psu_efficiency(share / psu.rated_w, self.s.params.psu.efficiency_curve)

    def node_input_w(self, n: Node) -> float:
        memo: dict[int, float] = {}
        return sum(self.psu_input_w(n, p, memo) for p in n.psus)

    # ---- outlets, PDUs, feeds -------------------------------------------------------------------
    def outlet_w(self, pdu: str, outlet: int, memo: dict[int, float] | None = None) -> float:
        d = self.s.pdus[pdu]
        o = d.outlets[outlet]
        if not o.on or o.psu is None or not self.s.feed_up[d.feed]:
            return 0.0
        node, psu = o.psu
        return self.psu_input_w(self.s.nodes[node], self.s.psu(node, psu), memo)

    def pf(self, power_w: float) -> float:
        """PSUs with active PFC: about 0.99 under load, worse when lightly loaded."""
        psu = self.s.params.psu
        return psu.pf_loaded if power_w > psu.pf_threshold_w else psu.pf_light

    def outlet_a(self, pdu: str, outlet: int, memo: dict[int, float] | None = None) -> float:
        """RMS current, including the decaying inrush transient after the outlet switched on."""
        d = self.s.pdus[pdu]
        p = self.outlet_w(pdu, outlet, memo)
        steady = p / (d.voltage_v * self.pf(p)) if p else 0.0
        o, tau = d.outlets[outlet], self.s.params.psu.inrush_tau_s
        if o.inrush_at_s is not None and tau > 0 and o.on and self.s.feed_up[d.feed]:
            x = (self.s.t - o.inrush_at_s) / tau
            if x < 50:
                steady += max(o.inrush_peak_a - steady, 0.0) * math.exp(-x)
        return steady

    def pdu_w(self, pdu: str, memo: dict[int, float] | None = None) -> float:
        d = self.s.pdus[pdu]
        if not self.s.feed_up[d.feed]:
            return 0.0
        memo = {} if memo is None else memo
        return d.self_power_w + sum(self.outlet_w(pdu, i, memo) for i in d.outlets)

    def phase_w(self, pdu: str, phase: int) -> float:
        """Power on one of the PDU's three phases (its own consumption split evenly)."""
        d = self.s.pdus[pdu]
        if not self.s.feed_up[d.feed]:
            return 0.0
        return d.self_power_w / 3 + sum(self.outlet_w(pdu, i) for i, o in d.outlets.items() if o.phase == phase)

    def phase_a(self, pdu: str, phase: int) -> float:
        d = self.s.pdus[pdu]
        if not self.s.feed_up[d.feed]:
            return 0.0
        own = d.self_power_w / 3 / (d.voltage_v * self.pf(0.0))
        return own + sum(self.outlet_a(pdu, i) for i, o in d.outlets.items() if o.phase == phase)

    def feed_w(self, feed: str) -> float:
        memo: dict[int, float] = {}
        own = sum(self.pdu_w(name, memo) for name, d in self.s.pdus.items() if d.feed == feed)
        return own + sum(load(feed) for load in self.feed_loads)

    def analyzer_reading(self, analyzer: str) -> tuple[float, float, float, float]:
        """(voltage V, current A, active power W, power factor) on the analyzer's feeds, as read."""
        s = self.s
        a = s.analyzers[analyzer]
        memo: dict[int, float] = {}
        power = sum(self.pdu_w(name, memo) for name, d in s.pdus.items() if d.feed in a.feeds)
        power += sum(load(feed) for load in self.feed_loads for feed in a.feeds)
        pf = self.pf(power / max(len(s.nodes), 1))
        live = any(s.feed_up[f] for f in a.feeds)
        voltage = a.meter.read(a.voltage_v) if live else 0.0
        current = a.meter.read(power / (a.voltage_v * pf)) if power else 0.0
        return voltage, current, a.meter.read(power), pf

    # ---- switching ------------------------------------------------------------------------------
    def switch_outlet(self, pdu: str, outlet: int, on: bool, force: bool = False) -> None:
        """Switch a relay (a stuck relay ignores it unless ``force``); switching on starts inrush."""
        o = self.s.pdus[pdu].outlets[outlet]
        if o.stuck and not force:
            return
        if on and not o.on:
            o.last_on_s = self.s.t
            if self.s.feed_up[self.s.pdus[pdu].feed]:
                self._record_inrush(o)
        o.on = on

    def _record_inrush(self, o: Outlet) -> None:
        if o.psu is not None:
            o.inrush_peak_a = self.s.params.psu.inrush_peak_a
            o.inrush_at_s = self.s.t

    def feed_restored(self, feed: str) -> None:
        """A feed came back: every PSU behind an outlet that is on charges at once."""
        for d in self.s.pdus.values():
            if d.feed == feed:
                for o in d.outlets.values():
                    if o.on:
                        self._record_inrush(o)

    def set_feed(self, feed: str, up: bool) -> None:
        if feed not in self.s.feed_up:
            raise KeyError(f"no feed {feed!r} (have {sorted(self.s.feed_up)})")
        if up and not self.s.feed_up[feed]:
            self.feed_restored(feed)
        self.s.feed_up[feed] = up

    def all_on(self, pdu: str) -> dict[int, float]:
        """Schedule every off outlet on, one inrush-guard delay apart; outlet -> virtual time."""
        delay = self.s.params.timing.pdu_sequence_delay_s
        plan: dict[int, float] = {}
        for k, idx in enumerate(i for i, o in sorted(self.s.pdus[pdu].outlets.items()) if not o.on):
            at = self.s.t + k * delay
            plan[idx] = at
            self.s.schedule(at, lambda idx=idx: self.switch_outlet(pdu, idx, True))
        return plan

    # ---- capping --------------------------------------------------------------------------------
    def set_cap(self, n: Node, watts: float | None, correction_ms: float | None) -> None:
        ms = self.s.params.timing.power_cap_correction_ms if correction_ms is None else correction_ms
        n.power_cap_w = watts
        n.cap_tau_s = max(ms, 0.0) / 1000.0 / 5.0
        if watts is None:
            self.s.log(n, SEV_OK, "Power.1.0.PowerLimitRemoved", "Power limit removed.")
        else:
            self.s.log(n, SEV_OK, "Power.1.0.PowerLimitApplied", f"Power limit of {watts:.0f} W applied.")

    def _cap_target(self, n: Node, live: list[Psu]) -> float:
        """GPU power scale that brings the node's input power a margin below its limit."""
        assert n.power_cap_w is not None
        s = self.s
        goal = n.power_cap_w * (1.0 - s.params.timing.power_cap_margin)
        lo, hi = 0.0, sum(p.rated_w for p in live)
        for _ in range(40):  # input(dc) is monotonic: bisect for the DC that draws ``goal``
            mid = (lo + hi) / 2
            if self._input_for_dc(mid, live) > goal:
                hi = mid
            else:
                lo = mid
        demands = [s.gpu_demand_w(n, i) for i in range(len(n.gpu_state))]
        total = sum(demands)
        if total <= 0:
            return 1.0
        floor = min(1.0, sum(min(s.params.power.gpu_min_w, d) for d in demands) / total)
        return min(1.0, max((lo - n.base_w) / total, floor))

    def integrate_node(self, n: Node, dt: float) -> None:
        """Advance the node's cap factor (exact lag, in sub-steps of tau) and its GPUs by ``dt``."""
        live = self.s.live_psus(n)
        on = n.host_state == HOST_ON and bool(live)
        target = self._cap_target(n, live) if on and n.power_cap_w is not None else 1.0
        tau = n.cap_tau_s * n.cap_slowdown
        t0 = self.s.t
        t = 0.0
        while True:
            rem = dt - t
            if tau <= 0 or rem <= 0 or abs(n.cap_factor - target) < 1e-9:
                if tau <= 0 or abs(n.cap_factor - target) < 1e-9:
                    n.cap_factor = target
                self.thermal.integrate_gpus(n, max(rem, 0.0), n.cap_factor, on, t0 + t)
                return
            h = min(rem, tau)
            a = math.exp(-h / tau)
            f0 = n.cap_factor
            average = target + (f0 - target) * tau / h * (1.0 - a)  # exact mean over the substep
            self.thermal.integrate_gpus(n, h, average, on, t0 + t)
            n.cap_factor = target + (f0 - target) * a
            t += h
