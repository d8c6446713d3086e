"""Plan: the coolant loop carries the rack's heat under full load, and no detector sees a leak.

A liquid-cooled rack that passes its air checks can still ship with a starved or bypassed cold
plate, a CDU holding the wrong supply temperature, or a weeping fitting. So, with every GPU node
at 100 % (through the safety gate, stopped at the end), after the loop settled, the CDU and every
node on the loop (a BMC that reports coolant connectors) are sampled at 1 Hz:

- per node, the lowest coolant flow through its cold plates (``coolant_node_flow``, from its BMC);
- per CDU, the secondary (rack) loop's supply temperature (``cdu_supply_temperature``, the highest
  sample) and its return minus supply (``coolant_loop_delta_t``, the mean);
- per node, the energy balance: the heat its coolant carries, Q = rho q c_p (T_return - T_supply)
  from the node's own flow and temperatures with the spec's ``coolant``, over the node's electrical
  input (its BMC), in % (``coolant_heat_fraction``): a cold plate bypassed or plumbed to the wrong
  manifold carries too little of the heat the node makes.

Leak detectors (``test_leak_detectors_dry``): every detector of every device that has them (the
CDU, each node's chassis) must be dry, and every detector must answer with a state
(``leak_detectors_wet`` counts both). No driver here offers a detector test mode (the
LeakDetection capability has none), so "each detector answers" is judged as each reporting a state.

A rack without a CDU skips with that reason (the air-cooled reference); one that forbids
destructive actions skips the loaded part with the gate's reasons.
"""

from __future__ import annotations

from typing import Any

import pytest

from rackval.core.errors import NotAvailable
from rackval.drivers.capabilities import LeakDetection
from rackval.harness.inventory import Inventory
from rackval.harness.liquid import (
    cdus,
    coolant_heat_w,
    first_channel,
    liquid_nodes,
    no_equipment_reason,
    series_mean,
    series_min,
)
from rackval.harness.rack import Rack
from rackval.harness.safety import SafetyGate
from rackval.harness.spec import Spec
from rackval.harness.telemetry import Channel, cdu_channels, node_coolant_channels

LOAD_LEVEL = 1.0
SETTLE_S = 300.0  # virtual seconds of full load first: GPUs (tau ~10 s) and the CDU's supply control (~120 s)
WINDOW_S = 30.0  # then the loop is sampled at 1 Hz for this long
HAS_GPUS = "gpu_temperature"


def _gpu_hosts(inventory: Inventory, spec: Spec) -> list[str]:
    return [
        n.host for name, n in inventory.data.nodes.items()
        if n.host and spec.expectation(inventory, name).expects(HAS_GPUS)
    ]  # fmt: skip


def test_coolant_loop_under_full_load(
    rack: Rack, inventory: Inventory, spec: Spec, safety: SafetyGate, telemetry, clock, measure, progress
) -> None:
    units = cdus(rack)
    if not units:
        pytest.skip(no_equipment_reason(inventory, "coolant distribution unit", "cdu"))
    nodes = liquid_nodes(rack, inventory)
    hosts = _gpu_hosts(inventory, spec)
    reasons = sorted({r for h in hosts for r in safety.refusal(h)})
    if reasons:
        pytest.skip(f"coolant loop under load not run, refused by the safety gate: {'; '.join(reasons)}")
    coolant = spec.coolant()
    with safety.scoped():  # the load stops at the end, also when a reading fails
        safety.gpu_load_all(hosts, LOAD_LEVEL)
        progress(f"full load on {len(hosts)} nodes: letting the coolant loop settle", SETTLE_S)
        clock.sleep(SETTLE_S)
        channels: list[Channel] = []
        for cdu in units:
            channels += cdu_channels(rack, cdu)
        for bmc in nodes.values():
            channels += node_coolant_channels(rack, bmc)
            channels.append(Channel.single(f"{bmc}/power_w", bmc, "W", lambda d: d.power_watts()))
        sampler = telemetry(channels)
        progress(f"sampling the loop of {', '.join(units)} and {len(nodes)} nodes at 1 Hz", WINDOW_S)
        sampler.run(WINDOW_S)

    for cdu in units:
        _judge_cdu(sampler, cdu, measure)
    if not nodes:
        pytest.fail(f"{', '.join(units)} cools no node: no BMC in {inventory.path} reports coolant connectors")
    for node, bmc in nodes.items():
        _judge_node(sampler, node, bmc, coolant, measure)


def _judge_cdu(sampler: Any, cdu: str, measure: Any) -> None:
    supply = first_channel(sampler, f"{cdu}/*secondary*/supply_temp_c")
    ret = first_channel(sampler, f"{cdu}/*secondary*/return_temp_c")
    if supply is None:
        measure("CDU supply temperature readings missing", 1, "count", limit="soak_samples_missing", device=cdu,
                channel="the CDU reports no secondary supply temperature", soft=True)  # fmt: skip
        return
    hottest = sampler.summary(supply).max
    measure("CDU secondary supply temperature under full load", hottest, "degC", limit="cdu_supply_temperature",
            device=cdu, channel="highest sample", soft=True)  # fmt: skip
    if ret is not None:
        mean_s, mean_r = series_mean(sampler, supply), series_mean(sampler, ret)
        if mean_s is not None and mean_r is not None:
            measure("CDU secondary loop return - supply", mean_r - mean_s, "K", limit="coolant_loop_delta_t",
                    device=cdu, channel=f"mean over {WINDOW_S:g} s", soft=True)  # fmt: skip


def _judge_node(sampler: Any, node: str, bmc: str, coolant: Any, measure: Any) -> None:
    flow_name = first_channel(sampler, f"{bmc}/coolant_*/flow_lpm")
    flow = series_min(sampler, flow_name) if flow_name else None
    if flow is None:
        measure("node coolant flow readings missing", 1, "count", limit="soak_samples_missing", device=bmc,
                channel=f"{node}: the BMC reports no coolant flow", soft=True)  # fmt: skip
        return
    measure("node coolant flow under full load", flow, "L/min", limit="coolant_node_flow", device=bmc,
            channel=f"{node}, lowest sample", soft=True)  # fmt: skip
    means = {f: series_mean(sampler, n) if (n := first_channel(sampler, f"{bmc}/coolant_*/{f}")) else None
             for f in ("flow_lpm", "supply_temp_c", "return_temp_c")}  # fmt: skip
    power = series_mean(sampler, f"{bmc}/power_w")
    if None in means.values() or not power:
        measure("node energy balance readings missing", 1, "count", limit="soak_samples_missing", device=bmc,
                channel=f"{node}: flow, supply/return temperature or power not reported", soft=True)  # fmt: skip
        return
    heat = coolant_heat_w(coolant, means["flow_lpm"], means["supply_temp_c"], means["return_temp_c"])  # type: ignore[arg-type]
    measure("heat into the coolant / node electrical power", 100.0 * heat / power, "%",
            limit="coolant_heat_fraction", device=bmc,
            channel=f"{node}: {heat / 1000:.2f} kW in the {coolant.name or 'coolant'}, {power / 1000:.2f} kW in",
            soft=True)  # fmt: skip


def test_leak_detectors_dry(rack: Rack, inventory: Inventory, measure) -> None:
    devices = [n for n in rack.names() if isinstance(rack.driver(n), LeakDetection)]
    results = rack.fan_out(devices, lambda d: d.leak_detectors())
    found = {n: r.value for n, r in results.items() if r.ok}
    silent = {n: r.error for n, r in results.items() if not r.ok and not isinstance(r.error, NotAvailable)}
    if not found and not silent:
        pytest.skip(f"no device of {inventory.path} reports leak detectors (no CDU, no liquid-cooled node)")
    for device, error in silent.items():
        measure("leak detectors not answering", 1, "count", limit="leak_detectors_wet", device=device,
                channel=str(error), soft=True)  # fmt: skip
    for device, detectors in found.items():
        wet = [f"{d.name} {d.detector_state}" for d in detectors if d.dry is False]
        mute = [f"{d.name} (no state)" for d in detectors if d.dry is None]
        measure("leak detectors wet or without a state", len(wet) + len(mute), "count", limit="leak_detectors_wet",
                device=device, channel=", ".join(wet + mute) or f"{len(detectors)} dry", soft=True)  # fmt: skip
