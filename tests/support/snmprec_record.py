"""Make the .snmprec recordings in tests/data/snmprec/ from the simulator's vendor maps.

The snmpsim peer tests (``tests/peers/test_snmpsim_recordings.py``) serve recordings of real
units shipped in PyPI ``snmpsim-data``; this script makes the others. It starts the simulated
PDU agent (``rackval.sim.snmp_agent``) for every SNMP PDU vendor map the simulator serves, plus
an APC AP79xx-style switched rPDU2 without outlet meters (the APC map with the metered-outlet
columns taken out, as those units have them), and records each agent with net-snmp's
``snmpbulkwalk`` (a third-party walker, so the recording says what a manager sees on the wire,
with the ASN.1 types; snmpsim's own recorder does not run with pysnmp 7.1). Everything runs on
127.0.0.1 and every process is bounded.

Run from the repository root: ``.venv/bin/python -m tests.support.snmprec_record``. The recordings
are committed; re-running changes the readings (the simulator's meters have noise), not the
objects.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

from rackval.drivers.pdu import apc
from rackval.drivers.pdu.snmp_pdu_map import AgentObject, AgentQuantity, Oid, SnmpPduMap
from rackval.sim import pdu_vendors
from rackval.sim.model import RackModel
from rackval.sim.reference import RackSize
from rackval.sim.snmp_agent import SnmpAgentServer

OUT = Path(__file__).resolve().parents[1] / "data" / "snmprec"
COMMUNITY = "recorder"
RECORD_LIMIT_S = 120.0


def apc_switched_not_metered() -> SnmpPduMap:
    """APC rPDU2 as an AP7921B shows it: switched outlets, a metered unit total, no outlet meters.

    The AP79xx switched units serve the rPDU2OutletSwitched tables but no rPDU2OutletMetered
    table (rPDU2DevicePropertiesNumMeteredOutlets = 0), like the AP7902B in snmpsim-data.
    """
    assert apc.APC_RPDU2.agent is not None
    metered = Oid(f"{apc.DEVICE_NUM_METERED_OUTLETS}.{{dev}}", "rPDU2DevicePropertiesNumMeteredOutlets.{dev}")
    objects = tuple(
        AgentObject(metered, 0) if o.oid == metered else o
        for o in apc.APC_RPDU2.agent.objects
        if not o.oid.template.startswith(apc.OUTLET_METERED_STATUS_NAME)
    )
    assert not any(
        isinstance(o.value, AgentQuantity) and o.value.name in ("outlet_power_w", "outlet_current_a") for o in objects
    )
    agent = dataclasses.replace(
        apc.APC_RPDU2.agent,
        model="AP7921B",
        firmware="v6.7.2",
        serial_prefix="5A19",
        objects=objects,
    )
    return dataclasses.replace(apc.APC_RPDU2, outlet_power_w=None, outlet_current_a=None, agent=agent)


def recordings() -> dict[str, pdu_vendors.SnmpPduVendor]:
    """File stem (community under tests/data/snmprec) -> the vendor map its agent serves."""
    made = {f"rackval-sim/{v.driver}": v for v in pdu_vendors.vendors()}
    made["apc/ap7921b-switched-not-metered"] = pdu_vendors.SnmpPduVendor("apc-rpdu2", apc_switched_not_metered())
    return made


# net-snmp's type words (``snmpbulkwalk -On -Oe -Ox``) -> snmprec type tags (ASN.1 / SMI tag numbers).
_TAGS = {"INTEGER": "2", "Hex-STRING": "4x", "STRING": "4", "OID": "6", "IpAddress": "64", "Counter32": "65",
         "Gauge32": "66", "Timeticks": "67", "Opaque": "68", "Counter64": "70"}  # fmt: skip
_LINE = re.compile(r"^\.?([0-9.]+) = (?:([A-Za-z0-9-]+): )?(.*)$")


def snmprec_lines(walk: str) -> list[str]:
    """``snmpbulkwalk -On -Oe -Ox`` output -> snmprec lines ``oid|tag|value``, in OID order."""
    joined: list[str] = []
    for line in walk.splitlines():
        if line.startswith("."):
            joined.append(line)
        elif joined and line.strip():
            joined[-1] += " " + line.strip()  # a long Hex-STRING continues on the next lines
    out = []
    for line in joined:
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"unexpected snmpbulkwalk line: {line[:120]!r}")
        oid, kind, value = match.groups()
        if kind is None and value.startswith("No more variables"):
            continue  # endOfMibView: the walk's end, not an object
        if kind is None and value == '""':
            kind, value = "Hex-STRING", ""
        if kind not in _TAGS:
            raise ValueError(f"unexpected type {kind!r} in {line[:120]!r}")
        if kind == "Hex-STRING":
            value = value.replace(" ", "").lower()
        elif kind == "Timeticks":
            value = value.split(")", 1)[0].lstrip("(")
        elif kind == "OID":
            value = value.lstrip(".")
        elif kind == "STRING":
            value = value.strip('"')
        out.append(f"{oid}|{_TAGS[kind]}|{value}")
    return sorted(out, key=lambda r: tuple(int(p) for p in r.split("|", 1)[0].split(".")))


def record(host: str, port: int, community: str, out: Path) -> None:
    """Walk the agent at host:port with net-snmp's snmpbulkwalk into ``out`` (bounded in time)."""
    argv = [
        "snmpbulkwalk",
        "-v2c",
        "-c",
        community,
        "-On",
        "-Oe",
        "-Ox",
        "-t",
        "2",
        "-r",
        "1",
        f"{host}:{port}",
        ".1.3",
    ]
    run = subprocess.run(argv, capture_output=True, timeout=RECORD_LIMIT_S, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"walking for {out.name} failed ({run.returncode}): {run.stderr.decode(errors='replace')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(snmprec_lines(run.stdout.decode("ascii"))) + "\n")


def main() -> int:
    model = RackModel(RackSize(nodes=4, psus_per_node=4))  # 8 outlets per PDU, like an AP7921B
    for stem, vendor in recordings().items():
        pdu, agent = model.pdus["pdu-a"], vendor.agent
        serial = agent.serial_prefix + pdu.info.serial[-6:]  # the unit's identity from this map's profile
        pdu.info = dataclasses.replace(pdu.info, vendor=vendor.map.vendor, model=agent.model, serial=serial,
                                       firmware=agent.firmware)  # fmt: skip
        server = SnmpAgentServer(
            model, "pdu-a", vendor=vendor, reboot_duration_s=1.0, host="127.0.0.1", community=COMMUNITY
        )
        server._start()
        try:
            record(server.host, server.port, COMMUNITY, OUT / f"{stem}.snmprec")
        finally:
            server.stop()
        print(f"recorded {stem}.snmprec")
    return 0


if __name__ == "__main__":
    sys.exit(main())
