"""Thermal part of the rack model: GPU temperatures, throttling, fans and exhaust air.

Physics (figures in ``ModelParams.thermal`` and ``.fans``):

- GPU temperature is a first-order lag toward inlet + R_th x P (R_th rises with every failed fan,
  and a gpu_overheat fault multiplies it or adds a fixed rise). The integration is exact: the
  lag is a closed-form exponential, and the time a GPU reaches its slowdown limit is solved for.
- At the slowdown limit the GPU throttles to the power that holds it there (SwThermal 0x20, SEL
  Warning), never below the minimum GPU power; above the hardware limit HwThermal 0x40 (SEL
  Critical). The clocks-event mask also reports GpuIdle 0x1 and SwPowerCap 0x4.
- Fans follow a curve of the hottest GPU (100 % while powering on or with a failed fan);
  exhaust = inlet + P / (airflow x rho c_p), airflow from the duty and the working fans.
- On a liquid-cooled node (a cold plate in the state, ``physics.cooling``) the GPU's lag aims at
  coolant supply + R_cold_plate(flow) x P instead, fan failures leave R alone, and only the heat
  the plates do not take reaches the exhaust air.
"""

from __future__ import annotations

import math

from rackval.sim.physics.cooling import gpu_r_th
from rackval.sim.physics.devices import (
    HOST_OFF,
    HOST_ON,
    HOST_POWERING_ON,
    REASON_GPU_IDLE,
    REASON_HW_THERMAL,
    REASON_SW_POWER_CAP,
    REASON_SW_THERMAL,
    SEV_CRITICAL,
    SEV_OK,
    SEV_WARNING,
    GpuState,
    Node,
    interp,
    lag_step,
)
from rackval.sim.physics.state import RackState

AIR_RHO_CP = 1.2 * 1005.0  # J / (m^3 K)


class Thermal:
    """GPU temperatures and throttling, fan duty and speed, exhaust temperature."""

    def __init__(self, state: RackState) -> None:
        self.s = state

    def r_th(self, n: Node, g: GpuState) -> float:
        plate = self.s.cold_plates.get(n.name)
        if plate is not None:  # liquid cooled: the cold plate, not the fans
            return gpu_r_th(self.s.params, plate, n.gpus) * g.r_th_factor
        th = self.s.params.thermal
        return th.gpu_r_th_c_per_w * g.r_th_factor * (1.0 + th.r_th_increase_per_failed_fan * len(n.failed_fans))

    def base_c(self, n: Node, g: GpuState) -> float:
        """What the GPU's temperature rises above: inlet air, or the coolant on a cold-plate node."""
        if n.name in self.s.cold_plates:
            return next(iter(self.s.cdus.values())).supply_for_plates_c() + g.delta_c
        return self.s.ambient_c + g.delta_c

    def p_thermal_w(self, n: Node, g: GpuState) -> float:
        """The GPU power that holds the GPU exactly at its slowdown limit."""
        return (self.s.params.thermal.gpu_slowdown_c - self.base_c(n, g)) / self.r_th(n, g)

    def throttled_power(self, n: Node, g: GpuState, demand: float) -> float:
        floor = min(self.s.params.power.gpu_min_w, demand)
        return min(demand, max(self.p_thermal_w(n, g), floor))

    def settle(self) -> None:
        """Every GPU at its steady temperature for its present demand (the rack starts settled)."""
        s = self.s
        for n in s.nodes.values():
            for i, g in enumerate(n.gpu_state):
                g.temp_c = self.base_c(n, g) + self.r_th(n, g) * s.gpu_demand_w(n, i)

    def hottest_c(self, n: Node) -> float:
        return max((g.temp_c for g in n.gpu_state), default=self.s.ambient_c)

    # ---- integration ----------------------------------------------------------------------------
    def integrate_gpus(self, n: Node, dt: float, factor: float, on: bool, t0: float) -> None:
        """Advance every GPU of ``n`` by ``dt`` from virtual time ``t0`` at cap factor ``factor``."""
        s = self.s
        th = s.params.thermal
        tau, limit = th.gpu_tau_s, th.gpu_slowdown_c
        for i, g in enumerate(n.gpu_state):
            r = self.r_th(n, g)
            base = self.base_c(n, g)
            d = s.gpu_demand_w(n, i) * factor if on else 0.0
            t_ss = base + r * d
            if not on or t_ss <= limit:
                if g.throttled and on:
                    s.log(n, SEV_OK, "SensorEvent.1.0.ReadingBelowUpperCautionThreshold",
                          f"GPU{i} temperature back below {limit:.0f} C; throttling ended.", t0)  # fmt: skip
                g.throttled = False
                g.temp_c = lag_step(g.temp_c, t_ss, dt, tau)
            else:
                remaining = dt
                if not g.throttled:
                    hit = 0.0
                    if g.temp_c < limit:
                        hit = 0.0 if tau <= 0 else tau * math.log((t_ss - g.temp_c) / (t_ss - limit))
                        if remaining < hit:
                            g.temp_c = lag_step(g.temp_c, t_ss, remaining, tau)
                            self._check_hw(n, i, g, t0 + dt)
                            continue
                        g.temp_c = limit
                        remaining -= hit
                    g.throttled = True
                    s.log(n, SEV_WARNING, "SensorEvent.1.0.ReadingAboveUpperCautionThreshold",
                          f"GPU{i} temperature reached the {limit:.0f} C slowdown limit; clocks reduced.",
                          t0 + hit)  # fmt: skip
                p = self.throttled_power(n, g, d)
                g.temp_c = lag_step(g.temp_c, base + r * p, remaining, tau)
            self._check_hw(n, i, g, t0 + dt)

    def _check_hw(self, n: Node, i: int, g: GpuState, at: float) -> None:
        hw = self.s.params.thermal.gpu_hw_slowdown_c
        hot = g.temp_c > hw
        if hot and not g.hw_hot:
            message = f"GPU{i} temperature {g.temp_c:.1f} C above the {hw:.0f} C hardware slowdown limit."
            self.s.log(n, SEV_CRITICAL, "SensorEvent.1.0.ReadingAboveUpperCriticalThreshold", message, at)
        g.hw_hot = hot

    # ---- what the GPUs and fans report ----------------------------------------------------------
    def event_mask(self, n: Node, gpu: int, has_input: bool | None = None) -> int:
        """nvidia-smi clocks_event_reasons of GPU ``gpu``; ``has_input`` if the caller knows it."""
        s = self.s
        g = n.gpu_state[gpu]
        if n.host_state != HOST_ON or not (s.live_psus(n) if has_input is None else has_input):
            return 0
        mask = 0
        if s.gpu_util(n, gpu) < 0.01:
            mask |= REASON_GPU_IDLE
        if n.power_cap_w is not None and n.cap_factor < 0.999:
            mask |= REASON_SW_POWER_CAP
        if g.throttled and s.gpu_demand_w(n, gpu) * n.cap_factor > self.p_thermal_w(n, g) + 1e-9:
            mask |= REASON_SW_THERMAL
        if g.temp_c > s.params.thermal.gpu_hw_slowdown_c:
            mask |= REASON_HW_THERMAL
        return mask

    def fan_duty(self, n: Node) -> float:
        if n.host_state == HOST_OFF or not self.s.live_psus(n):
            return 0.0
        if n.host_state == HOST_POWERING_ON or n.failed_fans:
            return 100.0
        return interp(self.s.params.fans.curve, self.hottest_c(n))

    def fan_rpm(self, n: Node, fan: int) -> int:
        if not 1 <= fan <= n.fans:
            raise KeyError(f"{n.name} has fans 1..{n.fans}, not {fan}")
        if fan in n.failed_fans:
            return 0
        return round(self.s.params.fans.max_rpm * self.fan_duty(n) / 100.0)

    def exhaust_c(self, n: Node, dc_w: float) -> float:
        """Exhaust air: inlet + P / (airflow x rho x c_p), airflow from the fan duty (on a cold-plate
        node only the heat the plates do not take, 1 - liquid_fraction, goes to the air)."""
        if n.name in self.s.cold_plates:
            dc_w *= 1.0 - self.s.params.cooling.liquid_fraction
        fp = self.s.params.fans
        working = (n.fans - len(n.failed_fans)) / max(n.fans, 1)
        airflow = max(fp.max_airflow_m3_s * self.fan_duty(n) / 100.0 * working, fp.standby_airflow_m3_s)
        return self.s.ambient_c + dc_w / (airflow * AIR_RHO_CP)
