"""The SQL plumbing every layer of the results store stands on, and what a backend must supply.

A backend (``SqliteStore``, ``PostgresStore``) supplies a DB-API connection whose rows are dicts,
its ``Dialect`` and its error types, through the hooks below; everything else is shared, in layers
that each add one job: ``SqlCore`` (here: statements, cursors, schema migration) <
``JournaledSql`` (measurements journaled and batched, ``journaled``) < ``JournalReplay`` (dead
writers' journals written into the database, ``replay``) < ``SampleSegments`` (telemetry as
compressed segments, ``segments``) < ``SampleStreams`` (telemetry journaled as it is taken,
``sample_stream``) < ``SqlStore`` (every other record written and read,
``base``). So SQLite and PostgreSQL cannot drift apart in meaning.
"""

from __future__ import annotations

import threading
from contextlib import suppress
from typing import Any

from rackval.core.errors import ConfigError
from rackval.harness.store.schema import META_DDL, SCHEMA_VERSION, STEPS, Dialect, Step

MEASUREMENT_COLUMNS = (
    "run_id", "test_id", "name", "requirement", "device", "channel", "value", "unit", "low", "high", "margin",
    "outcome", "recorded_at", "clock_s", "detail",
)  # fmt: skip
WIDTH = len(MEASUREMENT_COLUMNS)
MEASUREMENT_APPENDED = ("",)
"""Values of the measurement columns appended since journals were first written (schema step 4:
``detail``), for the journal records of a writer that died before: replayed with these, not lost."""
INSERT_CHUNKS = (64, 16, 4, 1)  # rows per multi-row INSERT, largest first (see _insert_measurements)

_INSERT_SQL: dict[tuple[str, int], str] = {}  # (dialect, rows) -> the multi-row INSERT, built once
UPSERT_META = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"


class StoreError(Exception):
    """A read or write failed after the store was opened (lost server, disk full, bad record).

    Names the store (never with a password) and what was being done."""


class SqlCore:
    """Connection hooks, statements and cursors shared by both backends; schema migration."""

    dialect: Dialect
    path: Any  # a Path for SQLite; the URL without its password for PostgreSQL
    _db_errors: tuple[type[BaseException], ...] = ()
    _transient_errors: tuple[type[BaseException], ...] = ()  # worth retrying later (locked, lost server)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._migrated_steps = 0  # schema steps this open ran

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

    # ---- plumbing -----------------------------------------------------------------------------
    def _sql(self, text: str) -> str:
        return self.dialect.sql(text)

    def _connection_or_fail(self, operation: str) -> Any:
        if self._closed:
            raise StoreError(f"results store {self.path}: {operation}: the store is closed")
        return self._live()

    def _tuple_cursor(self, conn: Any) -> Any:
        """A cursor whose rows are plain tuples (bulk reads skip building a dict per row)."""
        raise NotImplementedError

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
                        step = STEPS[version]
                        for statement in self.dialect.ddl(step if isinstance(step, str) else step.ddl):
                            cur.execute(statement)
                        if isinstance(step, Step):
                            step.then(cur, self._sql)
                        self._migrated_steps += 1
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
