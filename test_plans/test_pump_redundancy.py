"""Plan: the loaded rack stays cooled with any one CDU pump stopped (N+1 pumps).

A CDU with two pumps is bought so that one can fail, or be serviced, without the rack slowing
down. That holds only if every pump is healthy to start with and the remaining pumps' curve still
pushes the minimum flow through every cold plate at full heat. So:

1. every pump of every CDU must run healthy (``cdu_pumps_unhealthy``): a pump already failed,
   stopped or unhealthy means the redundancy is spent, and the plan stops there, naming the CDU
   and the pump, rather than stop the pump that still cools the rack;
2. with every GPU node at 100 % (through the safety gate), each pump in turn is stopped through
   the gate (``safety.pump``) for ``pump_loss_hold_time``, sampling at 1 Hz every node's coolant
   flow (its BMC) and its GPUs' clocks-event reasons:

   - per node, the lowest flow (``coolant_node_flow``), and per CDU the lowest over its nodes with
     the stopped pump named (so the failure names the CDU whose remaining pump is too weak);
   - per node, seconds any GPU reported a thermal or power reason (``gpu_throttle_time``);

   the pump is restarted at the end of its step (the gate's scoped undo), and the load stopped
   at the end.

A rack without a CDU skips with that reason; one that forbids destructive actions, or protects
the CDU, skips with the gate's reasons.
"""

from __future__ import annotations

from typing import Any

import pytest

from rackval.harness.inventory import Inventory
from rackval.harness.liquid import (
    cdus,
    first_channel,
    liquid_nodes,
    no_equipment_reason,
    series_min,
    throttled_seconds,
)
from rackval.harness.rack import Rack, values_or_raise
from rackval.harness.safety import SafetyGate
from rackval.harness.spec import Spec
from rackval.harness.telemetry import Channel, gpu_channels, node_coolant_channels

LOAD_LEVEL = 1.0
LOAD_SETTLE_S = 60.0  # virtual seconds of full load before the first pump stops
RESTORE_SETTLE_S = 30.0  # after a pump restarts, before the next one stops
HAS_GPUS = "gpu_temperature"


def _unhealthy(pump: Any) -> str:
    """Why a pump does not count towards redundancy ("" when it runs healthy)."""
    said = f"{pump.state or '?'}/{pump.health or '?'}"
    if pump.running is False or pump.state not in ("Enabled", ""):
        return f"{pump.name} not running ({said})"
    if pump.health not in ("OK", ""):
        return f"{pump.name} unhealthy ({said})"
    return ""


def test_rack_stays_cooled_with_one_pump_stopped(
    rack: Rack, inventory: Inventory, spec: Spec, safety: SafetyGate, telemetry, clock, measure, progress
) -> None:
    units = cdus(rack)
    if not units:
        pytest.skip(no_equipment_reason(inventory, "coolant distribution unit", "cdu"))
    nodes = liquid_nodes(rack, inventory)
    hosts = {n: s.host for n, s in inventory.data.nodes.items()
             if s.host and n in nodes and spec.expectation(inventory, n).expects(HAS_GPUS)}  # fmt: skip
    reasons = sorted({r for d in [*units, *hosts.values()] for r in safety.refusal(d)})
    if reasons:
        pytest.skip(f"pump redundancy not run, refused by the safety gate: {'; '.join(reasons)}")
    hold = spec.limit("pump_loss_hold_time").low
    assert hold is not None, "pump_loss_hold_time needs a 'min' (how long to run with one pump stopped)"

    pumps = values_or_raise(rack.fan_out(units, lambda d: d.pumps()), "read CDU pumps")
    spent = False
    for cdu in units:
        bad = [why for p in pumps[cdu] if (why := _unhealthy(p))]
        m = measure("CDU pumps not running healthy", len(bad), "count", limit="cdu_pumps_unhealthy", device=cdu,
                    channel=", ".join(bad) or f"{len(pumps[cdu])} running", soft=True)  # fmt: skip
        spent |= m.outcome.value == "fail"
    if spent:
        return  # redundancy already spent: stopping another pump would only starve the rack

    with safety.scoped():  # the load stops at the end, also when a step fails
        safety.gpu_load_all(list(hosts.values()), LOAD_LEVEL)
        clock.sleep(LOAD_SETTLE_S)
        for cdu in units:
            for pump in pumps[cdu]:
                with safety.scoped():  # the pump restarts at the end of its step
                    safety.pump(cdu, pump.name, False)
                    progress(f"{cdu} {pump.name} stopped: holding the loaded rack on the other pump(s)", hold)
                    channels: list[Channel] = []
                    for bmc in nodes.values():
                        channels += node_coolant_channels(rack, bmc)
                    for host in hosts.values():
                        channels += gpu_channels(rack, host, (("event_reasons", ""),))
                    sampler = telemetry(channels)
                    stats = sampler.run(hold)
                measure(f"time with {cdu} {pump.name} stopped", stats.clock_s + sampler.period, "s",
                        limit="pump_loss_hold_time", device=cdu)  # fmt: skip
                _judge_step(sampler, cdu, pump.name, nodes, hosts, measure)
                clock.sleep(RESTORE_SETTLE_S)


def _judge_step(sampler: Any, cdu: str, pump: str, nodes: dict[str, str], hosts: dict[str, str], measure: Any) -> None:
    what = f"{cdu} {pump} stopped"
    lowest: tuple[float, str] | None = None
    for node, bmc in nodes.items():
        name = first_channel(sampler, f"{bmc}/coolant_*/flow_lpm")
        flow = series_min(sampler, name) if name else None
        if flow is None:
            measure(f"node coolant flow readings missing ({what})", 1, "count", limit="soak_samples_missing",
                    device=bmc, channel=node, soft=True)  # fmt: skip
            continue
        measure(f"node coolant flow ({what})", flow, "L/min", limit="coolant_node_flow", device=bmc,
                channel=f"{node}, lowest sample", soft=True)  # fmt: skip
        lowest = (flow, node) if lowest is None or flow < lowest[0] else lowest
    if lowest is not None:
        measure(f"lowest node coolant flow ({what})", lowest[0], "L/min", limit="coolant_node_flow", device=cdu,
                channel=f"{pump} stopped: lowest at {lowest[1]}", soft=True)  # fmt: skip
    for node, host in hosts.items():
        measure(f"GPU throttled time ({what})", throttled_seconds(sampler, host), "s", limit="gpu_throttle_time",
                device=host, channel=node, soft=True)  # fmt: skip
