"""OpenSSH ``sshd`` whose ForceCommand is the interactive test CLI (tests/support/ssh_interactive_cli.py).

The sshd itself comes from tests/support/sshd_peer.py (own config, pinned host key, client key, bracketed
known_hosts entry, stop by PID, and session processes killed with it). ``behave(...)`` sets how
the CLI misbehaves for sessions started inside the block (it reads ``behaviour.json`` at
session start).

Also here: ``SilentTcpServer``, which accepts TCP connections and never says a word (a hung
BMC, or sshd that stopped before its banner).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.support.sshd_peer import SshdPeer, python_command, start_sshd

CLI_SCRIPT = Path(__file__).with_name("ssh_interactive_cli.py")
EOS_DATA = Path(__file__).resolve().parents[1] / "data" / "eos"


class InteractiveSshd(SshdPeer):
    """A running sshd with the interactive CLI; ``config()`` defaults to arista-eos named leaf-sshi."""

    DEVICE_NAME = "leaf-sshi"
    DEVICE_KIND = "switch"
    DEVICE_DRIVER = "arista-eos"

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


def start_interactive_sshd(workdir: Path, data_dir: Path = EOS_DATA) -> InteractiveSshd:
    """Start sshd on 127.0.0.1:<free port> running the interactive CLI for every session."""
    command = python_command(CLI_SCRIPT, workdir, data_dir)
    return start_sshd(workdir, command, peer_type=InteractiveSshd, extra_config=["PermitTTY yes"])


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
