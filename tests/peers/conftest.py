"""Fixtures for the third-party peer tests: servers started on 127.0.0.1, bounded, stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.snmpsim_peer import SHIPPED, SnmpSim, ours, shipped, start_snmpsim
from tests.support.sshd_peer import ShellHost, start_sshd


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


@pytest.fixture(scope="module")
def shell_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShellHost]:
    """A real sshd on 127.0.0.1 running any command it is sent, for transport tests that script the
    remote side with shell one-liners (slow, huge or hostile output); stopped by PID at module end."""
    peer = start_sshd(tmp_path_factory.mktemp("sshd-sh"), 'eval "$SSH_ORIGINAL_COMMAND"', peer_type=ShellHost)
    try:
        yield peer
    finally:
        peer.stop()
