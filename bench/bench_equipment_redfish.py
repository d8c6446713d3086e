"""Benchmark: one poll of a Redfish CDU (pumps, filters, reservoirs, loops) and of a Redfish power
shelf (feeds, DC output, batteries), served by the simulator's equipment services on 127.0.0.1.

Prints the GETs one poll sends and its median wall time, with member collections read through
``$expand`` where the service root offers it (the drivers' default) and with option
``expand: false`` (one GET per member: what the drivers did before). A real CDU's or shelf's
embedded web server takes tens to hundreds of milliseconds a GET, so the GET count is the
figure that carries over. Not a test.

    .venv/bin/python bench/bench_equipment_redfish.py [--polls 30]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.poll_timing import poll_cost
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.cooling.redfish_cdu import RedfishCdu
from rackval.drivers.power_shelf.redfish_shelf import RedfishPowerShelf
from rackval.sim.clock import SimClock
from rackval.sim.model import RackModel
from rackval.sim.redfish_cdu import start_cdu_redfish
from rackval.sim.redfish_shelf import start_shelf_redfish
from rackval.sim.reference import load_model_params

REPO = Path(__file__).resolve().parents[1]
USER, PASSWORD = "admin", "bench-equipment-pw"


def measure(cls: Any, host: str, port: int, name: str, kind: str, poll: Callable[[Any], Any], polls: int,
            **options: Any) -> tuple[int, float]:  # fmt: skip
    config = DeviceConfig(name=name, kind=kind, driver="bench", host=host, port=port,
                          credentials=Credentials(username=USER, password=Secret(PASSWORD)),
                          options={"scheme": "http", **options}, timeout_s=5.0)  # fmt: skip
    return poll_cost(cls(config), "get", poll, polls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=30)
    args = parser.parse_args(argv)
    size, params = load_model_params(REPO / "racks" / "sim-liquid-params.yaml")
    clock = SimClock(time_scale=0.0)
    model = RackModel(size, clock, params)
    clock.advance(60.0)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    devices = (
        (start_cdu_redfish, RedfishCdu, "cdu1", "cdu", lambda d: (d.pumps(), d.filters(), d.reservoirs(), d.loops())),
        (start_shelf_redfish, RedfishPowerShelf, "shelf1", "power_shelf",
         lambda d: (d.feeds(), d.dc_output(), d.batteries())),
    )  # fmt: skip
    for start, cls, name, kind, poll in devices:
        server = start(model, name, username=USER, password=PASSWORD)
        try:
            expanded = measure(cls, server.host, server.port, name, kind, poll, args.polls)
            plain = measure(cls, server.host, server.port, name, kind, poll, args.polls, expand=False)
        finally:
            server.stop()
        for label, (gets, median) in (("$expand", expanded), ("one GET per member (before)", plain)):
            print(f"{name:7s} {label:28s} {gets:3d} GETs per poll, median {median * 1e3:6.1f} ms (loopback)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
