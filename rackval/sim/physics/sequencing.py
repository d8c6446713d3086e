"""Sequencing part of the rack model: PSU status, BMC boot, host power and overload trips.

Input -> BMC boot (``timing.bmc_boot_s`` plus a bmc_slow_boot fault's extra) -> the restore
policy (LastState, AlwaysOn, AlwaysOff) -> host PoweringOn -> On -> OS up, each step a scheduled
event that a later loss of input invalidates (generation counters). ``reconcile`` derives the
discrete states after any change: PSU status changes go to the SEL, a node without a live PSU
loses its BMC and host, and a load above the working PSUs' capacity trips the host off.
"""

from __future__ import annotations

from collections.abc import Callable

from rackval.sim.physics.devices import (
    BMC_BOOTING,
    BMC_OFF,
    BMC_READY,
    HOST_OFF,
    HOST_ON,
    HOST_POWERING_ON,
    PSU_FAILED,
    PSU_NO_INPUT,
    SEV_CRITICAL,
    SEV_OK,
    SEV_WARNING,
    Node,
)
from rackval.sim.physics.power import Power
from rackval.sim.physics.state import RackState


class Sequencing:
    """The BMC and host state machines of every node."""

    def __init__(self, state: RackState, power: Power) -> None:
        self.s = state
        self.power = power

    def reconcile(self, log: bool = True) -> None:
        """Derive PSU status, BMC and host states from the present input power and load."""
        s = self.s
        for n in s.nodes.values():
            self._psu_events(n, log)
            live = s.live_psus(n)
            if not live:
                if n.bmc_state != BMC_OFF:
                    n.bmc_state, n.host_state, n.os_up = BMC_OFF, HOST_OFF, False
                    n.bmc_gen += 1
                    n.host_gen += 1
            elif n.bmc_state == BMC_OFF:
                n.bmc_state = BMC_BOOTING
                n.bmc_gen += 1
                boot_s = s.params.timing.bmc_boot_s + n.bmc_boot_extra_s
                s.schedule(s.t + boot_s, self._bmc_ready_action(n, n.bmc_gen))
            if live and n.host_state != HOST_OFF:
                capacity = sum(p.rated_w for p in live)
                load = self.power.dc_w(n)
                if load > capacity + 1e-9:
                    self.host_off(n)
                    n.host_on = False
                    if log:
                        s.log(
                            n, SEV_CRITICAL, "Power.1.0.PowerSupplyOverload",
                            f"Load {load:.0f} W exceeds the {capacity:.0f} W of the working PSUs; host powered off.",
                        )  # fmt: skip

    def _psu_events(self, n: Node, log: bool) -> None:
        for p in n.psus:
            status, before = self.s.psu_status(p), n.psu_status_seen.get(p.name)
            if log and before is not None and status != before:
                if status == PSU_FAILED:
                    self.s.log(n, SEV_CRITICAL, "Power.1.0.PowerSupplyFailed", f"{p.name} failed.")
                elif status == PSU_NO_INPUT:
                    self.s.log(n, SEV_WARNING, "Power.1.0.PowerSupplyInputLost", f"{p.name} lost input power.")
                elif before == PSU_NO_INPUT:
                    self.s.log(n, SEV_OK, "Power.1.0.PowerSupplyInputRestored", f"{p.name} input restored.")
                else:
                    self.s.log(n, SEV_OK, "Power.1.0.PowerSupplyRecovered", f"{p.name} is working again.")
            n.psu_status_seen[p.name] = status

    def _bmc_ready_action(self, n: Node, gen: int) -> Callable[[], None]:
        def ready() -> None:
            if n.bmc_gen != gen or n.bmc_state != BMC_BOOTING:
                return
            n.bmc_state = BMC_READY
            policy = self.s.params.timing.restore_policy
            if policy == "AlwaysOn" or (policy == "LastState" and n.host_on):
                n.host_on = True
                self._start_power_on(n)
            elif policy == "AlwaysOff":
                n.host_on = False

        return ready

    def _start_power_on(self, n: Node) -> None:
        s = self.s
        n.host_state = HOST_POWERING_ON
        n.host_gen += 1
        gen = n.host_gen
        timing = s.params.timing

        def on() -> None:
            if n.host_gen == gen and n.host_state == HOST_POWERING_ON:
                n.host_state = HOST_ON
                s.schedule(s.t + timing.os_boot_s, os_up)

        def os_up() -> None:
            if n.host_gen == gen and n.host_state == HOST_ON:
                n.os_up = True

        s.schedule(s.t + timing.host_power_on_s, on)

    def host_off(self, n: Node) -> None:
        n.host_state, n.os_up = HOST_OFF, False
        n.host_gen += 1

    def set_host_power(self, n: Node, on: bool) -> None:
        """Request host power on or off (on waits for the BMC if it is still booting)."""
        n.host_on = on
        if on:
            if n.bmc_state == BMC_READY and n.host_state == HOST_OFF:
                self._start_power_on(n)
        elif n.host_state != HOST_OFF:
            self.host_off(n)
