"""The measurement journal: a SIGKILLed run loses no measurement and duplicates none, on SQLite
and on a real PostgreSQL server (started by this module on 127.0.0.1, as in
test_store_backends.py).

``record_measurement`` only appends to the store's journal file; measurements reach the database
in batches, each carrying the journal's mark (how many of its records are in the database). The
next store opened on the database replays what a dead writer's journal holds beyond its mark.
"""

from __future__ import annotations

import glob
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import rackval.harness.store.base as store_base
from rackval.harness.measure import Limit, Measurement, Outcome
from rackval.harness.plugin.run import mark_dead_runs_incomplete
from rackval.harness.store import RunInfo, SqlStore, StoreError, open_store
from rackval.harness.store import journal as journals

LIMIT = Limit(low=0.0, high=5000.0, unit="W", requirement="p")


pytestmark = pytest.mark.usefixtures("journal_dir")  # tests/conftest.py: journals under tmp_path


def journal_files(url: str, journal_dir: Path) -> list[str]:
    """Every journal file (live, dead, half-created or set aside) of the store at ``url``."""
    if url.startswith("sqlite:///"):
        return sorted(glob.glob(url[len("sqlite:///") :] + "-measurements.*"))
    return sorted(str(p) for p in journal_dir.rglob("*") if p.is_file())


def journal_marks(url: str) -> dict[str, str]:
    """The journal marks in the store's meta table, read behind the store's back."""
    sql = "SELECT key, value FROM meta WHERE key LIKE 'journal:%'"
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url[len("sqlite:///") :])
        try:
            return dict(db.execute(sql).fetchall())
        finally:
            db.close()
    with psycopg.connect(url) as conn:
        return dict(conn.execute(sql).fetchall())


def values(store: SqlStore, run_id: str) -> list[float]:
    return [m.value for _, m in store.measurements(run_id)]


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, socket, sys, time
    import rackval.harness.store.base
    from rackval.harness.measure import Limit, Measurement
    from rackval.harness.store import RunInfo, open_store
    rackval.harness.store.base.FLUSH_INTERVAL_S = 3600.0  # no background flush: the kill finds a batch pending
    url, committed, journaled = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    limit = Limit(low=0.0, high=5000.0, unit="W", requirement="p")
    store = open_store(url)
    here = {"host": socket.gethostname(), "pid": os.getpid()}
    store.start_run(RunInfo("killed-run", time.time(), rack_name="r1", metadata=here))
    test_id = store.start_test("killed-run", "test_plans/test_x.py::test_soak")
    for i in range(committed + journaled):
        store.record_measurement("killed-run", test_id, Measurement.judged("rack power", 1000 + i, "W", limit))
        if i + 1 == committed:
            store.run_status("killed-run")  # a read: the batch so far is committed with its mark
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize(
    ("committed", "journaled"),
    [
        (150, 100),  # killed with a batch committed and the next one only in the journal
        (120, 0),  # killed after a commit, before the journal was removed: nothing to replay
        (0, 300),  # killed before anything reached the database
    ],
)
def test_sigkilled_run_is_replayed_exactly_once(
    store_url: str, journal_dir: Path, committed: int, journaled: int
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, store_url, str(committed), str(journaled)], timeout=60, check=False
    )
    assert proc.returncode == -9  # it really died by SIGKILL, with no chance to clean up
    left = journal_files(store_url, journal_dir)
    assert len(left) == 1 and left[0].endswith(".journal")  # the dead writer's journal
    # what the database holds before any replay: the committed batch, and its mark
    assert list(journal_marks(store_url).values()) == ([str(committed)] if committed else [])

    store = open_store(store_url)  # replays the dead writer's journal, first thing
    assert values(store, "killed-run") == [1000.0 + i for i in range(committed + journaled)]
    assert {m.outcome for _, m in store.measurements("killed-run")} == {Outcome.PASS}
    assert store.run_status("killed-run") == ("running", None)
    assert journal_marks(store_url) == {}
    mine = journal_files(store_url, journal_dir)
    assert len(mine) == 1 and mine != left  # the dead one is gone; this store's own is there
    assert mark_dead_runs_incomplete(store) == ["killed-run"]
    assert store.run_status("killed-run")[0] == "incomplete"
    store.close()
    assert journal_files(store_url, journal_dir) == []

    again = open_store(store_url)  # nothing is replayed twice
    assert values(again, "killed-run") == [1000.0 + i for i in range(committed + journaled)]
    again.close()


def test_a_live_writers_journal_is_not_replayed(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_base, "FLUSH_INTERVAL_S", 3600.0)
    writer = open_store(store_url)
    writer.start_run(RunInfo("live", 1.0))
    for i in range(5):
        writer.record_measurement("live", None, Measurement.judged("v", i, "V"))
    reader = open_store(store_url)  # the writer holds its journal locked: not a dead one
    assert values(reader, "live") == []  # journaled, not yet in the database
    assert values(writer, "live") == [0.0, 1.0, 2.0, 3.0, 4.0]  # a read commits the store's own batch
    writer.record_measurement("live", None, Measurement.judged("v", 5, "V"))
    writer.close()  # commits the rest
    assert values(reader, "live") == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    reader.close()


def test_measurements_reach_the_database_soon_without_another_call(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_base, "FLUSH_INTERVAL_S", 0.05)
    writer = open_store(store_url)
    writer.start_run(RunInfo("soak", 1.0))
    writer.record_measurement("soak", None, Measurement.judged("t", 41.5, "degC"))
    reader = open_store(store_url)
    deadline = time.monotonic() + 10
    while values(reader, "soak") != [41.5] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert values(reader, "soak") == [41.5]  # written by the flusher thread, not by a call
    writer.close()
    reader.close()


class _LostCommitAnswer:
    """A connection whose next COMMIT succeeds but reports failure, as a PostgreSQL connection
    does when the network drops right after the server committed."""

    def __init__(self, conn: Any, error: type[BaseException], armed: list[bool]) -> None:
        self._conn, self._error, self._armed = conn, error, armed

    def cursor(self) -> Any:
        conn, error, armed = self._conn, self._error, self._armed

        class Cursor:
            def __init__(self) -> None:
                self._cur = conn.cursor()

            def execute(self, sql: str, *args: Any) -> Any:
                result = self._cur.execute(sql, *args)
                if sql == "COMMIT" and armed[0]:
                    armed[0] = False
                    raise error("connection lost after COMMIT was sent")
                return result

            def __getattr__(self, name: str) -> Any:
                return getattr(self._cur, name)

        return Cursor()


def test_a_batch_whose_commit_answer_was_lost_is_not_written_twice(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_base, "FLUSH_INTERVAL_S", 3600.0)
    store = open_store(store_url)
    store.start_run(RunInfo("r", 1.0))
    for i in range(40):
        store.record_measurement("r", None, Measurement.judged("v", i, "V"))
    real_live, armed = store._live, [True]
    monkeypatch.setattr(store, "_live", lambda: _LostCommitAnswer(real_live(), store._db_errors[0], armed))
    monkeypatch.setattr(store, "_broken", lambda: True)  # so the batch is retried at once
    assert values(store, "r") == [float(i) for i in range(40)]  # committed once, not twice
    assert armed == [False]
    store.record_measurement("r", None, Measurement.judged("v", 40, "V"))
    assert values(store, "r") == [float(i) for i in range(41)]
    store.close()


def test_unknown_run_or_test_and_closed_store_are_refused_at_once(store_url: str) -> None:
    store = open_store(store_url)
    store.start_run(RunInfo("r", 1.0))
    m = Measurement.judged("v", 1.0, "V", Limit(high=2.0, unit="V"))
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.record_measurement("nope", None, m)
    with pytest.raises(StoreError, match="no test 987654"):
        store.record_measurement("r", 987654, m)
    test_id = store.start_test("r", "t")
    store.record_measurement("r", test_id, m)
    assert store.measurements("r") == [(test_id, m)]
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.record_measurement("r", test_id, m)
    # a run started by another store (another station) is found in the database
    other = open_store(store_url)
    other.record_measurement("r", test_id, m)
    assert len(other.measurements("r")) == 2
    other.close()


def test_a_failing_journal_falls_back_to_a_commit_per_measurement(
    store_url: str, journal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(store_url)
    store.start_run(RunInfo("r", 1.0))
    for i in range(3):
        store.record_measurement("r", None, Measurement.judged("v", i, "V"))

    def disk_full(self: journals.Journal, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journals.Journal, "append", disk_full)
    for i in range(3, 6):
        store.record_measurement("r", None, Measurement.judged("v", i, "V"))
    assert journal_files(store_url, journal_dir) == []  # the journal is gone, its rows committed
    reader = open_store(store_url)
    assert values(reader, "r") == [float(i) for i in range(6)]  # each committed as it came
    reader.close()
    store.close()


def test_torn_and_foreign_journals_are_handled(tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite"
    script = textwrap.dedent(
        """
        import os, signal, sys, time
        from rackval.harness.measure import Measurement
        from rackval.harness.store import RunInfo, open_store
        store = open_store(sys.argv[1])
        store.start_run(RunInfo("torn", time.time()))
        for i in range(3):
            store.record_measurement("torn", None, Measurement.judged("v", i, "V"))
        journal = store._journal
        # a record cut short by a power cut: a tuple header, then nothing
        journal._map[journal._end : journal._end + 5] = bytes([0x29, 14, 1, 2, 3])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script, str(db)], timeout=60, check=False)
    assert proc.returncode == -9
    foreign = tmp_path / "results.sqlite-measurements.bogus.journal"
    foreign.write_bytes(b"not a journal at all")
    store = open_store(db)
    assert values(store, "torn") == [0.0, 1.0, 2.0]  # the whole records, not the torn one
    assert not foreign.exists() and foreign.with_suffix(".failed").exists()  # kept for a person
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "measurements" in p.name) == [
        "results.sqlite-measurements.bogus.failed"
    ]


def test_a_reader_leaves_no_journal_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "results.sqlite"
    store = open_store(db)
    store.start_run(RunInfo("r", 1.0))
    store.record_measurement("r", None, Measurement.judged("v", 1.0, "V"))
    store.close()
    assert glob.glob(f"{db}-measurements.*") == [] and journal_marks(f"sqlite:///{db}") == {}
    reader = open_store(db)
    assert len(glob.glob(f"{db}-measurements.*.journal")) == 1  # made at open, like SQLite's -wal
    writes: list[str] = []
    monkeypatch.setattr(reader, "_delete_mark", lambda *args: writes.append("delete mark"))
    assert values(reader, "r") == [1.0]
    reader.close()
    assert glob.glob(f"{db}-measurements.*") == []
    assert writes == []  # no write transaction at close for a store that recorded nothing
    # a store dropped without close() leaves no empty journal behind either
    dropped = open_store(db)
    assert len(glob.glob(f"{db}-measurements.*.journal")) == 1
    del dropped
    import gc

    gc.collect()
    assert glob.glob(f"{db}-measurements.*") == []


def test_journal_round_trip_keeps_every_field(store_url: str) -> None:
    store = open_store(store_url)
    store.start_run(RunInfo("r", 1.0))
    test_id = store.start_test("r", "t")
    ms = [
        Measurement.judged("power", 7.0, "kW", Limit(high=6, unit="kW", requirement="P-1"), device="pdu-a",
                           channel="outlet 3", clock_s=12.5),
        Measurement.judged("lost", float("nan"), "W", Limit(high=1.0, unit="W")),
        Measurement.judged("fan", 5200, "rpm", device="node-1", channel="fan 2 \n\t'\"é"),
        Measurement("raw", 1, "V", Outcome.INFO),  # an int value, as a caller may build it
    ]  # fmt: skip
    for m in ms:
        store.record_measurement("r", test_id if m.name != "fan" else None, m)
    got = store.measurements("r")
    assert [tid for tid, _ in got] == [test_id, test_id, None, test_id]
    assert got[0][1] == ms[0] and got[2][1] == ms[2]
    assert got[1][1].value is None and got[1][1].outcome == Outcome.FAIL
    assert got[3][1].value == 1.0 and isinstance(got[3][1].value, float)
    store.close()


def test_many_threads_many_batches(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setattr(store_base, "FLUSH_ROWS", 50)  # batches committed while others record
    monkeypatch.setattr(store_base, "FLUSH_INTERVAL_S", 0.01)
    store = open_store(store_url)
    store.start_run(RunInfo("busy", 1.0))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                store.record_measurement("busy", None, Measurement.judged("m", i, "W", device=f"d{n}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    got = store.measurements("busy")
    for n in range(4):
        assert [m.value for _, m in got if m.device == f"d{n}"] == [float(i) for i in range(300)]
    store.close()


def test_a_script_that_exits_without_close_leaves_its_measurements_in_the_database(store_url: str) -> None:
    script = textwrap.dedent(
        """
        import sys
        import rackval.harness.store.base
        from rackval.harness.measure import Measurement
        from rackval.harness.store import RunInfo, open_store
        rackval.harness.store.base.FLUSH_INTERVAL_S = 3600.0
        store = open_store(sys.argv[1])
        store.start_run(RunInfo("unclosed", 1.0))
        for i in range(5):
            store.record_measurement("unclosed", None, Measurement.judged("v", i, "V"))
        """
    )  # ... and the interpreter exits with the store open
    proc = subprocess.run([sys.executable, "-c", script, store_url], timeout=60, check=False)
    assert proc.returncode == 0
    sql = "SELECT value FROM measurements WHERE run_id = 'unclosed' ORDER BY id"
    if store_url.startswith("sqlite:///"):  # read behind the store's back: no replay helps here
        db = sqlite3.connect(store_url[len("sqlite:///") :])
        try:
            rows = db.execute(sql).fetchall()
        finally:
            db.close()
    else:
        with psycopg.connect(store_url) as conn:
            rows = conn.execute(sql).fetchall()
    assert [r[0] for r in rows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    store = open_store(store_url)  # the journal left behind is all in the database: nothing twice
    assert values(store, "unclosed") == [0.0, 1.0, 2.0, 3.0, 4.0]
    store.close()


def test_a_journal_written_before_the_detail_column_is_still_replayed(tmp_path: Path) -> None:
    """A run killed under the previous version left 14-column records (no ``detail``): the next
    store replays them with an empty detail instead of setting them aside."""
    import marshal

    db = tmp_path / "results.sqlite"
    store = open_store(db)
    store.start_run(RunInfo("old", time.time()))
    store.close()
    old_row = ("old", None, "v", "", "pdu-a", "outlet 1", 230.0, "V", None, None, None, "info", time.time(), None)
    fields = (journals.MEASUREMENTS.format, journals.VERSION, "oldhost-1-abcd", str(db))
    header = marshal.dumps(fields, journals.MARSHAL_VERSION)
    path = tmp_path / "results.sqlite-measurements.oldhost-1-abcd.journal"
    path.write_bytes(header + marshal.dumps(old_row, journals.MARSHAL_VERSION) + b"\0" * 64)
    store = open_store(db)
    [(_, m)] = store.measurements("old")
    assert (m.device, m.channel, m.value, m.detail) == ("pdu-a", "outlet 1", 230.0, "")
    store.close()
    assert not path.exists()
