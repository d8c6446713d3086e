"""The results store both backends are: every record written and read, durable when recorded.

Built in layers, each with one job (see ``rackval.harness.store.sql``); this one is the API the
harness uses. Durability: every record is durable before the recording call returns, so a run
killed half-way (SIGKILL included) keeps everything it recorded. Measurements, the hot path, go
to the store's journal and reach the database in batches of at most ``FLUSH_ROWS``, at most
``FLUSH_INTERVAL_S`` after the first unwritten one (``rackval.harness.store.journaled``); every
other record is committed in its own transaction at once. A killed run's journal is replayed by
the next store opened on it (``rackval.harness.store.replay``).

Thread safety: one connection per store, guarded by a lock; a transaction never spans two
calls, so threads (fan-out over devices, telemetry samplers) interleave record by record.
Telemetry goes in segments, a transaction per batch (``rackval.harness.store.segments``), so a
sampler writing a million samples never holds the lock for long.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from rackval.harness.measure import Measurement, Outcome
from rackval.harness.store import journal as journals
from rackval.harness.store.flusher import background_flusher
from rackval.harness.store.records import (
    UNDO_NONE,
    UNDO_OUTCOMES,
    UNDO_PENDING,
    ActionRecord,
    ArtifactRecord,
    CauseRecord,
    DeviceRecord,
    FirmwareRecord,
    RunInfo,
    TestRecord,
)
from rackval.harness.store.sample_stream import SampleStreams
from rackval.harness.store.sql import WIDTH, StoreError

FLUSH_ROWS = 1024  # journaled measurements written to the database in one transaction at most
FLUSH_INTERVAL_S = 0.2  # how long a journaled measurement waits, at most, to be in the database

log = logging.getLogger("rackval.store")
_encode = journals.encode


def _number(value: float | None) -> float | None:
    """NaN becomes NULL on both backends (SQLite would store NULL anyway; PostgreSQL would keep NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row with every value as a plain str, int or float (what the journal can carry)."""
    return tuple(
        v if v is None or type(v) in (str, int, float) else (float(v) if isinstance(v, float) else
        int(v) if isinstance(v, int) else str(v))
        for v in row
    )  # fmt: skip


class SqlStore(SampleStreams):
    """Shared implementation; see ``SqliteStore`` and ``PostgresStore`` for the backends."""

    def __init__(self) -> None:
        super().__init__()
        self._retry_s = 0.0  # background flush failing: seconds until its next try

    # ---- measurements waiting in the journal: the background flush -----------------------------
    def _schedule_flush(self) -> None:
        """Called when a first measurement waits: it reaches the database FLUSH_INTERVAL_S later
        at the latest, so a live report in another process sees it even if nothing follows."""
        background_flusher().schedule(self, FLUSH_INTERVAL_S)

    def _flush_in_background(self) -> None:
        """The process's flusher thread calls this when this store's first waiting row is due."""
        with self._lock:
            if self._closed or not self._pending:
                return
            try:
                self._flush_locked("write journaled measurements to the database")
            except Exception as exc:  # the rows stay journaled; the next caller sees the error
                if not self._retry_s:
                    log.warning("%s (kept in the journal; retrying)", exc)
                self._retry_s = min(2 * self._retry_s or FLUSH_INTERVAL_S, 10.0)  # a server down: back off
                background_flusher().schedule(self, self._retry_s)
            else:
                self._retry_s = 0.0

    # ---- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Write the journaled measurements, delete the journal, release the connection; idempotent.

        Raises StoreError if the journaled measurements cannot be written (the database is
        gone): they stay in the journal, which the next store opened on this database on this
        station replays. The store is closed either way."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._pending:
                    self._flush_locked("close")
                self._stop_journal("close")
            except BaseException:
                if self._journal is not None:
                    log.warning("results store %s: measurements kept for replay in %s", self.path, self._journal.path)
                    self._journal.release()
                raise
            finally:
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
            self._known_runs.add(run.run_id)

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
            test_id = int(cur.fetchone()["test_id"])
            self._known_tests.add(test_id)
            return test_id

    def finish_test(self, test_id: int, outcome: str, duration_s: float, message: str = "") -> None:
        with self._tx(f"finish test {test_id}") as cur:
            cur.execute(
                self._sql("UPDATE tests SET outcome = ?, duration_s = ?, ended_at = ?, message = ? WHERE test_id = ?"),
                (outcome, duration_s, time.time(), message, test_id),
            )

    def record_measurement(self, run_id: str, test_id: int | None, m: Measurement) -> None:
        """Record one judged measurement; it survives a kill of this process once this returns.

        The hot path (see bench/bench_store.py): one ``write()`` to the journal, no database
        round trip. Raises StoreError for an unknown run or test, a missing field, or a closed
        store, as a direct INSERT would have."""
        name, requirement, device, channel, unit, recorded_at = (
            m.name, m.requirement, m.device, m.channel, m.unit, m.recorded_at,
        )  # fmt: skip
        detail = m.detail
        if name is None or requirement is None or device is None or channel is None or unit is None or detail is None:
            raise StoreError(f"results store {self.path}: record measurement {name!r} failed: a text field is None")
        if recorded_at is None:
            raise StoreError(f"results store {self.path}: record measurement {name!r} failed: no recorded_at")
        # NaN (a lost reading) is stored as NULL, and anything numeric as a float
        value, low, high, margin = m.value, m.low, m.high, m.margin
        if value.__class__ is not float or value != value:
            value = _number(value)
        if low is not None and (low.__class__ is not float or low != low):
            low = _number(low)
        if high is not None and (high.__class__ is not float or high != high):
            high = _number(high)
        if margin is not None and (margin.__class__ is not float or margin != margin):
            margin = _number(margin)
        row = (
            run_id, test_id, name, requirement, device, channel, value, unit, low, high, margin, str(m.outcome),
            recorded_at, m.clock_s, detail,
        )  # fmt: skip
        try:
            data = _encode(row)
        except ValueError:  # a str or int subclass (an enum, numpy): journal and store plain values
            row = _plain(row)
            data = _encode(row)
        with self._lock:
            if self._closed:
                raise StoreError(f"results store {self.path}: record measurement {name!r}: the store is closed")
            if run_id not in self._known_runs or (test_id is not None and test_id not in self._known_tests):
                self._check_references(run_id, test_id, name)
            journal = self._journal
            if journal is None and not self._journal_off:
                journal = self._start_journal()
            if journal is not None and not self._journal_off:
                try:
                    journal.append(data)
                except OSError as exc:  # maybe torn: append no more to it (replay stops at a tear)
                    self._journal_off = True
                    log.warning("results store %s: journal %s failed (%s): committing each measurement", self.path,
                                journal.path, exc)  # fmt: skip
                    self._flush_locked(f"record measurement {name!r}")  # the journaled ones, with their mark
                    self._stop_journal(f"record measurement {name!r}")
                else:
                    pending = self._pending
                    if not pending:
                        self._schedule_flush()
                    pending.extend(row)
                    if len(pending) >= FLUSH_ROWS * WIDTH:
                        self._flush_locked(f"record measurement {name!r}")
                    return
            # no journal: committed at once, in its own transaction
            self._pending.extend(row)
            try:
                self._flush_locked(f"record measurement {name!r}")
            except BaseException:
                del self._pending[-WIDTH:]  # not recorded: the caller sees the error, as before
                raise

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

    def record_cause(self, run_id: str, cause: CauseRecord) -> None:
        """A root cause of the run; re-recording the same key (it took another device) replaces it."""
        with self._tx(f"record cause {cause.key!r}") as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO causes(run_id, cause_key, summary, devices, test, found_at, clock_s)"
                    " VALUES (?,?,?,?,?,?,?) ON CONFLICT(run_id, cause_key) DO UPDATE SET"
                    " summary=excluded.summary, devices=excluded.devices"
                ),
                (
                    run_id, cause.key, cause.summary, json.dumps(list(cause.devices)), cause.test,
                    cause.found_at, cause.clock_s,
                ),
            )  # fmt: skip

    def record_test_cause(self, test_id: int, cause_key: str) -> None:
        """Group a (failed) test under root cause ``cause_key`` (see ``record_cause``)."""
        with self._tx(f"record the cause of test {test_id}") as cur:
            cur.execute(self._sql("UPDATE tests SET cause = ? WHERE test_id = ?"), (cause_key, test_id))
            if cur.rowcount == 0:
                raise KeyError(f"no test {test_id} in {self.path}")

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

    def causes(self, run_id: str) -> list[CauseRecord]:
        """The run's root causes in the order they were found."""
        rows = self._query(
            "SELECT cause_key, summary, devices, test, found_at, clock_s FROM causes WHERE run_id = ?"
            " ORDER BY found_at, cause_key",
            (run_id,),
            "read causes",
        )
        return [
            CauseRecord(r["cause_key"], r["summary"], tuple(json.loads(r["devices"] or "[]")), r["test"],
                        r["found_at"], r["clock_s"])
            for r in rows
        ]  # fmt: skip

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
