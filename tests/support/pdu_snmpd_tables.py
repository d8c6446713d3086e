"""Vendor PDU tables served by net-snmp ``snmpd`` through a ``pass_persist`` script, for tests.

Each vendor fixture is plain data: static rows (identity, counts, decimal digits, inlet
readings) and, per outlet, the rows it shows when on and when off. The script (written into the
test's tmp_path and run by snmpd, not by us) keeps each outlet's state in memory, honours SETs
of the vendor's control objects as the fixture says, appends every SET it receives to a log file
(so a test can check the exact value written, e.g. Eaton's delay 0), and can hold an outlet in
its old or a transitional state for a few GETs after a SET, like a PDU sequencing its outlets.

The expected readings a test compares with are derived from the raw integers here with the
vendor's scaling written out in the test, independent of the driver's maps.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.snmpd_peer import SnmpdPeer, start_snmpd

VENDOR_RW_COMMUNITY = "rv-vendor-rw"

PASS_PERSIST_SCRIPT = r"""
import json
import sys

spec = json.load(open(sys.argv[1]))


def parse(text):
    return tuple(int(p) for p in text.strip().strip(".").split(".") if p)


def rows_of(mapping):
    return {parse(oid): (typ, str(val)) for oid, (typ, val) in mapping.items()}


static = rows_of(spec["static"])
outlets = {key: {k: rows_of(v) for k, v in o.items() if k.startswith("rows_")} for key, o in spec["outlets"].items()}
state = {key: o["on"] for key, o in spec["outlets"].items()}
controls = {parse(oid): c for oid, c in spec["controls"].items()}
pending_reads = int(spec.get("pending_reads", 0))
pending = {}  # outlet key -> [target "on"/"off", GETs left before it settles]


def table():
    rows = dict(static)
    for key, o in outlets.items():
        rows.update(o["rows_on"] if state[key] else o["rows_off"])
        if key in pending:
            rows.update(o.get("rows_pending_" + pending[key][0], {}))
    return rows


def tick():
    for key in list(pending):
        pending[key][1] -= 1
        if pending[key][1] <= 0:
            state[key] = pending.pop(key)[0] == "on"


def reply(oid, typ_val):
    if typ_val is None:
        print("NONE")
    else:
        print("." + ".".join(map(str, oid)))
        print(typ_val[0])
        print(typ_val[1])


def do_set(oid, typ, value):
    with open(spec["log"], "a") as log:
        log.write(".".join(map(str, oid)) + " " + typ + " " + value + "\n")
    control = controls.get(oid)
    if control is None:
        return "not-writable"
    if typ != "integer":
        return "wrong-type"
    action = control["values"].get(value, control.get("default", "wrong-value"))
    if action == "wrong-value":
        return "wrong-value"
    if action in ("on", "off"):
        key = control["outlet"]
        if pending_reads > 0:
            pending[key] = [action, pending_reads]
        else:
            state[key] = action == "on"
    return "DONE"  # "ignore": accepted, but nothing happens now (a delayed command)


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        cmd = line.strip()
        if not cmd:
            continue  # snmpd follows a set with an empty line
        if cmd == "PING":
            print("PONG")
        elif cmd == "get":
            oid = parse(sys.stdin.readline())
            reply(oid, table().get(oid))
            tick()
        elif cmd == "getnext":
            oid = parse(sys.stdin.readline())
            rows = table()
            nxt = [o for o in sorted(rows) if o > oid]
            reply(nxt[0], rows[nxt[0]]) if nxt else print("NONE")
        elif cmd == "set":
            oid = parse(sys.stdin.readline())
            typ, _, value = sys.stdin.readline().strip().partition(" ")
            print(do_set(oid, typ, value.strip()))
        else:
            print("NONE")
        sys.stdout.flush()


main()
"""

Row = tuple[str, int | str]  # (pass_persist type, value)


@dataclass
class VendorTable:
    """One vendor's served subtree: what the script serves and what a test expects."""

    name: str
    base: str
    static: dict[str, Row] = field(default_factory=dict)
    outlets: dict[str, dict[str, object]] = field(default_factory=dict)
    controls: dict[str, dict[str, object]] = field(default_factory=dict)
    pending_reads: int = 0
    log: Path | None = None

    def spec(self) -> dict[str, object]:
        return {
            "static": self.static,
            "outlets": self.outlets,
            "controls": self.controls,
            "pending_reads": self.pending_reads,
            "log": str(self.log),
        }

    def sets(self) -> list[tuple[str, str, str]]:
        """Every SET the script received so far: (numeric OID, type, value as text)."""
        if self.log is None or not self.log.exists():
            return []
        return [tuple(line.split(" ", 2)) for line in self.log.read_text().splitlines()]  # type: ignore[misc]


# ---- Raritan PDU2-MIB ------------------------------------------------------------------------------
RARITAN = "1.3.6.1.4.1.13742.6"
RARITAN_IDENT = {"vendor": "Raritan", "model": "PX3-5190R", "serial": "RQA1234567", "firmware": "4.0.20.5-49038"}
# outlet -> (name, on, (power raw, power digits), (current raw, current digits))
RARITAN_OUTLETS = {
    1: ("gpu-node-01", True, (1234, 0), (5482, 3)),
    2: ("gpu-node-02", True, (4567, 1), (1986, 3)),  # 456.7 W: per-object digits differ
    3: ("mgmt-switch", False, (87, 0), (392, 3)),
}
RARITAN_INLET = {"power": (1890, 0), "voltage": (2301, 1), "current": (8215, 3)}
RARITAN_POLES = {
    1: ((230, 0), (2800, 3), (640, 0)),
    2: ((231, 0), (2700, 3), (620, 0)),
    3: ((229, 0), (2715, 3), (630, 0)),
}
ACTIVE_POWER, RMS_CURRENT, RMS_VOLTAGE = 5, 1, 4


def raritan_table() -> VendorTable:
    t = VendorTable("raritan", RARITAN, pending_reads=2)
    s = t.static
    s[f"{RARITAN}.3.2.1.1.2.1"] = ("string", RARITAN_IDENT["vendor"])
    s[f"{RARITAN}.3.2.1.1.3.1"] = ("string", RARITAN_IDENT["model"])
    s[f"{RARITAN}.3.2.1.1.4.1"] = ("string", RARITAN_IDENT["serial"])
    s[f"{RARITAN}.3.2.3.1.6.1.1.1"] = ("string", RARITAN_IDENT["firmware"])
    s[f"{RARITAN}.3.2.2.1.2.1"] = ("integer", 1)  # inletCount
    s[f"{RARITAN}.3.2.2.1.4.1"] = ("integer", len(RARITAN_OUTLETS))  # outletCount
    s[f"{RARITAN}.3.3.3.1.5.1.1"] = ("integer", len(RARITAN_POLES))  # inletPoleCount
    for kind, sensor in (("power", ACTIVE_POWER), ("voltage", RMS_VOLTAGE), ("current", RMS_CURRENT)):
        raw, digits = RARITAN_INLET[kind]
        s[f"{RARITAN}.5.2.3.1.4.1.1.{sensor}"] = ("gauge", raw)
        s[f"{RARITAN}.3.3.4.1.7.1.1.{sensor}"] = ("integer", digits)
    for pole, readings in RARITAN_POLES.items():
        for (raw, digits), sensor in zip(readings, (RMS_VOLTAGE, RMS_CURRENT, ACTIVE_POWER), strict=True):
            s[f"{RARITAN}.5.2.4.1.4.1.1.{pole}.{sensor}"] = ("gauge", raw)
            s[f"{RARITAN}.3.3.6.1.7.1.1.{pole}.{sensor}"] = ("integer", digits)
    for n, (name, on, (p_raw, p_dig), (c_raw, c_dig)) in RARITAN_OUTLETS.items():
        s[f"{RARITAN}.3.5.3.1.3.1.{n}"] = ("string", name)
        s[f"{RARITAN}.3.5.4.1.7.1.{n}.{ACTIVE_POWER}"] = ("integer", p_dig)
        s[f"{RARITAN}.3.5.4.1.7.1.{n}.{RMS_CURRENT}"] = ("integer", c_dig)
        power, current = f"{RARITAN}.5.4.3.1.4.1.{n}.{ACTIVE_POWER}", f"{RARITAN}.5.4.3.1.4.1.{n}.{RMS_CURRENT}"
        state = f"{RARITAN}.4.1.2.1.3.1.{n}"
        t.outlets[str(n)] = {
            "on": on,
            "rows_on": {state: ("integer", 7), power: ("gauge", p_raw), current: ("gauge", c_raw)},
            "rows_off": {state: ("integer", 8), power: ("gauge", 0), current: ("gauge", 0)},
        }
        t.controls[f"{RARITAN}.4.1.2.1.2.1.{n}"] = {"outlet": str(n), "values": {"0": "off", "1": "on", "2": "ignore"}}
        # snmpd GETs an object before it lets pass_persist SET it: control objects must be readable.
        s[f"{RARITAN}.4.1.2.1.2.1.{n}"] = ("integer", 1 if on else 0)
    return t


# ---- ServerTech Sentry4-MIB ------------------------------------------------------------------------
SENTRY4 = "1.3.6.1.4.1.1718.4.1"
SENTRY4_IDENT = {"vendor": "ServerTech", "model": "C2W36TE-DQME2M66/C", "serial": "ACEA0012345", "firmware": "8.0q"}
# (cord, outlet in cord) -> (name, on, power W raw, current hundredths raw); -1 = not available
SENTRY4_OUTLETS = {
    (1, 1): ("AA1 storage-01", True, 512, 247),
    (1, 2): ("AA2 storage-02", True, 498, 240),
    (1, 3): ("AA3 spare", False, 0, 0),
    (2, 1): ("BA1 gpu-node-07", True, 1100, 529),
    (2, 2): ("BA2 console", True, -1, -1),  # an outlet whose meter reports "not available"
}
SENTRY4_CORDS = {1: 1010, 2: 1100}  # st4InputCordActivePower, W
SENTRY4_PHASES = {(1, 1): (2083, 485, 1010), (2, 1): (2079, 529, 1100)}  # tenth V, hundredth A, W


def sentry4_table() -> VendorTable:
    t = VendorTable("sentry4", SENTRY4, pending_reads=1)
    s = t.static
    s[f"{SENTRY4}.1.1.3.0"] = ("string", SENTRY4_IDENT["firmware"])
    s[f"{SENTRY4}.2.2.1.4.1"] = ("string", SENTRY4_IDENT["serial"])
    s[f"{SENTRY4}.2.2.1.5.1"] = ("string", SENTRY4_IDENT["model"])
    s[f"{SENTRY4}.2.2.1.30.1"] = ("integer", len(SENTRY4_CORDS))
    for cord, watts in SENTRY4_CORDS.items():
        s[f"{SENTRY4}.3.2.1.21.1.{cord}"] = ("integer", 1)  # phase count
        s[f"{SENTRY4}.3.2.1.24.1.{cord}"] = ("integer", sum(1 for c, _ in SENTRY4_OUTLETS if c == cord))
        s[f"{SENTRY4}.3.3.1.3.1.{cord}"] = ("integer", watts)
    for (cord, phase), (volts, amps, watts) in SENTRY4_PHASES.items():
        s[f"{SENTRY4}.5.3.1.3.1.{cord}.{phase}"] = ("integer", volts)
        s[f"{SENTRY4}.5.3.1.6.1.{cord}.{phase}"] = ("integer", amps)
        s[f"{SENTRY4}.5.3.1.8.1.{cord}.{phase}"] = ("integer", watts)
    for (cord, n), (name, on, watts, amps) in SENTRY4_OUTLETS.items():
        idx = f"1.{cord}.{n}"
        key = f"{cord}.{n}"
        s[f"{SENTRY4}.8.2.1.3.{idx}"] = ("string", name)
        state, power, current = (f"{SENTRY4}.8.3.1.{col}.{idx}" for col in (1, 7, 3))
        off_value = -1 if watts < 0 else 0
        t.outlets[key] = {
            "on": on,
            "rows_on": {state: ("integer", 1), power: ("integer", watts), current: ("integer", amps)},
            "rows_off": {state: ("integer", 2), power: ("integer", off_value), current: ("integer", off_value)},
        }
        t.controls[f"{SENTRY4}.8.5.1.2.{idx}"] = {"outlet": key, "values": {"1": "on", "2": "off", "3": "ignore"}}
        s[f"{SENTRY4}.8.5.1.2.{idx}"] = ("integer", 0)  # none(0)
    return t


# ---- Eaton EATON-EPDU-MIB --------------------------------------------------------------------------
EATON = "1.3.6.1.4.1.534.6.6.7"
EATON_IDENT = {"vendor": "Eaton", "model": "EMAH28", "serial": "GA12K34567", "firmware": "04.01.0011"}
# outlet -> (name, on, watts, mA); -1 = not available
EATON_OUTLETS = {
    1: ("compute-01", True, 802, 3512),
    2: ("compute-02", True, 790, 3458),
    3: ("tor-switch", True, 310, 1360),
    4: ("pdu-spare", False, -1, 0),
}
EATON_INPUT = {"total_watts": 1902, "voltage_mv": 230512, "current_ma": 8330, "watts": 1902}


def eaton_table() -> VendorTable:
    t = VendorTable("eaton", EATON, pending_reads=2)
    s = t.static
    s[f"{EATON}.1.2.1.2.0"] = ("string", "ePDU MANAGED 0U")
    s[f"{EATON}.1.2.1.3.0"] = ("string", EATON_IDENT["model"])
    s[f"{EATON}.1.2.1.4.0"] = ("string", EATON_IDENT["serial"])
    s[f"{EATON}.1.2.1.5.0"] = ("string", EATON_IDENT["firmware"])
    s[f"{EATON}.1.2.1.20.0"] = ("integer", 1)
    s[f"{EATON}.1.2.1.22.0"] = ("integer", len(EATON_OUTLETS))
    s[f"{EATON}.3.1.1.5.0.1"] = ("integer", 1)
    s[f"{EATON}.3.2.1.3.0.1.1"] = ("integer", EATON_INPUT["voltage_mv"])
    s[f"{EATON}.3.3.1.4.0.1.1"] = ("integer", EATON_INPUT["current_ma"])
    s[f"{EATON}.3.4.1.4.0.1.1"] = ("integer", EATON_INPUT["watts"])
    s[f"{EATON}.3.5.1.4.0.1"] = ("integer", EATON_INPUT["total_watts"])
    for n, (name, on, watts, milliamps) in EATON_OUTLETS.items():
        s[f"{EATON}.6.1.1.3.0.{n}"] = ("string", name)
        status, power, current = (f"{EATON}.6.{col}.0.{n}" for col in ("6.1.2", "5.1.3", "4.1.3"))
        t.outlets[str(n)] = {
            "on": on,
            "rows_on": {status: ("integer", 1), power: ("integer", watts), current: ("integer", milliamps)},
            "rows_off": {status: ("integer", 0), power: ("integer", -1 if watts < 0 else 0), current: ("integer", 0)},
            "rows_pending_off": {status: ("integer", 2)},  # still on, turning off
            "rows_pending_on": {status: ("integer", 3)},  # still off, turning on
        }
        # The written value is a delay in seconds: 0 acts now, -1 cancels, >0 would act later
        # (accepted, nothing happens during the test).
        for col, action in (("6.6.1.3", "off"), ("6.6.1.4", "on")):
            t.controls[f"{EATON}.{col}.0.{n}"] = {"outlet": str(n), "values": {"0": action}, "default": "ignore"}
            s[f"{EATON}.{col}.0.{n}"] = ("integer", -1)  # reads -1: no command pending
    return t


def start_vendor_snmpd(workdir: Path, tables: list[VendorTable]) -> SnmpdPeer:
    """snmpd with one pass_persist script per vendor subtree, writable with VENDOR_RW_COMMUNITY."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "pdu_pass_persist.py"
    script.write_text(PASS_PERSIST_SCRIPT)
    lines = [f"rwcommunity {VENDOR_RW_COMMUNITY} 127.0.0.1 .1.3.6.1.4.1"]
    for table in tables:
        table.log = workdir / f"{table.name}-sets.log"
        spec = workdir / f"{table.name}.json"
        spec.write_text(json.dumps(table.spec()))
        lines.append(f"pass_persist .{table.base} {sys.executable} {script} {spec}")
    return start_snmpd(workdir, extra_lines=lines)
