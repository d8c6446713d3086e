"""The results-store logic both backends share: every write, every read, schema migration.

A backend supplies a DB-API connection whose rows are dicts, its ``Dialect`` and its error types;
everything else lives here, so SQLite and PostgreSQL cannot drift apart in meaning.

Durability: every record is durable before the recording call returns, so a run killed half-way
(SIGKILL included) keeps everything it recorded. Measurements, the hot path, are appended to a
per-store journal file (one ``write()`` each: see ``rackval.harness.store.journal``) and reach the
database in batches: every ``FLUSH_ROWS`` measurements, ``FLUSH_INTERVAL_S`` after the first
unwritten one (a background thread), before any other write or read of this store, and on
``close``. Every other record is committed in its own transaction at once. A killed run's
journal is replayed into the database by the next store opened on it (on the same station),
exactly once. Such a run stays ``running`` in the runs table and ``run_status`` returns
``("running", None)``; the report reads that as incomplete.

Thread safety: one connection per store, guarded by a lock; a transaction never spans two
calls, so threads (fan-out over devices, telemetry samplers) interleave record by record.
Telemetry goes in batches of ``SAMPLE_BATCH`` rows, one transaction each, so a sampler writing a
million rows never holds the lock for long.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from rackval.core.errors import ConfigError
from rackval.harness.measure import Measurement, Outcome
from rackval.harness.store import journal as journals
from rackval.harness.store.records import (
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
from rackval.harness.store.schema import META_DDL, SCHEMA_VERSION, STEPS, Dialect

SAMPLE_BATCH = 5000

SAMPLE_COLUMNS = ("run_id", "channel", "device", "t", "value", "unit")

MEASUREMENT_COLUMNS = (
    "run_id", "test_id", "name", "requirement", "device", "channel", "value", "unit", "low", "high", "margin",
    "outcome", "recorded_at", "clock_s",
)  # fmt: skip
WIDTH = len(MEASUREMENT_COLUMNS)
FLUSH_ROWS = 1024  # journaled measurements written to the database in one transaction at most
FLUSH_INTERVAL_S = 0.2  # how long a journaled measurement waits, at most, to be in the database
INSERT_CHUNKS = (64, 16, 4, 1)  # rows per multi-row INSERT, largest first (see _insert_measurements)

log = logging.getLogger("rackval.store")
_encode = journals.encode

SampleRow = Sample | tuple[Any, ...]


_INSERT_SQL: dict[tuple[str, int], str] = {}  # (dialect, rows) -> the multi-row INSERT, built once
UPSERT_META = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"


class StoreError(Exception):
    """A read or write failed after the store was opened (lost server, disk full, bad record).

    Names the store (never with a password) and what was being done."""


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


class _Flusher:
    """The process's one background thread that writes due batches (one for all stores, since
    starting a thread costs as much as recording dozens of measurements). Entries are taken in
    deadline order; a store is held weakly, so a dropped store is not kept alive by its entry."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._due: list[tuple[float, int, weakref.ref[SqlStore]]] = []
        self._count = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        threading.Thread(target=self._run, name="rackval-store-flusher", daemon=True).start()

    def schedule(self, store: SqlStore, delay: float) -> None:
        with self._cond:
            entry = (time.monotonic() + delay, next(self._count), weakref.ref(store))
            heapq.heappush(self._due, entry)
            if self._due[0] is entry:
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._due:
                    self._cond.wait()
                    continue
                delay = self._due[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                store = heapq.heappop(self._due)[2]()
                if store is None:
                    continue
                self._cond.release()
                try:
                    store._flush_in_background()
                except Exception:  # never let one store's trouble stop the flushing of all
                    log.exception("results store %s: background flush failed", store.path)
                finally:
                    del store
                    self._cond.acquire()


_flusher: _Flusher | None = None
_flusher_lock = threading.Lock()
_journaling: weakref.WeakSet[SqlStore] = weakref.WeakSet()  # stores with a journal, for the exit flush
_exit_flush_registered = False


def _flush_all_at_exit() -> None:
    """A script that exits without closing its store still leaves its measurements in the
    database, as when every measurement was committed at once (the journal would keep them for
    the next open anyway). Stores stay open: later exit handlers may still use them."""
    for store in list(_journaling):
        store._flush_at_exit()


def _register_for_exit_flush(store: SqlStore) -> None:
    global _exit_flush_registered
    with _flusher_lock:
        _journaling.add(store)
        if not _exit_flush_registered:
            atexit.register(_flush_all_at_exit)
            _exit_flush_registered = True


def _background_flusher() -> _Flusher:
    """Started on first use, and again in a forked child (which inherits no thread)."""
    global _flusher
    flusher = _flusher
    if flusher is not None and flusher.pid == os.getpid():
        return flusher
    with _flusher_lock:
        if _flusher is None or _flusher.pid != os.getpid():
            _flusher = _Flusher()
        return _flusher


class SqlStore:
    """Shared implementation; see ``SqliteStore`` and ``PostgresStore`` for the backends."""

    dialect: Dialect
    path: Any  # a Path for SQLite; the URL without its password for PostgreSQL
    _db_errors: tuple[type[BaseException], ...] = ()
    _transient_errors: tuple[type[BaseException], ...] = ()  # worth retrying later (locked, lost server)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        # Measurement journal (see rackval.harness.store.journal). ``_pending`` holds the rows of
        # journal records ``_committed + 1 .. journal.records`` flattened, WIDTH values a row.
        self._journal_directory: Path | None = None  # set by the backend; None: no journal
        self._journal_prefix = ""  # of the journals' file names; "": a directory of their own
        self._journal: journals.Journal | None = None
        self._journal_off = False  # it failed (disk full, read-only directory): commit each
        self._pending: list[Any] = []
        self._committed = 0
        self._mark_unknown = False  # a batch's COMMIT failed: it may be in the database or not
        self._marked = False  # the journal's mark was written to the database
        self._known_runs: set[str] = set()
        self._known_tests: set[Any] = set()
        self._retry_s = 0.0  # background flush failing: seconds until its next try

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

    def _insert_measurements(self, cur: Any, flat: list[Any]) -> None:
        """Insert rows given flattened (WIDTH values each). Multi-row INSERTs cost ~half of a
        row-by-row executemany on SQLite; the sizes are fixed (INSERT_CHUNKS, each used as often
        as it fits, largest first) so a connection compiles each statement once."""
        start, end = 0, len(flat)
        for rows in INSERT_CHUNKS:
            step = rows * WIDTH
            stop = start + (end - start) // step * step
            if stop > start:
                cur.executemany(self._insert_sql(rows), [flat[i : i + step] for i in range(start, stop, step)])
                start = stop

    def _insert_sql(self, rows: int) -> str:
        sql = _INSERT_SQL.get((self.dialect.name, rows))
        if sql is None:
            values = ",".join(["(" + ",".join("?" * WIDTH) + ")"] * rows)
            sql = self._sql(f"INSERT INTO measurements({', '.join(MEASUREMENT_COLUMNS)}) VALUES {values}")
            _INSERT_SQL[(self.dialect.name, rows)] = sql
        return sql

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
        """One write transaction, committed before the recording call returns.

        Journaled measurements go first, in the same transaction (one commit saved per batch),
        so the database always holds records in the order this store was given them; if the
        transaction fails they stay journaled and pending, for the next call."""
        with self._lock:
            cur = self._connection_or_fail(operation).cursor()
            flushing = bool(self._pending)
            try:
                cur.execute(self.dialect.begin)
                if flushing:
                    self._write_pending(cur)
                yield cur
                cur.execute("COMMIT")
            except self._db_errors as exc:
                self._rollback(cur)
                self._mark_unknown = self._mark_unknown or flushing
                raise StoreError(f"results store {self.path}: {operation} failed: {exc}") from exc
            except BaseException:
                self._rollback(cur)
                self._mark_unknown = self._mark_unknown or flushing
                raise
            else:
                if flushing:
                    self._pending_committed()
            finally:
                self._close_cursor(cur)

    def _tuple_cursor(self, conn: Any) -> Any:
        """A cursor whose rows are plain tuples (bulk reads skip building a dict per row)."""
        raise NotImplementedError

    def _query(self, sql: str, args: tuple[Any, ...], operation: str, *, tuples: bool = False) -> list[Any]:
        """Rows as dicts (or tuples, for bulk reads)."""
        with self._lock:
            if self._pending:
                self._flush_locked(operation)  # a read sees everything recorded before it
            for attempt in (1, 2):
                try:
                    conn = self._connection_or_fail(operation)
                    cur = self._tuple_cursor(conn) if tuples else conn.cursor()
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

    # ---- measurement journal ------------------------------------------------------------------
    def _flush_locked(self, operation: str) -> None:
        """Write the journaled measurements to the database, with the journal's mark, in one
        transaction (caller holds the lock). Raises StoreError; the rows then stay journaled
        and pending, and the next call retries them.

        Safe to repeat on a fresh connection: if a COMMIT's answer was lost, the mark read back
        says which rows made it (so PostgreSQL blips are retried once, like reads)."""
        for attempt in (1, 2):
            cur = self._connection_or_fail(operation).cursor()
            try:
                cur.execute(self.dialect.begin)
                self._write_pending(cur)
                cur.execute("COMMIT")
            except self._db_errors as exc:
                self._rollback(cur)
                self._mark_unknown = True
                if attempt == 1 and self._broken() and self._journal is not None:
                    continue
                rows = len(self._pending) // WIDTH
                raise StoreError(
                    f"results store {self.path}: {operation}: writing {rows} journaled measurements failed: {exc}"
                ) from exc
            except BaseException:
                self._rollback(cur)
                self._mark_unknown = True
                raise
            finally:
                self._close_cursor(cur)
            self._pending_committed()
            return

    def _write_pending(self, cur: Any) -> None:
        """Inside an open transaction: the pending rows and the journal's mark (see above)."""
        journal = self._journal
        if self._mark_unknown and journal is not None:
            cur.execute(self._sql("SELECT value FROM meta WHERE key = ?"), (journals.mark_key(journal.id),))
            row = cur.fetchone()
            done = int(row["value"]) if row else 0
            if done > self._committed:  # that batch did commit after all: drop what it wrote
                del self._pending[: (done - self._committed) * WIDTH]
                self._committed = done
        if self._pending:
            self._insert_measurements(cur, self._pending)
            if journal is not None:
                cur.execute(self._sql(UPSERT_META), (journals.mark_key(journal.id), str(journal.records)))
                self._marked = True  # (if this transaction fails, deleting the mark is a no-op)

    def _pending_committed(self) -> None:
        self._pending = []
        self._committed = self._journal.records if self._journal is not None else 0
        self._mark_unknown = False

    def _start_journal(self, *, at_open: bool = False) -> journals.Journal | None:
        """Create the store's journal. Done at open, like SQLite's own ``-wal`` file, since
        creating a file is the one slow step of the journal (0.05 to 0.3 ms here): a run should
        not pay it in its first measurement. Where it fails at open (a read-only directory, a
        reader's business) it is tried again at the first measurement, and if it fails then,
        each measurement is committed instead."""
        if self._journal_directory is None or self._journal_off:
            return None
        try:
            journal = journals.Journal(self._journal_directory, self._journal_prefix, str(self.path))
        except OSError as exc:
            if not at_open:
                self._journal_off = True
                log.warning(
                    "results store %s: cannot create a measurement journal in %s (%s): committing each"
                    " measurement instead (slower, as durable)", self.path, self._journal_directory, exc,
                )  # fmt: skip
            return None
        self._journal = journal
        # A store dropped without close() (a crashed test, a leaked object) leaves no empty
        # journal behind; one holding measurements stays for the next open to replay.
        weakref.finalize(self, journal.remove_if_unused)
        _register_for_exit_flush(self)
        return journal

    def _flush_at_exit(self) -> None:
        if not self._lock.acquire(timeout=10):  # the flusher thread stuck on a dead server
            return
        try:
            if not self._closed and self._pending:
                self._flush_locked("write journaled measurements at exit")
        except Exception as exc:  # they stay in the journal, for the next open to replay
            log.warning("%s (kept in the journal for the next open)", exc)
        finally:
            self._lock.release()

    def _stop_journal(self, operation: str) -> None:
        """Everything journaled is in the database: delete the journal and its mark."""
        journal, self._journal = self._journal, None
        if journal is None:
            return
        journal.remove()
        self._committed = 0
        if self._marked:  # a reader's journal never got a mark: no write transaction at close
            self._delete_mark(journal.id, operation)
            self._marked = False
        if not self._journal_prefix:
            journals.remove_if_empty(journal.directory)

    def _delete_mark(self, journal_id: str, operation: str) -> None:
        cur = self._connection_or_fail(operation).cursor()
        try:
            cur.execute(self.dialect.begin)
            cur.execute(self._sql("DELETE FROM meta WHERE key = ?"), (journals.mark_key(journal_id),))
            cur.execute("COMMIT")
        except self._db_errors as exc:  # a leftover mark of a removed journal is harmless
            self._rollback(cur)
            log.debug("results store %s: could not delete journal mark %s: %s", self.path, journal_id, exc)
        finally:
            self._close_cursor(cur)

    def _schedule_flush(self) -> None:
        """Called when a first measurement waits: it reaches the database FLUSH_INTERVAL_S later
        at the latest, so a live report in another process sees it even if nothing follows."""
        _background_flusher().schedule(self, FLUSH_INTERVAL_S)

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
                _background_flusher().schedule(self, self._retry_s)
            else:
                self._retry_s = 0.0

    def _check_references(self, run_id: str, test_id: Any, name: str) -> None:
        """Refuse a measurement of an unknown run or test now, as the foreign keys would have
        when it was committed at once, rather than poison a later batch (caller holds the lock)."""
        operation = f"record measurement {name!r}"
        cur = self._connection_or_fail(operation).cursor()
        try:
            if run_id not in self._known_runs:
                cur.execute(self._sql("SELECT 1 AS found FROM runs WHERE run_id = ?"), (run_id,))
                if cur.fetchone() is None:
                    raise StoreError(f"results store {self.path}: {operation} failed: no run {run_id!r}")
                self._known_runs.add(run_id)
            if test_id is not None and test_id not in self._known_tests:
                cur.execute(self._sql("SELECT 1 AS found FROM tests WHERE test_id = ?"), (test_id,))
                if cur.fetchone() is None:
                    raise StoreError(f"results store {self.path}: {operation} failed: no test {test_id!r}")
                self._known_tests.add(test_id)
        except self._db_errors as exc:
            raise StoreError(f"results store {self.path}: {operation} failed: {exc}") from exc
        finally:
            self._close_cursor(cur)

    def _open_journals(self) -> None:
        """At open (backends call this once migrated): replay dead writers' journals, create ours."""
        self._replay_journals()
        self._start_journal(at_open=True)

    def _replay_journals(self) -> list[str]:
        """Write the measurements of dead writers' journals into the database.

        Returns the ids of the journals replayed. A journal that cannot be replayed (not a
        journal, rows the database refuses) is renamed ``*.failed``, kept for a person, and
        logged; opening the store goes on."""
        directory = self._journal_directory
        if directory is None:
            return []
        replayed: list[str] = []
        try:
            self._replay_each(directory, replayed)
        except OSError as exc:  # an unreadable journal directory must not keep the store shut
            log.warning("results store %s: cannot replay the journals in %s: %s", self.path, directory, exc)
        if not self._journal_prefix:
            journals.remove_if_empty(directory)
        return replayed

    def _replay_each(self, directory: Path, replayed: list[str]) -> None:
        for found in journals.dead_journals(directory, self._journal_prefix, WIDTH):
            if isinstance(found, Path):
                with suppress(OSError):
                    os.rename(found, found.with_suffix(journals.FAILED_SUFFIX))
                log.warning("results store %s: %s is not a measurement journal: set aside", self.path, found)
                continue
            try:
                with self._lock:
                    written = self._replay(found)
                    found.remove()
                    self._delete_mark(found.journal_id, "replay journal")
            except StoreError as exc:
                if isinstance(exc.__cause__, self._transient_errors) or self._broken():
                    log.warning("results store %s: journal %s not replayed yet: %s", self.path, found.path, exc)
                else:  # the database refuses its rows: retrying would fail forever
                    target = found.set_aside()
                    log.warning("results store %s: journal %s not replayed, kept as %s: %s", self.path, found.path,
                                target, exc)  # fmt: skip
                continue
            finally:
                found.release()
            replayed.append(found.journal_id)
            log.info(
                "results store %s: replayed %d measurement(s) of dead writer %s%s", self.path, written,
                found.journal_id, f" ({found.torn_bytes} torn bytes at its end ignored)" if found.torn_bytes else "",
            )  # fmt: skip

    def _replay(self, found: journals.DeadJournal) -> int:
        """The rows of ``found`` not yet in the database, inserted with its mark, in one transaction."""
        operation = f"replay journal {found.path}"
        cur = self._connection_or_fail(operation).cursor()
        try:
            cur.execute(self.dialect.begin)
            cur.execute(self._sql("SELECT value FROM meta WHERE key = ?"), (journals.mark_key(found.journal_id),))
            row = cur.fetchone()
            rows = found.rows[int(row["value"]) if row else 0 :]
            if rows:
                self._insert_measurements(cur, [value for r in rows for value in r])
                cur.execute(self._sql(UPSERT_META), (journals.mark_key(found.journal_id), str(len(found.rows))))
            cur.execute("COMMIT")
            return len(rows)
        except self._db_errors as exc:
            self._rollback(cur)
            raise StoreError(f"results store {self.path}: {operation} failed: {exc}") from exc
        except BaseException:
            self._rollback(cur)
            raise
        finally:
            self._close_cursor(cur)

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
        if name is None or requirement is None or device is None or channel is None or unit is None:
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
            recorded_at, m.clock_s,
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

    def sample_batches(self, run_id: str, size: int = 100_000) -> Iterator[list[tuple[Any, ...]]]:
        """Every sample of a run as (channel, device, t, value, unit) tuples, ordered by channel,
        t, device, ``size`` rows at a time: one pass over a 10 M-sample soak for exports, with
        bounded memory. Pages are keyset queries (the store's lock is held per page only, never
        across the caller's work between pages)."""
        columns = "SELECT channel, device, t, value, unit FROM samples WHERE run_id = ?"
        order = " ORDER BY channel, t, device LIMIT ?"
        rows = self._query(columns + order, (run_id, size), "read telemetry samples", tuples=True)
        while rows:
            yield rows
            if len(rows) < size:
                return
            channel, device, t = rows[-1][0], rows[-1][1], rows[-1][2]
            rows = self._query(
                columns + " AND (channel, t, device) > (?, ?, ?)" + order,
                (run_id, channel, t, device, size),
                "read telemetry samples",
                tuples=True,
            )

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
