"""Plan: the network is cabled as the rack file says, every cabled port is up at its rated speed,
and no port's error counters grow while the rack idles.

LLDP catches swapped and missing cables; oper state and negotiated speed catch a dead or
down-rated link (a 400G port that came up at 100G is a bad optic or cable); error counters that
grow over an observation window catch a marginal link that is up but corrupting frames.

Limits: ``lldp_mismatches``, ``cabled_ports_down``, ``port_rated_speed`` (min = the speed every
cabled port must run at), ``link_error_window`` (its ``min`` is how long the counters are watched:
``clock.sleep``, virtual on the simulated rack) and ``port_error_growth`` (errors per port over
that window). Every figure is recorded per port (channel = port name).
"""

from __future__ import annotations

from typing import Any

import pytest

from rackval.core.errors import ConfigError, DeviceError
from rackval.core.printable import printable
from rackval.drivers.capabilities import CounterTracker
from rackval.harness.clock import Clock
from rackval.harness.inventory import Inventory
from rackval.harness.measure import Outcome
from rackval.harness.rack import Rack
from rackval.harness.spec import Spec


def _expected_cabling(inventory: Inventory, switch: str) -> dict[str, tuple[str, str]]:
    """switch port -> (node, nic) from the rack file's nodes section."""
    return {
        link.port: (node, nic)
        for node, spec in inventory.data.nodes.items()
        for nic, link in spec.nics.items()
        if link.switch == switch
    }


def test_lldp_neighbors_match_cabling(switch_name: str, rack: Rack, inventory: Inventory, measure) -> None:
    expected = _expected_cabling(inventory, switch_name)
    seen = {n.local_port: (n.remote_system, n.remote_port) for n in rack.driver(switch_name).lldp_neighbors()}
    problems = []
    for port, (node, nic) in sorted(expected.items()):
        got = seen.get(port)
        if got is None:
            problems.append(f"{port}: expected {node} {nic}, LLDP sees nothing")
        elif got != (node, nic):
            problems.append(f"{port}: expected {node} {nic}, LLDP sees {got[0]} {got[1]}")
    measure("cabled ports checked", len(expected), "count", device=switch_name)
    measure("LLDP mismatches", len(problems), "count", limit="lldp_mismatches", device=switch_name, soft=True)
    assert not problems, printable(f"{switch_name}: " + "; ".join(problems))


def test_cabled_ports_up_at_rated_speed(switch_name: str, rack: Rack, inventory: Inventory, measure) -> None:
    expected = _expected_cabling(inventory, switch_name)
    ports = {p.name: p for p in rack.driver(switch_name).ports()}
    down, slow = [], []
    for name in sorted(expected):
        port = ports.get(name)
        if port is None or not port.oper_up:
            down.append(name if port is not None else f"{name} (not reported)")
            continue
        m = measure(
            "port speed", float(port.speed_mbps or 0), "Mb/s", limit="port_rated_speed",
            device=switch_name, channel=name, soft=True,
        )  # fmt: skip
        if m.outcome == Outcome.FAIL:
            slow.append(f"{name} at {port.speed_mbps or 0} Mb/s")
    measure("cabled ports down", len(down), "count", limit="cabled_ports_down", device=switch_name, soft=True)
    problems = []
    if down:
        problems.append(f"cabled ports not up: {', '.join(down)}")
    if slow:
        problems.append(f"cabled ports below the rated speed: {', '.join(slow)}")
    assert not problems, printable(f"{switch_name}: " + "; ".join(problems))


@pytest.fixture(scope="module")
def error_window(rack: Rack, inventory: Inventory, spec: Spec, clock: Clock, progress: Any) -> dict[str, Any]:
    """Counter growth per switch over one shared observation window (all switches watched at
    once, so the plan waits one window, not one per switch): switch -> {port: delta} or error."""
    window = spec.limit("link_error_window").low
    if window is None:
        raise ConfigError(f"spec {spec.path}: link_error_window needs 'min' (the observation window in s)")
    switches = inventory.devices_of_kind("switch")
    trackers = {s: CounterTracker(clock=clock.now) for s in switches}
    first = rack.fan_out(switches, lambda d: trackers[d.name].update(d.counters()))
    started = clock.now()
    progress(f"watching the error counters of {', '.join(switches)}", window)
    clock.sleep(window)
    polled = [s for s in switches if first[s].ok]
    second = rack.fan_out(polled, lambda d: trackers[d.name].update(d.counters()))
    elapsed = clock.now() - started
    out: dict[str, Any] = {"window_s": elapsed}
    for s in switches:
        result = first[s] if not first[s].ok else second[s]
        out[s] = result.value if result.ok else result.error
    return out


def test_port_errors_do_not_grow(switch_name: str, error_window: dict[str, Any], inventory: Inventory, measure) -> None:
    deltas = error_window[switch_name]
    if isinstance(deltas, DeviceError | ConfigError):
        raise deltas
    measure("error observation window", error_window["window_s"], "s", limit="link_error_window", device=switch_name)
    problems = []
    for port in sorted(_expected_cabling(inventory, switch_name)):
        delta = deltas.get(port)
        if delta is None:
            problems.append(f"{port}: no counters reported")
            continue
        if delta.reset:
            problems.append(f"{port}: counters were reset during the window (growth unknown)")
            continue
        grown = {k: getattr(delta, k) for k in ("in_errors", "out_errors") if getattr(delta, k) is not None}
        if not grown:
            problems.append(f"{port}: no error counters reported")
            continue
        total = sum(grown.values())
        measure(
            "port error growth", total, "count", limit="port_error_growth",
            device=switch_name, channel=port, soft=True,
        )  # fmt: skip
        if total > 0:
            detail = ", ".join(f"{k} +{v}" for k, v in grown.items() if v)
            problems.append(f"{port}: errors grew by {total} in {error_window['window_s']:.0f} s ({detail})")
    assert not problems, printable(f"{switch_name}: " + "; ".join(problems))
