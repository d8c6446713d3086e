"""Plan: the loaded rack rides through the loss of either power feed.

A/B feeds exist so that a breaker, a PDU or a utility feed can fail without taking the rack
down. That only holds if every node really has working PSUs on both feeds, each feed's PSUs
can carry the node alone at full load, and the remaining feed can carry the whole rack. So,
with every node's GPUs at 100 % (through the safety gate), each feed in turn is dropped
(``safety.feed(feed, False)``; on the simulator the feed itself, on a real rack every outlet of
its PDUs) and the rack is watched at 1 Hz for ``feed_loss_hold_time``:

- per node: down at any check (BMC host PowerState not On, or the OS not answering nvidia-smi
  over SSH) -> ``feed_loss_node_outages`` naming the node and why; seconds any GPU reported a
  thermal or power clocks-event reason -> ``gpu_throttle_time``;
- the remaining feed's power (its analyzer) -> ``single_feed_power`` (the feed's rating); and,
  read just before the drop, the whole rack's power (every feed analyzer): what the remaining
  feed will have to carry, judged against the same rating. A node trips the moment its feed
  goes, so after the drop only the survivors are measured; the demand before it names the
  design that cannot ride through at all.

The feed is restored at the end of each step (the gate's scoped undo) and the load stopped at
the end. A node that tripped stays off (its power restore policy decides; the failure names
it), so the plan marks it down in the run's device health (``rack.health.mark_down``) with the
feed event as the cause: every later test that needs it fails at once naming that cause,
instead of waiting out its SSH and Redfish timeouts. A rack that does not allow destructive
actions, or protects an outlet on a feed, skips the plan with the gate's reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rackval.core.errors import ConfigError, DeviceError
from rackval.drivers.capabilities import EventLog
from rackval.drivers.node.parsers import decode_event_reasons
from rackval.harness.inventory import Inventory
from rackval.harness.measure import Outcome
from rackval.harness.rack import Rack, values_or_raise
from rackval.harness.safety import DestructiveActionRefused, SafetyGate, UndoError
from rackval.harness.spec import Spec
from rackval.harness.telemetry import Channel, analyzer_channels, gpu_channels

LOAD_LEVEL = 1.0
THROTTLE_BITS = 0x004 | 0x008 | 0x020 | 0x040 | 0x080  # SwPowerCap HwSlowdown SwThermal HwThermal HwPowerBrake
LOAD_SETTLE_S = 10.0  # virtual seconds of full load before a feed is dropped
RESTORE_SETTLE_S = 10.0  # after a feed returns, before the next step
CHUNK_S = 10.0  # the hold is sampled in chunks; between them the BMCs say which hosts are still on
_ON = frozenset({"On"})


def _feeds(inventory: Inventory) -> list[str]:
    """The feeds the rack draws from (its PDUs' and its power shelves')."""
    return inventory.power_feeds()


def _feed_refusals(safety: SafetyGate, inventory: Inventory, feed: str) -> list[str]:
    """Why dropping ``feed`` would be refused: any PDU or power shelf on it or any node outlet on it."""
    reasons: set[str] = {r for s in safety.feed_shelves(feed) for r in safety.refusal(s)}
    pdus = set(safety.feed_pdus(feed))
    for pdu in pdus:
        reasons.update(safety.refusal(pdu, None) if inventory.spec_of(pdu).protected else [])
    for node in inventory.data.nodes.values():
        for link in node.psus.values():
            if link.pdu in pdus:
                reasons.update(safety.refusal(link.pdu, link.outlet))
    return sorted(reasons)


def _throttle(sampler: Any, host: str) -> tuple[float, dict[str, int]]:
    """Seconds any GPU of ``host`` was throttled in this sampler's window, and GPU -> reason mask."""
    names = sampler.names(f"{host}/gpu*/event_reasons")
    hit_any, seen, times = None, {}, None
    for name in names:
        times, values = sampler.series(name)
        masks = np.nan_to_num(values, nan=0.0).astype(np.int64)
        hit = (masks & THROTTLE_BITS) != 0
        if hit.any():
            seen[name.split("/")[1].upper()] = int(np.bitwise_or.reduce(masks[hit])) & THROTTLE_BITS
        hit_any = hit if hit_any is None else hit_any | hit
    if hit_any is None or times is None:
        return 0.0, seen
    held = np.append(np.diff(times), sampler.period)
    return float(held[hit_any].sum()), seen


def _host_states(rack: Rack, bmcs: dict[str, str]) -> dict[str, str]:
    """node -> "" when its host is On, else why not (PowerState, or the BMC's error)."""
    results = rack.fan_out(list(bmcs.values()), lambda d: d.power_state())
    out = {}
    for node, bmc in bmcs.items():
        r = results[bmc]
        if not r.ok:
            out[node] = f"{bmc} did not answer: {r.error}"
        elif r.value not in _ON:
            out[node] = f"host PowerState {r.value} ({bmc})"
        else:
            out[node] = ""
    return out


def _hold_on_one_feed(
    rack: Rack, telemetry: Any, analyzers: list[str], hosts: dict[str, str], bmcs: dict[str, str], hold_s: float,
    on_down: Callable[[dict[str, str]], None],
) -> tuple[dict[str, str], dict[str, float], dict[str, dict[str, int]], list[float], float]:  # fmt: skip
    """Sample for ``hold_s`` in chunks; a node found down is dropped from later chunks (its SSH
    would only time out) and reported to ``on_down`` (node -> why) as soon as it is found. Returns
    (node -> why down, node -> throttled s, node -> reasons, remaining feed power samples, seconds
    observed)."""
    down: dict[str, str] = {}
    throttled = dict.fromkeys(hosts, 0.0)
    reasons: dict[str, dict[str, int]] = {n: {} for n in hosts}
    power: list[float] = []
    observed = 0.0
    while observed < hold_s - 1e-9:
        for node, why in _host_states(rack, {n: b for n, b in bmcs.items() if n not in down}).items():
            if why:
                down[node] = why
        on_down(down)
        channels: list[Channel] = []
        for a in analyzers:
            channels += analyzer_channels(rack, a)
        up = {n: h for n, h in hosts.items() if n not in down}
        for node, host in up.items():
            try:
                channels += gpu_channels(rack, host, (("event_reasons", ""),))
            except DeviceError as exc:
                down[node] = f"OS not answering over SSH: {exc}"
        sampler = telemetry(channels)
        stats = sampler.run(min(CHUNK_S, hold_s - observed))
        observed += stats.ticks * sampler.period
        total = None
        for a in analyzers:
            _, v = sampler.series(f"{a}/power_w")
            total = v if total is None else total + v
        if total is not None:
            power += [float(x) for x in total if not np.isnan(x)]
        for node, host in up.items():
            if node in down:
                continue
            if sampler.names(f"{host}/*") and (lost := sampler.errors_of(f"{host}/*")):
                down[node] = f"OS not answering over SSH ({lost} GPU samples lost): {stats.last_error.get(host, '')}"
                continue
            seconds, seen = _throttle(sampler, host)
            throttled[node] += seconds
            for gpu, mask in seen.items():
                reasons[node][gpu] = reasons[node].get(gpu, 0) | mask
    for node, why in _host_states(rack, {n: b for n, b in bmcs.items() if n not in down}).items():
        if why:
            down[node] = why
    on_down(down)
    return down, throttled, reasons, power, observed


def _rack_demand(rack: Rack, inventory: Inventory, measure: Any, feed: str, remaining: list[str]) -> str:
    """The whole rack's power just before ``feed`` is dropped (every feed analyzer), judged as what
    the remaining feed must carry; returns how it compares with the rating, for the cause of any
    node that trips ('' without a feed analyzer)."""
    try:
        analyzers = inventory.feed_analyzers()
    except ConfigError:
        return ""
    if not analyzers:
        return ""
    watts = sum(values_or_raise(rack.fan_out(analyzers, lambda d: d.power_watts()), "read rack power").values())
    carrier = "+".join(remaining)
    m = measure(f"rack power before dropping feed {feed} (what feed {carrier} must carry alone)", watts, "W",
                limit="single_feed_power", device="+".join(analyzers), channel=f"feeds {'+'.join(_feeds(inventory))}",
                soft=True)  # fmt: skip
    rating = f"{m.high / 1000:g} kW" if m.high is not None else "(no max)"
    word = {Outcome.FAIL: "over", Outcome.MARGINAL: "marginally within"}.get(m.outcome, "within")
    return f"the rack drew {watts / 1000:.1f} kW before the drop, {word} the {rating} rating of feed {carrier} alone"


def test_rack_rides_through_feed_loss(
    rack: Rack, inventory: Inventory, spec: Spec, safety: SafetyGate, telemetry, clock, measure, progress
) -> None:
    feeds = _feeds(inventory)
    if len(feeds) < 2:
        pytest.skip(f"{inventory.path} puts its PDUs and power shelves on {len(feeds)} feed(s): no redundancy to test")
    nodes = {n: s for n, s in inventory.data.nodes.items() if s.host and s.bmc}
    if not nodes:
        pytest.skip(f"no node in {inventory.path} has both a BMC and an OS device")
    hosts = {n: s.host for n, s in nodes.items()}
    bmcs = {n: s.bmc for n, s in nodes.items()}
    reasons = sorted({r for h in hosts.values() for r in safety.refusal(h)})
    reasons += [f"feed {f}: {r}" for f in feeds for r in _feed_refusals(safety, inventory, f) if r not in reasons]
    if reasons:
        pytest.skip(f"feed redundancy not run, refused by the safety gate: {'; '.join(reasons)}")
    hold = spec.limit("feed_loss_hold_time").low
    assert hold is not None, "feed_loss_hold_time needs a 'min' (how long to run on one feed)"

    went_down: set[str] = set()  # hosts found down: stopping their load cannot reach them
    try:
        _run_steps(rack, inventory, safety, telemetry, clock, measure, progress, feeds, hosts, bmcs, hold, went_down)
    except UndoError as exc:
        # A node that tripped lost its load with its power; its failed 'stop GPU load' undo is a
        # consequence (recorded in the store), and the node's own failure above says why.
        if any(r.device not in went_down for r in exc.summary.failed):
            raise


def _run_steps(
    rack: Rack, inventory: Inventory, safety: SafetyGate, telemetry: Any, clock: Any, measure: Any, progress: Any,
    feeds: list[str], hosts: dict[str, str], bmcs: dict[str, str], hold: float, went_down: set[str],
) -> None:  # fmt: skip
    nodes = list(hosts)
    since: dict[str, str] = {}  # node -> the step it went down in
    with safety.scoped():  # the load stops at the end, also when a step fails
        safety.gpu_load_all(list(hosts.values()), LOAD_LEVEL)
        clock.sleep(LOAD_SETTLE_S)
        for feed in feeds:
            remaining = [f for f in feeds if f != feed]
            analyzers = [a for a in rack.names("analyzer") if set(inventory.spec_of(a).feeds) <= set(remaining)]
            analyzers = [a for a in analyzers if inventory.spec_of(a).feeds] or rack.names("analyzer")
            demand = _rack_demand(rack, inventory, measure, feed, remaining)
            event = f"feed {feed} dropped under full load" + (f": {demand}" if demand else "")
            live = [n for n in nodes if n not in since]
            # only a node seen up just before the drop can have been taken down by it
            up_before = {n for n, why in _host_states(rack, {n: bmcs[n] for n in live}).items() if not why}
            marker = _DownMarker(rack, event, {n: hosts[n] for n in up_before}, bmcs)
            with safety.scoped():  # the feed comes back at the end of its step
                try:
                    safety.feed(feed, False)
                except DestructiveActionRefused as exc:
                    pytest.skip(f"feed redundancy not run: {exc}")
                earlier = {n: f"down since {since[n]}, not tested again" for n in since}
                progress(f"feed {feed} dropped: holding the loaded rack on feed {'+'.join(remaining)} alone", hold)
                down, throttled, seen, power, observed = _hold_on_one_feed(
                    rack, telemetry, analyzers, {n: hosts[n] for n in live}, {n: bmcs[n] for n in live}, hold, marker
                )
            went_down.update(hosts[n] for n in down)
            since.update(dict.fromkeys(down, f"feed {feed} was lost"))
            down.update(earlier)
            what = f"feed {feed} lost"
            measure(f"time on one feed ({what})", observed, "s", limit="feed_loss_hold_time", device=f"feed {feed}")
            if power:
                measure(f"remaining feed power ({what})", max(power), "W", limit="single_feed_power",
                        device="+".join(analyzers), channel=what, detail=f"peak, feeds {'+'.join(remaining)}",
                        soft=True)  # fmt: skip
            for node in nodes:
                measure(f"node down ({what})", 1 if node in down else 0, "count", limit="feed_loss_node_outages",
                        device=node, channel=what, detail=down.get(node, "host On, OS answering"),
                        soft=True)  # fmt: skip
                if node in down:
                    continue
                where = ", ".join(f"{g}: {'+'.join(decode_event_reasons(m))}" for g, m in seen[node].items())
                measure(f"GPU throttled time ({what})", throttled[node], "s", limit="gpu_throttle_time",
                        device=node, channel=what, detail=where or "no thermal/power clocks-event reasons",
                        soft=True)  # fmt: skip
            clock.sleep(RESTORE_SETTLE_S)


class _DownMarker:
    """Marks the nodes a feed drop took down in the run's device health, under one cause per
    step (what was dropped and the rack's demand): the host of every node found down that was up
    just before the drop (``hosts`` holds only those), and its BMC too when the BMC stopped
    answering (a node with no live PSU left). A node already down before the drop keeps its own
    cause: a dead BMC is not a feed event."""

    def __init__(self, rack: Rack, event: str, hosts: dict[str, str], bmcs: dict[str, str]) -> None:
        self.rack, self.event, self.hosts, self.bmcs = rack, event, hosts, bmcs
        self.cause: Any = None
        self.marked: set[str] = set()

    def __call__(self, down: dict[str, str]) -> None:
        new = [n for n in down if n not in self.marked and n in self.hosts]
        if not new:
            return
        self.marked.update(new)
        silent = [n for n in new if down[n].startswith(f"{self.bmcs[n]} did not answer")]
        devices = [self.hosts[n] for n in new] + [self.bmcs[n] for n in silent]
        if self.cause is None:
            said = next((w for n in new if n not in silent and (w := self._why(n))), "")
            self.cause = self.event + (f"; {said}" if said else "")
        self.cause = self.rack.health.mark_down(devices, self.cause)

    def _why(self, node: str) -> str:
        """What the node's BMC logged last as Critical (e.g. its PSUs overloaded), if it keeps a log."""
        bmc = self.bmcs[node]
        drv = self.rack.driver(bmc)
        if not isinstance(drv, EventLog):
            return ""
        try:
            critical = [e for e in drv.sel_entries() if e.severity == "Critical"]
        except DeviceError:
            return ""
        return f"{bmc} logged: {critical[-1].message.rstrip('.')}" if critical else ""
