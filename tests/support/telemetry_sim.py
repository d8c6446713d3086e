"""A small simulated rack, in-process, for the sampler's tests and benchmark.

The simulator's clock is frozen (``time_scale=0``) so only the sampler moves it; the rack file is
rewritten with a short ``timeout_s`` for chosen devices so that a silent one costs a fraction of
a second per tick instead of the default 5 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from rackval.harness.clock import SimulatorClock
from rackval.harness.inventory import Inventory, load_inventory
from rackval.harness.rack import Rack
from rackval.sim.control import ControlClient
from rackval.sim.model import RackSize
from rackval.sim.rack import SimulatedRack


@dataclass
class SimBench:
    sim: SimulatedRack
    inventory: Inventory
    rack: Rack
    control: ControlClient
    clock: SimulatorClock

    def close(self) -> None:
        try:
            self.rack.close()
            self.control.close()
        finally:
            self.sim.stop()


def start_sim(
    state_dir: Path, nodes: int = 2, *, time_scale: float = 0.0, timeouts: dict[str, float] | None = None
) -> SimBench:
    """Start the simulated rack and open rack, control channel and clock on it."""
    sim = SimulatedRack.start(RackSize(nodes=nodes), state_dir, time_scale=time_scale)
    try:
        assert sim.rack_file is not None
        if timeouts:
            doc = yaml.safe_load(sim.rack_file.read_text())
            for name, seconds in timeouts.items():
                doc["devices"][name]["timeout_s"] = seconds
            sim.rack_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        inventory = load_inventory(sim.rack_file)
        ref = inventory.meta.simulator
        assert ref is not None and inventory.simulator_token is not None
        control = ControlClient(ref.control, inventory.simulator_token.reveal())
    except BaseException:
        sim.stop()
        raise
    return SimBench(sim, inventory, Rack(inventory), control, SimulatorClock(control))
