"""SQLite results store: one file, WAL journal, one commit per record (the default backend).

WAL with ``synchronous=NORMAL`` survives a killed process (not a power cut); FULL would cost an
fsync per measurement for protection a bench PC rarely needs. Readers (``rackval report`` on a
live run) never block the writer.

Measurements are the exception to "one commit per record": they go to a journal file first and
into the database in batches (``rackval.harness.store.journal``); the journals live next to the store
file, as ``<store file>-measurements.<host>-<pid>-<random>.journal`` (one per open store that
records measurements, deleted when it closes), so whoever opens the store next replays what a
killed run left there. Telemetry streams keep theirs beside them, as
``<store file>-samples.<id>.sample-journal`` (``rackval.harness.store.sample_stream``).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from rackval.core.errors import ConfigError
from rackval.harness.store.base import SqlStore
from rackval.harness.store.schema import SCHEMA_VERSION, SQLITE
from rackval.harness.store.sql import INSERT_CHUNKS, UPSERT_META

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

PAGE_SIZE = 16384  # telemetry segments are rows of 1-4 KB: 4 KB pages would hold one and waste the rest
log = logging.getLogger("rackval.store")


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class SqliteStore(SqlStore):
    """The default results store. Thread-safe: one connection guarded by the base class's lock."""

    dialect = SQLITE
    _db_errors = (sqlite3.Error,)
    _transient_errors = (sqlite3.OperationalError,)  # locked, disk I/O: the rows may go in later

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 30.0) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit mode: the base class issues BEGIN IMMEDIATE / COMMIT itself
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_s
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"results store {self.path}: cannot open: {exc}") from exc
        try:
            self._db.row_factory = _dict_row
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only: an existing one keeps its own
            self._wal_mode(busy_timeout_s)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            self._db.close()
            raise ConfigError(f"results store {self.path}: cannot open: {exc}") from exc
        if str(path) not in ("", ":memory:"):  # an in-memory store has nothing to survive a kill
            self._journal_directory = self.path.parent
            self._journal_prefix = f"{self.path.name}-measurements."
            self._sample_prefix = f"{self.path.name}-samples."
        try:
            self._migrate()
            self._compact_after_migration()
            self._open_journals()
            self._prepare_batch_statements()
        except BaseException:
            self._db.close()
            raise

    def _compact_after_migration(self) -> None:
        """A schema step that folded a big table away (the rows of the old ``samples`` table into
        segments) leaves most of the file free: give it back to the file system once."""
        if not self._migrated_steps:
            return
        free = self._db.execute("PRAGMA freelist_count").fetchone()["freelist_count"]
        pages = self._db.execute("PRAGMA page_count").fetchone()["page_count"]
        if free * 4 > pages:
            log.info("results store %s: compacting after migration (%d of %d pages free)", self.path, free, pages)
            self._db.execute("VACUUM")

    def _wal_mode(self, busy_timeout_s: float) -> None:
        """Switch to WAL. Several stations creating one fresh file at once: the switch can answer
        "database is locked" at once, without waiting as the busy timeout would, so wait here."""
        deadline = time.monotonic() + busy_timeout_s
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _prepare_batch_statements(self) -> None:
        """Compile the statements of a measurement batch now, with the connection (~150 us): the
        first batch of every run would pay it otherwise. (An executemany over no rows compiles a
        statement into the connection's statement cache and runs nothing.)"""
        for sql in (*(self._insert_sql(rows) for rows in INSERT_CHUNKS), self._sql(UPSERT_META)):
            self._db.executemany(sql, [])

    def _tuple_cursor(self, conn: sqlite3.Connection) -> sqlite3.Cursor:
        cur = conn.cursor()
        cur.row_factory = None
        return cur

    def _live(self) -> sqlite3.Connection:
        return self._db

    def _close_connection(self) -> None:
        self._db.close()
