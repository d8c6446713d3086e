"""Fixtures for the third-party peer tests: servers started on 127.0.0.1, bounded, stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.snmpsim_peer import SHIPPED, SnmpSim, ours, shipped, start_snmpsim


@pytest.fixture(scope="module")
def snmpsim_extra(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """More recordings for ``snmpsim`` ({community: file}); a test module overrides this fixture to
    serve recordings it derives (e.g. one with columns taken out)."""
    return {}


@pytest.fixture(scope="module")
def snmpsim(tmp_path_factory: pytest.TempPathFactory, snmpsim_extra: dict[str, Path]) -> Iterator[SnmpSim]:
    """snmpsim serving the snmpsim-data recordings in ``SHIPPED``, ours in tests/data/snmprec/ and
    the module's ``snmpsim_extra``, each under its own v2c community (``tests/support/snmpsim_peer.py``)."""
    recordings = {name: shipped(name) for name in SHIPPED} | ours() | snmpsim_extra
    server = start_snmpsim(tmp_path_factory.mktemp("snmpsim"), recordings)
    try:
        yield server
    finally:
        server.stop()
