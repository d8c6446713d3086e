"""OpenSSH ``sshd`` whose ForceCommand is the interactive test CLI (tests/sshi_cli.py).

The pattern follows tests/test_ssh_transport_sshd.py: its own config, a pinned ed25519 host key
written to a known_hosts file in OpenSSH's ``[127.0.0.1]:PORT`` form, a client key in
authorized_keys. ``behave(...)`` sets how the CLI misbehaves for sessions started inside the
block (it reads ``behaviour.json`` at session start).

Also here: ``SilentTcpServer``, which accepts TCP connections and never says a word (a hung
BMC, or sshd that stopped before its banner).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from drivers.config import Credentials, DeviceConfig

SSHD = "/usr/sbin/sshd"
CLI_SCRIPT = Path(__file__).with_name("sshi_cli.py")
EOS_DATA = Path(__file__).parent / "data" / "eos"


@dataclass
class InteractiveSshd:
    """A running sshd with the interactive CLI, and what a client needs to reach it."""

    port: int
    dir: Path
    client_key: Path
    user: str
    known_hosts: Path
    proc: subprocess.Popen[bytes]

    def config(self, name: str = "leaf-sshi", *, timeout_s: float = 5.0, **options: object) -> DeviceConfig:
        opts: dict[str, object] = {"known_hosts": str(self.known_hosts)}
        opts.update(options)
        return DeviceConfig(
            name=name,
            kind="switch",
            driver="arista-eos",
            host="127.0.0.1",
            port=self.port,
            credentials=Credentials(username=self.user, key_file=str(self.client_key)),
            options=opts,
            timeout_s=timeout_s,
        )

    @contextlib.contextmanager
    def behave(self, **behaviour: object) -> Iterator[None]:
        path = self.dir / "behaviour.json"
        path.write_text(json.dumps(behaviour))
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def log_lines(self, name: str) -> list[str]:
        """Lines of ``exec.log`` / ``sessions.log`` (what the CLI recorded)."""
        path = self.dir / name
        return path.read_text().splitlines() if path.exists() else []

    def reset_logs(self) -> None:
        for name in ("exec.log", "sessions.log"):
            (self.dir / name).unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        check=True,
        timeout=20,
    )
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _wait_for_banner(proc: subprocess.Popen[bytes], port: int, log: Path, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on port {port} within {limit_s} s: {log.read_text()}")


def start_interactive_sshd(workdir: Path, data_dir: Path = EOS_DATA) -> InteractiveSshd:
    """Start sshd on 127.0.0.1:<free port> running the interactive CLI for every session."""
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        raise RuntimeError("OpenSSH server (/usr/sbin/sshd) and ssh-keygen are required for this test")
    workdir.mkdir(parents=True, exist_ok=True)
    host_key_line = _keygen(workdir / "host_key")
    client_pub = _keygen(workdir / "client_key")
    (workdir / "authorized_keys").write_text(client_pub + "\n")
    port = _free_port()
    conf = workdir / "sshd_config"
    conf.write_text(
        textwrap.dedent(
            f"""\
            Port {port}
            ListenAddress 127.0.0.1
            HostKey {workdir / "host_key"}
            PidFile {workdir / "sshd.pid"}
            AuthorizedKeysFile {workdir / "authorized_keys"}
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            PermitRootLogin yes
            PermitTTY yes
            PrintMotd no
            PrintLastLog no
            LogLevel VERBOSE
            ForceCommand {sys.executable} -S {CLI_SCRIPT} {workdir} {data_dir}
            """
        )
    )
    os.makedirs("/run/sshd", exist_ok=True)
    log = workdir / "sshd.log"
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)], stdout=log_fh, stderr=subprocess.STDOUT)
    try:
        _wait_for_banner(proc, port, log)
    except BaseException:
        proc.kill()
        proc.wait(timeout=5)
        raise
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key_line}\n")
    user = pwd.getpwuid(os.geteuid()).pw_name
    return InteractiveSshd(port, workdir, workdir / "client_key", user, known_hosts, proc)


class SilentTcpServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte (no SSH banner)."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self.host, self.port = self._listener.getsockname()
        self._held: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-tcp", daemon=True)
        self._thread.start()

    @property
    def accepted(self) -> int:
        return len(self._held)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)  # keep it open, say nothing

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for conn in self._held:
            conn.close()
