"""The results store behaves the same on SQLite and on a real PostgreSQL server.

Every test that takes ``store_url`` runs twice: against a SQLite file and against a database on
a PostgreSQL server that this module starts itself (Debian's ``postgresql`` package) on
127.0.0.1 and stops when the module is done.
"""

from __future__ import annotations

import math
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rackval.core.errors import ConfigError
from rackval.harness.measure import Limit, Measurement, Outcome
from rackval.harness.store import (
    SCHEMA_VERSION,
    ActionRecord,
    CauseRecord,
    DeviceRecord,
    RunInfo,
    Sample,
    SqliteStore,
    SqlStore,
    StoreError,
    open_store,
)
from rackval.harness.store.postgres import PostgresStore
from rackval.harness.store.schema import META_DDL, POSTGRESQL, SQLITE, STEPS
from tests.support.store_pg import PASSWORD, PostgresServer
from tests.support.store_v1 import write_v1_store

pytestmark = pytest.mark.usefixtures("journal_dir")  # tests/conftest.py: journals under tmp_path


def _set_schema_version(url: str, version: int) -> None:
    """Tamper with the store behind its back, as a newer rackval would have left it."""
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        db.close()
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(version),))


def test_round_trip_of_every_record_type(store_url: str) -> None:
    store = open_store(store_url)
    assert store.schema_version() == SCHEMA_VERSION
    if store_url.startswith("sqlite"):
        assert isinstance(store, SqliteStore) and isinstance(store.path, Path)
    else:
        assert isinstance(store, PostgresStore)
        assert PASSWORD not in str(store.path) and ":***@127.0.0.1:" in str(store.path)

    first = RunInfo(
        "run-1", 1000.25, rack_name="rack-a", rack_serial="S-1", design_revision="rev-B", spec_name="accept",
        spec_version="2", station="bench-3", operator="kim", git_sha="abc", rack_file="racks/a.yaml",
        spec_file="specs/a.yaml", simulated=True, metadata={"ambient_c": 24.5, "tags": ["soak"]},
    )  # fmt: skip
    second = RunInfo("run-2", 2000.0)
    store.start_run(second)
    store.start_run(first)
    assert store.runs() == [first, second]  # ordered by start time, every field as given
    assert store.run("run-1") == first
    assert store.run_status("run-1") == ("running", None)
    with pytest.raises(KeyError, match="no-such-run"):
        store.run("no-such-run")
    with pytest.raises(StoreError, match="start run 'run-1'"):
        store.start_run(first)  # a run id is unique: the second start is refused, not merged

    t1 = store.start_test("run-1", "test_plans/test_p.py::test_ok", started_at=1001.0)
    t2 = store.start_test("run-1", "test_plans/test_p.py::test_bad", started_at=1002.0)
    assert t1 != t2
    ok = Measurement.judged("voltage", 230.0, "V", Limit(low=220, high=240, unit="V"), device="an1", clock_s=3.5)
    bad = Measurement.judged("power", 7.0, "kW", Limit(high=6, unit="kW"), device="pdu-a", channel="outlet 3")
    info = Measurement.judged("fan", 5200, "rpm", device="node-1", channel="fan 2")
    lost = Measurement("temp", math.nan, "degC", Outcome.FAIL, high=80.0, device="node-2")
    for test_id, m in ((t1, ok), (t2, bad), (None, info), (t2, lost)):
        store.record_measurement("run-1", test_id, m)
    store.finish_test(t1, "passed", 0.5)
    store.finish_test(t2, "failed", 0.25, bad.describe())

    store.record_device("run-1", DeviceRecord("pdu-a", "pdu", "apc", "10.0.0.5"))
    store.record_device("run-1", DeviceRecord("pdu-a", "pdu", "apc", "10.0.0.5", "APC", "AP8941", "X1", "6.9"))
    store.record_device("run-1", DeviceRecord("bmc-1", "bmc", "redfish", "10.0.0.9", firmware="1.2"))

    store.record_firmware("run-1", "bmc-1", "BMC", "1.0", recorded_at=1003.0)
    store.record_firmware("run-1", "bmc-1", "BMC", "1.2", recorded_at=1004.0)  # re-read: replaces
    store.record_firmware("run-1", "bmc-1", "BIOS", "2.7.1", recorded_at=1003.0)
    store.record_firmware("run-1", "pdu-a", "rpdu2", "6.9", recorded_at=1003.0)

    written = store.record_samples(
        "run-1",
        [
            Sample("pdu-a.outlet3.power", "pdu-a", 1.0, 410.5, "W"),
            ("pdu-a.outlet3.power", "pdu-a", 0.5, 400.0, "W"),
            ("node-1.gpu0.temp", "node-1", 0.5, 61.0, "degC"),
            ("node-1.gpu0.temp", "node-1", 1.0, None, "degC"),  # a sample the device did not answer
            ("node-1.gpu0.temp", "node-1", 1.5, math.nan),  # unit omitted
        ],
    )
    assert written == 5

    off = ActionRecord("pdu-a", "switch outlet 3 off", undo="switch outlet 3 on", performed_at=1005.0,
                       test_id=t2, detail={"outlet": 3, "state": "off"})  # fmt: skip
    note = ActionRecord("node-1", "clear event log", performed_at=1006.0)
    fan = ActionRecord("bmc-1", "set fan override 100%", undo="release fan override", performed_at=1007.0)
    off_id, note_id, fan_id = (store.record_action("run-1", a) for a in (off, note, fan))
    store.record_undo(off_id, "done", at=1010.0)
    store.record_undo(fan_id, "failed", "BMC answered 503", at=1011.0)
    with pytest.raises(KeyError):
        store.record_undo(987654, "done")
    with pytest.raises(ValueError, match="undo outcome"):
        store.record_undo(off_id, "maybe")

    store.record_artifact("run-1", "report", "reports/run-1/report.html", "html", recorded_at=1020.0)
    store.record_artifact("run-1", "junit", Path("reports/run-1/junit.xml"), "junit", recorded_at=1021.0)
    store.record_artifact("run-1", "report", "reports/run-1/v2/report.html", "html", recorded_at=1022.0)
    store.finish_run("run-1", "fail", ended_at=1030.0)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.runs()

    # everything reads back from a fresh connection: it was committed, not cached
    store = open_store(store_url)
    assert store.run("run-1") == first
    assert store.run_status("run-1") == ("fail", 1030.0)
    assert store.run_status("run-2") == ("running", None)
    tests = store.tests("run-1")
    assert [(t.test_id, t.nodeid, t.outcome, t.duration_s) for t in tests] == [
        (t1, "test_plans/test_p.py::test_ok", "passed", 0.5),
        (t2, "test_plans/test_p.py::test_bad", "failed", 0.25),
    ]
    assert tests[1].message == bad.describe() and tests[0].started_at == 1001.0 and tests[0].ended_at is not None
    lost_read = Measurement("temp", None, "degC", Outcome.FAIL, high=80.0, device="node-2",  # type: ignore[arg-type]
                            recorded_at=lost.recorded_at)  # fmt: skip
    assert store.measurements("run-1") == [(t1, ok), (t2, bad), (None, info), (t2, lost_read)]
    assert store.measurements("run-2") == []

    assert store.devices("run-1") == [
        DeviceRecord("bmc-1", "bmc", "redfish", "10.0.0.9", firmware="1.2"),
        DeviceRecord("pdu-a", "pdu", "apc", "10.0.0.5", "APC", "AP8941", "X1", "6.9"),
    ]
    assert [(f.device, f.component, f.version, f.recorded_at) for f in store.firmware("run-1")] == [
        ("bmc-1", "BIOS", "2.7.1", 1003.0),
        ("bmc-1", "BMC", "1.2", 1004.0),
        ("pdu-a", "rpdu2", "6.9", 1003.0),
    ]
    assert store.firmware("run-2") == []

    assert store.samples("run-1") == [
        Sample("node-1.gpu0.temp", "node-1", 0.5, 61.0, "degC"),
        Sample("node-1.gpu0.temp", "node-1", 1.0, None, "degC"),
        Sample("node-1.gpu0.temp", "node-1", 1.5, None, ""),
        Sample("pdu-a.outlet3.power", "pdu-a", 0.5, 400.0, "W"),
        Sample("pdu-a.outlet3.power", "pdu-a", 1.0, 410.5, "W"),
    ]
    assert [s.t for s in store.samples("run-1", "node-1.gpu0.temp", start=0.75, end=1.5)] == [1.0, 1.5]
    assert store.samples("run-1", device="pdu-a", end=0.5) == [Sample("pdu-a.outlet3.power", "pdu-a", 0.5, 400.0, "W")]
    channels = {(c.channel, c.unit): (c.count, c.t_first, c.t_last) for c in store.sample_channels("run-1")}
    assert channels == {
        ("node-1.gpu0.temp", "degC"): (2, 0.5, 1.0),
        ("node-1.gpu0.temp", ""): (1, 1.5, 1.5),
        ("pdu-a.outlet3.power", "W"): (2, 0.5, 1.0),
    }

    actions = store.actions("run-1")
    assert [a.action_id for a in actions] == [off_id, note_id, fan_id]
    a_off, a_note, a_fan = actions
    assert (a_off.device, a_off.operation, a_off.undo, a_off.performed_at, a_off.test_id, a_off.detail) == (
        "pdu-a", "switch outlet 3 off", "switch outlet 3 on", 1005.0, t2, {"outlet": 3, "state": "off"},
    )  # fmt: skip
    assert (a_off.undo_outcome, a_off.undone_at, a_off.undo_pending) == ("done", 1010.0, False)
    assert (a_note.undo, a_note.undo_outcome, a_note.undone_at) == ("", "none", None)
    assert (a_fan.undo_outcome, a_fan.undo_message, a_fan.undone_at) == ("failed", "BMC answered 503", 1011.0)

    assert [(a.name, a.path, a.kind, a.recorded_at) for a in store.artifacts("run-1")] == [
        ("junit", "reports/run-1/junit.xml", "junit", 1021.0),
        ("report", "reports/run-1/v2/report.html", "html", 1022.0),
    ]
    store.close()


def test_v1_sqlite_file_migrates_forward_keeping_its_runs(tmp_path: Path) -> None:
    old = tmp_path / "v1.sqlite"
    write_v1_store(old)
    store = open_store(old)
    assert store.schema_version() == SCHEMA_VERSION
    run = store.run("old-run")
    assert (run.rack_serial, run.design_revision, run.simulated, run.metadata) == ("S-1", "rev-A", True, {"note": "v1"})
    assert store.run_status("old-run") == ("pass", 160.0)
    assert store.run_status("old-killed") == ("running", None)  # a killed v1 run still reads incomplete
    assert [(t.nodeid, t.outcome) for t in store.tests("old-run")] == [("test_plans/test_p.py::test_power", "passed")]
    measured = store.measurements("old-run")
    assert [(tid, m.value, m.outcome, m.low, m.high, m.clock_s, m.detail) for tid, m in measured] == [
        (1, 230.0, Outcome.PASS, 220.0, 240.0, 12.0, ""),  # an old record has no detail: empty, not missing
        (1, 239.0, Outcome.MARGINAL, 220.0, 240.0, 12.0, ""),
    ]
    assert store.devices("old-run") == [DeviceRecord("pdu-a", "pdu", "apc", "10.0.0.5", "APC", "AP8941", "X1", "6.9")]
    # the new record types work on an old run, and ids continue after the old ones
    store.record_firmware("old-run", "pdu-a", "rpdu2", "6.9")
    assert store.record_samples("old-run", [("v", "an1", 1.0, 230.1, "V")]) == 1
    action_id = store.record_action("old-run", ActionRecord("pdu-a", "switch outlet 1 off", undo="on"))
    store.record_artifact("old-run", "report", "r.html", "html")
    assert store.start_test("old-run", "test_plans/test_p.py::test_more") == 2
    assert [a.action_id for a in store.actions("old-run")] == [action_id]
    store.close()

    # the migrated file has exactly the tables and columns of a fresh store; reopening is a no-op
    fresh = open_store(tmp_path / "fresh.sqlite")
    fresh.close()

    def columns(path: Path) -> dict[str, list[tuple[str, str, int]]]:
        db = sqlite3.connect(str(path))
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
            return {t: [(c[1], c[2], c[3]) for c in db.execute(f"PRAGMA table_info({t})")] for t in tables}
        finally:
            db.close()

    assert columns(old) == columns(tmp_path / "fresh.sqlite")
    assert {"firmware", "sample_series", "sample_segments", "actions", "artifacts", "causes"} <= set(columns(old))
    assert "samples" not in columns(old)  # folded into segments
    again = open_store(f"sqlite:///{old}")
    assert again.schema_version() == SCHEMA_VERSION and [r.run_id for r in again.runs()] == ["old-run", "old-killed"]
    assert {t.cause for t in again.tests("old-run")} == {""} and again.causes("old-run") == []
    again.close()


def _write_v2_store(url: str) -> None:
    """A store as schema version 2 left it (the released steps 1 and 2), with one run and one
    failed test, written behind the store's back on either backend."""
    dialect = SQLITE if url.startswith("sqlite:///") else POSTGRESQL
    statements = [META_DDL] + [s for step in STEPS[:2] for s in dialect.ddl(step)]
    statements += [
        "INSERT INTO meta(key, value) VALUES ('schema_version', '2')",
        "INSERT INTO runs(run_id, started_at, outcome) VALUES ('v2-run', 100.0, 'fail')",
        "INSERT INTO tests(run_id, nodeid, started_at, outcome, message)"
        " VALUES ('v2-run', 'test_plans/test_p.py::test_old', 101.0, 'failed', 'DeviceTimeout: pdu-a')",
    ]
    if dialect is SQLITE:
        db = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        for statement in statements:
            db.execute(statement)
        db.close()
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)


def test_causes_round_trip_after_migrating_a_v2_store(store_url: str) -> None:
    _write_v2_store(store_url)
    store = open_store(store_url)
    assert store.schema_version() == SCHEMA_VERSION
    (old,) = store.tests("v2-run")
    assert (old.nodeid, old.outcome, old.cause) == ("test_plans/test_p.py::test_old", "failed", "")
    assert store.causes("v2-run") == []

    store.start_run(RunInfo("run-c", 1000.0))
    found_in = "test_plans/test_feed_redundancy.py::test_rack_rides_through_feed_loss"
    feed = CauseRecord("cause-1", "feed A dropped under full load: 231.2 kW over the 230 kW rating", ("node01",),
                       found_in, 1001.5, 1234.0)  # fmt: skip
    store.record_cause("run-c", feed)
    grown = CauseRecord(feed.key, feed.summary, ("node01", "node02"), feed.test, feed.found_at, feed.clock_s)
    store.record_cause("run-c", grown)  # the event took another node: replaced, not duplicated
    dead = CauseRecord("cause-2", "bmc-node03 stopped answering (GET /redfish/v1: refused)", ("bmc-node03",),
                       "", 1002.0, None)  # fmt: skip
    store.record_cause("run-c", dead)
    t1 = store.start_test("run-c", "test_plans/test_identity.py::test_device_answers_with_expected_identity[node01]")
    t2 = store.start_test("run-c", "test_plans/test_identity.py::test_device_answers_with_expected_identity[pdu-a]")
    store.finish_test(t1, "failed", 0.01, "DeviceDown: node01 (127.0.0.1:2201): identify: down since feed A")
    store.finish_test(t2, "passed", 0.2)
    store.record_test_cause(t1, "cause-1")
    with pytest.raises(KeyError):
        store.record_test_cause(987654, "cause-1")
    store.close()

    store = open_store(store_url)  # read back from a fresh connection
    assert store.causes("run-c") == [grown, dead]
    assert [(t.test_id, t.cause) for t in store.tests("run-c")] == [(t1, "cause-1"), (t2, "")]
    assert store.causes("v2-run") == []
    store.close()


def test_a_store_newer_than_this_code_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    _set_schema_version(store_url, 99)
    with pytest.raises(ConfigError, match="schema version 99") as err:
        open_store(store_url)
    assert PASSWORD not in str(err.value)


def test_stations_opening_a_fresh_store_at_once_all_get_one_schema(store_url: str) -> None:
    """Schema setup is serialised (SQLite write lock, PostgreSQL advisory lock): no station
    trips over another's CREATE TABLE."""
    opened: list[object] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4, timeout=30)

    def station() -> None:
        try:
            barrier.wait()
            opened.append(open_store(store_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=station) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(opened) == 4
    for n, store in enumerate(opened):
        assert isinstance(store, SqlStore) and store.schema_version() == SCHEMA_VERSION
        store.start_run(RunInfo(f"station-{n}", float(n)))
    assert [r.run_id for r in opened[0].runs()] == [f"station-{n}" for n in range(4)]
    for store in opened:
        store.close()


def test_concurrent_writers_from_threads(store_url: str) -> None:
    store = open_store(store_url)
    store.start_run(RunInfo("busy", time.time()))
    workers, per_worker = 6, 40
    barrier = threading.Barrier(workers + 1, timeout=30)
    test_ids: dict[int, int] = {}
    errors: list[BaseException] = []
    stop_reading = threading.Event()

    def writer(n: int) -> None:
        try:
            barrier.wait()
            test_id = store.start_test("busy", f"test_plans/test_w.py::test_{n}")
            test_ids[n] = test_id
            for i in range(per_worker):
                store.record_measurement("busy", test_id, Measurement.judged("m", i, "W", device=f"dev-{n}"))
                if i % 10 == 0:
                    store.record_samples(
                        "busy", ((f"ch-{n}", f"dev-{n}", i + k / 100, float(k), "W") for k in range(300)), batch_size=64
                    )
            action_id = store.record_action("busy", ActionRecord(f"dev-{n}", "power cycle", undo="power on"))
            store.record_undo(action_id, "done")
            store.finish_test(test_id, "passed", 0.1)
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            barrier.wait()
            while not stop_reading.is_set():
                store.measurements("busy")
                store.sample_channels("busy")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(workers)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads[:-1]:
        t.join(timeout=60)
    stop_reading.set()
    threads[-1].join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []

    assert len(set(test_ids.values())) == workers
    measured = store.measurements("busy")
    assert len(measured) == workers * per_worker
    for n, test_id in test_ids.items():
        # each thread's records are all there, in the order that thread wrote them
        assert [m.value for tid, m in measured if m.device == f"dev-{n}"] == [float(i) for i in range(per_worker)]
        assert {tid for tid, m in measured if m.device == f"dev-{n}"} == {test_id}
    assert {c.channel: c.count for c in store.sample_channels("busy")} == {f"ch-{n}": 4 * 300 for n in range(workers)}
    assert [a.undo_outcome for a in store.actions("busy")] == ["done"] * workers
    assert {t.outcome for t in store.tests("busy")} == {"passed"}
    store.close()


def test_100k_samples_go_in_batches_each_durable(store_url: str) -> None:
    store = open_store(store_url)
    store.start_run(RunInfo("soak", time.time()))
    channels = ("rack.power", "pdu-a.current", "node-1.gpu0.temp", "node-1.fan1")

    def telemetry(n: int) -> Iterator[tuple[str, str, float, float, str]]:
        for i in range(n):
            yield channels[i % 4], "dev", (i // 4) * 0.01, float(i), "u"

    started = time.monotonic()
    assert store.record_samples("soak", telemetry(100_000), batch_size=10_000) == 100_000
    elapsed = time.monotonic() - started
    summary = {c.channel: (c.count, c.t_first, c.t_last) for c in store.sample_channels("soak")}
    assert summary == {ch: (25_000, 0.0, pytest.approx(249.99)) for ch in channels}
    window = store.samples("soak", "node-1.gpu0.temp", start=100.0, end=100.05)
    assert [(s.t, s.value) for s in window] == [
        (pytest.approx(100.0 + k * 0.01), float((10_000 + k) * 4 + 2)) for k in range(6)
    ]
    assert elapsed < 30, f"100k samples took {elapsed:.1f}s"

    # batches are committed as they go: a sampler that dies mid-stream keeps its full batches
    def dies_after(n: int) -> Iterator[tuple[str, str, float, float, str]]:
        for i, row in enumerate(telemetry(10**9)):
            if i == n:
                raise RuntimeError("sampler thread died")
            yield row

    store.start_run(RunInfo("crashed-sampler", time.time()))
    with pytest.raises(RuntimeError, match="sampler thread died"):
        store.record_samples("crashed-sampler", dies_after(25_000), batch_size=10_000)
    assert sum(c.count for c in store.sample_channels("crashed-sampler")) == 20_000
    with pytest.raises(ValueError, match="channel, device, t, value"):
        store.record_samples("soak", [("too", "short")])
    store.close()


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys, time
    from rackval.harness.measure import Limit, Measurement
    from rackval.harness.store import ActionRecord, RunInfo, open_store
    store = open_store(sys.argv[1])
    store.start_run(RunInfo("killed-run", time.time(), rack_name="r1"))
    store.record_firmware("killed-run", "bmc-1", "BMC", "1.2")
    test_id = store.start_test("killed-run", "test_plans/test_x.py::test_soak")
    off = ActionRecord("pdu-a", "switch outlet 3 off", undo="switch outlet 3 on")
    action_id = store.record_action("killed-run", off)
    for i in range(5):
        store.record_measurement("killed-run", test_id, Measurement.judged(
            "rack power", 4000 + i, "W", Limit(high=5000, unit="W", requirement="p")))
    store.record_samples("killed-run", (("rack.power", "an1", i * 0.5, 4000.0 + i, "W") for i in range(1000)))
    store.record_artifact("killed-run", "log", "reports/killed-run/console.log", "log")
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_sample_batches_page_through_a_run_once_in_order(store_url: str) -> None:
    store = open_store(store_url)
    try:
        store.start_run(RunInfo("pages", time.time()))
        store.start_run(RunInfo("other", time.time()))
        # several devices share a channel name and a time: the keyset must tell them apart
        rows = [(f"ch{c}", f"dev{d}", float(t), float(c * 100 + d * 10 + t), "W")
                for c in range(3) for d in range(3) for t in range(5)]  # fmt: skip
        store.record_samples("pages", reversed(rows))
        store.record_samples("other", [("ch0", "dev0", 0.0, 1.0, "W")])
        pages = list(store.sample_batches("pages", size=7))
        assert [len(p) for p in pages] == [7] * 6 + [3]
        got = [tuple(r) for p in pages for r in p]
        assert got == sorted(rows, key=lambda r: (r[0], r[2], r[1]))
    finally:
        store.close()


def test_sigkilled_run_keeps_every_record_and_reads_incomplete(store_url: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, store_url], timeout=60, check=False)
    assert proc.returncode == -9  # it really died by SIGKILL, with no chance to clean up
    store = open_store(store_url)
    assert store.run_status("killed-run") == ("running", None)
    assert [m.value for _, m in store.measurements("killed-run")] == [4000, 4001, 4002, 4003, 4004]
    assert [t.outcome for t in store.tests("killed-run")] == ["running"]
    assert [(f.device, f.version) for f in store.firmware("killed-run")] == [("bmc-1", "1.2")]
    assert [c.count for c in store.sample_channels("killed-run")] == [1000]
    actions = store.actions("killed-run")
    assert [(a.operation, a.undo_pending) for a in actions] == [("switch outlet 3 off", True)]  # never undone
    assert [a.name for a in store.artifacts("killed-run")] == ["log"]
    store.close()


def test_bad_urls_give_a_config_error_without_the_password(tmp_path: Path, pg_server: PostgresServer) -> None:
    secret = "Hunter2-very-secret"

    def refused(url: str, *fragments: str) -> str:
        started = time.monotonic()
        with pytest.raises(ConfigError) as err:
            open_store(url)
        message = str(err.value)
        assert time.monotonic() - started < 20
        assert secret not in message and secret not in repr(err.value)
        for fragment in fragments:
            assert fragment in message
        return message

    refused(f"mysql://kim:{secret}@db.lab/results", "mysql://kim:***@db.lab/results")
    refused(f"postgresql://kim:{secret}@127.0.0.1:notaport/results", "postgresql://kim:***@127.0.0.1:notaport")
    # nothing listens on a port we just freed: connection refused, named with host and port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused(f"postgresql://kim:{secret}@127.0.0.1:{port}/results", f"postgresql://kim:***@127.0.0.1:{port}/results")
    refused(f"postgresql://kim@127.0.0.1:{port}/results?password={secret}", "password=***")
    # a real server that refuses the password, and one without the database
    message = refused(pg_server.url("postgres", password=secret), ":***@127.0.0.1", "password authentication failed")
    assert PASSWORD not in message
    refused(pg_server.url("no_such_db"), "no_such_db", "does not exist")
    # SQLite: a file that is not a store
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    refused(str(junk), str(junk))


def test_a_dropped_postgresql_connection_is_replaced(pg_server: PostgresServer) -> None:
    url = pg_server.create_database()
    store = open_store(url)
    store.start_run(RunInfo("r", 1.0))
    dbname = url.rsplit("/", 1)[1]

    def kill_store_backend() -> None:
        with pg_server.admin() as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'rackval'",
                (dbname,),
            ).fetchall()
        assert killed == [(True,)]

    kill_store_backend()
    assert [r.run_id for r in store.runs()] == ["r"]  # a read retries once on a new connection
    kill_store_backend()
    with pytest.raises(StoreError) as err:
        store.record_artifact("r", "log", "console.log")  # a write is never silently repeated
    assert "record artifact 'log'" in str(err.value) and PASSWORD not in str(err.value)
    store.record_artifact("r", "log", "console.log")  # ... but the next one goes through
    assert [a.name for a in store.artifacts("r")] == ["log"]
    # a measurement is journaled (no round trip); its batch carries the journal's mark, so it is
    # retried on a fresh connection like a read, and lands exactly once
    store.record_measurement("r", None, Measurement.judged("v", 1.0, "V"))
    kill_store_backend()
    assert [x.value for _, x in store.measurements("r")] == [1.0]
    store.close()
