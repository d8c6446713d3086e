"""The measurement journal's side of the results store: pending rows, batches, marks.

Every record is durable before the recording call returns. Measurements, the hot path, are
appended to a per-store journal file (one ``write()`` each: see ``rackval.harness.store.journal``)
and reach the database in batches: every ``FLUSH_ROWS`` measurements, ``FLUSH_INTERVAL_S`` after
the first unwritten one (the background flusher, ``rackval.harness.store.flusher``; both limits
are read in ``base``, where ``record_measurement`` lives), before any other write or read of this
store (``_tx`` and ``_query`` here write them first), and on ``close``. A batch carries the
journal's mark (how many of its records are in the database), so a batch whose COMMIT answer was
lost is retried without writing anything twice. Where no journal can be had (a read-only
directory, a full disk), each measurement is committed at once instead.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rackval.harness.store import journal as journals
from rackval.harness.store.flusher import register_for_exit_flush
from rackval.harness.store.sql import UPSERT_META, WIDTH, SqlCore, StoreError

log = logging.getLogger("rackval.store")


class JournaledSql(SqlCore):
    """Journaled measurements on their way into the database, and the transactions and reads that
    write them first, so the database always holds records in the order they were given."""

    def __init__(self) -> None:
        super().__init__()
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
        register_for_exit_flush(self)
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
