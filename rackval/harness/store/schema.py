"""The one logical schema of the results store, as ordered steps, rendered per SQL dialect.

A fresh store and an old store take the same path: a store at version N runs steps N+1.. in
order, each in its own transaction with ``meta.schema_version`` bumped inside it, so a store is
never half-migrated and a fresh store is by construction identical to a migrated one. Step 1 is
the schema of the first SQLite stores (kept verbatim in meaning: never edit a released step,
append a new one).

A ``Step`` also moves data (in the step's transaction) where a new table replaces an old one.

Column types are written as ``<real>``, ``<bigint>``, ``<serial>`` and ``<blob>`` because SQLite's REAL is a
double but PostgreSQL's is a 4-byte float, and auto-numbered keys are spelled differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rackval.harness.store.segment_rows import fold_legacy_samples


@dataclass(frozen=True)
class Step:
    """A schema step that also moves data: ``ddl`` first, then ``then(cursor, sql)`` in the same
    transaction (``sql`` rewrites ``?`` placeholders for the dialect)."""

    ddl: str
    then: Callable[[Any, Callable[[str], str]], Any]


STEPS: tuple[str | Step, ...] = (
    # 1: runs, tests, measurements, devices (the walking skeleton's SQLite schema)
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        started_at <real> NOT NULL,
        ended_at <real>,
        outcome TEXT NOT NULL DEFAULT 'running',
        rack_name TEXT, rack_serial TEXT, design_revision TEXT,
        spec_name TEXT, spec_version TEXT, station TEXT, operator TEXT, git_sha TEXT,
        rack_file TEXT, spec_file TEXT, simulated INTEGER NOT NULL DEFAULT 0,
        metadata TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE IF NOT EXISTS tests (
        test_id <serial>,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        nodeid TEXT NOT NULL,
        started_at <real> NOT NULL,
        ended_at <real>,
        outcome TEXT NOT NULL DEFAULT 'running',
        duration_s <real>,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE IF NOT EXISTS measurements (
        id <serial>,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        test_id <bigint> REFERENCES tests(test_id),
        name TEXT NOT NULL,
        requirement TEXT NOT NULL DEFAULT '',
        device TEXT NOT NULL DEFAULT '',
        channel TEXT NOT NULL DEFAULT '',
        value <real>,
        unit TEXT NOT NULL,
        low <real>,
        high <real>,
        margin <real>,
        outcome TEXT NOT NULL,
        recorded_at <real> NOT NULL,
        clock_s <real>
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
    """,
    # 2: firmware snapshot, telemetry samples, actions with their undo, artifacts
    """
    CREATE TABLE IF NOT EXISTS firmware (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        device TEXT NOT NULL,
        component TEXT NOT NULL,
        version TEXT NOT NULL,
        recorded_at <real> NOT NULL,
        PRIMARY KEY (run_id, device, component)
    );
    CREATE TABLE IF NOT EXISTS samples (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        channel TEXT NOT NULL,
        device TEXT NOT NULL DEFAULT '',
        t <real> NOT NULL,
        value <real>,
        unit TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS samples_run_channel_t ON samples(run_id, channel, t);
    CREATE TABLE IF NOT EXISTS actions (
        action_id <serial>,
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        test_id <bigint> REFERENCES tests(test_id),
        device TEXT NOT NULL,
        operation TEXT NOT NULL,
        undo_operation TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '{}',
        performed_at <real> NOT NULL,
        undo_outcome TEXT NOT NULL DEFAULT 'pending',
        undone_at <real>,
        undo_message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS actions_run ON actions(run_id);
    CREATE TABLE IF NOT EXISTS artifacts (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT '',
        recorded_at <real> NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    """,
    # 3: root causes (a device down, a feed event) and the cause each failed test is grouped under
    """
    CREATE TABLE IF NOT EXISTS causes (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        cause_key TEXT NOT NULL,
        summary TEXT NOT NULL,
        devices TEXT NOT NULL DEFAULT '[]',
        test TEXT NOT NULL DEFAULT '',
        found_at <real> NOT NULL,
        clock_s <real>,
        PRIMARY KEY (run_id, cause_key)
    );
    ALTER TABLE tests ADD COLUMN cause TEXT NOT NULL DEFAULT '';
    """,
    # 4: a measurement's free text (``detail``: "mean of the last 449 s") beside its stable key
    # (name/requirement, device, channel), so compare and trend join on the key alone
    """
    ALTER TABLE measurements ADD COLUMN detail TEXT NOT NULL DEFAULT '';
    """,
    # 5: telemetry as compressed per-channel segments (rackval.harness.store.sample_codec); the
    # rows of the old samples table are folded into segments and the table dropped
    Step(
        """
        CREATE TABLE IF NOT EXISTS sample_series (
            series_id <serial>,
            run_id TEXT NOT NULL REFERENCES runs(run_id),
            channel TEXT NOT NULL,
            device TEXT NOT NULL DEFAULT '',
            unit TEXT NOT NULL DEFAULT '',
            UNIQUE (run_id, channel, device, unit)
        );
        CREATE TABLE IF NOT EXISTS sample_segments (
            series_id <bigint> NOT NULL REFERENCES sample_series(series_id),
            t_first <real> NOT NULL,
            t_last <real> NOT NULL,
            n_samples INTEGER NOT NULL,
            n_values INTEGER NOT NULL,
            vmin <real>,
            vmax <real>,
            vsum <real>,
            codec INTEGER NOT NULL,
            times <blob> NOT NULL,
            vals <blob> NOT NULL
        );
        CREATE INDEX IF NOT EXISTS sample_segments_series_t ON sample_segments(series_id, t_first);
        """,
        fold_legacy_samples,
    ),
)

SCHEMA_VERSION = len(STEPS)

META_DDL = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL the backends speak; everything else is shared."""

    name: str
    placeholder: str
    real: str
    bigint: str
    serial: str
    begin: str  # starts a write transaction that holds the write lock from its first statement
    blob: str

    def sql(self, text: str) -> str:
        """Shared SQL is written with ``?`` placeholders (none of it contains a literal ``?``)."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def ddl(self, step: str) -> list[str]:
        """One schema step as single statements (drivers execute one statement per call)."""
        text = step.replace("<real>", self.real).replace("<bigint>", self.bigint).replace("<serial>", self.serial)
        text = text.replace("<blob>", self.blob)
        return [s.strip() for s in text.split(";") if s.strip()]


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    real="REAL",
    bigint="INTEGER",
    serial="INTEGER PRIMARY KEY AUTOINCREMENT",
    begin="BEGIN IMMEDIATE",
    blob="BLOB",
)

POSTGRESQL = Dialect(
    name="postgresql",
    placeholder="%s",
    real="DOUBLE PRECISION",
    bigint="BIGINT",
    serial="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    begin="BEGIN",
    blob="BYTEA",
)
