"""Fan-out over slow BMCs: RedfishBmc.power_watts on 32 BMCs that each take 200 ms vs on one.

Why: real BMCs take hundreds of milliseconds per Redfish GET, and a rack has dozens. The harness
reads them with ``Rack.fan_out`` (one thread per device, one keep-alive connection and session
per BMC); if that works, reading 32 BMCs costs about what reading one does. Target: the wall
time of one power reading on all 32 <= 1.5x the wall time on a single BMC.

The 32 BMCs are tiny threaded HTTP servers in a child process (so their work does not share
this process's GIL), each sleeping 200 ms before every answer, serving just what
``RedfishBmc.power_watts`` walks: session login/logout, the Chassis collection, one chassis and
its EnvironmentMetrics. The client side is the real thing: a rack file with 32 ``redfish``
devices, ``load_inventory``, ``Rack`` and ``Rack.fan_out``. Discovery (login, finding the
chassis) happens in a warm-up round; the timed operation is the steady-state reading (one GET
per BMC).

Run: ``.venv/bin/python bench/bench_redfish.py [--bmcs 32] [--delay 0.2] [--repeats 7]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

CHASSIS = "/redfish/v1/Chassis/1"
SESSIONS = "/redfish/v1/SessionService/Sessions"


# ---- the slow BMCs (child process) ----------------------------------------------------------------
class _SlowBmc(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every keep-alive answer waits ~40 ms for a delayed ACK
    delay_s = 0.2
    docs: dict[str, Any] = {
        "/redfish/v1/Chassis": {"Members": [{"@odata.id": CHASSIS}], "Members@odata.count": 1},
        CHASSIS: {"Id": "1", "EnvironmentMetrics": {"@odata.id": f"{CHASSIS}/EnvironmentMetrics"}},
        f"{CHASSIS}/EnvironmentMetrics": {"PowerWatts": {"Reading": 1234.5}},
    }

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, doc: Any = None, headers: dict[str, str] | None = None) -> None:
        body = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        time.sleep(self.delay_s)
        doc = self.docs.get(self.path.split("?")[0])
        self._send(200, doc) if doc is not None else self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay_s)
        if self.path != SESSIONS:
            self._send(404, {"error": {"message": "not found"}})
            return
        self._send(201, {"Id": "1"}, {"X-Auth-Token": "bench-token", "Location": f"{SESSIONS}/1"})

    def do_DELETE(self) -> None:
        self._send(204)


def serve(count: int, delay_s: float) -> None:
    """Child process: start ``count`` slow BMCs, print their ports as JSON, run until SIGTERM."""
    _SlowBmc.delay_s = delay_s
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _SlowBmc) for _ in range(count)]
    for srv in servers:
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps([srv.server_address[1] for srv in servers]), flush=True)
    stop.wait()
    for srv in servers:
        srv.shutdown()
        srv.server_close()


# ---- the benchmark (parent process) ---------------------------------------------------------------
def _rack_file(directory: Path, ports: list[int]) -> Path:
    (directory / "bmc-password").write_text("bench-password\n")
    doc = {
        "rack": {"name": f"bench-{len(ports)}-bmcs", "simulated": True},
        "credentials": {"bmc": {"username": "admin", "password": {"file": "bmc-password"}}},
        "devices": {
            f"bmc{i:02d}": {
                "kind": "bmc",
                "driver": "redfish",
                "host": "127.0.0.1",
                "port": port,
                "credentials": "bmc",
                "timeout_s": 10,
                "options": {"scheme": "http", "power_source": "environment"},
            }
            for i, port in enumerate(ports, start=1)
        },
    }
    path = directory / "rack.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bmcs", type=int, default=32)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds each BMC takes per request")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.bmcs, args.delay)
        return 0

    from rackval.harness.inventory import load_inventory
    from rackval.harness.rack import Rack, values_or_raise

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--bmcs", str(args.bmcs), "--delay", str(args.delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ports = json.loads(child.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="bench-redfish-") as tmp:
            inventory = load_inventory(_rack_file(Path(tmp), ports))
            rack = Rack(inventory)
            names = rack.names("bmc")
            try:

                def read_all() -> float:
                    start = time.perf_counter()
                    values = values_or_raise(rack.fan_out(names, lambda bmc: bmc.power_watts()), "read power")
                    wall = time.perf_counter() - start
                    assert len(values) == len(names) and all(v == 1234.5 for v in values.values())
                    return wall

                def read_one() -> float:
                    start = time.perf_counter()
                    value = rack.driver(names[0]).power_watts()
                    wall = time.perf_counter() - start
                    assert value == 1234.5
                    return wall

                t0 = time.perf_counter()
                read_all()  # warm-up: login + chassis discovery on every BMC, concurrently
                warm = time.perf_counter() - t0
                many, one = [], []
                for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
                    one.append(read_one())
                    many.append(read_all())
                m_one, m_many = statistics.median(one), statistics.median(many)
            finally:
                rack.close()
        ratio = m_many / m_one
        print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"{args.bmcs} simulated BMCs (threaded HTTP servers in a child process), {args.delay * 1e3:.0f} ms "
              f"per request; RedfishBmc.power_watts (1 GET each, keep-alive session); {args.repeats} repeats, "
              "medians\n")  # fmt: skip
        print(f"{'case':<46} {'wall ms':>9}")
        print(f"{'1 BMC':<46} {m_one * 1e3:>9.1f}")
        print(f"{f'{args.bmcs} BMCs, Rack.fan_out':<46} {m_many * 1e3:>9.1f}")
        print(f"{f'{args.bmcs} BMCs, first round (login + discovery)':<46} {warm * 1e3:>9.1f}")
        verdict = "OK" if ratio <= 1.5 else "ABOVE TARGET"
        print(f"\nratio {args.bmcs} BMCs / 1 BMC: {ratio:.2f}x (target <= 1.5x: {verdict})")
        return 0 if ratio <= 1.5 else 1
    finally:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
