"""Run OpenSSH ``sshd`` as a third-party peer that answers CLI commands from fixture files.

The pattern follows tests/test_ssh_transport_sshd.py: its own config, a pinned ed25519 host key
written to a known_hosts file in OpenSSH's ``[127.0.0.1]:PORT`` form, a client key in
authorized_keys, and a ``ForceCommand`` script that looks SSH_ORIGINAL_COMMAND up in a table of
command -> file. A file of the same name in the ``overlay`` directory wins over the data
directory, so a test can serve truncated or wrong output for one command and then remove it.
Unknown commands print an EOS-style ``% Invalid input`` on stdout (exit 0); ``sleep N`` sleeps.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from drivers.config import Credentials, DeviceConfig

SSHD = "/usr/sbin/sshd"

FORCE_COMMAND = textwrap.dedent(
    """\
    import os, sys, time
    DATA_DIR = {data_dir!r}
    OVERLAY_DIR = {overlay_dir!r}
    FILES = {files!r}
    raw = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    words = raw.split()
    if words[:1] == ["sleep"] and len(words) == 2:
        time.sleep(float(words[1]))
        sys.exit(0)
    name = FILES.get(" ".join(words))
    if name is None:
        sys.stdout.write("%% Invalid input (at token 0: '%s')\\n" % (words[0] if words else ""))
        sys.exit(0)
    for folder in (OVERLAY_DIR, DATA_DIR):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path) as fh:
                sys.stdout.write(fh.read())
            break
    """
)


@dataclass
class SshdPeer:
    """A running sshd and what a client needs to reach it."""

    port: int
    dir: Path
    host_key_line: str
    client_key: Path
    user: str
    known_hosts: Path
    overlay: Path
    proc: subprocess.Popen[bytes]

    def config(self, name: str, driver: str, **options: object) -> DeviceConfig:
        opts: dict[str, object] = {"known_hosts": str(self.known_hosts)}
        opts.update(options)
        return DeviceConfig(
            name=name,
            kind="switch",
            driver=driver,
            host="127.0.0.1",
            port=self.port,
            credentials=Credentials(username=self.user, key_file=str(self.client_key)),
            options=opts,
            timeout_s=5.0,
        )

    @contextmanager
    def serving(self, filename: str, text: str) -> Iterator[None]:
        """Serve ``text`` instead of the fixture ``filename`` for the duration of the block."""
        path = self.overlay / filename
        path.write_text(text)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

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


def start_sshd(workdir: Path, data_dir: Path, files: Mapping[str, str]) -> SshdPeer:
    """Start sshd on 127.0.0.1:<free port> serving ``files`` (command -> file name in data_dir)."""
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        raise RuntimeError("OpenSSH server (/usr/sbin/sshd) and ssh-keygen are required for this test")
    workdir.mkdir(parents=True, exist_ok=True)
    host_key_line = _keygen(workdir / "host_key")
    client_pub = _keygen(workdir / "client_key")
    (workdir / "authorized_keys").write_text(client_pub + "\n")
    overlay = workdir / "overlay"
    overlay.mkdir()
    script = workdir / "force_command.py"
    script.write_text(FORCE_COMMAND.format(data_dir=str(data_dir), overlay_dir=str(overlay), files=dict(files)))
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
            LogLevel VERBOSE
            ForceCommand {sys.executable} -S {script}
            """
        )
    )
    os.makedirs("/run/sshd", exist_ok=True)
    log = workdir / "sshd.log"
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)], stdout=log_fh, stderr=subprocess.STDOUT)
    known_hosts = workdir / "known_hosts"
    peer = SshdPeer(
        port=port,
        dir=workdir,
        host_key_line=host_key_line,
        client_key=workdir / "client_key",
        user=pwd.getpwuid(os.geteuid()).pw_name,
        known_hosts=known_hosts,
        overlay=overlay,
        proc=proc,
    )
    try:
        _wait_for_banner(proc, port, log)
    except BaseException:
        peer.stop()
        raise
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key_line}\n")
    return peer
