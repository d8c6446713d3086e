"""Plan: the power shelves carry the loaded rack with one rectifier off (N+1), and the BBUs carry it
through the loss of every input feed.

A busbar-fed rack has no node PSUs on PDU outlets: its shelves' rectifiers turn the AC feeds into
the DC busbar and their battery backup units (BBUs) hold it up when the feeds go. Both promises are
tested under full GPU load (through the safety gate, stopped at the end):

``test_shelf_rides_through_one_rectifier_off``:
  every rectifier must be on and healthy first (``rectifiers_unhealthy``: one already failed means
  N+1 is spent, and nothing is switched); then, shelf by shelf, its first rectifier is switched
  off through the gate (``safety.rectifier``) for ``rectifier_loss_hold_time`` at 1 Hz: the
  shelf's busbar voltage (``busbar_voltage``, lowest sample), every other rectifier's output in %
  of its rating (``rectifier_load``, highest sample) and every node's host still On
  (``shelf_event_node_outages``). The rectifier comes back at the end of its step.

``test_bbus_hold_up_the_rack_without_feeds``:
  every BBU's state of health first (``bbu_state_of_health``); then every feed the shelves draw
  from is dropped through the gate (``safety.feed``: the simulator drops the feed; a real rack opens
  each shelf's input breaker, so every shelf loses both its feeds) for ``bbu_holdup_time``, sampling
  each shelf's busbar voltage and BBU state of charge at 1 Hz: the busbar must hold
  (``busbar_voltage``) and no node may lose power (``shelf_event_node_outages``; a node that did is
  marked down in the run's device health, naming the event). The feeds come back, and the BBUs must
  recharge to full within ``bbu_recharge_time`` (state of charge polled every 10 s).

A rack without power shelves skips with that reason (the air-cooled reference); one that forbids
destructive actions, or protects a shelf, skips with the gate's reasons.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rackval.harness.inventory import Inventory
from rackval.harness.liquid import host_states, no_equipment_reason, power_shelves, series_min
from rackval.harness.rack import Rack, values_or_raise
from rackval.harness.readers import _slug  # a name as the telemetry channels spell it
from rackval.harness.safety import SafetyGate, UndoError
from rackval.harness.spec import Spec
from rackval.harness.telemetry import Channel, shelf_channels

LOAD_LEVEL = 1.0
LOAD_SETTLE_S = 30.0  # virtual seconds of full load before the first step
RESTORE_SETTLE_S = 10.0
RECHARGE_POLL_S = 10.0
FULL_PCT = 99.5  # a BBU at or above this state of charge is full
HAS_GPUS = "gpu_temperature"


def _setup(rack: Rack, inventory: Inventory, spec: Spec, safety: SafetyGate, what: str) -> tuple[list[str], dict, dict]:
    shelves = power_shelves(rack)
    if not shelves:
        pytest.skip(no_equipment_reason(inventory, "power shelf", "power_shelf"))
    bmcs = {n: s.bmc for n, s in inventory.data.nodes.items() if s.bmc}
    hosts = {n: s.host for n, s in inventory.data.nodes.items()
             if s.host and spec.expectation(inventory, n).expects(HAS_GPUS)}  # fmt: skip
    reasons = sorted({r for d in [*shelves, *hosts.values()] for r in safety.refusal(d)})
    if reasons:
        pytest.skip(f"{what} not run, refused by the safety gate: {'; '.join(reasons)}")
    return shelves, bmcs, hosts


def _judge_nodes(rack: Rack, bmcs: dict[str, str], what: str, measure: Any) -> dict[str, str]:
    down = {n: why for n, why in host_states(rack, bmcs).items() if why}
    for node, bmc in bmcs.items():
        measure(f"node down ({what})", 1 if node in down else 0, "count", limit="shelf_event_node_outages",
                device=bmc, channel=down.get(node, f"{node} host On"), soft=True)  # fmt: skip
    return down


def _busbar(sampler: Any, shelf: str, what: str, measure: Any) -> None:
    low = series_min(sampler, f"{shelf}/dc/voltage_v") if sampler.names(f"{shelf}/dc/voltage_v") else None
    if low is None:
        measure(f"busbar voltage readings missing ({what})", 1, "count", limit="soak_samples_missing", device=shelf,
                soft=True)  # fmt: skip
        return
    measure(f"busbar voltage ({what})", low, "V", limit="busbar_voltage", device=shelf, channel="lowest sample",
            soft=True)  # fmt: skip


def test_shelf_rides_through_one_rectifier_off(
    rack: Rack, inventory: Inventory, spec: Spec, safety: SafetyGate, telemetry, clock, measure, progress
) -> None:
    shelves, bmcs, hosts = _setup(rack, inventory, spec, safety, "rectifier redundancy")
    hold = spec.limit("rectifier_loss_hold_time").low
    assert hold is not None, "rectifier_loss_hold_time needs a 'min' (how long to run with one rectifier off)"
    found = values_or_raise(rack.fan_out(shelves, lambda d: d.rectifiers()), "read rectifiers")
    spent = False
    for shelf in shelves:
        bad = [f"{r.name} {r.state}/{r.health}" for r in found[shelf]
               if r.state not in ("Enabled", "") or r.health not in ("OK", "")]  # fmt: skip
        m = measure("rectifiers not on and healthy", len(bad), "count", limit="rectifiers_unhealthy", device=shelf,
                    channel=", ".join(bad) or f"{len(found[shelf])} on", soft=True)  # fmt: skip
        spent |= m.outcome.value == "fail"
    if spent:
        return  # N+1 already spent: switching another rectifier off would only test the BBUs

    with safety.scoped():
        safety.gpu_load_all(list(hosts.values()), LOAD_LEVEL)
        clock.sleep(LOAD_SETTLE_S)
        for shelf in shelves:
            off = found[shelf][0].name
            what = f"{shelf} {off} off"
            with safety.scoped():  # the rectifier comes back at the end of its step
                safety.rectifier(shelf, off, False)
                progress(f"{what}: holding the loaded rack on the other rectifiers", hold)
                sampler = telemetry(shelf_channels(rack, shelf, ("rectifier", "dc")))
                stats = sampler.run(hold)
                _judge_nodes(rack, bmcs, what, measure)
            measure(f"time with {what}", stats.clock_s + sampler.period, "s", limit="rectifier_loss_hold_time",
                    device=shelf)  # fmt: skip
            _busbar(sampler, shelf, what, measure)
            ratings = {r.name: r.capacity_w for r in found[shelf]}
            for r in found[shelf]:
                if r.name == off:
                    continue
                name = f"{shelf}/rectifier_{_slug(r.name)}/output_power_w"
                peak = sampler.summary(name).max if sampler.names(name) else None
                if peak is None or not ratings[r.name]:
                    continue
                rating = ratings[r.name]
                measure(f"rectifier load ({what})", 100.0 * peak / rating, "%", limit="rectifier_load", device=shelf,
                        channel=f"{r.name}: {peak:.0f} W of {rating:.0f} W", soft=True)  # fmt: skip
            clock.sleep(RESTORE_SETTLE_S)


def test_bbus_hold_up_the_rack_without_feeds(
    rack: Rack, inventory: Inventory, spec: Spec, safety: SafetyGate, telemetry, clock, measure, progress
) -> None:
    shelves, bmcs, hosts = _setup(rack, inventory, spec, safety, "BBU holdup")
    feeds = sorted({f for s in shelves for f in inventory.spec_of(s).feeds})
    if not feeds:
        pytest.skip(f"no power shelf in {inventory.path} lists its feeds: nothing to drop")
    hold = spec.limit("bbu_holdup_time").low
    assert hold is not None, "bbu_holdup_time needs a 'min' (how long to run on batteries)"
    recharge_limit = spec.limit("bbu_recharge_time").high
    assert recharge_limit is not None, "bbu_recharge_time needs a 'max'"

    batteries = values_or_raise(rack.fan_out(shelves, lambda d: d.batteries()), "read batteries")
    for shelf in shelves:
        for b in batteries[shelf]:
            measure("BBU state of health", -1.0 if b.health_pct is None else b.health_pct, "%",
                    limit="bbu_state_of_health", device=shelf,
                    channel=b.name + ("" if b.health_pct is not None else " (no reading)"), soft=True)  # fmt: skip

    what = f"feeds {'+'.join(feeds)} dropped"
    down: dict[str, str] = {}
    try:
        with safety.scoped():
            safety.gpu_load_all(list(hosts.values()), LOAD_LEVEL)
            clock.sleep(LOAD_SETTLE_S)
            with safety.scoped():  # the feeds come back at the end of the hold
                for feed in feeds:
                    safety.feed(feed, False)
                progress(f"{what}: the loaded rack on its BBUs", hold)
                channels: list[Channel] = []
                for shelf in shelves:
                    channels += shelf_channels(rack, shelf, ("battery", "dc"))
                sampler = telemetry(channels)
                stats = sampler.run(hold)
                down = _judge_nodes(rack, bmcs, what, measure)
                if down:
                    rack.health.mark_down([hosts[n] for n in down if n in hosts], f"{what} under full load")
    except UndoError as exc:  # a node that lost power lost its load with it: its 'stop load' undo fails
        if any(r.device not in {hosts.get(n) for n in down} for r in exc.summary.failed):
            raise
    measure(f"time on batteries ({what})", stats.clock_s + sampler.period, "s", limit="bbu_holdup_time",
            device="+".join(shelves))  # fmt: skip
    for shelf in shelves:
        _busbar(sampler, shelf, what, measure)
        lows = [series_min(sampler, n) for n in sampler.names(f"{shelf}/battery_*/charge_pct")]
        lows = [x for x in lows if x is not None]
        if lows:
            measure(f"lowest BBU state of charge ({what})", min(lows), "%", device=shelf)
    _recharge(rack, shelves, clock, measure, progress, recharge_limit, what)


def _recharge(rack: Rack, shelves: list[str], clock: Any, measure: Any, progress: Any, limit: float, what: str) -> None:
    """Poll every BBU's state of charge until all are full, or a poll past ``limit`` (plus one)."""
    waited = 0.0
    progress(f"feeds back: waiting for the BBUs to recharge to {FULL_PCT:g} %", limit)
    while True:
        charge = values_or_raise(rack.fan_out(shelves, lambda d: d.batteries()), "read batteries")
        low = {s: [b for b in bs if b.charge_pct is None or b.charge_pct < FULL_PCT] for s, bs in charge.items()}
        if not any(low.values()) or waited > limit:
            break
        clock.sleep(RECHARGE_POLL_S)
        waited += RECHARGE_POLL_S
    for shelf in shelves:
        left = ", ".join(f"{b.name} {np.nan if b.charge_pct is None else b.charge_pct:.1f} %" for b in low[shelf])
        measure(f"BBU recharge time (after {what})", waited, "s", limit="bbu_recharge_time", device=shelf,
                channel=f"not full yet: {left}" if left else f"every BBU >= {FULL_PCT:g} %", soft=True)  # fmt: skip
