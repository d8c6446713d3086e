"""SSH command latency: our SshTransport.run (paramiko) vs asyncssh, both against OpenSSH sshd.

Why: switches, BMCs and GPU nodes are driven by CLI commands over SSH; a soak polls every node
every second. Two figures matter: the latency of one command on an open connection (what a
sequential poll loop pays per command) and the wall time of one command on each of 32 nodes at
once (what a rack-wide poll pays). asyncssh is the fast, maintained asyncio SSH client and the
bar. Targets: one command <= 1.1x asyncssh; 32 nodes x 1 command <= 1.2x asyncssh.

The peer is a real OpenSSH sshd on 127.0.0.1 with a trivial ForceCommand (``echo ok``) so the
server side is the same fork+exec for both clients. Connections are opened before timing
starts (both clients keep one per node); ours runs the 32 commands with one connection per
worker thread (as ``Rack.fan_out`` does), asyncssh with ``asyncio.gather`` on one loop.

Run: ``.venv/bin/python bench/bench_ssh.py [--repeats 7] [--commands 100]``
(needs ``pip install asyncssh`` in the venv; a bench-only dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import pwd
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SSHD = "/usr/sbin/sshd"
NODES = 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True, timeout=20)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def start_sshd(d: Path) -> tuple[subprocess.Popen[bytes], int]:
    """sshd on 127.0.0.1:<free port>, key auth only, ForceCommand echo; returns (process, port)."""
    host_key_line = _keygen(d / "host_key")
    (d / "authorized_keys").write_text(_keygen(d / "client_key") + "\n")
    port = _free_port()
    # SetEnv SHLVL=1: bash sources ~/.bashrc when sshd runs it as a top-level shell; a heavy
    # .bashrc (pyenv init here: ~100 ms) would otherwise be what both clients measure.
    (d / "sshd_config").write_text(
        textwrap.dedent(
            f"""\
            Port {port}
            ListenAddress 127.0.0.1
            HostKey {d / "host_key"}
            PidFile {d / "sshd.pid"}
            AuthorizedKeysFile {d / "authorized_keys"}
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            PermitRootLogin yes
            MaxStartups 100
            MaxSessions 100
            LogLevel ERROR
            SetEnv SHLVL=1
            ForceCommand echo ok
            """
        )
    )
    os.makedirs("/run/sshd", exist_ok=True)
    log = open(d / "sshd.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(d / 'sshd.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(64).startswith(b"SSH-2.0-"):
                    break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("sshd did not answer") from None
            time.sleep(0.05)
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key_line}\n")
    return proc, port


def _median_of(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--commands", type=int, default=100, help="sequential commands per repeat")
    args = parser.parse_args()

    import asyncssh

    from rackval.drivers.config import Credentials, DeviceConfig
    from rackval.drivers.transport.ssh import SshTransport

    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp:
        d = Path(tmp)
        proc, port = start_sshd(d)
        user = pwd.getpwuid(os.geteuid()).pw_name
        loop = asyncio.new_event_loop()
        ours: list[SshTransport] = []
        theirs: list[asyncssh.SSHClientConnection] = []
        try:
            config = DeviceConfig(
                name="sshd",
                kind="switch",
                driver="-",
                host="127.0.0.1",
                port=port,
                credentials=Credentials(username=user, key_file=str(d / "client_key")),
                options={"known_hosts": str(d / "known_hosts")},
                timeout_s=10.0,
            )
            ours = [SshTransport(config) for _ in range(NODES)]

            async def connect(n: int) -> list[asyncssh.SSHClientConnection]:
                async def one() -> asyncssh.SSHClientConnection:
                    return await asyncssh.connect(
                        "127.0.0.1",
                        port,
                        username=user,
                        client_keys=[str(d / "client_key")],
                        known_hosts=str(d / "known_hosts"),
                    )

                return list(await asyncio.gather(*(one() for _ in range(n))))

            def seq_ours() -> float:
                t = ours[0]
                start = time.perf_counter()
                for _ in range(args.commands):
                    t.run("echo")
                return (time.perf_counter() - start) / args.commands

            def seq_theirs() -> float:
                conn = theirs[0]

                async def go() -> None:
                    for _ in range(args.commands):
                        await conn.run("echo")

                start = time.perf_counter()
                loop.run_until_complete(go())
                return (time.perf_counter() - start) / args.commands

            def interleaved(a: Callable[[], float], b: Callable[[], float]) -> tuple[float, float]:
                """Medians of ``a`` and ``b`` run alternately, so machine noise hits both alike."""
                ra, rb = [], []
                for _ in range(args.repeats):
                    ra.append(a())
                    rb.append(b())
                return statistics.median(ra), statistics.median(rb)

            # Phase 1: one connection each; nothing else open in the process.
            theirs = loop.run_until_complete(connect(1))
            ours[0].connect()
            assert ours[0].run("echo").stdout == "ok\n"  # sanity + warm-up
            assert loop.run_until_complete(theirs[0].run("echo")).stdout == "ok\n"
            s_ours, s_theirs = interleaved(seq_ours, seq_theirs)

            # Phase 2: 32 connections each (what a rack-wide poll keeps open).
            t0 = time.perf_counter()
            theirs += loop.run_until_complete(connect(NODES - 1))
            connect_theirs = time.perf_counter() - t0
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=NODES) as starter:
                list(starter.map(lambda t: t.connect(), ours[1:]))
            connect_ours = time.perf_counter() - t0
            s32_ours, s32_theirs = interleaved(seq_ours, seq_theirs)

            pool = ThreadPoolExecutor(max_workers=NODES, thread_name_prefix="fanout")

            def par_ours() -> float:
                start = time.perf_counter()
                results = list(pool.map(lambda t: t.run("echo"), ours))
                wall = time.perf_counter() - start
                assert all(r.stdout == "ok\n" for r in results)
                return wall

            def par_theirs() -> float:
                async def go() -> list[asyncssh.SSHCompletedProcess]:
                    return list(await asyncio.gather(*(c.run("echo") for c in theirs)))

                start = time.perf_counter()
                results = loop.run_until_complete(go())
                wall = time.perf_counter() - start
                assert all(r.stdout == "ok\n" for r in results)
                return wall

            par_ours(), par_theirs()  # warm the pool's threads and asyncssh's channel paths
            p_ours, p_theirs = interleaved(lambda: _median_of(par_ours, 3), lambda: _median_of(par_theirs, 3))
            pool.shutdown()

            print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
                  f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
            print(f"peer: OpenSSH sshd 127.0.0.1:{port}, ForceCommand 'echo ok', ed25519 keys")
            print(f"asyncssh {asyncssh.__version__}; {args.repeats} repeats, medians\n")
            print(f"{'case':<44} {'ours':>9} {'asyncssh':>9} {'ratio':>7}  target")
            rows = [
                ("1 command, open connection (ms)", s_ours, s_theirs, 1.1),
                ("32 nodes x 1 command, wall (ms)", p_ours, p_theirs, 1.2),
                ("1 command, 31 more connections idle (ms)", s32_ours, s32_theirs, None),
                ("32 connections opened in parallel (ms)", connect_ours, connect_theirs, None),
            ]
            ok = True
            for label, a, b, target in rows:
                ratio = a / b
                if target is None:
                    verdict = "(no target)"
                else:
                    verdict = f"<= {target}x {'OK' if ratio <= target else 'ABOVE TARGET'}"
                    ok = ok and ratio <= target
                print(f"{label:<44} {a * 1e3:>9.2f} {b * 1e3:>9.2f} {ratio:>6.2f}x  {verdict}")
            return 0 if ok else 1
        finally:
            for t in ours:
                t.close()
            for c in theirs:
                c.close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
