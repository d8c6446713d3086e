"""Start OpenSSH ``sshd`` as a throwaway third-party SSH peer for driver tests.

Why a real sshd: our SSH transport must interoperate with a server we did not write (its key
exchange, host-key and auth refusals, channel semantics, pty handling), and our simulator must
not be the only SSH server a driver has ever talked to. What the "device" answers is the
caller's ``ForceCommand``: sshd runs it for every session, with the client's command line in
``SSH_ORIGINAL_COMMAND``, so a short stdlib-only Python script can play a switch, a BMC or a
GPU node.

Every file (config, host key, client key, authorized_keys, known_hosts, log) lives in the
caller's ``workdir``; sshd listens on 127.0.0.1 on a port picked at run time, accepts only the
generated client key (or, if asked, passwords), and is stopped by PID together with the session
processes it started.

Known traps handled here:

- sshd needs its privilege-separation directory ``/run/sshd`` and an absolute path
  (``/usr/sbin/sshd -D -e -f <conf>``).
- OpenSSH clients look non-default ports up as ``[127.0.0.1]:PORT`` in known_hosts.
- sshd runs ForceCommand as ``<login shell> -c '<command>'``. Debian's bash, when it sees it was
  started by sshd (``SSH_CLIENT`` is set) as a top-level shell, sources ``~/.bashrc`` even though
  it is not interactive; root's ``.bashrc`` on this machine runs ``pyenv init``, ~100 ms per
  command. bash skips that only when it believes it is nested (``SHLVL`` >= 2 after its own
  increment), so every peer gets ``SetEnv SHLVL=1``. The script cannot do this for itself: the
  rc file has already run by the time the shell starts it.
- ``SetEnv`` counts only on its first line in sshd_config, so all variables go on one line.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self, TypeVar

from rackval.drivers.config import Credentials, DeviceConfig

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"
HOST = "127.0.0.1"

# bash (the login shell sshd runs ForceCommand with) skips ~/.bashrc when it thinks it is a
# nested shell; see the module docstring.
QUIET_SHELL_ENV: Mapping[str, str] = {"SHLVL": "1"}

P = TypeVar("P", bound="SshdPeer")


def require_openssh() -> None:
    """Raise RuntimeError naming what is missing (tests must fail, not skip, without a peer)."""
    if not os.path.exists(SSHD) or shutil.which(SSH_KEYGEN) is None:
        raise RuntimeError(f"OpenSSH server ({SSHD}) and {SSH_KEYGEN} are required for this test")


def keygen(path: Path) -> str:
    """Write a new passphrase-less ed25519 key pair at ``path`` (+ ``.pub``); return "ssh-ed25519 AAAA..."."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        check=True,
        timeout=20,
    )
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def fingerprint(pub_line: str) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a "type base64" public key line."""
    blob = base64.b64decode(pub_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def python_command(script: Path, *args: str | Path) -> list[str]:
    """argv that runs ``script`` (stdlib only) with this interpreter as a ForceCommand.

    ``-S`` skips site-packages: the script needs none, and it saves interpreter start-up on
    every command the test sends.
    """
    return [sys.executable, "-S", str(script), *map(str, args)]


def free_tcp_port(host: str = HOST) -> int:
    """A TCP port the OS considers free right now (sshd binds it a moment later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class SshdPeer:
    """A running sshd and what a client needs to reach it.

    Subclasses add what their device plays (command logs, state files) and set the ``DEVICE_*``
    defaults used by :meth:`config`; :func:`start_sshd` builds them via ``peer_type``. Usable as
    a context manager that stops the peer on exit.
    """

    DEVICE_NAME: ClassVar[str] = "sshd-peer"
    DEVICE_KIND: ClassVar[str] = "switch"
    DEVICE_DRIVER: ClassVar[str] = "sonic"

    port: int
    dir: Path
    host_key_line: str  # "ssh-ed25519 AAAA..." the server presents
    client_key: Path  # private key in authorized_keys
    user: str  # the account sshd runs sessions as (this process's user)
    known_hosts: Path  # holds "[127.0.0.1]:PORT <host_key_line>"
    proc: subprocess.Popen[bytes] = field(repr=False)
    host: str = HOST

    def config(
        self,
        name: str | None = None,
        driver: str | None = None,
        *,
        kind: str | None = None,
        timeout_s: float = 5.0,
        **options: object,
    ) -> DeviceConfig:
        """A DeviceConfig reaching this peer with the client key and the pinned known_hosts.

        ``options`` become driver options and override ``known_hosts``.
        """
        opts: dict[str, object] = {"known_hosts": str(self.known_hosts)}
        opts.update(options)
        return DeviceConfig(
            name=name or self.DEVICE_NAME,
            kind=kind or self.DEVICE_KIND,
            driver=driver or self.DEVICE_DRIVER,
            host=self.host,
            port=self.port,
            credentials=Credentials(username=self.user, key_file=str(self.client_key)),
            options=opts,
            timeout_s=timeout_s,
        )

    @property
    def log(self) -> str:
        """sshd's own log (-e, LogLevel VERBOSE): auth decisions, session starts, config errors."""
        try:
            return (self.dir / "sshd.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Kill the session processes this sshd started, then terminate it by PID (bounded waits).

        Per-connection sshd children and their sessions call setsid(), so they are neither in
        sshd's process group nor stopped with it; a session left running (``sleep``, an
        interactive CLI) would outlive the test. They are found through /proc while the listener
        is still their ancestor. Idempotent.
        """
        if self.proc.poll() is None:
            for pid in _descendants(self.proc.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_sshd(
    workdir: Path,
    force_command: Sequence[str | Path] | str,
    *,
    peer_type: type[P] = SshdPeer,  # type: ignore[assignment]
    password_authentication: bool = False,
    set_env: Mapping[str, str] | None = None,
    accept_env: Sequence[str] = (),
    extra_config: Sequence[str] = (),
    start_timeout_s: float = 10.0,
) -> P:
    """Start sshd on 127.0.0.1:<free port>; return once it sends its banner (bounded wait).

    ``force_command`` runs for every session: an argv (shell-quoted here) or a command line
    used verbatim; sshd hands it to the user's login shell with ``-c``. Only the generated
    client key is accepted unless ``password_authentication`` (checked against the system
    account: for testing refusals). ``set_env`` adds to the session environment (after
    :data:`QUIET_SHELL_ENV`, which it may override); ``accept_env`` names client variables
    sshd passes on; ``extra_config`` lines are appended to sshd_config. The caller stops the
    peer (``stop()`` in a fixture finalizer, or ``with``).
    """
    require_openssh()
    workdir.mkdir(parents=True, exist_ok=True)
    host_key_line = keygen(workdir / "host_key")
    (workdir / "authorized_keys").write_text(keygen(workdir / "client_key") + "\n")
    command = force_command if isinstance(force_command, str) else shlex.join(map(str, force_command))
    env = {**QUIET_SHELL_ENV, **(set_env or {})}
    port = free_tcp_port()
    lines = [
        f"Port {port}",
        f"ListenAddress {HOST}",
        f"HostKey {workdir / 'host_key'}",
        f"PidFile {workdir / 'sshd.pid'}",
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        "PubkeyAuthentication yes",
        f"PasswordAuthentication {'yes' if password_authentication else 'no'}",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",  # the temporary directory's modes are not sshd's business
        "PermitRootLogin yes",
        "PrintMotd no",
        "PrintLastLog no",
        "LogLevel VERBOSE",
        "SetEnv " + " ".join(_setenv_word(k, v) for k, v in env.items()),
    ]
    if accept_env:
        lines.append("AcceptEnv " + " ".join(accept_env))
    lines.extend(extra_config)
    lines.append(f"ForceCommand {command}")  # the rest of the line, as the shell will see it
    conf = workdir / "sshd_config"
    conf.write_text("\n".join(lines) + "\n")
    os.makedirs("/run/sshd", exist_ok=True)
    with open(workdir / "sshd.log", "wb") as log:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(conf)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    known_hosts = workdir / "known_hosts"
    peer = peer_type(
        port=port,
        dir=workdir,
        host_key_line=host_key_line,
        client_key=workdir / "client_key",
        user=pwd.getpwuid(os.geteuid()).pw_name,
        known_hosts=known_hosts,
        proc=proc,
    )
    try:
        _wait_for_banner(peer, start_timeout_s)
    except BaseException:
        peer.stop()
        raise
    known_hosts.write_text(f"[{HOST}]:{port} {host_key_line}\n")
    return peer


def _setenv_word(name: str, value: str) -> str:
    if not name.isidentifier() or any(c in value for c in '"\n'):
        raise ValueError(f"SetEnv cannot carry {name!r}")
    word = f"{name}={value}"
    return f'"{word}"' if any(c.isspace() for c in value) else word


def _wait_for_banner(peer: SshdPeer, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if peer.proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {peer.proc.returncode}: {peer.log}")
        try:
            with socket.create_connection((peer.host, peer.port), timeout=0.5) as s:
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on port {peer.port} within {limit_s} s: {peer.log}")


def _descendants(pid: int) -> list[int]:
    """PIDs below ``pid`` in the process tree, parents before children (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class ShellHost(SshdPeer):
    """A Linux host (as a ``linux-gpu-node`` device) whose sshd runs the command it is sent; the
    ``shell_host`` fixture of tests/peers/conftest.py starts one."""

    DEVICE_NAME = "node-sh"
    DEVICE_KIND = "node"
    DEVICE_DRIVER = "linux-gpu-node"
