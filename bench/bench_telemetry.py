"""Telemetry sampler figures: its own CPU cost at 1 Hz and how fast a virtual soak runs.

    .venv/bin/python bench/bench_telemetry.py [--nodes 32] [--seconds 20] [--soak-s 1800]
                                              [--fake-channels 3000] [--skip-sim] [--kinds pdu,bmc,...]

1. Sampler overhead alone: ``--fake-channels`` channels on in-process fake devices (100 channels
   per device, answers at once) sampled at 1 Hz in real time for ``--seconds``, into a SQLite
   store. Reported: missed ticks, CPU of this process per tick and as % of one core.
   Target: zero missed ticks, <= 25 % of one core.
2. The whole client on the simulated rack (``rackval sim`` in its own process, so its CPU is not
   ours): every channel ``rack_channels`` finds, at 1 Hz real time for ``--seconds``. Reported:
   channels, missed ticks, errors, client CPU (drivers + sampler + store) per tick and as % of
   one core, wall time per tick.
3. A virtual soak of ``--soak-s`` clock seconds at 1 Hz on the same rack: ticks, virtual/wall
   ratio (target >= 30), client CPU per tick.

``--soak-plan``: instead, the channels ``test_plans/test_load_soak.py`` samples (feed analyzers,
BMC power, 3 GPU fields per node from one nvidia-smi per node) under full GPU load, virtual
clock, SQLite store, for ``--ticks`` ticks; ``--parts a,b,g`` limits it to analyzers / BMCs /
GPUs. Reported per tick: wall ms, CPU ms of this process (drivers + sampler + store) and of the
simulator process (from /proc), and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rackval.harness.clock import RealClock, SimulatorClock
from rackval.harness.inventory import load_inventory
from rackval.harness.rack import Rack
from rackval.harness.simproc import SimProcess
from rackval.harness.store import RunInfo, open_store
from rackval.harness.telemetry import KINDS, Channel, Sampler, SamplerStats, print_progress, rack_channels
from rackval.sim.control import ControlClient


def cpu_s() -> float:
    """User + system CPU of this process (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _FakeDriver:
    def __init__(self, name: str, n: int) -> None:
        self.keys = [f"{name}/ch{i:03d}/power_w" for i in range(n)]
        self.k = 0.0

    def read(self) -> dict[str, float]:
        self.k += 1.0
        return {key: self.k + i for i, key in enumerate(self.keys)}


def fake_rack(n_channels: int, per_device: int = 100) -> tuple[Any, list[Channel]]:
    drivers: dict[str, _FakeDriver] = {}
    channels: list[Channel] = []
    for d in range((n_channels + per_device - 1) // per_device):
        name = f"fake{d:02d}"
        n = min(per_device, n_channels - d * per_device)
        drv = drivers[name] = _FakeDriver(name, n)

        def reader(driver: _FakeDriver) -> dict[str, float]:
            return driver.read()

        channels += [Channel(k, name, "W", reader) for k in drv.keys]
    rack = SimpleNamespace(
        driver=drivers.__getitem__,
        inventory=SimpleNamespace(configs={n: SimpleNamespace(timeout_s=5.0) for n in drivers}),
    )
    return rack, channels


def report_realtime(title: str, stats: SamplerStats, cpu: float, n_channels: int, seconds: float) -> None:
    ticks = max(stats.ticks, 1)
    print(f"{title}: {n_channels} channels at 1 Hz for {seconds:.0f} s")
    print(f"  ticks {stats.ticks}, missed {stats.missed_ticks}, errors {stats.errors}, stored {stats.stored} rows")
    print(f"  CPU {cpu / ticks * 1e3:.1f} ms per tick = {cpu / stats.wall_s * 100:.1f} % of one core")


def bench_fake(n_channels: int, seconds: float, workdir: Path) -> None:
    rack, channels = fake_rack(n_channels)
    store = open_store(workdir / "fake.sqlite")
    store.start_run(RunInfo(run_id="fake", started_at=time.time()))
    with Sampler(rack, RealClock(), store, "fake", channels, rate_hz=1.0) as sampler:
        c0 = cpu_s()
        stats = sampler.run(seconds)
        cpu = cpu_s() - c0
    store.close()
    report_realtime("sampler alone (fake devices, SQLite store)", stats, cpu, len(channels), seconds)


def bench_sim(nodes: int, seconds: float, soak_s: float, workdir: Path, kinds: tuple[str, ...] = KINDS) -> None:
    t = time.monotonic()
    sim = SimProcess(workdir / "sim", nodes=nodes)
    print(f"simulated rack, {nodes} nodes, up in {time.monotonic() - t:.1f} s (own process, pid {sim.pid})")
    inv = load_inventory(sim.rack_file)
    rack = Rack(inv)
    assert inv.meta.simulator is not None and inv.simulator_token is not None
    control = ControlClient(inv.meta.simulator.control, inv.simulator_token.reveal())
    store = open_store(workdir / "sim.sqlite")
    try:
        t = time.monotonic()
        channels = rack_channels(rack, kinds)
        took = time.monotonic() - t
        print(f"  {len(channels)} channels from {len(rack.names())} devices, discovered in {took:.1f} s")
        store.start_run(RunInfo(run_id="rt", started_at=time.time()))
        # warm-up tick: connections (SSH handshakes, SNMP engine discovery) are not the steady cost
        Sampler(rack, RealClock(), None, "warm", channels).run(1.0)
        with Sampler(rack, RealClock(), store, "rt", channels, rate_hz=1.0) as sampler:
            c0 = cpu_s()
            stats = sampler.run(seconds)
            cpu = cpu_s() - c0
        report_realtime("whole client (drivers + sampler + store) on the simulated rack", stats, cpu, len(channels),
                        seconds)  # fmt: skip
        if stats.errors:
            print(f"  errors by device: {stats.errors_by_device}")
        if soak_s > 0:
            store.start_run(RunInfo(run_id="soak", started_at=time.time()))
            clock = SimulatorClock(control)
            with Sampler(rack, clock, store, "soak", channels, rate_hz=1.0, progress=print_progress,
                         progress_every_s=10.0) as sampler:  # fmt: skip
                c0, w0, v0 = cpu_s(), time.monotonic(), clock.now()
                stats = sampler.run(soak_s)
                cpu, wall, virt = cpu_s() - c0, time.monotonic() - w0, clock.now() - v0
            print(f"virtual soak: {soak_s:.0f} s at 1 Hz, {len(channels)} channels")
            print(f"  ticks {stats.ticks}, missed {stats.missed_ticks}, errors {stats.errors}, stored {stats.stored}")
            print(f"  {virt:.0f} virtual s in {wall:.1f} wall s: virtual/wall = {virt / wall:.1f}")
            print(f"  {wall / max(stats.ticks, 1) * 1e3:.1f} ms wall and {cpu / max(stats.ticks, 1) * 1e3:.1f} ms"
                  " client CPU per tick")  # fmt: skip
    finally:
        store.close()
        rack.close()
        control.close()
        sim.stop()


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU of another process (the simulator), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_soak_plan(nodes: int, ticks: int, parts: set[str], workdir: Path) -> None:
    """The load-soak plan's sampling, tick by tick on the virtual clock (see the module docstring)."""
    from rackval.harness.telemetry import analyzer_channels, gpu_channels

    soak_gpu_fields = (("temperature_c", "degC"), ("event_reasons", ""), ("power_w", "W"))  # as the plan
    sim = SimProcess(workdir / "sim", nodes=nodes)
    inv = load_inventory(sim.rack_file)
    rack = Rack(inv)
    assert inv.meta.simulator is not None and inv.simulator_token is not None
    control = ControlClient(inv.meta.simulator.control, inv.simulator_token.reveal())
    clock = SimulatorClock(control)
    store = open_store(workdir / "soak.sqlite")
    try:
        hosts = [s.host for s in inv.data.nodes.values() if s.host]
        bmcs = [s.bmc for s in inv.data.nodes.values() if s.bmc]
        rack.fan_out(hosts, lambda d: d.start_load(1.0))
        channels: list[Channel] = []
        if "a" in parts:
            for a in inv.feed_analyzers():
                channels += analyzer_channels(rack, a)
        if "b" in parts:
            channels += [Channel.single(f"{b}/power_w", b, "W", lambda d: d.power_watts()) for b in bmcs]
        if "g" in parts:
            for h in hosts:
                channels += gpu_channels(rack, h, soak_gpu_fields)
        Sampler(rack, clock, None, "warm", channels).run(3)  # connections and sessions are not the steady cost
        store.start_run(RunInfo(run_id="soak-plan", started_at=time.time()))
        with Sampler(rack, clock, store, "soak-plan", channels) as sampler:
            c0, s0, w0, v0 = cpu_s(), _proc_cpu_s(sim.pid), time.monotonic(), clock.now()
            stats = sampler.run(ticks)
            cpu, sim_cpu = cpu_s() - c0, _proc_cpu_s(sim.pid) - s0
            wall, virt = time.monotonic() - w0, clock.now() - v0
        n = max(stats.ticks, 1)
        print(f"soak plan, {nodes} nodes, parts {','.join(sorted(parts))}: {len(channels)} channels,"
              f" {stats.ticks} ticks, {stats.errors} errors, {stats.stored} rows stored")  # fmt: skip
        print(f"  per tick: {wall / n * 1e3:.1f} ms wall, client CPU {cpu / n * 1e3:.1f} ms,"
              f" simulator CPU {sim_cpu / n * 1e3:.1f} ms; virtual/wall {virt / wall:.1f};"
              f" load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    finally:
        store.close()
        rack.close()
        control.close()
        sim.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--soak-s", type=float, default=1800.0)
    ap.add_argument("--fake-channels", type=int, default=3000)
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--kinds", default=",".join(KINDS), help="device kinds to sample on the simulated rack")
    ap.add_argument("--soak-plan", action="store_true", help="only the load-soak plan's channels, virtual clock")
    ap.add_argument("--ticks", type=int, default=300, help="ticks for --soak-plan")
    ap.add_argument("--parts", default="a,b,g", help="--soak-plan: a = analyzers, b = BMC power, g = GPUs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as tmp:
        work = Path(tmp)
        if args.soak_plan:
            bench_soak_plan(args.nodes, args.ticks, set(args.parts.split(",")), work)
            return
        if args.fake_channels:
            bench_fake(args.fake_channels, args.seconds, work)
        if not args.skip_sim:
            bench_sim(args.nodes, args.seconds, args.soak_s, work, tuple(args.kinds.split(",")))


if __name__ == "__main__":
    main()
