"""Measure the simulated SNMP agents' CPU per var-bind (not a test; run by hand).

    .venv/bin/python bench/bench_sim_snmp.py [--reference] [--frozen]

The agent runs in a child process (so its CPU is not mixed with the client's); the child reports
``time.process_time()`` on request, before and after a batch of requests made from this process
through ``SnmpTransport`` (v2c and v3 authPriv): a 24-OID GET and a bulk walk of ~192 var-binds,
for the APC PDU agent (cheap objects, and metered ones that read the model) and the switch agent.
``--reference`` builds the 32-node reference rack (the model's per-read cost grows with it);
``--frozen`` uses a frozen SimClock (the model then does not integrate on each read).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from rackval.sim.clock import SimClock
from rackval.sim.model import RackModel
from rackval.sim.reference import REFERENCE_SIZE, RackSize
from rackval.sim.snmp_agent import start_pdu_agent
from rackval.sim.snmp_switch_agent import start_switch_snmp_agent
reference, frozen = sys.argv[1] == "1", sys.argv[2] == "1"
model = RackModel(REFERENCE_SIZE if reference else RackSize(), clock=SimClock(0 if frozen else 1))
pdu, switch = sorted(model.pdus)[0], sorted(model.switches)[0]
creds = dict(community="bench-ro", v3_user="bench", v3_auth_key="bench-auth-key", v3_priv_key="bench-priv-key")
a = start_pdu_agent(model, pdu, **creds)
s = start_switch_snmp_agent(model, switch, **creds)
sizes = {"ports": len(model.switches[switch].ports), "outlets": len(model.pdus[pdu].outlets)}
print(json.dumps({"pdu": [pdu, a.port], "switch": [switch, s.port], **sizes}), flush=True)
for line in sys.stdin:
    print(time.process_time(), flush=True)
a.stop(); s.stop()
"""


def main() -> None:
    from rackval.drivers.config import Credentials, DeviceConfig, Secret
    from rackval.drivers.pdu import apc
    from rackval.drivers.switch import mibs
    from rackval.drivers.transport.snmp import SnmpTransport

    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("--frozen", action="store_true")
    ap.add_argument("--seconds", type=float, default=2.0, help="client time per scenario")
    args = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(int(args.reference)), str(int(args.frozen))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        info = json.loads(child.stdout.readline())

        def cpu() -> float:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write("cpu\n")
            child.stdin.flush()
            return float(child.stdout.readline())

        def config(device: str, port: int, v3: bool) -> DeviceConfig:
            creds = (
                Credentials(
                    snmp_version="3",
                    username="bench",
                    auth_protocol="SHA256",
                    auth_key=Secret("bench-auth-key"),
                    priv_protocol="AES128",
                    priv_key=Secret("bench-priv-key"),
                )
                if v3
                else Credentials(snmp_version="2c", community=Secret("bench-ro"))
            )
            return DeviceConfig(device, "x", "x", "127.0.0.1", port, creds, timeout_s=5)

        pdu_name, pdu_port = info["pdu"]
        sw_name, sw_port = info["switch"]
        n_out = info["outlets"]
        columns = (
            apc.OUTLET_SWITCHED_STATUS_NAME,
            apc.OUTLET_SWITCHED_STATUS_STATE,
            apc.OUTLET_SWITCHED_CONTROL_COMMAND,
            apc.OUTLET_METERED_STATUS_NAME,
            apc.OUTLET_METERED_STATUS_CURRENT,
            apc.OUTLET_METERED_STATUS_POWER,
        )
        every = [f"{c}.{i}" for i in range(1, n_out + 1) for c in columns]
        cheap = [o for o in every if o.rsplit(".", 1)[0] in columns[:4]][:24]
        metered = [o for o in every if o.rsplit(".", 1)[0] in columns[4:]][:24]
        sw_get = [f"{mibs.IF_HC_IN_OCTETS.oid}.{1001 + i}" for i in range(min(24, info["ports"]))]
        scenarios = [
            ("PDU GET names/states (no model read)", pdu_name, pdu_port, lambda t: len(t.get(cheap))),
            ("PDU GET outlet current/power", pdu_name, pdu_port, lambda t: len(t.get(metered))),
            ("PDU bulk walk outlet table", pdu_name, pdu_port, lambda t: len(t.walk(apc.RPDU2 + ".9.2", 32))),
            (f"switch GET {len(sw_get)} ifHCInOctets", sw_name, sw_port, lambda t: len(t.get(sw_get))),
            ("switch bulk walk ifXTable", sw_name, sw_port, lambda t: len(t.walk("1.3.6.1.2.1.31.1.1.1", 32))),
        ]
        print(f"rack: {'reference 32 nodes' if args.reference else 'default 4 nodes'}, "
              f"clock: {'frozen' if args.frozen else 'real time'}")  # fmt: skip
        print(f"{'scenario':34} {'ver':4} {'var-binds':>9} {'requests':>8} {'agent µs/varbind':>17} {'µs/request':>11}")
        for label, device, port, fn in scenarios:
            for v3 in (False, True):
                with SnmpTransport(config(device, port, v3)) as t:
                    fn(t)  # warm up (v3 discovery, index)
                    c0, w0, n_req, n_vb = cpu(), time.monotonic(), 0, 0
                    while time.monotonic() - w0 < args.seconds:
                        n_vb += fn(t)
                        n_req += 1
                    used = cpu() - c0
                per_vb = used / n_vb * 1e6
                print(f"{label:34} {'v3' if v3 else 'v2c':4} {n_vb // n_req:>9} {n_req:>8} {per_vb:>17.0f} "
                      f"{used / n_req * 1e6:>11.0f}")  # fmt: skip
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    main()
