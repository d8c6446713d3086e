"""Results store: every run, test and measurement, written the moment it is recorded.

``open_store(url)`` picks the backend from the URL: a file path or ``sqlite:///path`` gives the
SQLite store (the default). PostgreSQL arrives with the results-store issue.
"""

from __future__ import annotations

from pathlib import Path

from drivers.errors import ConfigError
from harness.store.records import DeviceRecord, RunInfo, TestRecord
from harness.store.sqlite import SqliteStore

__all__ = ["DeviceRecord", "RunInfo", "SqliteStore", "TestRecord", "open_store"]


def open_store(url: str | Path) -> SqliteStore:
    """Open (creating if needed) the results store named by ``url``."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        raise ConfigError("--results: PostgreSQL stores are not supported yet; give a SQLite file path")
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise ConfigError(f"--results: unsupported store URL scheme in {text!r}")
    return SqliteStore(Path(text))
