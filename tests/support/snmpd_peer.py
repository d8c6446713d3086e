"""Start net-snmp ``snmpd`` as a third-party SNMP peer for driver tests.

Why a real snmpd: our transport must interoperate with an agent we did not write (its engine-ID
discovery, USM key localisation, error statuses), and our simulator must not be the only thing
the driver has ever talked to. The agent is loopback-only, on a free UDP port picked at run
time, with every file (config, persistent USM store, log) under the test's ``tmp_path``.

An optional ``pass_persist`` script serves a small APC rPDU2-like outlet table (ident, device
power, switched status/control, metered status) so the APC driver can be proven against
net-snmp too; it keeps outlet state in memory and honours SETs of the control command.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SNMPD = "/usr/sbin/snmpd"
SNMPGET = "/usr/bin/snmpget"

# Served by the pass_persist script below (kept here so tests can compare against it).
APC_BASE = ".1.3.6.1.4.1.318.1.1.26"
APC_OUTLETS = {1: ("web-01", True, 1234), 2: ("web-02", True, 567), 3: ("spare", False, 0), 4: ("db-01", True, 890)}
APC_MODEL = "AP8853"
APC_SERIAL = "ZA1234567890"
APC_FIRMWARE = "v6.8.2"

# The script is a standalone program run by snmpd under the same Python interpreter.
PASS_PERSIST_SCRIPT = r"""
import sys

BASE = (1, 3, 6, 1, 4, 1, 318, 1, 1, 26)
VOLTS = 230.0
outlets = {OUTLETS!r}  # n -> (name, on, watts when on)
state = {{n: on for n, (_, on, _) in outlets.items()}}


def table():
    rows = {{}}
    ident = {{3: ("string", "rack-pdu"), 5: ("string", "A1"), 6: ("string", {FIRMWARE!r}),
              8: ("string", {MODEL!r}), 9: ("string", {SERIAL!r})}}
    for col, val in ident.items():
        rows[BASE + (2, 1, col, 1)] = val
    n = len(outlets)
    rows[BASE + (4, 2, 1, 4, 1)] = ("integer", str(n))
    rows[BASE + (4, 2, 1, 5, 1)] = ("integer", str(n))
    rows[BASE + (4, 2, 1, 6, 1)] = ("integer", str(n))
    total_w = 15 + sum(w for i, (_, _, w) in outlets.items() if state[i])
    rows[BASE + (4, 3, 1, 5, 1)] = ("integer", str(round(total_w / 10)))  # hundredths of kW
    for i, (name, _, w) in outlets.items():
        on = state[i]
        rows[BASE + (9, 2, 3, 1, 3, i)] = ("string", name)
        rows[BASE + (9, 2, 3, 1, 5, i)] = ("integer", "2" if on else "1")
        rows[BASE + (9, 2, 3, 1, 6, i)] = ("integer", "2")
        rows[BASE + (9, 2, 4, 1, 5, i)] = ("integer", "1" if on else "2")
        rows[BASE + (9, 4, 3, 1, 3, i)] = ("string", name)
        rows[BASE + (9, 4, 3, 1, 6, i)] = ("integer", str(round(w / VOLTS * 10) if on else 0))
        rows[BASE + (9, 4, 3, 1, 7, i)] = ("integer", str(w if on else 0))
    return rows


def parse(text):
    return tuple(int(p) for p in text.strip().strip(".").split(".") if p)


def reply(oid, typ_val):
    if typ_val is None:
        print("NONE")
    else:
        print("." + ".".join(map(str, oid)))
        print(typ_val[0])
        print(typ_val[1])


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        cmd = line.strip()
        if not cmd:
            continue  # snmpd follows a set with an empty line: answering it would desync us
        if cmd == "PING":
            print("PONG")
        elif cmd == "get":
            oid = parse(sys.stdin.readline())
            rows = table()
            reply(oid, rows.get(oid))
        elif cmd == "getnext":
            oid = parse(sys.stdin.readline())
            nxt = [o for o in sorted(table()) if o > oid]
            if nxt:
                reply(nxt[0], table()[nxt[0]])
            else:
                print("NONE")
        elif cmd == "set":
            oid = parse(sys.stdin.readline())
            typ, _, value = sys.stdin.readline().strip().partition(" ")
            prefix, idx = oid[:-1], oid[-1]
            if prefix != BASE + (9, 2, 4, 1, 5) or idx not in outlets:
                print("not-writable")
            elif typ != "integer":
                print("wrong-type")
            elif value not in ("1", "2", "3"):
                print("wrong-value")
            else:
                state[idx] = value != "2"
                print("DONE")
        else:
            print("NONE")
        sys.stdout.flush()


main()
"""


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port the OS considers free right now (snmpd binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class SnmpdPeer:
    """A running snmpd and the credentials it accepts."""

    host: str
    port: int
    ro_community: str
    rw_community: str
    v3_user: str
    v3_auth_pass: str
    v3_priv_pass: str
    sys_name: str
    sys_descr: str
    workdir: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def log(self) -> str:
        try:
            return (self.workdir / "snmpd.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate by PID and wait (bounded), killing if it does not exit."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_snmpd(
    workdir: Path,
    *,
    apc_table: bool = False,
    ro_community: str = "rv-public-ro",
    rw_community: str = "rv-private-rw",
    v3_user: str = "rvuser",
    v3_auth_pass: str = "rv-auth-pass-1",
    v3_priv_pass: str = "rv-priv-pass-1",
    sys_name: str = "snmpd-peer",
    sys_descr: str = "net-snmp peer for rackval tests",
    extra_lines: Sequence[str] = (),
    start_timeout_s: float = 10.0,
) -> SnmpdPeer:
    """Start snmpd on 127.0.0.1:<free port>; return once it answers a GET (bounded wait).

    v2c: ``ro_community`` reads everything from 127.0.0.1; ``rw_community`` may write only the
    APC subtree (served by the pass_persist script when ``apc_table``). v3: ``v3_user`` with
    SHA-256 + AES-128, authPriv, read-only. ``extra_lines`` are appended to snmpd.conf
    (e.g. more ``createUser`` / ``rouser`` pairs).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    persist = workdir / "persist"
    persist.mkdir(exist_ok=True)
    host = "127.0.0.1"
    port = free_udp_port(host)
    lines = [
        f"agentAddress udp:{host}:{port}",
        f"rocommunity {ro_community} {host}",
        f"rwcommunity {rw_community} {host} {APC_BASE}",
        f"createUser {v3_user} SHA-256 {v3_auth_pass} AES {v3_priv_pass}",
        f"rouser {v3_user} authPriv",
        f"sysName {sys_name}",
        f"sysDescr {sys_descr}",
        "sysLocation rackval test bench",
        "sysContact nobody@example.invalid",
    ]
    lines.extend(extra_lines)
    if apc_table:
        script = workdir / "apc_pass_persist.py"
        script.write_text(
            PASS_PERSIST_SCRIPT.format(OUTLETS=APC_OUTLETS, MODEL=APC_MODEL, SERIAL=APC_SERIAL, FIRMWARE=APC_FIRMWARE)
        )
        lines.append(f"pass_persist {APC_BASE} {sys.executable} {script}")
    conf = workdir / "snmpd.conf"
    conf.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(persist), "SNMPCONFPATH": str(workdir)}
    log = open(workdir / "snmpd.log", "wb")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen(
            [SNMPD, "-f", "-Lo", "-I", "-smux", "-C", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    finally:
        log.close()
    peer = SnmpdPeer(
        host=host,
        port=port,
        ro_community=ro_community,
        rw_community=rw_community,
        v3_user=v3_user,
        v3_auth_pass=v3_auth_pass,
        v3_priv_pass=v3_priv_pass,
        sys_name=sys_name,
        sys_descr=sys_descr,
        workdir=workdir,
        proc=proc,
    )
    deadline = time.monotonic() + start_timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"snmpd exited with {proc.returncode} during start:\n{peer.log}")
        probe = subprocess.run(
            [
                SNMPGET,
                "-v2c",
                "-c",
                ro_community,
                "-t",
                "0.3",
                "-r",
                "0",
                "-On",
                "-Oqv",
                f"{host}:{port}",
                ".1.3.6.1.2.1.1.5.0",
            ],
            capture_output=True,
            env={**os.environ, "MIBS": ""},
            timeout=5,
            check=False,
        )
        if probe.returncode == 0:
            return peer
        if time.monotonic() > deadline:
            peer.stop()
            raise RuntimeError(f"snmpd did not answer within {start_timeout_s}s:\n{peer.log}")
        time.sleep(0.05)
