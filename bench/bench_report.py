"""Benchmark: render the acceptance report of a 1-hour soak with 3,000 telemetry channels at 1 Hz.

10.8 M samples is what a full rack sampled for an hour looks like; the report must render it in
<= 3 s and stay <= 10 MB (channel statistics come from the segments' columns, figures decode
only the channels they plot). The store is built once under /tmp and reused across invocations
(its samples streamed in as a sampler does, ``store.sample_stream``: a minute or so); pass
``--rebuild`` to start again. Also printed: the store's size, and the peak RSS of the render
(of this process: build the store in an earlier invocation for a clean figure). Not a test.

    .venv/bin/python bench/bench_report.py [--db /tmp/rackval-bench-report.sqlite] [--rebuild]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rackval.harness.measure import Limit, Measurement
from rackval.harness.report.html import render_report
from rackval.harness.store import ActionRecord, DeviceRecord, RunInfo, open_store

RUN_ID = "bench-soak-1h-3000ch"
DURATION_S = 3600
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DEFAULT_DB = Path(tempfile.gettempdir()) / "rackval-bench-report.sqlite"
HOT_CHANNEL = "node-003.gpu2.temp"  # spikes past its limit between t=2000 s and t=2100 s


def channel_plan() -> list[tuple[str, str, str, float, float, float]]:
    """(channel, device, unit, base, amplitude, noise) for 3,000 channels: 90 GPU nodes x 30 and
    4 PDUs x 75, the mix of units a real rack soak records."""
    plan: list[tuple[str, str, str, float, float, float]] = []
    for n in range(90):
        dev = f"node-{n:03d}"
        for g in range(8):
            plan.append((f"{dev}.gpu{g}.temp", dev, "degC", 62.0 + (n % 7), 8.0, 0.6))
            plan.append((f"{dev}.gpu{g}.power", dev, "W", 900.0, 180.0, 15.0))
        for f in range(4):
            plan.append((f"{dev}.fan{f}.speed", dev, "rpm", 9000.0, 1500.0, 60.0))
        for p in range(2):
            plan.append((f"{dev}.psu{p}.power", dev, "W", 5200.0, 700.0, 40.0))
        plan.append((f"{dev}.inlet.temp", dev, "degC", 27.0, 1.5, 0.2))
        plan.append((f"{dev}.outlet.temp", dev, "degC", 48.0, 5.0, 0.5))
        for c in range(2):
            plan.append((f"{dev}.cpu{c}.temp", dev, "degC", 55.0, 6.0, 0.8))
        for rail in ("12v", "5v", "3v3", "vcore"):
            nominal = {"12v": 12.0, "5v": 5.0, "3v3": 3.3, "vcore": 0.9}[rail]
            plan.append((f"{dev}.{rail}.voltage", dev, "V", nominal, nominal * 0.005, nominal * 0.002))
    for p in "abcd":
        dev = f"pdu-{p}"
        for o in range(1, 49):
            plan.append((f"{dev}.outlet{o}.power", dev, "W", 1100.0, 250.0, 12.0))
        for o in range(1, 25):
            plan.append((f"{dev}.outlet{o}.current", dev, "A", 9.5, 2.0, 0.1))
        for ph in range(1, 4):
            plan.append((f"{dev}.phase{ph}.voltage", dev, "V", 230.0, 2.0, 0.4))
    assert len(plan) == 3000
    return plan


def build_store(path: Path) -> None:
    """Write the run: metadata, devices, firmware, tests with measurements, actions, then the
    10.8 M samples tick by tick through a sample stream (as a sampler writes them)."""
    plan = channel_plan()
    store = open_store(path)
    try:
        store.start_run(
            RunInfo(
                run_id=RUN_ID, started_at=T0, rack_name="bench-rack", rack_serial="SN-BENCH", design_revision="rev-B",
                spec_name="soak", spec_version="1.0", station="bench", operator="bench", git_sha="0" * 40,
                rack_file="racks/bench.yaml", spec_file="specs/soak.yaml", simulated=True,
            )
        )  # fmt: skip
        devices = sorted({d for _, d, *_ in plan})
        for dev in devices:
            kind = "node" if dev.startswith("node") else "pdu"
            store.record_device(RUN_ID, DeviceRecord(dev, kind, kind, f"10.0.0.{len(dev)}", "Acme", "X1", dev, "1.0"))
            store.record_firmware(RUN_ID, dev, "BMC" if kind == "node" else "rpdu", "1.0", recorded_at=T0)
        tid = store.start_test(RUN_ID, "test_plans/test_soak.py::test_thermal_soak", T0 + 1)
        limit = Limit(high=85.0, unit="degC", requirement="THERM-1")
        for n in range(10):
            channel = f"node-{n:03d}.gpu2.temp"
            for minute in range(60):
                value = 92.0 if channel == HOT_CHANNEL and minute == 34 else 70.0 + (minute % 5)
                m = Measurement.judged("gpu_temp", value, "degC", limit, device=f"node-{n:03d}", channel=channel,
                                       clock_s=float(minute * 60))  # fmt: skip
                store.record_measurement(RUN_ID, tid, Measurement(**{**m.__dict__, "recorded_at": T0 + minute * 60}))
        store.finish_test(tid, "failed", float(DURATION_S), f"AssertionError: gpu_temp on {HOT_CHANNEL} above limit")
        act = store.record_action(RUN_ID, ActionRecord("node-003", "set fan override 100%", "release fan override",
                                                       performed_at=T0 + 5, test_id=tid))  # fmt: skip
        store.record_undo(act, "done", at=T0 + DURATION_S)
        store.finish_run(RUN_ID, "failed", T0 + DURATION_S + 2)
    finally:
        store.close()

    base = np.array([p[3] for p in plan])
    amp = np.array([p[4] for p in plan])
    noise = np.array([p[5] for p in plan])
    phase = np.linspace(0.0, 2 * math.pi, len(plan), endpoint=False)
    hot = [c for c, *_ in plan].index(HOT_CHANNEL)
    rng = np.random.default_rng(7)
    store = open_store(path)
    try:
        stream = store.sample_stream(RUN_ID, [(c, d, u) for c, d, u, *_ in plan])
        started = time.perf_counter()
        for t in range(DURATION_S):
            values = base + amp * np.sin(2 * math.pi * t / 1800.0 + phase) + noise * rng.standard_normal(len(plan))
            if 2000 <= t < 2100:
                values[hot] = 92.0 + 0.5 * math.sin(t)
            stream.append(float(t), np.round(values, 2))  # the resolution devices report
            if t % 60 == 59:
                print(f"\r  samples: {t + 1:>4} s of {DURATION_S} written ({time.perf_counter() - started:.0f} s)",
                      end="", file=sys.stderr, flush=True)  # fmt: skip
        stream.close()
        print(file=sys.stderr)
    finally:
        store.close()


def store_is_complete(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (n,) = db.execute(
                "SELECT SUM(n_samples) FROM sample_segments g JOIN sample_series s ON s.series_id = g.series_id"
                " WHERE run_id = ?",
                (RUN_ID,),
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return n == DURATION_S * 3000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"SQLite store to build or reuse ({DEFAULT_DB})")
    parser.add_argument("--rebuild", action="store_true", help="delete and rebuild the store")
    parser.add_argument("--out", type=Path, default=None, help="report directory (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=1, help="render this many times (figures for each)")
    args = parser.parse_args(argv)

    if args.rebuild or not store_is_complete(args.db):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        print(f"building {args.db} (3,000 channels x 3,600 s = 10.8 M samples) ...", file=sys.stderr)
        started = time.perf_counter()
        build_store(args.db)
        print(f"  built in {time.perf_counter() - started:.1f} s, {args.db.stat().st_size / 1e6:.0f} MB",
              file=sys.stderr)  # fmt: skip
    else:
        print(f"reusing {args.db} ({args.db.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    size = args.db.stat().st_size
    print(f"store {size / 1e6:.1f} MB = {size / (DURATION_S * 3000):.2f} bytes per sample (whole file);"
          f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        for i in range(args.repeat):
            store = open_store(args.db)
            try:
                started = time.perf_counter()
                path = render_report(store, RUN_ID, out)
                elapsed = time.perf_counter() - started
            finally:
                store.close()
            size = path.stat().st_size
            verdict = "ok" if elapsed <= 3.0 and size <= 10e6 else "OVER TARGET"
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"render {i + 1}: {elapsed:.2f} s wall, report {size / 1e6:.2f} MB, peak RSS {peak:.0f} MB"
                f" (targets <= 3 s, <= 10 MB: {verdict})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
