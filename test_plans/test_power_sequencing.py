"""Plan: from all-off, a staggered power-on brings every node up in time without overloading a feed.

After a facility outage (or at first power-up on site) the rack is switched on outlet by outlet
with an inrush guard between outlets. This plan does exactly that and times each node:

1. **All off** (through the safety gate): every node PSU outlet the rack file lists is switched
   off, which takes BMCs and hosts down with it. Each switch-off opens its own
   ``safety.scoped()`` block, nested in order.
2. **Staggered power-on**: the scopes are closed one at a time, ``outlet_power_on_stagger``
   apart, innermost first; closing a scope is the gate's undo, which switches that outlet back
   on *as found*. So power-on is the restore itself: the rack ends as it was found, and an
   error anywhere closes every remaining scope at once (everything back on, unstaggered).
   The smallest gap achieved is judged against the stagger (clock readings at 1 Hz ticks,
   rounded to 10 ms).
3. **Timing per node**, from the node's first outlet on: BMC answering Redfish
   (``bmc_ready_time``), host PowerState On through the power restore policy
   (``host_power_on_time``; nodes whose host was found off are not expected to power on), and
   the OS answering over SSH (``os_up_time``). BMCs are asked every tick with a probe that
   does not retry "503 starting" (a booting BMC answers at once); the OS every
   ``OS_POLL_S`` seconds with a short SSH timeout, so OS times are known to within that. OS
   probes run beside the sampling (a fresh connection each, stamped with the clock reading
   taken just before it connects): a host that is still down costs its probe's wall-clock
   timeout in a background thread, not a stall of the 1 Hz sampling and of the clock.
4. **Feed current**: each feed's analyzer is sampled at 1 Hz throughout; the highest current
   is judged per feed (``power_on_feed_current``). This is the highest *sampled* RMS current,
   not the inrush peak: the ~10 ms inrush of a PSU needs a transient capture (a Chroma-class
   load/analyzer with inrush mode), which a Yokogawa WT polled at 1 Hz does not give. Without an
   analyzer on a feed, the summed outlet currents of the feed's PDUs are used.

A rack that does not allow destructive actions, or protects any of these outlets, skips the
plan with the gate's reasons.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pytest

from rackval.core.errors import ConfigError, DeviceError
from rackval.drivers import registry
from rackval.harness.clock import Clock
from rackval.harness.inventory import Inventory
from rackval.harness.rack import Rack, values_or_raise
from rackval.harness.safety import SafetyGate
from rackval.harness.spec import Spec
from rackval.harness.telemetry import Channel, analyzer_channels, pdu_channels

OFF_SETTLE_S = 5.0  # virtual seconds every node stays without input before power-on
OS_POLL_S = 15.0  # how often nodes whose host is On are probed over SSH
PROBE_TIMEOUT_S = 1.0  # SSH / Redfish timeout of the readiness probes (a down host never answers)
CHUNK_S = 10.0  # sampling runs in chunks so the plan stops as soon as every node is up
WAIT_MARGIN_S = 30.0  # waited beyond the last outlet + os_up_time before giving up
_ON = frozenset({"On"})


@dataclasses.dataclass
class NodeTimes:
    """Virtual clock readings for one node (None: not yet)."""

    first_on: float | None = None
    bmc_ready: float | None = None
    host_on: float | None = None
    os_up: float | None = None
    expect_host: bool = True  # False: host found off, so the restore policy keeps it off
    last_error: str = ""


def _probe(rack: Rack, inventory: Inventory, name: str, **options: Any) -> Any:
    """A second driver for ``name`` with a short timeout (and extra options): readiness polls of a
    device that is still down must cost little, and must not disturb the rack's own driver."""
    cfg = inventory.configs[name]
    timeout = min(cfg.timeout_s, PROBE_TIMEOUT_S)
    cfg = dataclasses.replace(cfg, options={**dict(cfg.options), **options}, timeout_s=timeout)
    return registry.load(cfg.driver)(cfg)


def _feed_current_channels(rack: Rack, inventory: Inventory) -> dict[str, tuple[str, list[str], list[Channel]]]:
    """feed(s) label -> (device text, current channel names to sum, channels to sample)."""
    out: dict[str, tuple[str, list[str], list[Channel]]] = {}
    covered: set[str] = set()
    for a in rack.names("analyzer"):
        feeds = list(inventory.spec_of(a).feeds)
        if not feeds:
            continue
        channels = analyzer_channels(rack, a)
        if any(c.name == f"{a}/current_a" for c in channels):
            out["+".join(feeds)] = (a, [f"{a}/current_a"], channels)
            covered.update(feeds)
    pdu_feeds = sorted({f for p in rack.names("pdu") for f in inventory.spec_of(p).feeds})
    for feed in pdu_feeds:
        if feed in covered:
            continue
        pdus = [p for p in rack.names("pdu") if feed in inventory.spec_of(p).feeds]
        channels = [c for p in pdus for c in pdu_channels(rack, p)]
        names = [c.name for c in channels if c.name.endswith("/current_a")]
        out[feed] = ("+".join(pdus), names, channels)
    return out


def _exit_all(scopes: list[tuple[AbstractContextManager[Any], Any]]) -> None:
    """Close every scope still open (switching its outlet back on as found), innermost first;
    one failure does not stop the others; the first is raised at the end."""
    first: BaseException | None = None
    while scopes:
        cm, _ = scopes.pop()
        try:
            cm.__exit__(None, None, None)
        except Exception as exc:  # the gate logged and stored it; keep restoring the rest
            first = first or exc
    if first is not None:
        raise first


def test_staggered_power_on_from_all_off(
    rack: Rack, inventory: Inventory, spec: Spec, safety: SafetyGate, clock: Clock, telemetry, measure, progress
) -> None:
    nodes = {n: s for n, s in inventory.data.nodes.items() if s.psus}
    if not nodes:
        pytest.skip(f"no node in {inventory.path} lists its PSU outlets: nothing to sequence")
    order = [(n, psu, link.pdu, link.outlet) for n, s in nodes.items() for psu, link in s.psus.items()]
    reasons = sorted({r for _, _, pdu, outlet in order for r in safety.refusal(pdu, outlet)})
    if reasons:
        pytest.skip(f"power sequencing not run, refused by the safety gate: {'; '.join(reasons)}")
    stagger = spec.limit("outlet_power_on_stagger").in_unit("s").low
    os_limit = spec.limit("os_up_time").in_unit("s").high
    if stagger is None or os_limit is None:
        raise ConfigError("outlet_power_on_stagger needs a 'min' and os_up_time a 'max'")

    times = {n: NodeTimes() for n in nodes}
    found = rack.fan_out([s.bmc for s in nodes.values() if s.bmc], lambda d: d.power_state())
    for n, s in nodes.items():
        if s.bmc and found[s.bmc].ok and found[s.bmc].value not in _ON:
            times[n].expect_host = False
    feeds = _feed_current_channels(rack, inventory)
    channels = [c for _, _, chans in feeds.values() for c in chans]
    probes: dict[str, Any] = {}
    try:
        for s in nodes.values():
            if s.bmc:
                probes[s.bmc] = _probe(rack, inventory, s.bmc, retries_503=0)
        os_prober = _OsProber(lambda host: _probe(rack, inventory, host), clock)
        at_most = OFF_SETTLE_S + len(order) * stagger + os_limit + WAIT_MARGIN_S
        progress(f"{len(order)} outlets off, then on {stagger:g} s apart: waiting for every BMC and OS to come up",
                 at_most)  # fmt: skip
        switched = _sequence(
            rack, nodes, order, stagger, os_limit, safety, clock, telemetry, channels, times, probes, os_prober
        )
    finally:
        for drv in probes.values():
            drv.close()
    sampler, switch_times, t_end, still_on = switched
    for n, s in nodes.items():  # seen answering again: the run's drivers may use them at once
        if s.bmc and times[n].bmc_ready is not None:
            rack.health.mark_up(s.bmc)
        if s.host and times[n].os_up is not None:
            rack.health.mark_up(s.host)
    measure("node outlets still on after switch-off", len(still_on), "count", device=rack.name,
            detail=", ".join(still_on) or "all node outlets off")  # fmt: skip

    gaps = np.round(np.diff(np.array(switch_times)), 2) if len(switch_times) > 1 else np.array([stagger])
    measure("smallest gap between outlet switch-ons", float(gaps.min()), "s", limit="outlet_power_on_stagger",
            device=rack.name, detail=f"{len(switch_times)} outlets")  # fmt: skip
    for feed, (device, names, _) in feeds.items():
        peak = None
        total = None
        for name in names:
            _, v = sampler.series(name)
            total = v if total is None else total + v
        if total is not None and np.isfinite(total).any():
            peak = float(np.nanmax(total))
        if peak is None:
            measure("power-on feed current samples", 0, "count", limit="soak_samples_missing", device=device,
                    channel=f"feed {feed}", detail="no current sample", soft=True)  # fmt: skip
            continue
        measure("highest sampled feed current during power-on", peak, "A", limit="power_on_feed_current",
                device=device, channel=f"feed {feed}", detail="1 Hz RMS; not the sub-second inrush peak",
                soft=True)  # fmt: skip

    for n, s in nodes.items():
        t = times[n]
        start = t.first_on if t.first_on is not None else t_end
        waited = t_end - start

        def judge(
            what: str, at: float | None, key: str, device: str, node: str = n, w: float = waited, t0: float = start
        ) -> None:
            if at is None:
                why = f"not reached when the plan stopped waiting ({w:.0f} s)"
                last = times[node].last_error
                measure(what, w, "s", limit=key, device=device, channel=node,
                        detail=why + (f"; last: {last}" if last else ""), soft=True)  # fmt: skip
                # a never-reached state must fail even if the wait was shorter than the limit
                limit = spec.limit(key).in_unit("s")
                if limit.high is not None and w <= limit.high:
                    measure(what + " (not reached)", limit.high + 1.0, "s", limit=key, device=device,
                            channel=node, detail=why, soft=True)  # fmt: skip
            else:
                measure(what, at - t0, "s", limit=key, device=device, channel=node, detail="from first outlet on",
                        soft=True)  # fmt: skip

        if s.bmc:
            judge("time to BMC ready", t.bmc_ready, "bmc_ready_time", s.bmc)
            if t.expect_host:
                judge("time to host PowerState On", t.host_on, "host_power_on_time", s.bmc)
            else:
                measure("host found off: not expected to power on", 0, "count", device=s.bmc, channel=n)
        if s.host and t.expect_host:
            judge("time to OS reachable over SSH", t.os_up, "os_up_time", s.host)
    if still_on:  # those nodes never were off: their times above do not describe a power-on
        pytest.fail(f"not all-off before power-on: {', '.join(still_on)} stayed on (stuck relay or wrong outlet?)")


def _sequence(
    rack: Rack, nodes: dict[str, Any], order: list[tuple[str, str, str, int]], stagger: float, os_limit: float,
    safety: SafetyGate, clock: Clock, telemetry: Callable[..., Any], channels: list[Channel],
    times: dict[str, NodeTimes], probes: dict[str, Any], os_prober: _OsProber,
) -> tuple[Any, list[float], float, list[str]]:  # fmt: skip
    """All off, then staggered on (closing the nested scopes); returns (sampler, switch times, end,
    node outlets that did not switch off)."""
    scopes: list[tuple[AbstractContextManager[Any], Any]] = []
    switch_times: list[float] = []
    try:
        for item in reversed(order):  # the innermost scope is the first outlet to come back
            cm = safety.scoped()
            cm.__enter__()
            scopes.append((cm, item))
            _, _, pdu, outlet = item
            safety.outlet(pdu, outlet, False)
        clock.sleep(OFF_SETTLE_S)
        still_on = _outlets_still_on(rack, order)
        rate = max(1.0, 1.0 / stagger)
        sampler = telemetry(channels, rate)
        state: dict[str, float | None] = {"last_switch": None}

        def on_tick(_k: int, t: float) -> None:
            last = state["last_switch"]
            if scopes and (last is None or round(t - last, 2) >= stagger):
                cm, (node, _, _, _) = scopes.pop()
                cm.__exit__(None, None, None)  # the gate's undo: this outlet back on, as found
                state["last_switch"] = t
                switch_times.append(t)
                if times[node].first_on is None:
                    times[node].first_on = t
            _poll_bmcs(nodes, times, probes, t)
            os_prober.collect(times)
            os_prober.poll(nodes, times, t)

        deadline = None
        while True:
            sampler.run(CHUNK_S, on_tick=on_tick)
            now = clock.now()
            if not scopes and deadline is None:
                deadline = now + os_limit + WAIT_MARGIN_S
            if not scopes and all(_done(nodes[n], t) for n, t in times.items()):
                break
            if deadline is not None and now >= deadline:
                break
        end = clock.now()
        os_prober.collect(times, wait=True)  # probes sent before the end still count, at their send time
        return sampler, switch_times, end, still_on
    finally:
        os_prober.close()
        _exit_all(scopes)


def _outlets_still_on(rack: Rack, order: list[tuple[str, str, str, int]]) -> list[str]:
    """Node outlets a PDU still reports on after they were switched off (one read per PDU)."""
    states = values_or_raise(rack.fan_out(sorted({pdu for *_, pdu, _ in order}), lambda d: d.outlets()), "read outlets")
    on = {(pdu, o.outlet) for pdu, readings in states.items() for o in readings if o.on}
    return [f"{pdu} outlet {outlet} ({node} {psu})" for node, psu, pdu, outlet in order if (pdu, outlet) in on]


def _done(spec: Any, t: NodeTimes) -> bool:
    if spec.bmc and t.bmc_ready is None:
        return False
    if not t.expect_host:
        return True
    if spec.bmc and t.host_on is None:
        return False
    return not (spec.host and t.os_up is None)


def _poll_bmcs(nodes: dict[str, Any], times: dict[str, NodeTimes], probes: dict[str, Any], t: float) -> None:
    """Ask every powered BMC not yet seen with its host On for PowerState (one fan-out)."""
    from concurrent.futures import ThreadPoolExecutor

    todo = [
        n
        for n, s in nodes.items()
        if s.bmc and times[n].first_on is not None and (times[n].bmc_ready is None or
                                                         (times[n].expect_host and times[n].host_on is None))
    ]  # fmt: skip
    if not todo:
        return

    def ask(n: str) -> tuple[str, str | None, str]:
        try:
            return n, str(probes[nodes[n].bmc].power_state()), ""
        except DeviceError as exc:
            return n, None, str(exc)

    with ThreadPoolExecutor(max_workers=min(32, len(todo)), thread_name_prefix="bmc-probe") as pool:
        for n, state, error in pool.map(ask, todo):
            nt = times[n]
            if state is None:
                nt.last_error = error
                continue
            if nt.bmc_ready is None:
                nt.bmc_ready = t
            if state in _ON and nt.host_on is None:
                nt.host_on = t


class _OsProber:
    """OS readiness probes over SSH that run beside the sampling.

    Each probe is a fresh driver (one connection), stamped with the clock reading taken just
    before it connects (the simulated host decides at that connection whether it answers); a
    node whose probe answers has its OS up at the earliest such stamp. A host still down does not
    answer until the probe's timeout, which is wall-clock time: run inline, every such probe
    would stall the ticks (and a virtual clock) for a whole timeout. Each node is probed every
    ``OS_POLL_S`` clock seconds, whether or not its previous probe has come back.
    """

    def __init__(self, make_driver: Callable[[str], Any], clock: Clock) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._make = make_driver
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=160, thread_name_prefix="os-probe")
        self._pending: list[tuple[str, Any]] = []  # node, future
        self._next: dict[str, float] = {}

    def _ask(self, host: str) -> tuple[float, str]:
        drv = self._make(host)
        try:
            sent = self._clock.now()
            drv.gpus()
            return sent, ""
        except DeviceError as exc:
            return math.nan, str(exc)
        finally:
            drv.close()

    def poll(self, nodes: dict[str, Any], times: dict[str, NodeTimes], t: float) -> None:
        """Send a probe to every node whose host is On (or that has no BMC), whose OS is not known
        up, and whose next probe is due."""
        for n, s in nodes.items():
            nt = times[n]
            eligible = s.host and nt.expect_host and nt.os_up is None and nt.first_on is not None
            if not eligible or (s.bmc and nt.host_on is None) or t < self._next.get(n, t):
                continue
            self._next[n] = t + OS_POLL_S
            self._pending.append((n, self._pool.submit(self._ask, s.host)))

    def collect(self, times: dict[str, NodeTimes], *, wait: bool = False) -> None:
        """Take the answers that are in (all of them with ``wait``; each is bounded by its timeout)."""
        keep = []
        for n, fut in self._pending:
            if not (wait or fut.done()):
                keep.append((n, fut))
                continue
            sent, error = fut.result()
            nt = times[n]
            if error:
                nt.last_error = error
            elif nt.os_up is None or sent < nt.os_up:
                nt.os_up = sent
        self._pending = keep

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
