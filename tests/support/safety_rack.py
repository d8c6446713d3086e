"""Test bench for the safety gate: a simulated rack in-process, a rack file variant, a store, a gate.

Rack file variants (protected devices, allow_destructive off, short timeouts) are written beside
the simulator's own rack file, so their relative secret and known_hosts paths still resolve.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rackval.harness.inventory import Inventory, load_inventory
from rackval.harness.rack import Rack
from rackval.harness.safety import SafetyGate, SimFeedSwitcher
from rackval.harness.store import RunInfo, Store, open_store
from rackval.sim.control import ControlClient
from rackval.sim.rack import SimulatedRack

RUN_ID = "safety-run"


class SpyRack(Rack):
    """A Rack that remembers every device whose driver was asked for: a refused action must ask for none."""

    def __init__(self, inventory: Inventory) -> None:
        super().__init__(inventory)
        self.requested: list[str] = []

    def driver(self, name: str) -> Any:
        self.requested.append(name)
        return super().driver(name)


@dataclass
class Bench:
    sim: SimulatedRack
    inventory: Inventory
    rack: SpyRack
    store: Store
    gate: SafetyGate
    test_id: int
    control: ControlClient | None = None
    extra: list[Any] = field(default_factory=list)

    def outlet_states(self, pdu: str) -> dict[int, bool]:
        return {r.outlet: r.on for r in self.rack.driver(pdu).outlets()}

    def close(self) -> None:
        self.rack.close()
        if self.control is not None:
            self.control.close()
        self.store.close()


def write_variant(rack_file: Path, name: str, mutate: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the simulator's rack file, changed by ``mutate(document)``, in the same directory."""
    doc = yaml.safe_load(rack_file.read_text())
    mutate(doc)
    path = rack_file.with_name(f"rack-{name}.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def make_bench(
    sim: SimulatedRack,
    store_path: Path,
    *,
    mutate: Callable[[dict[str, Any]], None] | None = None,
    flag: bool = False,
    sim_feeds: bool = False,
) -> Bench:
    """A gate over ``sim`` as the plugin would build it: allow = rack file OR ``flag``."""
    assert sim.rack_file is not None
    rack_file = write_variant(sim.rack_file, store_path.stem, mutate) if mutate else sim.rack_file
    inventory = load_inventory(rack_file)
    rack = SpyRack(inventory)
    store = open_store(store_path)
    store.start_run(RunInfo(run_id=RUN_ID, started_at=time.time(), rack_name=inventory.meta.name))
    test_id = store.start_test(RUN_ID, "tests/test_safety.py::bench")
    control = None
    switcher = None
    if sim_feeds:
        assert inventory.meta.simulator is not None and inventory.simulator_token is not None
        control = ControlClient(inventory.meta.simulator.control, inventory.simulator_token.reveal())
        switcher = SimFeedSwitcher(control)
    gate = SafetyGate(
        rack,
        inventory,
        store,
        RUN_ID,
        allow_destructive=inventory.meta.allow_destructive or flag,
        test_id_of=lambda: test_id,
        feed_switcher=switcher,
    )
    return Bench(sim, inventory, rack, store, gate, test_id, control)


def rack_changes(sim: SimulatedRack) -> list[str]:
    """How the simulated rack differs from the state it starts in (what a leaky test left behind)."""
    model = sim.model
    changes = [f"{p} outlet {n} off" for p, d in model.pdus.items() for n, o in d.outlets.items() if not o.on]
    changes += [f"feed {f} down" for f in ("A", "B") if not model.feed_up(f)]
    changes += [f"fault {f.kind} on {f.device}" for f in model.injected_faults()]
    for node in model.nodes:
        if model.host_state(node) != "On":
            changes.append(f"{node} host {model.host_state(node)}")
        if model.power_cap(node) is not None:
            changes.append(f"{node} capped at {model.power_cap(node)} W")
        if model.gpu_utilization(node, 0) > 0:
            changes.append(f"{node} GPUs loaded")
    return changes


def restore_baseline(sim: SimulatedRack) -> None:
    """Put the simulated rack back as it started, straight through the model (not the gate)."""
    model = sim.model
    for fault in model.injected_faults():
        model.clear_fault(fault.id)
    for feed in ("A", "B"):
        model.set_feed(feed, True)
    for p, d in model.pdus.items():
        for n in d.outlets:
            model.set_outlet(p, n, True)
    for node in model.nodes:
        model.set_power_cap(node, None)
        model.set_utilization(node, 0.0)
        model.set_host_power(node, True)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail after ``timeout_s`` (BMC state changes take a moment)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(0.05)
