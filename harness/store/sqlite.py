"""SQLite results store: one file, WAL journal, one commit per record.

Each measurement is committed as it is recorded, so a run killed half-way keeps everything it
measured; such a run stays ``running`` in the table and reads as ``incomplete`` once its
process is gone (``RunRow.outcome``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.measure import Measurement, Outcome
from harness.store.records import DeviceRecord, RunInfo, TestRecord

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT NOT NULL DEFAULT 'running',
    rack_name TEXT, rack_serial TEXT, design_revision TEXT,
    spec_name TEXT, spec_version TEXT, station TEXT, operator TEXT, git_sha TEXT,
    rack_file TEXT, spec_file TEXT, simulated INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS tests (
    test_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    nodeid TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT NOT NULL DEFAULT 'running',
    duration_s REAL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    test_id INTEGER REFERENCES tests(test_id),
    name TEXT NOT NULL,
    requirement TEXT NOT NULL DEFAULT '',
    device TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL DEFAULT '',
    value REAL,
    unit TEXT NOT NULL,
    low REAL,
    high REAL,
    margin REAL,
    outcome TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    clock_s REAL
);
CREATE TABLE IF NOT EXISTS devices (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL, driver TEXT NOT NULL, address TEXT NOT NULL,
    vendor TEXT, model TEXT, serial TEXT, firmware TEXT,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS measurements_run ON measurements(run_id);
CREATE INDEX IF NOT EXISTS tests_run ON tests(run_id);
"""


class SqliteStore:
    """The default results store. Thread-safe: one connection guarded by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (not a power cut); FULL costs an fsync
        # per measurement for protection a bench PC rarely needs.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writing ------------------------------------------------------------------------------
    def start_run(self, run: RunInfo) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs(run_id, started_at, rack_name, rack_serial, design_revision, spec_name,"
                " spec_version, station, operator, git_sha, rack_file, spec_file, simulated, metadata)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.run_id, run.started_at, run.rack_name, run.rack_serial, run.design_revision,
                    run.spec_name, run.spec_version, run.station, run.operator, run.git_sha,
                    run.rack_file, run.spec_file, int(run.simulated), json.dumps(run.metadata),
                ),
            )  # fmt: skip

    def finish_run(self, run_id: str, outcome: str, ended_at: float | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET outcome = ?, ended_at = ? WHERE run_id = ?",
                (outcome, ended_at or time.time(), run_id),
            )

    def start_test(self, run_id: str, nodeid: str, started_at: float | None = None) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO tests(run_id, nodeid, started_at) VALUES (?,?,?)",
                (run_id, nodeid, started_at or time.time()),
            )
            return int(cur.lastrowid or 0)

    def finish_test(self, test_id: int, outcome: str, duration_s: float, message: str = "") -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE tests SET outcome = ?, duration_s = ?, ended_at = ?, message = ? WHERE test_id = ?",
                (outcome, duration_s, time.time(), message, test_id),
            )

    def record_measurement(self, run_id: str, test_id: int | None, m: Measurement) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO measurements(run_id, test_id, name, requirement, device, channel, value,"
                " unit, low, high, margin, outcome, recorded_at, clock_s)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id, test_id, m.name, m.requirement, m.device, m.channel, m.value, m.unit,
                    m.low, m.high, m.margin, m.outcome.value, m.recorded_at, m.clock_s,
                ),
            )  # fmt: skip

    def record_device(self, run_id: str, device: DeviceRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO devices(run_id, name, kind, driver, address, vendor, model, serial, firmware)"
                " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(run_id, name) DO UPDATE SET"
                " vendor=excluded.vendor, model=excluded.model, serial=excluded.serial,"
                " firmware=excluded.firmware",
                (
                    run_id, device.name, device.kind, device.driver, device.address,
                    device.vendor, device.model, device.serial, device.firmware,
                ),
            )  # fmt: skip

    # ---- reading ------------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def runs(self) -> list[RunInfo]:
        return [self._run_info(r) for r in self._rows("SELECT * FROM runs ORDER BY started_at", ())]

    def run(self, run_id: str) -> RunInfo:
        rows = self._rows("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        return self._run_info(rows[0])

    def run_status(self, run_id: str) -> tuple[str, float | None]:
        """(outcome, ended_at) as stored; 'running' with no end means live or killed."""
        rows = self._rows("SELECT outcome, ended_at FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        return rows[0]["outcome"], rows[0]["ended_at"]

    def tests(self, run_id: str) -> list[TestRecord]:
        rows = self._rows("SELECT * FROM tests WHERE run_id = ? ORDER BY test_id", (run_id,))
        return [TestRecord(**dict(r)) for r in rows]

    def measurements(self, run_id: str) -> list[tuple[int | None, Measurement]]:
        """(test_id, measurement) in recording order."""
        rows = self._rows("SELECT * FROM measurements WHERE run_id = ? ORDER BY id", (run_id,))
        out = []
        for r in rows:
            fields = dict(r)
            del fields["id"], fields["run_id"]
            test_id = fields.pop("test_id")
            fields["outcome"] = Outcome(fields["outcome"])
            out.append((test_id, Measurement(**fields)))
        return out

    def devices(self, run_id: str) -> list[DeviceRecord]:
        rows = self._rows("SELECT * FROM devices WHERE run_id = ? ORDER BY name", (run_id,))
        out = []
        for r in rows:
            fields = {k: ("" if v is None else v) for k, v in dict(r).items() if k != "run_id"}
            out.append(DeviceRecord(**fields))
        return out

    @staticmethod
    def _run_info(r: sqlite3.Row) -> RunInfo:
        fields = {k: ("" if v is None else v) for k, v in dict(r).items()}
        for derived in ("ended_at", "outcome"):
            del fields[derived]
        fields["simulated"] = bool(fields["simulated"])
        fields["metadata"] = json.loads(fields["metadata"] or "{}")
        return RunInfo(**fields)
