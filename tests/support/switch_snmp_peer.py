"""LLDP-MIB, ENTITY-MIB and ENTITY-SENSOR-MIB rows for net-snmp's snmpd, via ``pass_persist``.

snmpd itself serves IF-MIB for the machine's real interfaces; it implements none of these three
MIBs, so a small pass_persist script (one process per registered subtree, the subtree passed as
its argument) serves the rows below. The LLDP local port numbers deliberately differ from any
ifIndex, and one neighbour sits on a port number (4) that has no lldpLocPortTable row, to prove
the driver maps ports through lldpLocPortTable rather than guessing ifIndex.

Values are (type, text) in the pass protocol: "integer", "string", or "octet" (hex bytes, used
for binary MAC addresses).
"""

from __future__ import annotations

import sys
from pathlib import Path

LLDP_BASE = "1.0.8802.1.1.2"
ENTITY_BASE = "1.3.6.1.2.1.47"
SENSOR_BASE = "1.3.6.1.2.1.99"

LLDP = "1.0.8802.1.1.2.1"
LOC_PORT = f"{LLDP}.3.7.1"
REM = f"{LLDP}.4.1.1"
ENT = "1.3.6.1.2.1.47.1.1.1.1"
SENSOR = "1.3.6.1.2.1.99.1.1.1"


def _i(n: int) -> tuple[str, str]:
    return ("integer", str(n))


def _s(text: str) -> tuple[str, str]:
    return ("string", text)


def _mac(text: str) -> tuple[str, str]:
    return ("octet", " ".join(text.split(":")))


# lldpLocPortNum -> (lldpLocPortIdSubtype, lldpLocPortId, lldpLocPortDesc)
LOCAL_PORTS = {
    7: (_i(5), _s("Ethernet1/1"), _s("to gpu-node-01")),  # interfaceName(5)
    12: (_i(3), _mac("0a:00:00:00:00:0c"), _s("Ethernet1/2")),  # macAddress(3): name from desc
    15: (_i(7), _s("1"), _s("")),  # local(7) holding an ifIndex: 1 is "lo" on Linux
    20: (_i(1), _s("uplink-a"), _s("")),  # interfaceAlias(1) matching no ifAlias
}

# (TimeMark, LocalPortNum, RemIndex) -> chassis subtype, chassis id, port subtype, port id, port desc, sys name
REMOTES = {
    (0, 7, 1): (
        _i(4),
        _mac("1c:34:da:00:00:01"),
        _i(3),
        _mac("1c:34:da:00:00:02"),
        _s("enp27s0np0"),
        _s("gpu-node-01"),
    ),
    (0, 12, 2): (_i(4), _mac("1c:34:da:00:10:00"), _i(5), _s("Ethernet120"), _s("to leaf"), _s("spine-01")),
    (35000, 15, 3): (_i(7), _s("mgmt-sw-r12"), _i(7), _s("Gi1/0/12"), _s(""), _s("mgmt-sw-r12")),
    # no system name, and a MAC port ID whose bytes happen to be printable ASCII ("ABCDEF")
    (0, 20, 4): (_i(4), _mac("02:fc:00:aa:bb:01"), _i(3), _mac("41:42:43:44:45:46"), _s(""), _s("")),
    (0, 4, 5): (_i(4), _mac("1c:34:da:00:20:00"), _i(5), _s("swp1"), _s(""), _s("leaf-b")),
}

# entPhysicalIndex -> class, containedIn, name, descr, mfg, model, serial, software, firmware
ENTITIES = {
    1: (6, 2, "PSU1", "Power supply 1", "Delta", "DPS-2400AB", "PSU0001", "", "1.2"),
    2: (3, 0, "Chassis", "Rack switch chassis", "Celestica", "DS5000", "CS2233000451", "4.2.1", "1.0.7"),
    100: (8, 2, "CPU temp", "CPU temperature sensor", "", "", "", "", ""),
    101: (8, 2, "Fan 1", "Fan tray 1 speed", "", "", "", "", ""),
    102: (8, 1, "PSU1 input power", "PSU1 input power sensor", "", "", "", "", ""),
    103: (8, 2, "PSU2 input power", "PSU2 input power sensor", "", "", "", "", ""),
    104: (8, 2, "", "ASIC temperature", "", "", "", "", ""),
    105: (8, 2, "12V rail", "12 V rail voltage", "", "", "", "", ""),
}

# entPhysicalIndex -> type, scale, precision, value, operStatus
SENSORS = {
    100: (8, 9, 1, 375, 1),  # celsius, units, 1 decimal: 37.5 C
    101: (10, 9, 0, 8400, 1),  # rpm
    102: (6, 8, 0, 412500, 1),  # watts, milli: 412.5 W
    103: (6, 9, 0, 0, 2),  # unavailable
    104: (8, 9, -1, 7, 1),  # precision -1: 70 C
    105: (4, 8, 2, 1205000, 1),  # voltsDC, milli, 2 decimals: 12.05 V
}


def rows() -> dict[str, tuple[str, str]]:
    """Every served OID (no leading dot) -> (pass type, value text)."""
    out: dict[str, tuple[str, str]] = {}
    for num, values in LOCAL_PORTS.items():
        for col, value in zip((2, 3, 4), values, strict=True):
            out[f"{LOC_PORT}.{col}.{num}"] = value
    for (mark, local, rem), values in REMOTES.items():
        for col, value in zip((4, 5, 6, 7, 8, 9), values, strict=True):
            out[f"{REM}.{col}.{mark}.{local}.{rem}"] = value
    for idx, (cls, parent, name, descr, mfg, model, serial, sw, fw) in ENTITIES.items():
        cols = {2: _s(descr), 4: _i(parent), 5: _i(cls), 7: _s(name), 9: _s(fw), 10: _s(sw)}
        cols.update({11: _s(serial), 12: _s(mfg), 13: _s(model)})
        for col, value in cols.items():
            out[f"{ENT}.{col}.{idx}"] = value
    for idx, values in SENSORS.items():
        for col, value in zip((1, 2, 3, 4, 5), values, strict=True):
            out[f"{SENSOR}.{col}.{idx}"] = _i(value)
    return out


SCRIPT = r"""
import sys

ROWS = {rows!r}
PREFIX = tuple(int(p) for p in sys.argv[1].strip(".").split("."))
TABLE = {{}}
for oid, value in ROWS.items():
    key = tuple(int(p) for p in oid.split("."))
    if key[: len(PREFIX)] == PREFIX:
        TABLE[key] = value
ORDER = sorted(TABLE)


def parse(text):
    return tuple(int(p) for p in text.strip().strip(".").split(".") if p)


def reply(oid):
    typ, val = TABLE[oid]
    print("." + ".".join(map(str, oid)))
    print(typ)
    print(val)


while True:
    line = sys.stdin.readline()
    if not line:
        break
    cmd = line.strip()
    if not cmd:
        continue
    if cmd == "PING":
        print("PONG")
    elif cmd == "get":
        oid = parse(sys.stdin.readline())
        if oid in TABLE:
            reply(oid)
        else:
            print("NONE")
    elif cmd == "getnext":
        oid = parse(sys.stdin.readline())
        nxt = [o for o in ORDER if o > oid]
        if nxt:
            reply(nxt[0])
        else:
            print("NONE")
    elif cmd == "set":
        sys.stdin.readline()
        sys.stdin.readline()
        print("not-writable")
    else:
        print("NONE")
    sys.stdout.flush()
"""


def pass_persist_lines(workdir: Path) -> list[str]:
    """snmpd.conf lines registering the script for the three subtrees (write the script first)."""
    script = workdir / "switch_mibs_pass_persist.py"
    script.write_text(SCRIPT.format(rows=rows()))
    return [f"pass_persist .{base} {sys.executable} {script} {base}" for base in (LLDP_BASE, ENTITY_BASE, SENSOR_BASE)]
