"""Benchmark: the cost of recording one judged measurement, rackval's store vs OpenHTF.

Same work on both sides: a test step records N measurements, each validated against a range
(0 .. 100 V), and the result ends up persisted.

* rackval: ``Measurement.judged`` (limit check, margin, outcome) + ``SqliteStore.record_measurement``,
  which appends the measurement to the store's journal file (a copy into the file's page-cache
  pages, mapped shared: a SIGKILLed run keeps every value, as with a WAL commit at
  synchronous=NORMAL) and batches it into SQLite (multi-row INSERTs, one commit per batch). The
  timing runs from ``start_run`` to ``finish_run``, by which point every measurement is committed
  to the database: the batch insert is counted. ``open_store`` is not timed (schema check,
  creating the journal file, compiling the batch INSERTs), as OpenHTF's declarations are not.
* OpenHTF: a phase declaring N measurements with ``in_range`` validators that sets each one, run by
  ``Test.execute`` with the ``OutputToJSON`` callback. Its whole cost counts: phase execution,
  validation, building the test record and writing the JSON file (which it does once at the end).

Two figures per side, medians over repeats: *total / N* (everything from start of run to the
data in the database / the file on disk, divided by N) and *marginal* ((T(N_big) - T(N_small))
/ (N_big - N_small)), which removes fixed start-up costs from both. The four series (two sides,
two N) run in rotation, repeat by repeat, so a load change on a shared machine hits all of them
alike. Target: ours <= 1/10 of OpenHTF's. Not a test: it prints.

    .venv/bin/pip install openhtf     # bench-only dependency, not in pyproject
    .venv/bin/python bench/bench_store.py [--n 200] [--small 20] [--repeats 15]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rackval.harness.measure import Limit, Measurement
from rackval.harness.store import RunInfo, open_store

LIMIT = Limit(low=0.0, high=100.0, unit="V", requirement="V-1")


def ours(n: int, workdir: Path, index: int) -> float:
    """Seconds for a run with one test recording ``n`` judged measurements, all in the database
    at the end (journal written per measurement, batch committed by ``finish_test``)."""
    path = workdir / f"ours-{n}-{index}.sqlite"
    store = open_store(path)  # schema creation is not part of recording: outside the timing
    names = [(f"m{i}", str(i)) for i in range(n)]  # as OpenHTF's names are made outside its timing
    try:
        started = time.perf_counter()
        run_id = f"bench-{index}"
        store.start_run(RunInfo(run_id=run_id, started_at=time.time()))
        tid = store.start_test(run_id, "bench.py::test_phase")
        for i, (name, channel) in enumerate(names):
            m = Measurement.judged(name, 50.0 + i * 0.001, "V", LIMIT, device="dut", channel=channel)
            store.record_measurement(run_id, tid, m)
        store.finish_test(tid, "passed", 0.0)
        store.finish_run(run_id, "passed")
        return time.perf_counter() - started
    finally:
        store.close()


def openhtf_runner(n: int, workdir: Path) -> Callable[[int], float]:
    """A function running OpenHTF's test of ``n`` measurements once (a fresh Test each time)."""
    import openhtf as htf
    from openhtf.output.callbacks import json_factory
    from openhtf.util import console_output

    console_output.CLI_QUIET = True  # its console banner (bound to the real stdout) is not the work

    names = [f"m{i}" for i in range(n)]

    def run(index: int) -> float:
        # Declaring the measurements is OpenHTF's equivalent of building our Limit objects once:
        # it is outside the timing, as the Limit above is.
        @htf.measures(*[htf.Measurement(name).in_range(0.0, 100.0).with_units("V") for name in names])
        def phase(test: htf.TestApi) -> None:
            for i, name in enumerate(names):
                test.measurements[name] = 50.0 + i * 0.001

        test = htf.Test(phase)
        test.add_output_callbacks(json_factory.OutputToJSON(str(workdir / f"openhtf-{n}-{index}.json")))
        sink = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(sink):
            test.execute(test_start=lambda: "DUT-1")
        return time.perf_counter() - started

    return run


def breakdown(workdir: Path, index: int, n: int = 1000) -> tuple[float, float, float, float]:
    """Where our time goes, per measurement: judging alone, ``record_measurement`` alone
    (journal write), the batch insert into SQLite (its share per row), and the floor of any
    commit-per-record design (a bare INSERT + COMMIT on an unindexed WAL table)."""
    import sqlite3

    started = time.perf_counter()
    judged = [Measurement.judged(f"m{i}", 50.0, "V", LIMIT, device="dut", channel=str(i)) for i in range(n)]
    t_judge = (time.perf_counter() - started) / n
    store = open_store(workdir / f"breakdown-{index}.sqlite")
    try:
        store.start_run(RunInfo(run_id="b", started_at=time.time()))
        tid = store.start_test("b", "t")
        store.record_measurement("b", tid, judged[0])  # the journal file is created here
        store.run_status("b")  # ... and this read commits it (and prepares the INSERTs)
        started = time.perf_counter()
        for m in judged:
            store.record_measurement("b", tid, m)
        t_record = (time.perf_counter() - started) / n
        started = time.perf_counter()
        store.run_status("b")  # a read commits the batch first
        t_batch = (time.perf_counter() - started) / n
    finally:
        store.close()
    db = sqlite3.connect(workdir / f"floor-{index}.sqlite", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE m(a, b, c, d, e, f, g, h, i, j, k, l, n, o)")
        started = time.perf_counter()
        for _ in range(n):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO m VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (1.0,) * 14)
            db.execute("COMMIT")
        t_floor = (time.perf_counter() - started) / n
    finally:
        db.close()
    return t_judge, t_record, t_batch, t_floor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="measurements per test step (default 200)")
    parser.add_argument("--small", type=int, default=20, help="the smaller N for the marginal cost (default 20)")
    parser.add_argument("--repeats", type=int, default=15, help="repeats per figure; medians are quoted")
    args = parser.parse_args(argv)
    try:
        import openhtf  # noqa: F401
    except ImportError:
        print("bench_store: OpenHTF is not installed: .venv/bin/pip install openhtf", file=sys.stderr)
        return 2
    logging.getLogger("openhtf").setLevel(logging.ERROR)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sizes = (args.small, args.n)
        runners: dict[tuple[str, int], Callable[[int], float]] = {}
        for n in sizes:
            runners["rackval", n] = lambda i, n=n: ours(n, work, i)
            runners["openhtf", n] = openhtf_runner(n, work)
        for run in runners.values():
            run(-1)  # warm-up (imports, first-use caches) on both sides
        times: dict[tuple[str, int], list[float]] = {key: [] for key in runners}
        for i in range(args.repeats):  # in rotation: load drift hits every series alike
            for key, run in runners.items():
                times[key].append(run(i))
        results = {side: {n: statistics.median(times[side, n]) for n in sizes} for side in ("rackval", "openhtf")}
        parts = [statistics.median(x) for x in zip(*(breakdown(work, i) for i in range(5)), strict=True)]
    load_after = os.getloadavg()

    big, small = args.n, args.small
    print(f"recording one judged measurement, medians of {args.repeats} repeats (N = {small} and {big}):")
    per: dict[str, tuple[float, float]] = {}
    for side, label in (("rackval", "rackval SQLite store, journal + batch commit"),
                        ("openhtf", "OpenHTF phase + validators + JSON output")):  # fmt: skip
        total = results[side][big] / big
        marginal = (results[side][big] - results[side][small]) / (big - small)
        per[side] = (total, marginal)
        print(f"  {label:<46} total/N {total * 1e6:8.1f} us   marginal {marginal * 1e6:8.1f} us")
    ratio_total = per["rackval"][0] / per["openhtf"][0]
    ratio_marginal = per["rackval"][1] / per["openhtf"][1]
    verdict = "ok" if max(ratio_total, ratio_marginal) <= 0.1 else "OVER TARGET"
    print(
        f"  ratio rackval/OpenHTF: total/N {ratio_total:.3f} (1/{1 / ratio_total:.1f}),"
        f" marginal {ratio_marginal:.3f} (1/{1 / ratio_marginal:.1f})  target <= 0.1: {verdict}"
    )
    t_judge, t_record, t_batch, t_floor = parts
    print(
        f"  rackval breakdown: judge {t_judge * 1e6:.1f} us + record_measurement (journal write)"
        f" {t_record * 1e6:.1f} us + batch insert {t_batch * 1e6:.1f} us per row;"
        f" floor of any commit-per-record SQLite design (bare INSERT+COMMIT) {t_floor * 1e6:.1f} us"
    )
    print(f"  load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after, on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
