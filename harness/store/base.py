"""The results-store logic both backends share: every write, every read, schema migration.

A backend supplies a DB-API connection whose rows are dicts, its ``Dialect`` and its error types;
everything else lives here, so SQLite and PostgreSQL cannot drift apart in meaning.

Durability: each record is committed in its own transaction the moment it is recorded, so a run
killed half-way keeps everything it recorded. Such a run stays ``running`` in the runs table and
``run_status`` returns ``("running", None)``; the report reads that as incomplete.

Thread safety: one connection per store, guarded by a lock; a transaction never spans two
calls, so threads (fan-out over devices, telemetry samplers) interleave record by record.
Telemetry goes in batches of ``SAMPLE_BATCH`` rows, one transaction each, so a sampler writing a
million rows never holds the lock for long.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from drivers.errors import ConfigError
from harness.measure import Measurement, Outcome
from harness.store.records import (
    UNDO_NONE,
    UNDO_OUTCOMES,
    UNDO_PENDING,
    ActionRecord,
    ArtifactRecord,
    DeviceRecord,
    FirmwareRecord,
    RunInfo,
    Sample,
    SampleChannel,
    TestRecord,
)
from harness.store.schema import META_DDL, SCHEMA_VERSION, STEPS, Dialect

SAMPLE_BATCH = 5000

SAMPLE_COLUMNS = ("run_id", "channel", "device", "t", "value", "unit")

SampleRow = Sample | tuple[Any, ...]


class StoreError(Exception):
    """A read or write failed after the store was opened (lost server, disk full, bad record).

    Names the store (never with a password) and what was being done."""


def _number(value: float | None) -> float | None:
    """NaN becomes NULL on both backends (SQLite would store NULL anyway; PostgreSQL would keep NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


class SqlStore:
    """Shared implementation; see ``SqliteStore`` and ``PostgresStore`` for the backends."""

    dialect: Dialect
    path: Any  # a Path for SQLite; the URL without its password for PostgreSQL
    _db_errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    # ---- backend hooks ------------------------------------------------------------------------
    def _live(self) -> Any:
        """The open DB-API connection (a backend may reconnect a broken one here)."""
        raise NotImplementedError

    def _close_connection(self) -> None:
        raise NotImplementedError

    def _broken(self) -> bool:
        """True when the last error broke the connection, so an idempotent read may retry."""
        return False

    def _schema_lock(self, cur: Any) -> None:
        """Serialise schema setup between processes opening the same store at once."""

    def _insert_samples(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        placeholders = ",".join("?" * len(SAMPLE_COLUMNS))
        cur.executemany(
            self.dialect.sql(f"INSERT INTO samples({', '.join(SAMPLE_COLUMNS)}) VALUES ({placeholders})"), rows
        )

    # ---- plumbing -----------------------------------------------------------------------------
    def _sql(self, text: str) -> str:
        return self.dialect.sql(text)

    def _connection_or_fail(self, operation: str) -> Any:
        if self._closed:
            raise StoreError(f"results store {self.path}: {operation}: the store is closed")
        return self._live()

    @contextmanager
    def _tx(self, operation: str) -> Iterator[Any]:
        """One write transaction, committed before the recording call returns."""
        with self._lock:
            cur = self._connection_or_fail(operation).cursor()
            try:
                cur.execute(self.dialect.begin)
                yield cur
                cur.execute("COMMIT")
            except self._db_errors as exc:
                self._rollback(cur)
                raise StoreError(f"results store {self.path}: {operation} failed: {exc}") from exc
            except BaseException:
                self._rollback(cur)
                raise
            finally:
                self._close_cursor(cur)

    def _query(self, sql: str, args: tuple[Any, ...], operation: str) -> list[dict[str, Any]]:
        with self._lock:
            for attempt in (1, 2):
                try:
                    cur = self._connection_or_fail(operation).cursor()
                    try:
                        cur.execute(self._sql(sql), args)
                        return list(cur.fetchall())
                    finally:
                        self._close_cursor(cur)
                except self._db_errors as exc:
                    if attempt == 1 and self._broken():
                        continue  # a read is safe to repeat on a fresh connection
                    raise StoreError(f"results store {self.path}: {operation} failed: {exc}") from exc
        raise AssertionError("unreachable")

    def _rollback(self, cur: Any) -> None:
        with suppress(Exception):  # the connection may be gone; the server rolls back on its own then
            cur.execute("ROLLBACK")

    def _close_cursor(self, cur: Any) -> None:
        with suppress(Exception):
            cur.close()

    def _migrate(self) -> None:
        """Bring the schema to ``SCHEMA_VERSION``, one step per transaction (fresh stores too).

        Raises ConfigError when the store is newer than this code or is not a store at all."""
        try:
            while True:
                with self._lock:
                    cur = self._live().cursor()
                    try:
                        cur.execute(self.dialect.begin)
                        self._schema_lock(cur)
                        cur.execute(META_DDL)
                        cur.execute(self._sql("SELECT value FROM meta WHERE key = ?"), ("schema_version",))
                        row = cur.fetchone()
                        version = int(row["value"]) if row else 0
                        if version > SCHEMA_VERSION:
                            raise ConfigError(
                                f"results store {self.path} has schema version {version}, newer than this"
                                f" rackval understands ({SCHEMA_VERSION}): upgrade rackval to use it"
                            )
                        if version == SCHEMA_VERSION:
                            cur.execute("COMMIT")
                            return
                        for statement in self.dialect.ddl(STEPS[version]):
                            cur.execute(statement)
                        cur.execute(
                            self._sql(
                                "INSERT INTO meta(key, value) VALUES ('schema_version', ?)"
                                " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
                            ),
                            (str(version + 1),),
                        )
                        cur.execute("COMMIT")
                    except BaseException:
                        self._rollback(cur)
                        raise
                    finally:
                        self._close_cursor(cur)
        except self._db_errors as exc:
            raise ConfigError(f"results store {self.path}: cannot set up its schema: {exc}") from exc

    # ---- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Release the connection; idempotent. Everything recorded is already committed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_connection()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        rows = self._query("SELECT value FROM meta WHERE key = ?", ("schema_version",), "read schema version")
        return int(rows[0]["value"]) if rows else 0

    # ---- writing: runs, tests, measurements, devices ------------------------------------------
    def start_run(self, run: RunInfo) -> None:
        with self._tx(f"start run {run.run_id!r}") as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO runs(run_id, started_at, rack_name, rack_serial, design_revision, spec_name,"
                    " spec_version, station, operator, git_sha, rack_file, spec_file, simulated, metadata)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                ),
                (
                    run.run_id, run.started_at, run.rack_name, run.rack_serial, run.design_revision,
                    run.spec_name, run.spec_version, run.station, run.operator, run.git_sha,
                    run.rack_file, run.spec_file, int(run.simulated), json.dumps(run.metadata),
                ),
            )  # fmt: skip

    def finish_run(self, run_id: str, outcome: str, ended_at: float | None = None) -> None:
        with self._tx(f"finish run {run_id!r}") as cur:
            cur.execute(
                self._sql("UPDATE runs SET outcome = ?, ended_at = ? WHERE run_id = ?"),
                (outcome, ended_at or time.time(), run_id),
            )

    def start_test(self, run_id: str, nodeid: str, started_at: float | None = None) -> int:
        with self._tx(f"start test {nodeid}") as cur:
            cur.execute(
                self._sql("INSERT INTO tests(run_id, nodeid, started_at) VALUES (?,?,?) RETURNING test_id"),
                (run_id, nodeid, started_at or time.time()),
            )
            return int(cur.fetchone()["test_id"])

    def finish_test(self, test_id: int, outcome: str, duration_s: float, message: str = "") -> None:
        with self._tx(f"finish test {test_id}") as cur:
            cur.execute(
                self._sql("UPDATE tests SET outcome = ?, duration_s = ?, ended_at = ?, message = ? WHERE test_id = ?"),
                (outcome, duration_s, time.time(), message, test_id),
            )

    def record_measurement(self, run_id: str, test_id: int | None, m: Measurement) -> None:
        with self._tx(f"record measurement {m.name!r}") as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO measurements(run_id, test_id, name, requirement, device, channel, value,"
                    " unit, low, high, margin, outcome, recorded_at, clock_s)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                ),
                (
                    run_id, test_id, m.name, m.requirement, m.device, m.channel, _number(m.value), m.unit,
                    _number(m.low), _number(m.high), _number(m.margin), m.outcome.value, m.recorded_at,
                    m.clock_s,
                ),
            )  # fmt: skip

    def record_device(self, run_id: str, device: DeviceRecord) -> None:
        """Insert, or update what identify() said (vendor, model, serial, firmware) on a re-record."""
        with self._tx(f"record device {device.name!r}") as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO devices(run_id, name, kind, driver, address, vendor, model, serial, firmware)"
                    " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(run_id, name) DO UPDATE SET"
                    " vendor=excluded.vendor, model=excluded.model, serial=excluded.serial,"
                    " firmware=excluded.firmware"
                ),
                (
                    run_id, device.name, device.kind, device.driver, device.address,
                    device.vendor, device.model, device.serial, device.firmware,
                ),
            )  # fmt: skip

    # ---- writing: firmware, samples, actions, artifacts ---------------------------------------
    def record_firmware(
        self, run_id: str, device: str, component: str, version: str, recorded_at: float | None = None
    ) -> None:
        """One component's version on one device; re-recording the same component replaces it."""
        with self._tx(f"record firmware of {device} {component}") as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO firmware(run_id, device, component, version, recorded_at) VALUES (?,?,?,?,?)"
                    " ON CONFLICT(run_id, device, component) DO UPDATE SET"
                    " version=excluded.version, recorded_at=excluded.recorded_at"
                ),
                (run_id, device, component, version, recorded_at or time.time()),
            )

    def record_samples(self, run_id: str, rows: Iterable[SampleRow], *, batch_size: int = SAMPLE_BATCH) -> int:
        """Telemetry: ``Sample``s or ``(channel, device, t, value[, unit])`` tuples, any number.

        Committed every ``batch_size`` rows (each batch all or nothing), so a long sampler's data
        is durable as it goes and other threads' records get in between batches. Returns the
        number of rows written. ``rows`` may be a generator: it is consumed batch by batch."""
        total = 0
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(self._sample_row(run_id, row))
            if len(batch) >= batch_size:
                total += self._write_samples(run_id, batch)
                batch = []
        if batch:
            total += self._write_samples(run_id, batch)
        return total

    @staticmethod
    def _sample_row(run_id: str, row: SampleRow) -> tuple[Any, ...]:
        if isinstance(row, Sample):
            return (run_id, row.channel, row.device, float(row.t), _number(row.value), row.unit)
        if len(row) == 5:
            channel, device, t, value, unit = row
        elif len(row) == 4:
            (channel, device, t, value), unit = row, ""
        else:
            raise ValueError(f"a telemetry sample is (channel, device, t, value[, unit]), not {row!r}")
        return (run_id, str(channel), str(device), float(t), _number(value), str(unit))

    def _write_samples(self, run_id: str, batch: list[tuple[Any, ...]]) -> int:
        with self._tx(f"record {len(batch)} telemetry samples for run {run_id!r}") as cur:
            self._insert_samples(cur, batch)
        return len(batch)

    def record_action(self, run_id: str, action: ActionRecord) -> int:
        """Log something done to the rack; returns the action id ``record_undo`` takes.

        An action with no undo is stored as undo outcome ``"none"``; one with an undo as
        ``"pending"`` until ``record_undo`` says otherwise (a killed run leaves it pending)."""
        outcome = action.undo_outcome
        if outcome == UNDO_PENDING and not action.undo:
            outcome = UNDO_NONE
        with self._tx(f"record action {action.operation!r} on {action.device}") as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO actions(run_id, test_id, device, operation, undo_operation, detail,"
                    " performed_at, undo_outcome, undone_at, undo_message)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING action_id"
                ),
                (
                    run_id, action.test_id, action.device, action.operation, action.undo,
                    json.dumps(action.detail), action.performed_at, outcome, action.undone_at,
                    action.undo_message,
                ),
            )  # fmt: skip
            return int(cur.fetchone()["action_id"])

    def record_undo(self, action_id: int, outcome: str = "done", message: str = "", at: float | None = None) -> None:
        """Say whether the undo of an action ran: ``done``, ``failed`` (message says why) or
        ``skipped``. Raises KeyError for an unknown action id."""
        if outcome not in UNDO_OUTCOMES:
            raise ValueError(f"undo outcome must be one of {sorted(UNDO_OUTCOMES)}, not {outcome!r}")
        with self._tx(f"record undo of action {action_id}") as cur:
            cur.execute(
                self._sql("UPDATE actions SET undo_outcome = ?, undone_at = ?, undo_message = ? WHERE action_id = ?"),
                (outcome, at or time.time(), message, action_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no action {action_id} in {self.path}")

    def record_artifact(
        self, run_id: str, name: str, path: str | Path, kind: str = "", recorded_at: float | None = None
    ) -> None:
        """A file the run produced; re-recording the same name (a re-rendered report) replaces it."""
        with self._tx(f"record artifact {name!r}") as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO artifacts(run_id, name, path, kind, recorded_at) VALUES (?,?,?,?,?)"
                    " ON CONFLICT(run_id, name) DO UPDATE SET"
                    " path=excluded.path, kind=excluded.kind, recorded_at=excluded.recorded_at"
                ),
                (run_id, name, str(path), kind, recorded_at or time.time()),
            )

    # ---- reading ------------------------------------------------------------------------------
    def runs(self) -> list[RunInfo]:
        return [self._run_info(r) for r in self._query("SELECT * FROM runs ORDER BY started_at", (), "list runs")]

    def run(self, run_id: str) -> RunInfo:
        rows = self._query("SELECT * FROM runs WHERE run_id = ?", (run_id,), f"read run {run_id!r}")
        if not rows:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        return self._run_info(rows[0])

    def run_status(self, run_id: str) -> tuple[str, float | None]:
        """(outcome, ended_at) as stored; 'running' with no end means live or killed."""
        rows = self._query("SELECT outcome, ended_at FROM runs WHERE run_id = ?", (run_id,), f"read run {run_id!r}")
        if not rows:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        return rows[0]["outcome"], rows[0]["ended_at"]

    def tests(self, run_id: str) -> list[TestRecord]:
        rows = self._query("SELECT * FROM tests WHERE run_id = ? ORDER BY test_id", (run_id,), "read tests")
        return [TestRecord(**r) for r in rows]

    def measurements(self, run_id: str) -> list[tuple[int | None, Measurement]]:
        """(test_id, measurement) in recording order."""
        rows = self._query("SELECT * FROM measurements WHERE run_id = ? ORDER BY id", (run_id,), "read measurements")
        out = []
        for fields in rows:
            del fields["id"], fields["run_id"]
            test_id = fields.pop("test_id")
            fields["outcome"] = Outcome(fields["outcome"])
            out.append((test_id, Measurement(**fields)))
        return out

    def devices(self, run_id: str) -> list[DeviceRecord]:
        rows = self._query("SELECT * FROM devices WHERE run_id = ? ORDER BY name", (run_id,), "read devices")
        return [DeviceRecord(**{k: ("" if v is None else v) for k, v in r.items() if k != "run_id"}) for r in rows]

    def firmware(self, run_id: str) -> list[FirmwareRecord]:
        rows = self._query(
            "SELECT device, component, version, recorded_at FROM firmware WHERE run_id = ? ORDER BY device, component",
            (run_id,),
            "read firmware",
        )
        return [FirmwareRecord(**r) for r in rows]

    def samples(
        self,
        run_id: str,
        channel: str | None = None,
        *,
        device: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> list[Sample]:
        """Telemetry ordered by channel then clock time; filter to keep big runs cheap to read
        (``start``/``end`` are inclusive clock seconds)."""
        where, args = ["run_id = ?"], [run_id]
        for clause, value in (("channel = ?", channel), ("device = ?", device), ("t >= ?", start), ("t <= ?", end)):
            if value is not None:
                where.append(clause)
                args.append(value)
        rows = self._query(
            f"SELECT channel, device, t, value, unit FROM samples WHERE {' AND '.join(where)}"
            " ORDER BY channel, t, device",
            tuple(args),
            "read telemetry samples",
        )
        return [Sample(**r) for r in rows]

    def sample_channels(self, run_id: str) -> list[SampleChannel]:
        rows = self._query(
            "SELECT channel, device, unit, COUNT(*) AS count, MIN(t) AS t_first, MAX(t) AS t_last"
            " FROM samples WHERE run_id = ? GROUP BY channel, device, unit ORDER BY channel, device, unit",
            (run_id,),
            "summarise telemetry channels",
        )
        return [SampleChannel(**{**r, "count": int(r["count"])}) for r in rows]

    def actions(self, run_id: str) -> list[ActionRecord]:
        """Actions in the order they were done; ``undo_pending`` ones left the rack changed."""
        rows = self._query("SELECT * FROM actions WHERE run_id = ? ORDER BY action_id", (run_id,), "read actions")
        out = []
        for r in rows:
            del r["run_id"]
            r["undo"] = r.pop("undo_operation")
            r["detail"] = json.loads(r["detail"] or "{}")
            out.append(ActionRecord(**r))
        return out

    def artifacts(self, run_id: str) -> list[ArtifactRecord]:
        rows = self._query(
            "SELECT name, path, kind, recorded_at FROM artifacts WHERE run_id = ? ORDER BY recorded_at, name",
            (run_id,),
            "read artifacts",
        )
        return [ArtifactRecord(**r) for r in rows]

    @staticmethod
    def _run_info(r: dict[str, Any]) -> RunInfo:
        fields = {k: ("" if v is None else v) for k, v in r.items()}
        for derived in ("ended_at", "outcome"):
            del fields[derived]
        fields["simulated"] = bool(fields["simulated"])
        fields["metadata"] = json.loads(fields["metadata"] or "{}")
        return RunInfo(**fields)
