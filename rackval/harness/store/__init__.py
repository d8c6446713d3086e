"""Results store: every run, test, measurement, telemetry sample, action and artifact, durable
the moment it is recorded (measurements through a journal file, batched into the database:
see ``rackval.harness.store.journal``).

``open_store(url)`` picks the backend from the URL: a file path or ``sqlite:///path`` gives the
SQLite store (the default); ``postgresql://user:password@host:port/db`` gives the PostgreSQL
store. Both share one schema (``rackval.harness.store.schema``) and one implementation
(``rackval.harness.store.base.SqlStore``), so they answer every call the same way.
"""

from __future__ import annotations

from pathlib import Path

from rackval.core.errors import ConfigError
from rackval.harness.store.base import SqlStore
from rackval.harness.store.records import (
    ActionRecord,
    ArtifactRecord,
    CauseRecord,
    DeviceRecord,
    FirmwareRecord,
    RunInfo,
    Sample,
    SampleChannel,
    TestRecord,
)
from rackval.harness.store.schema import SCHEMA_VERSION
from rackval.harness.store.sql import StoreError
from rackval.harness.store.sqlite import SqliteStore
from rackval.harness.store.urls import redact_url

__all__ = [
    "SCHEMA_VERSION",
    "ActionRecord",
    "ArtifactRecord",
    "CauseRecord",
    "DeviceRecord",
    "FirmwareRecord",
    "RunInfo",
    "Sample",
    "SampleChannel",
    "SqlStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "TestRecord",
    "open_store",
]

Store = SqlStore  # the type to annotate with: either backend


def open_store(url: str | Path) -> SqlStore:
    """Open (creating and migrating if needed) the results store named by ``url``.

    Raises ConfigError, naming the URL without its password, for an unknown scheme, a malformed
    URL, an unreachable server, refused credentials or a store newer than this code."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from rackval.harness.store.postgres import PostgresStore

        return PostgresStore(text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise ConfigError(
            f"--results: unsupported store URL {redact_url(text)!r}:"
            " give a SQLite file path, sqlite:///path or postgresql://user:password@host:port/db"
        )
    return SqliteStore(Path(text))
