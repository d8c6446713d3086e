"""SQLite results store: one file, WAL journal, one commit per record (the default backend).

WAL with ``synchronous=NORMAL`` survives a killed process (not a power cut); FULL would cost an
fsync per measurement for protection a bench PC rarely needs. Readers (``rackval report`` on a
live run) never block the writer.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from drivers.errors import ConfigError
from harness.store.base import SqlStore
from harness.store.schema import SCHEMA_VERSION, SQLITE

__all__ = ["SCHEMA_VERSION", "SqliteStore"]


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class SqliteStore(SqlStore):
    """The default results store. Thread-safe: one connection guarded by the base class's lock."""

    dialect = SQLITE
    _db_errors = (sqlite3.Error,)

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
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            self._db.close()
            raise ConfigError(f"results store {self.path}: cannot open: {exc}") from exc
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _live(self) -> sqlite3.Connection:
        return self._db

    def _close_connection(self) -> None:
        self._db.close()
