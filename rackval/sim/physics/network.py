"""Network part of the rack model: link state, cabling (LLDP peers) and port counters.

A port is oper up when it is admin up, cabled (``peer``), its peer NIC has power (the node's BMC
is not off) and no link_down fault holds it. Up links carry management chatter plus the peer
node's utilisation x ``network.load_fraction`` of line rate; bit errors at the healthy BER (or a
link_errors fault's) feed the FEC corrected / uncorrected and in_errors counters. Counters are
64-bit and wrap; fractional counts carry over (``residue``), so many short steps count what one
long step does.
"""

from __future__ import annotations

import math

from rackval.sim.physics.devices import BMC_OFF, COUNTER_WRAP, HOST_ON, Port
from rackval.sim.physics.state import RackState


class Network:
    """Every switch port's link state and counters."""

    def __init__(self, state: RackState) -> None:
        self.s = state

    def update_peer_power(self) -> None:
        """A port's peer NIC has power while its node's BMC is not off."""
        nodes = self.s.nodes
        for sw in self.s.switches.values():
            for port in sw.ports:
                port.peer_powered = port.peer is not None and (
                    port.peer[0] not in nodes or nodes[port.peer[0]].bmc_state != BMC_OFF
                )

    def integrate(self, dt: float) -> None:
        if dt <= 0:
            return
        for sw in self.s.switches.values():
            for port in sw.ports:
                self._integrate_port(port, dt)

    def _integrate_port(self, port: Port, dt: float) -> None:
        if not port.oper_up:
            return
        net = self.s.params.network
        util = 0.0
        if port.peer is not None and port.peer[0] in self.s.nodes:
            n = self.s.nodes[port.peer[0]]
            if n.host_state == HOST_ON and n.os_up:
                util = n.utilization
        rate_bps = net.idle_rate_bps + util * net.load_fraction * port.speed_mbps * 1e6
        bits = rate_bps * dt
        ber = net.healthy_ber if port.ber is None else port.ber
        unc = net.uncorrectable_fraction if port.uncorrectable_fraction is None else port.uncorrectable_fraction
        errors = bits * ber
        _count(port, "out_octets", bits / 8)
        _count(port, "in_octets", bits / 8 * 0.98)
        _count(port, "fec_corrected", errors * (1 - unc))
        _count(port, "fec_uncorrected", errors * unc)
        _count(port, "in_errors", errors * unc)

    def set_counters(self, port: Port, values: dict[str, int]) -> None:
        for name, value in values.items():
            if name not in port.counters:
                raise KeyError(f"no counter {name!r} (have {', '.join(port.counters)})")
            port.counters[name] = value % COUNTER_WRAP


def _count(port: Port, name: str, amount: float) -> None:
    total = port.residue[name] + amount
    whole = math.floor(total)
    port.residue[name] = total - whole
    port.counters[name] = (port.counters[name] + whole) % COUNTER_WRAP
