"""A results store file exactly as the first release (schema version 1) wrote it.

The DDL is the walking skeleton's ``rackval/harness/store/sqlite.py`` SCHEMA, copied verbatim: never
generate it from the current code, or the migration test would test nothing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

V1_SCHEMA = """
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


def write_v1_store(path: Path) -> None:
    """A finished v1 run "old-run" with one test, two measurements and one device, plus a
    killed v1 run "old-killed" left running, as the v1 code would have written them."""
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(V1_SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '1')")
        db.execute(
            "INSERT INTO runs(run_id, started_at, ended_at, outcome, rack_name, rack_serial, design_revision,"
            " spec_name, spec_version, station, operator, git_sha, rack_file, spec_file, simulated, metadata)"
            " VALUES ('old-run', 100.0, 160.0, 'pass', 'rack-a', 'S-1', 'rev-A', 'acceptance', '1.0',"
            " 'bench-3', 'kim', 'abc123', 'racks/a.yaml', 'specs/a.yaml', 1, '{\"note\": \"v1\"}')"
        )
        db.execute("INSERT INTO runs(run_id, started_at) VALUES ('old-killed', 200.0)")
        db.execute(
            "INSERT INTO tests(run_id, nodeid, started_at, ended_at, outcome, duration_s, message)"
            " VALUES ('old-run', 'test_plans/test_p.py::test_power', 101.0, 102.5, 'passed', 1.5, '')"
        )
        for value, outcome, margin in ((230.0, "pass", 10.0), (239.0, "marginal", 1.0)):
            db.execute(
                "INSERT INTO measurements(run_id, test_id, name, requirement, device, channel, value, unit,"
                " low, high, margin, outcome, recorded_at, clock_s)"
                " VALUES ('old-run', 1, 'voltage', 'REQ-7', 'an1', 'ch1', ?, 'V', 220, 240, ?, ?, 101.5, 12.0)",
                (value, margin, outcome),
            )
        db.execute(
            "INSERT INTO devices VALUES ('old-run', 'pdu-a', 'pdu', 'apc', '10.0.0.5', 'APC', 'AP8941', 'X1', '6.9')"
        )
    finally:
        db.close()
