"""Helpers for tests/test_sim_ssh_shells.py: start a simulated SSH server, build driver configs,
and a parser for SONiC's ``show interfaces counters -j`` (proposed for drivers/switch/sonic.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko

from drivers.config import Credentials, DeviceConfig, Secret
from drivers.errors import DeviceProtocolError
from drivers.protocols import PortCounters
from drivers.sim.ssh_server import SshServer, write_known_hosts

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


def _count(value: object, field: str, port: str, device: str, address: str) -> int | None:
    text = str(value).replace(",", "").strip()
    if text == "N/A":
        return None
    if not text.isdigit():
        raise DeviceProtocolError(
            device, address, "parse 'show interfaces counters -j' output", f"{port}: {field} is not a count: {value!r}"
        )
    return int(text)


def parse_interfaces_counters_json(text: str, *, device: str = "<text>", address: str = "-") -> list[PortCounters]:
    """``show interfaces counters -j`` (portstat table_as_json) -> PortCounters per port, natural order.

    portstat prints packet counts (RX_OK/TX_OK), not octets, so ``in_octets``/``out_octets`` are
    None; errors and drops come from RX_ERR/TX_ERR/RX_DRP/TX_DRP ("1,234" strings, "N/A" = None).
    """
    operation = "parse 'show interfaces counters -j' output"
    start = text.find("{")
    try:
        doc = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError as exc:
        raise DeviceProtocolError(device, address, operation, f"not valid JSON: {exc.msg} at char {exc.pos}") from exc
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise DeviceProtocolError(device, address, operation, "expected an object of per-interface objects")

    def natural(name: str) -> tuple[str, int]:
        digits = "".join(ch for ch in name if ch.isdigit())
        return name.rstrip("0123456789"), int(digits or 0)

    ports = []
    for name in sorted(doc, key=natural):
        row = doc[name]
        missing = [k for k in ("RX_ERR", "TX_ERR", "RX_DRP", "TX_DRP") if k not in row]
        if missing:
            raise DeviceProtocolError(device, address, operation, f"{name}: missing {', '.join(missing)}")
        ports.append(
            PortCounters(
                name=name,
                in_octets=None,
                out_octets=None,
                in_errors=_count(row["RX_ERR"], "RX_ERR", name, device, address),
                out_errors=_count(row["TX_ERR"], "TX_ERR", name, device, address),
                in_discards=_count(row["RX_DRP"], "RX_DRP", name, device, address),
                out_discards=_count(row["TX_DRP"], "TX_DRP", name, device, address),
            )
        )
    return ports
