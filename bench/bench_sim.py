"""Simulator figures: how fast the reference rack comes up, and what serving its telemetry costs.

    .venv/bin/python bench/bench_sim.py [--nodes 32] [--seconds 20] [--repeats 3]

1. Start-up: ``SimulatedRack.start`` of the reference rack in-process (model + every protocol
   server + rack file), and ``rackval sim`` as a process until its rack file exists.
2. Telemetry at 1 Hz: a client polls every channel the drivers expose (PDU outlets and totals,
   BMC power and temperatures, analyzer readings, switch port counters, GPU telemetry) once per
   second for ``--seconds``, concurrently across devices, while the simulator's process CPU time
   is read from /proc; ``--by-kind`` repeats the measurement polling one device kind at a time.
   Reported: simulator CPU as % of one core, ticks completed on time, channels per tick.
   Target: <= 25 % of one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rackval.drivers import capabilities
from rackval.harness.inventory import load_inventory
from rackval.harness.rack import Rack
from rackval.harness.simproc import SimProcess
from rackval.sim.rack import SimulatedRack
from rackval.sim.reference import REFERENCE_PARAMS, REFERENCE_SIZE


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (clock ticks -> seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def poll_once(driver: object) -> int:
    """Read every channel this driver offers; returns how many values came back."""
    n = 0
    if isinstance(driver, capabilities.OutletSwitch):
        n += 3 * len(driver.outlets())  # state, power, current per outlet
    if isinstance(driver, capabilities.PowerAnalyzer):
        driver.read()
        n += 4
    elif isinstance(driver, capabilities.PowerMeter):
        driver.power_watts()
        n += 1
    if isinstance(driver, capabilities.Bmc):
        n += len(driver.temperatures()) + 1
    if isinstance(driver, capabilities.NetSwitch):
        # Telemetry is the port counters (octets, errors, discards); status and LLDP are checks.
        counters = getattr(driver, "counters", None)
        n += 6 * len(counters()) if counters else 4 * len(driver.ports())
    if isinstance(driver, capabilities.GpuNode):
        n += 8 * len(driver.gpus())
    return n


def bench_startup(nodes: int, repeats: int) -> None:
    size = (
        REFERENCE_SIZE
        if nodes == REFERENCE_SIZE.nodes
        else REFERENCE_SIZE.__class__(**{**REFERENCE_SIZE.__dict__, "nodes": nodes})
    )
    in_process, as_process = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rack = SimulatedRack.start(size, Path(tmp), params=REFERENCE_PARAMS)
            in_process.append(time.perf_counter() - t0)
            servers = len(rack.servers)
            rack.stop()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            sim = SimProcess(Path(tmp) / "sim", nodes=nodes)
            as_process.append(time.perf_counter() - t0)
            sim.stop()
    print(f"start-up, {nodes} nodes, {servers} device servers (median of {repeats}):")
    print(f"  in-process SimulatedRack.start : {statistics.median(in_process):6.2f} s")
    print(f"  `rackval sim` process to rack file: {statistics.median(as_process):6.2f} s   (target <= 3 s)")


def bench_telemetry(nodes: int, seconds: int, kind: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimProcess(Path(tmp) / "sim", nodes=nodes)
        try:
            rack = Rack(load_inventory(sim.rack_file))
            names = rack.names(kind)
            rack.fan_out(names, poll_once)  # connect and log in everywhere first
            cpu0, wall0 = cpu_seconds(sim.pid), time.monotonic()
            on_time, channels, late = 0, 0, 0
            for tick in range(seconds):
                deadline = wall0 + tick + 1
                results = rack.fan_out(names, poll_once, max_workers=48)
                errors = [str(r.error) for r in results.values() if not r.ok]
                if errors:
                    raise SystemExit("poll failed: " + "; ".join(errors[:3]))
                channels = sum(r.value or 0 for r in results.values())
                if time.monotonic() <= deadline:
                    on_time += 1
                    time.sleep(max(deadline - time.monotonic(), 0))
                else:
                    late += 1
            wall = time.monotonic() - wall0
            cpu = cpu_seconds(sim.pid) - cpu0
            rack.close()
        finally:
            sim.stop()
    what = f"{kind} devices only" if kind else "every device"
    print(f"telemetry at 1 Hz, {nodes} nodes, {what}: {len(names)} devices, {channels} channels/tick, {seconds} ticks:")
    print(f"  simulator CPU: {100 * cpu / wall:5.1f} % of one core   (target <= 25 %)")
    print(f"  ticks on time: {on_time}/{seconds} (late: {late})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=REFERENCE_SIZE.nodes)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--by-kind", action="store_true", help="also measure each device kind alone")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    bench_startup(args.nodes, args.repeats)
    bench_telemetry(args.nodes, args.seconds)
    if args.by_kind:
        for kind in ("pdu", "bmc", "node", "switch", "analyzer"):
            bench_telemetry(args.nodes, args.seconds, kind)


if __name__ == "__main__":
    main()
