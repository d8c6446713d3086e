"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Any]:
    """A throwaway PostgreSQL server (tests/support/store_pg.py) per test module, stopped by PID at its end."""
    from tests.support.store_pg import PostgresServer

    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def journal_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PostgreSQL stores keep their journals (measurements and samples) on the station: here, not
    in ~ (the environment variable reaches killed-run subprocesses too). Store test modules use it
    for every test (``pytestmark = pytest.mark.usefixtures("journal_dir")``)."""
    path = tmp_path / "journals"
    monkeypatch.setenv("RACKVAL_JOURNAL_DIR", str(path))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, journal_dir: Path) -> str:
    """A fresh results store on each backend: a SQLite file, or a database on ``pg_server``."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.sqlite'}"
    return request.getfixturevalue("pg_server").create_database()
