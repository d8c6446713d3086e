"""Peak memory of a 128 MiB reply on each transport: the size caps hold it to their cap, not the reply.

Why: a device that answers with a reply of unbounded size (a Redfish body, an SCPI reply without
its newline, an SNMP table that never ends, ipmitool or an SSH command printing for ever) used to
grow the process by the reply's size and more (~445 MB for 128 MiB over SCPI). Each transport now
refuses a reply beyond its cap (``max_body_bytes``, ``max_reply_bytes``, ``max_walk_bytes`` /
``max_walk_rows``, ``max_output_bytes``) with a DeviceProtocolError. Target: the peak RSS grows by
less than 50 MB per transport with the default caps.

How: each case runs in a fresh child process (``--case NAME``), so its peak is its own. The
misbehaving peer runs in yet another process (``--peer KIND``), so the peer's buffers are not
counted. The child imports everything, builds the transport, resets the kernel's peak-RSS
mark (``/proc/self/clear_refs``; else the peak so far is the baseline), makes one request that
gets the 128 MiB reply, checks that the cap refused it, and prints the growth of VmHWM
(/proc/self/status). SSH needs OpenSSH's sshd (the peer from tests/support/sshd_peer.py) and
is skipped without it. tests/unit/test_transport_memory.py runs the cases with a generous bound.

Run: ``.venv/bin/python bench/bench_transport_caps.py [--mib 128] [--case redfish ...] [--json]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("redfish", "redfish-declared", "scpi", "snmp", "ipmi", "ssh")


# ---- the peers (their own process) -------------------------------------------------------------------
def _serve_tcp(answer: Callable[[socket.socket], None]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        with contextlib.suppress(OSError), conn:
            answer(conn)


def _stream(conn: socket.socket, total: int) -> None:
    chunk = b"7" * 65536
    sent = 0
    while sent < total:
        conn.sendall(chunk[: total - sent])
        sent += len(chunk)


def _recv_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and b"\n" not in data[-1:]:
        piece = conn.recv(65536)
        if not piece:
            break
        data += piece
    return data


def peer(kind: str, total: int) -> None:
    """Serve one kind of oversized reply until killed."""
    if kind in ("http", "http-declared"):
        length = f"Content-Length: {total}\r\n" if kind == "http-declared" else "Connection: close\r\n"

        def http(conn: socket.socket) -> None:
            _recv_head(conn)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}\r\n".encode())
            _stream(conn, total)

        _serve_tcp(http)
    elif kind == "scpi":

        def scpi(conn: socket.socket) -> None:
            _recv_head(conn)
            _stream(conn, total)  # no newline, ever

        _serve_tcp(scpi)
    elif kind == "snmp":
        sys.path.insert(0, str(ROOT))
        from rackval.drivers.transport import snmp_ber as ber

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1], flush=True)
        base = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
        while True:  # every GETBULK answered with 40 more 1400-byte rows: a table that never ends
            data, where = sock.recvfrom(65535)
            msg = ber.decode_message(data)
            last = msg.var_binds[0][0]
            start = last[-1] + 1 if len(last) > len(base) else 1
            vbs = [ber.encode_var_bind((*base, i), ber.OCTET_STRING, b"x" * 1400) for i in range(start, start + 40)]
            reply = ber.encode_message(ber.VERSION_2C, msg.community, ber.RESPONSE, msg.request_id, 0, 0, vbs)
            sock.sendto(reply, where)


@contextlib.contextmanager
def _peer_process(kind: str, total: int) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--peer", kind, "--bytes", str(total)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait(10)


# ---- the measured side (a fresh process per case) -------------------------------------------------------
def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _config(name: str, kind: str, driver: str, port: int, **options: object) -> object:
    from rackval.drivers.config import Credentials, DeviceConfig, Secret

    creds = Credentials(username="admin", password=Secret("bench-pw"), community=Secret("public"))
    return DeviceConfig(name, kind, driver, "127.0.0.1", port, creds, options, 10.0)


def _operation(case: str, total: int, stack: contextlib.ExitStack) -> Callable[[], object] | None:
    """The request that gets the oversized reply (None: the case cannot run here)."""
    if case.startswith("redfish"):
        from rackval.drivers.transport.redfish import RedfishTransport

        port = stack.enter_context(_peer_process("http-declared" if case == "redfish-declared" else "http", total))
        t = RedfishTransport(_config("bmc", "bmc", "redfish", port, scheme="http", auth="basic"))
        stack.callback(t.close)
        return lambda: t.get("/redfish/v1/Systems/1")
    if case == "scpi":
        from rackval.drivers.transport.scpi import ScpiTransport

        port = stack.enter_context(_peer_process("scpi", total))
        t = ScpiTransport(_config("meter", "analyzer", "generic-scpi", port))
        stack.callback(t.close)
        return lambda: t.query(":DATA?")
    if case == "snmp":
        from rackval.drivers.transport.snmp import SnmpTransport

        port = stack.enter_context(_peer_process("snmp", total))
        t = SnmpTransport(_config("pdu", "pdu", "apc-rpdu2", port))
        stack.callback(t.close)
        return lambda: t.walk("1.3.6.1.2.1.31.1.1.1.1", 40)
    if case == "ipmi":
        from rackval.drivers.transport.ipmi import IpmiTransport

        fake = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "ipmitool"
        fake.write_text(f"#!/bin/sh\nhead -c {total} /dev/zero\n")
        fake.chmod(0o755)
        t = IpmiTransport(_config("bmc", "bmc", "ipmi", 623, ipmitool=str(fake)))
        return lambda: t.run(["sdr", "elist"])
    if case == "ssh":
        sshd = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd",) if os.path.exists(p)), None)
        if sshd is None:
            return None
        sys.path.insert(0, str(ROOT))
        from rackval.drivers.transport.ssh import SshTransport
        from tests.support.sshd_peer import start_sshd

        home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        peer_ = start_sshd(home, 'eval "$SSH_ORIGINAL_COMMAND"')
        stack.callback(peer_.stop)
        t = SshTransport(peer_.config(timeout_s=10.0))
        stack.callback(t.close)
        t.connect()
        return lambda: t.run(f"head -c {total} /dev/zero")
    raise ValueError(case)


def measure(case: str, total: int) -> dict[str, object]:
    """Run ``case`` in this process; the peak RSS growth of its one oversized request."""
    from rackval.core.errors import DeviceError, DeviceProtocolError

    with contextlib.ExitStack() as stack:
        call = _operation(case, total, stack)
        if call is None:
            return {"case": case, "skipped": "no sshd"}
        reset = _reset_peak()
        before = _peak_kb()
        started = time.monotonic()
        try:
            call()
            outcome = "NOT REFUSED"
        except DeviceProtocolError as exc:
            outcome = exc.detail
        except DeviceError as exc:  # not the cap: what happened instead (e.g. a timeout after reading it all)
            outcome = f"{type(exc).__name__}: {exc.detail}"
        elapsed = time.monotonic() - started
        growth_kb = _peak_kb() - before
    return {"case": case, "growth_mb": round(growth_kb / 1024, 1), "seconds": round(elapsed, 3),
            "peak_reset": reset, "outcome": outcome}  # fmt: skip


def run_case(case: str, total: int) -> dict[str, object]:
    """``measure`` in a fresh interpreter (so its peak is its own)."""
    out = subprocess.run(
        [sys.executable, __file__, "--case", case, "--bytes", str(total), "--child"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        return {"case": case, "error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=128, help="size of the oversized reply (MiB)")
    parser.add_argument("--case", action="append", choices=CASES, help="run only these cases")
    parser.add_argument("--json", action="store_true", help="one JSON line per case")
    parser.add_argument("--bytes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    total = args.bytes or args.mib * 1024 * 1024
    if args.peer:
        peer(args.peer, total)
        return 0
    sys.path.insert(0, str(ROOT))
    if args.child:
        print(json.dumps(measure(args.case[0], total)))
        return 0
    results = [run_case(case, total) for case in (args.case or CASES)]
    if args.json:
        for r in results:
            print(json.dumps(r))
        return 0
    print(f"peak RSS growth for a {total / 2**20:g} MiB reply (target < +50 MB), load {os.getloadavg()}")
    for r in results:
        if "growth_mb" in r:
            ok = "ok" if float(r["growth_mb"]) < 50 else "OVER"  # type: ignore[arg-type]
            print(f"  {r['case']:<17} +{r['growth_mb']:>6} MB  {r['seconds']:>6} s  {ok}  ({r['outcome']})")
        else:
            print(f"  {r['case']:<17} {r.get('skipped') or r.get('error')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
