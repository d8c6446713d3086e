"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
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
