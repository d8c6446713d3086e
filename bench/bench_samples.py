"""Benchmark: what telemetry costs in the results store, on disk, in CPU and in memory.

    .venv/bin/python bench/bench_samples.py [--parts bytes,ingest,soak] [--seconds 1800]
                                            [--pg URL | --no-pg] [--soak-hours 24] [--repeats 3]

1. ``bytes``: a reference-like soak (~3,800 channels of the kinds a rack gives, 1 Hz for
   ``--seconds``) streamed into a fresh store through ``store.sample_stream``, as the sampler
   does; reported: bytes of store growth per sample, indexes included (SQLite: the file after a
   WAL checkpoint; PostgreSQL: ``pg_total_relation_size`` of the sample tables), for the whole
   run and for each channel kind streamed alone. Target <= 2 bytes per sample. PostgreSQL is a
   throwaway server (``tests/support/store_pg.py``) unless ``--pg`` names one; ``--no-pg`` skips it.
2. ``ingest``: CPU of this process (all threads: the background fold included) per sample, for
   the same channels over 300 ticks: the rows path the store had before segments (the sampler
   building one tuple per sample, ``executemany`` into the v3 ``samples`` table in 5,000-row
   transactions: what ``record_samples`` did) against the stream (journal append per tick,
   segments encoded and committed per close). Medians of ``--repeats``.
3. ``soak``: a virtual soak of ``--soak-hours`` of a 2-node-like rack (120 channels on in-process
   fake devices, a frozen virtual clock) through the real ``Sampler`` into a SQLite store, with
   an hourly ``summary`` of 20 channels (their whole history: what a plan's highlights ask) unless
   ``--no-summaries``; reported: RSS after the first hour and at the end (target: within +10 %),
   then the soak run's report rendered in a process of its own: its peak RSS (target < 300 MB).
   Run it in a process of its own (``--parts soak``): the other parts raise the baseline.

The 30,000-channel real-time figure is ``bench/bench_telemetry.py --fake-channels 30000
--skip-sim``; the report of 10.8 M samples is ``bench/bench_report.py``. Not a test: it prints.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from rackval.harness.readers import Channel
from rackval.harness.store import RunInfo, open_store
from rackval.harness.store.schema import META_DDL, SQLITE, STEPS
from rackval.harness.telemetry import Sampler

ROOT = Path(__file__).resolve().parent.parent
RUN = "ref"

# (kind, channels, unit, generator(rng, ticks, channels) -> values[ticks, channels]): the mix of a
# reference rack soak, with the resolution each device reports.
Generator = Callable[[np.random.Generator, int, int], np.ndarray]


def _slow(rng: np.random.Generator, ticks: int, n: int, period: float = 1800.0) -> np.ndarray:
    t = np.arange(ticks)[:, None]
    return np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi, n))


def _pdu_power(rng: np.random.Generator, ticks: int, n: int) -> np.ndarray:  # 0.1 W, a few W of noise
    return np.round(rng.uniform(300, 1200, n) + 80 * _slow(rng, ticks, n) + rng.normal(0, 2, (ticks, n)), 1)


def _gpu_power(rng: np.random.Generator, ticks: int, n: int) -> np.ndarray:  # nvidia-smi: 0.01 W
    return np.round(650 + 40 * _slow(rng, ticks, n, 600) + rng.normal(0, 6, (ticks, n)), 2)


def _temperature(rng: np.random.Generator, ticks: int, n: int) -> np.ndarray:  # 0.1 degC, slow
    return np.round(rng.uniform(25, 70, n) + 5 * _slow(rng, ticks, n) + rng.normal(0, 0.15, (ticks, n)), 1)


def _fan(rng: np.random.Generator, ticks: int, n: int) -> np.ndarray:  # rpm, integer
    return np.round(rng.uniform(6000, 12000, n) + 400 * _slow(rng, ticks, n) + rng.normal(0, 25, (ticks, n)))


def _octets(rng: np.random.Generator, ticks: int, n: int) -> np.ndarray:  # a busy port's byte counter
    rate = rng.uniform(1e8, 5e9, n) * (1 + 0.05 * rng.standard_normal((ticks, n)))
    return np.cumsum(np.round(rate), axis=0) + rng.integers(0, 2**40, n)


def _errors(rng: np.random.Generator, ticks: int, n: int) -> np.ndarray:  # an error counter: rare steps
    return np.cumsum(rng.random((ticks, n)) < 0.002, axis=0).astype(float)


def _bitmask(rng: np.random.Generator, ticks: int, n: int) -> np.ndarray:  # status flags, rarely changing
    return np.cumsum(rng.random((ticks, n)) < 0.001, axis=0).astype(float) % 4 * 2 + 1


KINDS: list[tuple[str, int, str, Generator]] = [
    ("pdu power (0.1 W)", 600, "W", _pdu_power),
    ("gpu power (0.01 W)", 400, "W", _gpu_power),
    ("temperature (0.1 degC)", 1400, "degC", _temperature),
    ("fan (rpm)", 600, "rpm", _fan),
    ("octet counter", 200, "B", _octets),
    ("error counter", 400, "count", _errors),
    ("status bitmask", 200, "", _bitmask),
]


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def keys_of(kinds: list[tuple[str, int, str, Generator]]) -> list[tuple[str, str, str]]:
    return [(f"dev{i % 40:02d}/{name.split()[0]}{i}", f"dev{i % 40:02d}", unit)
            for name, n, unit, _ in kinds for i in range(n)]  # fmt: skip


def ticks_of(kinds: list[tuple[str, int, str, Generator]], ticks: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.hstack([gen(rng, ticks, n) for _, n, _, gen in kinds])


# ---- 1. bytes per sample ---------------------------------------------------------------------------


def _sample_bytes(store: Any) -> int:
    """What the sample tables take: the SQLite file (after a checkpoint) or the PostgreSQL tables
    with their indexes and TOAST."""
    if store.dialect.name == "sqlite":
        store._query("PRAGMA wal_checkpoint(TRUNCATE)", (), "checkpoint")
        return store.path.stat().st_size
    rows = store._query(
        "SELECT pg_total_relation_size('sample_segments') + pg_total_relation_size('sample_series') AS n", (),
        "size the sample tables",
    )  # fmt: skip
    return int(rows[0]["n"])


def stream_run(store: Any, run_id: str, kinds: list[tuple[str, int, str, Generator]], seconds: int) -> int:
    """Stream ``seconds`` ticks of ``kinds`` into ``store`` as a sampler does; returns samples."""
    store.start_run(RunInfo(run_id, time.time()))
    values = ticks_of(kinds, seconds)
    stream = store.sample_stream(run_id, keys_of(kinds))
    t0 = 1_767_225_600.0
    for k in range(seconds):
        stream.append(t0 + k, values[k])
    stream.close()
    return values.size


def bench_bytes(url: str, label: str, seconds: int) -> None:
    print(f"{label}: store growth per sample, {seconds} ticks at 1 Hz")
    store = open_store(url)
    try:
        for kind in KINDS:
            before = _sample_bytes(store)
            n = stream_run(store, f"kind-{kind[0].split()[0]}-{kind[1]}", [kind], seconds)
            grown = _sample_bytes(store) - before
            print(f"  {kind[0]:<24} {kind[1]:>5} channels: {grown / n:5.2f} bytes/sample")
        before = _sample_bytes(store)
        started = time.perf_counter()
        n = stream_run(store, RUN, KINDS, seconds)
        took = time.perf_counter() - started
        grown = _sample_bytes(store) - before
        total = sum(k[1] for k in KINDS)
        verdict = "ok" if grown / n <= 2.0 else "OVER TARGET"
        print(f"  reference mix            {total:>5} channels: {grown / n:5.2f} bytes/sample ({n / 1e6:.2f} M samples,"
              f" {grown / 1e6:.1f} MB, ingest {took:.1f} s wall; target <= 2: {verdict})")  # fmt: skip
    finally:
        store.close()


def postgres_url(given: str | None) -> tuple[str, Callable[[], None]]:
    if given:
        return given, lambda: None
    sys.path.insert(0, str(ROOT))  # tests.support.store_pg: the project's throwaway PostgreSQL
    from tests.support.store_pg import PostgresServer

    server = PostgresServer.start()
    return server.create_database(), server.stop


# ---- 2. ingest CPU per sample ---------------------------------------------------------------------


def ingest_rows(workdir: Path, values: np.ndarray, keys: list[tuple[str, str, str]], index: int) -> float:
    """The pre-segment path: a tuple per sample, executemany into the v3 samples table."""
    db = sqlite3.connect(str(workdir / f"rows-{index}.sqlite"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    for statement in [META_DDL] + [s for step in STEPS[:3] for s in SQLITE.ddl(step)]:  # type: ignore[arg-type]
        db.execute(statement)
    db.execute("INSERT INTO runs(run_id, started_at) VALUES (?, ?)", (RUN, time.time()))
    names, devices, units = zip(*keys, strict=True)
    sql = "INSERT INTO samples(run_id, channel, device, t, value, unit) VALUES (?,?,?,?,?,?)"
    c0 = cpu_s()
    buffer: list[tuple[Any, ...]] = []
    for k in range(values.shape[0]):
        row = [None if math.isnan(v) else v for v in values[k].tolist()]
        buffer.extend(zip(names, devices, [float(k)] * len(row), row, units, strict=True))
        if len(buffer) >= 20_000 or k == values.shape[0] - 1:  # the sampler's flush_rows, then 5,000-row batches
            for i in range(0, len(buffer), 5000):
                db.execute("BEGIN IMMEDIATE")
                db.executemany(sql, [(RUN, *r) for r in buffer[i : i + 5000]])
                db.execute("COMMIT")
            buffer = []
    cpu = cpu_s() - c0
    db.close()
    return cpu


def ingest_segments(workdir: Path, values: np.ndarray, keys: list[tuple[str, str, str]], index: int) -> float:
    store = open_store(workdir / f"segments-{index}.sqlite")
    store.start_run(RunInfo(RUN, time.time()))
    c0 = cpu_s()
    stream = store.sample_stream(RUN, keys)
    for k in range(values.shape[0]):
        stream.append(float(k), values[k])
    stream.close()
    cpu = cpu_s() - c0
    store.close()
    return cpu


def bench_ingest(workdir: Path, repeats: int, ticks: int = 300) -> None:
    keys = keys_of(KINDS)
    values = ticks_of(KINDS, ticks)
    rows, segs = [], []
    for i in range(repeats):  # alternating, so a load change hits both alike
        rows.append(ingest_rows(workdir, values, keys, i))
        segs.append(ingest_segments(workdir, values, keys, i))
    n = values.size
    r, s = statistics.median(rows) / n * 1e6, statistics.median(segs) / n * 1e6
    print(f"ingest CPU per sample ({len(keys)} channels x {ticks} ticks, median of {repeats}, all threads):")
    print(f"  rows (before):      {r:.2f} us/sample")
    print(f"  segments (after):   {s:.2f} us/sample  = {s / r:.2f}x the rows path (target <= 1)")


# ---- 3. a long virtual soak's RSS -------------------------------------------------------------------


class _VirtualClock:
    """Virtual seconds that move only when slept (a frozen simulator clock)."""

    def __init__(self) -> None:
        self.t = 1_767_225_600.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


def _soak_rack(n_devices: int = 6, per_device: int = 20) -> tuple[Any, list[Channel]]:
    rng = np.random.default_rng(3)
    drivers = {f"node{d}": SimpleNamespace(base=rng.uniform(20, 900, per_device), k=0) for d in range(n_devices)}

    def reader(driver: Any) -> dict[str, float]:
        driver.k += 1
        noisy = np.round(driver.base + rng.normal(0, 1.5, driver.base.size), 1).tolist()
        return {name: noisy[i] for i, name in enumerate(driver.names)}

    channels = []
    for name, drv in drivers.items():
        drv.names = [f"{name}/sensor{i:02d}" for i in range(per_device)]
        channels += [Channel(n, name, "W", reader) for n in drv.names]
    rack = SimpleNamespace(
        driver=drivers.__getitem__,
        inventory=SimpleNamespace(configs={n: SimpleNamespace(timeout_s=5.0) for n in drivers}),
    )
    return rack, channels


def bench_soak(workdir: Path, hours: float, summaries: bool) -> None:
    rack, channels = _soak_rack()
    store = open_store(workdir / "soak.sqlite")
    store.start_run(RunInfo("soak", time.time()))
    seen: dict[str, float] = {}

    def watch(k: int, t: float) -> None:
        if k == 3600:
            seen["1h"] = rss_mb()
        if k % 3600 == 0 and k and summaries:
            sampler.summary("node0/*")  # a plan's highlights, pooling 20 channels' whole history

    started = time.perf_counter()
    with Sampler(rack, _VirtualClock(), store, "soak", channels, virtual=True) as sampler:
        stats = sampler.run(hours * 3600, on_tick=watch)
    took = time.perf_counter() - started
    end = rss_mb()
    store.close()
    first = seen.get("1h", math.nan)
    growth = (end / first - 1) * 100
    verdict = "ok" if growth <= 10 else "OVER TARGET"
    asked = "an hourly summary of 20 channels' whole history" if summaries else "no summary asked"
    print(f"virtual soak: {hours:g} h of {len(channels)} channels at 1 Hz, {asked}: {stats.ticks} ticks in"
          f" {took:.0f} s wall")  # fmt: skip
    print(f"  RSS after 1 h {first:.1f} MB, at the end {end:.1f} MB: {growth:+.1f} % (target <= +10 %: {verdict})")


_RENDER = """
import resource, sys, time
from pathlib import Path
from rackval.harness.report.html import render_report
from rackval.harness.store import open_store
store = open_store(Path(sys.argv[1]))
started = time.perf_counter()
out = render_report(store, "soak", Path(sys.argv[2]))
took = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"  its report: {took:.2f} s render, {out.stat().st_size / 1e6:.2f} MB, process peak RSS {peak:.0f} MB"
      f" (target < 300 MB: {'ok' if peak < 300 else 'OVER TARGET'})")
"""


def bench_soak_report(workdir: Path) -> None:
    """The soak's report, rendered in a process of its own so its peak RSS is the render's."""
    done = subprocess.run([sys.executable, "-c", _RENDER, str(workdir / "soak.sqlite"), str(workdir / "report")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)  # fmt: skip
    print(done.stdout.rstrip() or f"  its report: failed: {done.stderr.strip().splitlines()[-1:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="bytes,ingest,soak")
    parser.add_argument("--seconds", type=int, default=1800, help="ticks of the reference soak (bytes)")
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL (default: a throwaway server)")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--soak-hours", type=float, default=24.0)
    parser.add_argument("--no-summaries", action="store_true", help="soak: no summaries asked mid-soak")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-samples-") as tmp:
        workdir = Path(tmp)
        if "bytes" in parts:
            bench_bytes(str(workdir / "bytes.sqlite"), "SQLite", args.seconds)
            if not args.no_pg:
                url, stop = postgres_url(args.pg)
                try:
                    bench_bytes(url, "PostgreSQL", args.seconds)
                finally:
                    stop()
        if "ingest" in parts:
            bench_ingest(workdir, args.repeats)
        if "soak" in parts:
            bench_soak(workdir, args.soak_hours, not args.no_summaries)
            bench_soak_report(workdir)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
