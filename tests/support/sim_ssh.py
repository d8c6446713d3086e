"""Helpers for tests/sim/test_sim_ssh_shells.py: start a simulated SSH server (stopped at the end
of the block) and build driver configs that pin its host key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko

from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.sim.ssh_server import SshServer, write_known_hosts

USER, PASSWORD = "admin", "sim-Pa55word"


@dataclass
class SimSsh:
    """A running simulated SSH server plus the known_hosts file that pins its key."""

    server: SshServer
    known_hosts: Path
    device: str

    @property
    def address(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    def config(self, *, password: str = PASSWORD, timeout_s: float = 5.0, **options: object) -> DeviceConfig:
        opts: dict[str, object] = {"known_hosts": str(self.known_hosts)}
        opts.update(options)
        return DeviceConfig(
            name=self.device,
            kind="sim",
            driver="sim",
            host=self.server.host,
            port=self.server.port,
            credentials=Credentials(username=USER, password=Secret(password)),
            options=opts,
            timeout_s=timeout_s,
        )


@contextmanager
def sim_ssh(
    start: Callable[..., SshServer], model: object, device: str, directory: Path, **kwargs: object
) -> Iterator[SimSsh]:
    """Run ``start(model, device, ...)`` on 127.0.0.1 until the context exits (then stop it)."""
    key = paramiko.ECDSAKey.generate()
    server = start(model, device, username=USER, password=PASSWORD, host_key=key, **kwargs)
    try:
        known_hosts = directory / f"known_hosts-{device}"
        write_known_hosts(known_hosts, server.host, server.port, key)
        yield SimSsh(server, known_hosts, device)
    finally:
        server.stop()
