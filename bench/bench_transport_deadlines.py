"""How far past its deadline each transport ends an operation against a peer that misbehaves.

Why: every transport promises that an operation ends within the device's ``timeout_s`` plus a
documented slack of at most 2 s, whatever the peer does (trickled headers or body, a reply
without its terminator, a connection accepted and never answered, an agent that answers a walk
one slow row at a time). The tests (tests/unit/test_*_hostile_peers.py) assert the bound; this
prints the figure: the overshoot, elapsed time minus the timeout, median and worst over the
repeats, per transport and misbehaviour. The peers are the tests' scripted servers
(tests/support/scripted_peers.py) on 127.0.0.1. Target: overshoot well under 2 s.

Run: ``.venv/bin/python bench/bench_transport_deadlines.py [--timeout 1.0] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rackval.core.errors import DeviceError  # noqa: E402
from rackval.drivers.config import Credentials, DeviceConfig, Secret  # noqa: E402
from rackval.drivers.transport import snmp_ber as ber  # noqa: E402
from rackval.drivers.transport.ipmi import IpmiTransport  # noqa: E402
from rackval.drivers.transport.redfish import RedfishTransport  # noqa: E402
from rackval.drivers.transport.scpi import ScpiTransport  # noqa: E402
from rackval.drivers.transport.snmp import SnmpTransport  # noqa: E402
from rackval.drivers.transport.ssh import SshTransport  # noqa: E402
from tests.support.scripted_peers import Peer, ScriptedSnmpAgent, ScriptedTcpServer, snmp_response  # noqa: E402

CREDS = Credentials(username="admin", password=Secret("bench-pw"), community=Secret("public"))


def _config(driver: str, port: int, timeout: float, **options: object) -> DeviceConfig:
    return DeviceConfig("dev", "bmc", driver, "127.0.0.1", port, CREDS, options, timeout)


def _after_request(answer: Callable[[Peer], None], marker: bytes) -> Callable[[Peer], None]:
    def script(peer: Peer) -> None:
        peer.recv_until(marker)
        answer(peer)

    return script


HTTP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
TCP_CASES: dict[str, Callable[[Peer], None]] = {
    "redfish slowloris headers": _after_request(lambda p: p.trickle(HTTP_HEAD * 100, 0.2), b"\r\n\r\n"),
    "redfish slow body": _after_request(lambda p: (p.send(HTTP_HEAD), p.trickle(b"x" * 1000, 0.2)), b"\r\n\r\n"),
    "redfish no terminator": _after_request(
        lambda p: (p.send(b"HTTP/1.1 200 OK\r\n\r\n"), p.trickle(b"[" * 10_000, 0.1)), b"\r\n\r\n"
    ),
    "redfish half-open": lambda p: p.hold(),
    "scpi trickle": _after_request(lambda p: p.trickle(b"1" * 100_000, 0.05), b"\n"),
    "scpi no terminator": _after_request(lambda p: (p.send(b"ACME,M1,S1,F1"), p.hold()), b"\n"),
    "scpi half-open": lambda p: p.hold(),
    "vxi11 half-open": lambda p: p.hold(),
    "hislip half-open": lambda p: p.hold(),
    "ssh connect half-open": lambda p: p.hold(),
    "ssh banner trickled": lambda p: p.trickle(b"SSH-2.0-" + b"x" * 10_000, 0.05),
}


def _tcp_operation(case: str, port: int, timeout: float) -> Callable[[], object]:
    if case.startswith("redfish"):
        t = RedfishTransport(_config("redfish", port, timeout, scheme="http", auth="basic"))
        return lambda: (t.get("/redfish/v1/Systems/1"), t.close())
    if case.startswith("ssh"):
        s = SshTransport(_config("openbmc", port, timeout, known_hosts="/nonexistent/known_hosts"))
        return lambda: (s.run(["true"]), s.close())
    resource = {
        "vxi11": f"TCPIP0::127.0.0.1,{port}::inst0::INSTR",
        "hislip": f"TCPIP0::127.0.0.1::hislip0,{port}::INSTR",
    }.get(case.split()[0])
    v = ScpiTransport(_config("generic-scpi", port, timeout, **({"resource": resource} if resource else {})))
    return lambda: (v.query("*IDN?"), v.close())


def _elapsed(operation: Callable[[], object]) -> float:
    started = time.monotonic()
    try:
        operation()
    except DeviceError:
        return time.monotonic() - started
    raise RuntimeError("the operation did not fail")


def _snmp_slow_walk(msg: ber.Message) -> list[bytes]:
    last = msg.var_binds[0][0]
    time.sleep(0.3)
    return [snmp_response(msg, [ber.encode_var_bind((*last, 1), ber.OCTET_STRING, b"x")])]


def run(timeout: float, repeats: int) -> dict[str, list[float]]:
    """{case: [overshoot in s, one per repeat]}."""
    out: dict[str, list[float]] = {}
    for case, script in TCP_CASES.items():
        for _ in range(repeats):
            with ScriptedTcpServer(script) as srv:
                out.setdefault(case, []).append(_elapsed(_tcp_operation(case, srv.port, timeout)) - timeout)
    snmp_cases = {
        "snmp silent agent": (lambda m: [], {}, lambda t: t.get(["1.3.6.1.2.1.1.1.0"])),
        "snmp slow walk": (_snmp_slow_walk, {"walk_timeout_s": timeout}, lambda t: t.walk("1.3.6.1.2.1.31")),
    }
    for case, (script, options, operation) in snmp_cases.items():
        for _ in range(repeats):
            agent = ScriptedSnmpAgent(script)
            try:
                with SnmpTransport(_config("apc-rpdu2", agent.port, timeout, retries=0, **options)) as snmp:
                    out.setdefault(case, []).append(_elapsed(lambda s=snmp, op=operation: op(s)) - timeout)
            finally:
                agent.stop()
    with tempfile.TemporaryDirectory() as home:
        fake = Path(home) / "ipmitool"
        fake.write_text("#!/bin/sh\nwhile :; do echo tick; sleep 0.1; done\n")
        fake.chmod(0o755)
        ipmi = IpmiTransport(_config("ipmi", 623, timeout, ipmitool=str(fake)))
        for _ in range(repeats):
            out.setdefault("ipmi output trickled", []).append(_elapsed(lambda: ipmi.run(["mc", "info"])) - timeout)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=1.0, help="timeout_s of every device (s)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # its tracebacks for the peers we abort
    results = run(args.timeout, args.repeats)
    print(f"overshoot past timeout_s={args.timeout:g} s (slack allowed: 2 s), {args.repeats} repeats, "
          f"load {os.getloadavg()}")  # fmt: skip
    for case, values in results.items():
        print(f"  {case:<26} median {statistics.median(values) * 1000:7.1f} ms   worst {max(values) * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
