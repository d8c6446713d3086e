"""PostgreSQL results store (psycopg 3), for a lab where many stations feed one database.

Selected by ``postgresql://user:password@host:port/dbname?sslmode=...`` URLs (any libpq URL
parameter passes through). Same schema, same semantics and same code as the SQLite store (see
``rackval.harness.store.base``); here live only the connection, the COPY fast path for measurements and the
cross-process lock for schema setup.

The connection runs in autocommit mode and the base class wraps every record in BEGIN/COMMIT,
so a record is on the server before the call returns, and a killed client loses nothing it
recorded. A connection broken by a server restart or a network blip is replaced on the next
call; the call that hit the break raises StoreError (a write is never silently repeated, since
it may already have been committed).

Measurements are journaled and batched (``rackval.harness.store.journal``): on the station, each is in
a local journal file when ``record_measurement`` returns, and on the server within
``FLUSH_INTERVAL_S`` and before this store reads or writes anything else. The journal directory
is local to the station that wrote it, so a killed run's last measurements reach the server
when that station next opens the store (the next run does, first thing). It is
``journal_dir``, else ``$RACKVAL_JOURNAL_DIR``, else ``$XDG_STATE_HOME/rackval/journals`` (or
``~/.local/state/rackval/journals``), with one sub-directory per server and database. A batch
carries its journal mark, so it is retried on a fresh connection like a read.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from rackval.core.errors import ConfigError
from rackval.harness.store.base import SqlStore
from rackval.harness.store.schema import POSTGRESQL
from rackval.harness.store.sql import MEASUREMENT_COLUMNS, WIDTH, StoreError
from rackval.harness.store.urls import redact_url, scrub

# pg_advisory_xact_lock key that serialises schema setup ("rackval" in ASCII, as a bigint)
_SCHEMA_LOCK_KEY = 0x7261636B76616C


def _psycopg() -> Any:
    """Imported on first use so SQLite users never pay for (or need) the PostgreSQL client."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency; guard for broken envs
        raise ConfigError("PostgreSQL results stores need the psycopg package: pip install 'psycopg[binary]'") from exc
    return psycopg


class PostgresStore(SqlStore):
    """Results store in a PostgreSQL database. ``.path`` is the URL without its password.

    Options (URL query parameters are libpq's): ``connect_timeout`` defaults to 10 s here so an
    unreachable server fails fast with a ConfigError rather than hanging the test session."""

    dialect = POSTGRESQL

    def __init__(self, url: str, *, connect_timeout_s: int = 10, journal_dir: str | Path | None = None) -> None:
        super().__init__()
        psycopg = _psycopg()
        self._db_errors = (psycopg.Error,)
        self._transient_errors = (psycopg.OperationalError,)
        self._url = url
        self.path = redact_url(url)
        self.url = self.path
        try:
            params = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigError(f"results store {self.path}: not a valid PostgreSQL URL: {scrub(str(exc), url)}") from exc
        params.setdefault("connect_timeout", str(connect_timeout_s))
        params.setdefault("application_name", "rackval")
        self._params = params
        self._journal_directory = journal_directory(params, journal_dir)
        self._conn = self._connect(ConfigError)
        try:
            self._migrate()
            self._open_journals()
        except BaseException:
            self._conn.close()
            raise

    def _connect(self, error: type[Exception]) -> Any:
        psycopg = _psycopg()
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(**self._params, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            message = scrub(str(exc).strip(), self._url)
            raise error(f"results store {self.path}: cannot connect: {message}") from exc

    def _tuple_cursor(self, conn: Any) -> Any:
        from psycopg.rows import tuple_row

        return conn.cursor(row_factory=tuple_row)

    def _live(self) -> Any:
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = self._connect(StoreError)
        return self._conn

    def _broken(self) -> bool:
        return bool(self._conn.closed or self._conn.broken)

    def _close_connection(self) -> None:
        self._conn.close()

    def _schema_lock(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))

    def _insert_measurements(self, cur: Any, flat: list[Any]) -> None:
        """COPY here too: one round trip for the whole batch."""
        with cur.copy(f"COPY measurements ({', '.join(MEASUREMENT_COLUMNS)}) FROM STDIN") as copy:
            for i in range(0, len(flat), WIDTH):
                copy.write_row(flat[i : i + WIDTH])


def journal_directory(params: dict[str, Any], configured: str | Path | None = None) -> Path:
    """Where this station keeps the measurement journals of one database (see the module doc)."""
    if configured is None:
        configured = os.environ.get("RACKVAL_JOURNAL_DIR") or None
    if configured is None:
        state = os.environ.get("XDG_STATE_HOME")
        if not state:
            try:
                state = str(Path.home() / ".local" / "state")
            except (KeyError, RuntimeError):  # no home (a bare service account): still station-local
                state = os.path.join(tempfile.gettempdir(), f"rackval-{os.getuid()}")
        configured = Path(state) / "rackval" / "journals"
    host, port = str(params.get("host") or "localhost"), str(params.get("port") or "5432")
    dbname, user = str(params.get("dbname") or ""), str(params.get("user") or "")
    digest = hashlib.sha256(f"{user}@{host}:{port}/{dbname}".encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9_.]+", "_", f"{host}-{port}-{dbname}")[:80]
    return Path(configured) / f"pg-{readable}-{digest}"
