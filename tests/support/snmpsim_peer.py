"""Start snmpsim (PyPI ``snmpsim``, a third-party SNMP agent simulator) on 127.0.0.1 for driver tests.

snmpsim answers from .snmprec recordings: one file per simulated agent, selected by the SNMPv2c
community (the file's path under the data directory, without extension). The recordings come
from two places: real units shipped in PyPI ``snmpsim-data`` (``SHIPPED``: APC rPDU2 PDUs and
switches of families the SNMP drivers support) and ours in ``tests/data/snmprec/``
(``tests/support/snmprec_record.py`` made them). v2c only: snmpsim's SNMPv3 authPriv answers do
not decrypt (snmpsim #188).

snmpsim refuses to run as root unless told (``SNMPSIM_ALLOW_ROOT``; CI runs as root); it serves
only the copies in the test's own directory, on a free loopback port, and is stopped by PID.
"""

from __future__ import annotations

import bz2
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rackval.core.errors import DeviceError
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.transport.snmp import SnmpTransport
from tests.support.ipmi_sim_peer import free_udp_port

OURS = Path(__file__).resolve().parents[1] / "data" / "snmprec"

# community -> recording inside snmpsim-data (real units, recorded by snmpsim's authors and users)
SHIPPED = {
    "apc-ap7902b": "UPS/apc-7902b.snmprec",  # switched rPDU2, no outlet meters, total power -1
    "apc-ap8932": "UPS/apc-8932.snmprec",  # switched rPDU2, no outlet meters, metered total
    "apc-ap8641": "UPS/apc-8641.snmprec",  # switched and metered-by-outlet rPDU2
    "arista-dcs-7150s": "cloud/arista-dcs-7150s-52-cl.snmprec.bz2",  # IF-MIB, LLDP, ENTITY(-SENSOR)-MIB
    "cisco-c3560": "network/switch/cisco-c3560.snmprec.bz2",  # IF-MIB, LLDP, no ENTITY-SENSOR-MIB
    "brocade-icx6430": "network/switch/brocade-icx6430-24.snmprec.bz2",  # IF-MIB only
}


def shipped(name: str) -> Path:
    """The path of a recording shipped in snmpsim-data (``SHIPPED[name]``)."""
    root = Path(str(resources.files("snmpsim_data") / "data"))
    return root / SHIPPED[name]


def ours() -> dict[str, Path]:
    """Our recordings: community (path under tests/data/snmprec without .snmprec) -> file."""
    return {str(p.relative_to(OURS).with_suffix("")): p for p in sorted(OURS.rglob("*.snmprec"))}


@dataclass
class SnmpSim:
    """A running snmpsim command responder: its port, data directory and log."""

    proc: subprocess.Popen[bytes]
    port: int
    data: Path
    log: Path

    def config(self, community: str, *, name: str, kind: str, driver: str, **options: Any) -> DeviceConfig:
        """A v2c DeviceConfig for the agent recorded as ``community``."""
        return DeviceConfig(
            name=name,
            kind=kind,
            driver=driver,
            host="127.0.0.1",
            port=self.port,
            credentials=Credentials(snmp_version="2c", community=Secret(community)),
            options={"retries": 1, **options},
            timeout_s=3.0,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _extension(path: Path) -> str:
    return ".snmprec.bz2" if path.name.endswith(".snmprec.bz2") else ".snmprec"


def start_snmpsim(directory: Path, recordings: Mapping[str, Path], *, limit_s: float = 60.0) -> SnmpSim:
    """Serve ``recordings`` ({community: .snmprec[.bz2] file}) from ``directory``; the caller stops it."""
    if not recordings:
        raise ValueError("snmpsim needs at least one recording")
    data = directory / "data"
    for community, source in recordings.items():
        target = data / f"{community}{_extension(source)}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    port = free_udp_port()
    log = directory / "snmpsim.log"
    argv = [
        sys.executable, "-c", "import sys; from snmpsim.commands.responder import main; sys.exit(main())",
        f"--data-dir={data}", f"--cache-dir={directory / 'cache'}", f"--agent-udpv4-endpoint=127.0.0.1:{port}",
        "--log-level=error",
    ]  # fmt: skip
    env = dict(os.environ, SNMPSIM_ALLOW_ROOT="true")
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            argv, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT
        )
    sim = SnmpSim(proc, port, data, log)
    try:
        _wait_ready(sim, next(iter(recordings)), limit_s)
    except BaseException:
        sim.stop()
        raise
    return sim


def _wait_ready(sim: SnmpSim, community: str, limit_s: float) -> None:
    """Poll sysDescr until snmpsim answers (it indexes every recording before it binds)."""
    deadline = time.monotonic() + limit_s
    config = dataclasses.replace(
        sim.config(community, name="snmpsim", kind="pdu", driver="probe", retries=0), timeout_s=0.5
    )
    last = ""
    while time.monotonic() < deadline:
        if sim.proc.poll() is not None:
            raise RuntimeError(f"snmpsim exited with {sim.proc.returncode}: {sim.log.read_text()[-2000:]}")
        try:
            with SnmpTransport(config) as t:
                t.get(["1.3.6.1.2.1.1.1.0"])
            return
        except DeviceError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"snmpsim not ready on UDP {sim.port} within {limit_s} s: {last} {sim.log.read_text()[-2000:]}")


# ---- reading recordings (what a test expects) ---------------------------------------------------------
def read_snmprec(path: Path) -> dict[str, str | int | None]:
    """{oid: value} of a recording: INTEGER as int, OCTET STRING as text, other types as their
    text; None for an object whose value a variation module computes (it changes while served)."""
    opener = bz2.open if path.name.endswith(".bz2") else open
    out: dict[str, str | int | None] = {}
    records: list[list[str]] = []
    with opener(path, "rt", encoding="latin-1") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("|", 2)
            if len(parts) == 3 and parts[0][:1].isdigit():
                records.append(parts)
            elif records:  # an OCTET STRING with a line break goes on on the next line
                records[-1][2] += "\n" + line.rstrip("\n")
    for oid, tag, value in records:
        if ":" in tag:
            out[oid] = None
        elif tag == "2":
            out[oid] = int(value)
        elif tag == "4x":
            out[oid] = bytes.fromhex(value).decode("utf-8", errors="replace")
        else:
            out[oid] = value
    return out


def without_columns(source: Path, prefixes: tuple[str, ...], target: Path) -> Path:
    """A plain .snmprec copy of ``source`` without the objects under ``prefixes`` (each ending in
    "."): a unit that lacks them."""
    opener = bz2.open if source.name.endswith(".bz2") else open
    with opener(source, "rt", encoding="ascii") as fh:
        lines = fh.read().splitlines()
    kept = [line for line in lines if not line.split("|", 1)[0].startswith(prefixes)]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(kept) + "\n")
    return target
