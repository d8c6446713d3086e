"""Plan: the whole rack under full GPU load stays within its power budget and keeps cool, unthrottled.

A rack that passes at idle can still fail its purpose: under sustained load the feeds near
their budget, air heats up through the nodes and GPUs slow themselves down (thermal or power
brake) long before anything trips. So every node's GPUs are loaded at 100 % over SSH (every node
with a host whose class in the spec expects ``gpu_temperature``; a management node has none) (through
the safety gate, stopped at the end), and the rack is watched at 1 Hz for the spec's soak
duration (``load_soak_duration``; on the simulator the sampler jumps virtual time tick by tick):

- rack input power from the feed analyzers: peak (``full_load_rack_peak_power``) and steady,
  the mean of the last quarter of the soak (``full_load_rack_power``);
- per node (each figure names the node, so a failure says which): the hottest GPU temperature
  over the soak (``full_load_gpu_temperature``); seconds any GPU reported a thermal or power
  clocks-event reason (SwPowerCap, HwSlowdown, SwThermal, HwThermal, HwPowerBrake: NVML's
  mask from nvidia-smi) with the reasons named (``gpu_throttle_time``); GPU samples lost
  (``soak_samples_missing``); at the end of the soak, still under load, the BMC's exhaust minus
  inlet temperature (``exhaust_inlet_delta``) and every fan's speed (``fan_speed``).

Channels are chosen for cost: analyzers, BMC power and three GPU fields per node (one
nvidia-smi per node per tick), and on a liquid-cooled rack each CDU's loops and pumps (what the
report plots as the loop over the soak), not every PDU outlet. A rack that does not allow destructive
actions skips the plan with the gate's reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rackval.drivers.node.parsers import decode_event_reasons
from rackval.harness.inventory import Inventory
from rackval.harness.liquid import cdus
from rackval.harness.rack import Rack
from rackval.harness.safety import SafetyGate
from rackval.harness.spec import Spec
from rackval.harness.telemetry import Channel, analyzer_channels, cdu_channels, gpu_channels

LOAD_LEVEL = 1.0
# NVML clocks-event reasons that mean the GPU is slowed by heat or power (not idle, not app clocks)
THROTTLE_BITS = 0x004 | 0x008 | 0x020 | 0x040 | 0x080
GPU_FIELDS = (("temperature_c", "degC"), ("event_reasons", ""), ("power_w", "W"))
HAS_GPUS = "gpu_temperature"  # a node class expecting GPU temperatures has GPUs to load
STEADY_FRACTION = 0.25  # the last quarter of the soak is "steady"


def _hosts(inventory: Inventory, spec: Spec) -> dict[str, str]:
    """node -> its OS device (the one that runs the load), for nodes that have one and whose class
    in the spec says they have GPUs (expects ``gpu_temperature``; a management node does not)."""
    return {
        name: node.host for name, node in inventory.data.nodes.items()
        if node.host and spec.expectation(inventory, name).expects(HAS_GPUS)
    }  # fmt: skip


def _skip_if_refused(safety: SafetyGate, devices: list[str], what: str) -> None:
    reasons = sorted({r for d in devices for r in safety.refusal(d)})
    if reasons:
        pytest.skip(f"{what} not run, refused by the safety gate: {'; '.join(reasons)}")


def throttled_seconds(sampler: Any, host: str) -> tuple[float, str]:
    """Seconds during which any GPU of ``host`` reported a throttle reason, and which GPUs/reasons."""
    names = sampler.names(f"{host}/gpu*/event_reasons")
    if not names:
        return 0.0, ""
    any_throttled: np.ndarray | None = None
    seen: dict[str, int] = {}
    times = None
    for name in names:
        times, values = sampler.series(name)
        masks = np.nan_to_num(values, nan=0.0).astype(np.int64)
        hit = (masks & THROTTLE_BITS) != 0
        if hit.any():
            gpu = name.split("/")[1]
            seen[gpu] = int(np.bitwise_or.reduce(masks[hit]))
        any_throttled = hit if any_throttled is None else (any_throttled | hit)
    assert times is not None and any_throttled is not None
    held = np.append(np.diff(times), sampler.period)
    where = ", ".join(f"{gpu.upper()}: {'+'.join(decode_event_reasons(m & THROTTLE_BITS))}" for gpu, m in seen.items())
    return float(held[any_throttled].sum()), where


def judge_node_load(
    sampler: Any, host: str, measure: Callable[..., Any], *, temperature: bool = True, what: str = "soak"
) -> None:
    """Per-node figures from GPU telemetry: hottest GPU, throttled seconds, samples lost (soft)."""
    missing = sampler.errors_of(f"{host}/gpu*")
    measure(f"GPU samples missing during {what}", missing, "count", limit="soak_samples_missing",
            device=host, channel=what, soft=True)  # fmt: skip
    if temperature:
        hottest, value = "", None
        for name in sampler.names(f"{host}/gpu*/temperature_c"):
            peak = sampler.summary(name).max
            if peak is not None and (value is None or peak > value):
                hottest, value = name.split("/")[1].upper(), peak
        if value is not None:
            measure(f"hottest GPU temperature during {what}", value, "degC", limit="full_load_gpu_temperature",
                    device=host, channel=what, detail=f"hottest: {hottest}", soft=True)  # fmt: skip
    seconds, where = throttled_seconds(sampler, host)
    measure(f"GPU throttled time during {what}", seconds, "s", limit="gpu_throttle_time", device=host,
            channel=what, detail=where or "no thermal/power clocks-event reasons", soft=True)  # fmt: skip


def _temperature(sensors: dict[str, float], word: str) -> tuple[str, float] | None:
    for name, value in sensors.items():
        if word in name.lower():
            return name, value
    return None


def _soak_highlights(analyzers: list[str], hosts: dict[str, str], spec: Spec):
    """The soak's progress line: rack power now, the hottest GPU so far, and the smallest margin so
    far (in % of its limit) among the rack's peak power and the GPUs' temperature limits."""
    peak_limit, gpu_limit = spec.limit("full_load_rack_peak_power"), spec.limit("full_load_gpu_temperature")

    def highlights(sampler) -> str:
        total = None
        for a in analyzers:
            _, v = sampler.series(f"{a}/power_w")
            total = v if total is None else total + v
        hottest = None
        for host in hosts.values():
            peak = sampler.summary(f"{host}/gpu*/temperature_c").max
            hottest = peak if hottest is None or (peak is not None and peak > hottest) else hottest
        parts, margins = [], []
        if total is not None and total.size and not np.isnan(total).all():
            now, peak = float(total[~np.isnan(total)][-1]), float(np.nanmax(total))
            parts.append(f"rack {now / 1000:.1f} kW")
            margins.append(("rack peak power", peak_limit.in_unit("W").margin_pct(peak)))
        if hottest is not None:
            parts.append(f"hottest GPU {hottest:.1f} degC")
            margins.append(("GPU temperature", gpu_limit.in_unit("degC").margin_pct(hottest)))
        known = [(what, m) for what, m in margins if m is not None]
        if known:
            what, m = min(known, key=lambda wm: wm[1])
            parts.append(f"smallest margin {m:+.1f} % ({what})")
        return ", ".join(parts)

    return highlights


def test_full_load_power_and_thermal_soak(
    rack: Rack, inventory: Inventory, spec: Spec, safety: SafetyGate, telemetry, measure, progress
) -> None:
    hosts = _hosts(inventory, spec)
    if not hosts:
        pytest.skip(f"no node in {inventory.path} has an OS device (host) and a class with GPUs to run GPU load on")
    _skip_if_refused(safety, list(hosts.values()), "full-load soak")
    duration = spec.limit("load_soak_duration").low
    assert duration is not None, "load_soak_duration needs a 'min' (the soak length)"
    analyzers = inventory.feed_analyzers()
    bmcs = {node: s.bmc for node, s in inventory.data.nodes.items() if s.bmc}

    with safety.scoped():  # the load stops at the end of the block, also when the soak fails
        safety.gpu_load_all(list(hosts.values()), LOAD_LEVEL)
        channels: list[Channel] = []
        for a in analyzers:
            channels += analyzer_channels(rack, a)
        for bmc in bmcs.values():
            channels.append(Channel.single(f"{bmc}/power_w", bmc, "W", lambda d: d.power_watts()))
        for host in hosts.values():
            channels += gpu_channels(rack, host, GPU_FIELDS)
        for cdu in cdus(rack):  # a liquid-cooled rack: its loop temperatures, flows and pumps over the soak
            channels += cdu_channels(rack, cdu)
        sampler = telemetry(channels, highlights=_soak_highlights(analyzers, hosts, spec))
        progress(f"full-load soak of {len(hosts)} nodes at 1 Hz", duration)
        stats = sampler.run(duration)
        measure("soak duration", stats.clock_s + sampler.period, "s", limit="load_soak_duration", device=rack.name)

        # still under load: the steady thermal state of every node, from its BMC
        thermal = rack.fan_out(list(bmcs.values()), lambda d: (d.temperatures(), d.fans()))

    # rack power: sum of the feed analyzers, tick by tick
    total = None
    for a in analyzers:
        _, v = sampler.series(f"{a}/power_w")
        total = v if total is None else total + v
    assert total is not None
    name = "+".join(analyzers)
    finite = total[~np.isnan(total)]
    if finite.size == 0:
        pytest.fail(f"no rack power sample from {name} during the soak: {stats.last_error}")
    steady_n = max(1, int(len(total) * STEADY_FRACTION))
    measure("full-load rack peak power", float(finite.max()), "W", limit="full_load_rack_peak_power", device=name,
            soft=True)  # fmt: skip
    measure("full-load rack steady power", float(np.nanmean(total[-steady_n:])), "W", limit="full_load_rack_power",
            device=name, detail=f"mean of the last {steady_n} s", soft=True)  # fmt: skip
    measure("analyzer samples missing during soak", sum(sampler.errors_of(f"{a}/*") for a in analyzers), "count",
            limit="soak_samples_missing", device=name, soft=True)  # fmt: skip

    for node, host in hosts.items():
        judge_node_load(sampler, host, measure)
        bmc = bmcs.get(node)
        if bmc is None:
            continue
        node_w = sampler.summary(f"{bmc}/power_w")
        if node_w.mean is not None:
            measure("node power under full load", node_w.mean, "W", device=bmc, channel=node)
        result = thermal[bmc]
        if not result.ok:
            measure("BMC thermal readings missing", 1, "count", limit="soak_samples_missing", device=bmc,
                    channel="thermal readings", detail=str(result.error), soft=True)  # fmt: skip
            continue
        sensors, fans = result.value
        inlet, exhaust = _temperature(sensors, "inlet"), _temperature(sensors, "exhaust")
        if inlet and exhaust:
            measure("exhaust - inlet temperature", exhaust[1] - inlet[1], "K", limit="exhaust_inlet_delta",
                    device=bmc, channel=node, detail=f"{exhaust[0]} - {inlet[0]}", soft=True)  # fmt: skip
        for fan, rpm in fans.items():
            measure("fan speed under full load", -1.0 if rpm is None else rpm, "rpm", limit="fan_speed",
                    device=bmc, channel=f"{node} {fan}", detail="no reading" if rpm is None else "",
                    soft=True)  # fmt: skip
