"""OpenSSH sshd (third-party peer) on 127.0.0.1 posing as an OpenBMC shell, for driver tests.

Pattern copied from tests/test_ssh_transport_sshd.py: own config, host key and authorized_keys
in a temporary directory, a pinned ``[127.0.0.1]:PORT`` known_hosts entry, and a ForceCommand
script. The script answers from tests/data/openbmc/ (OpenBMC-format output) and keeps the host
power state in a file so that ``obmcutil poweroff`` / ``poweron`` change what ``obmcutil state``
prints next. Every command it receives is appended to ``commands.log``.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from drivers.config import Credentials, DeviceConfig

SSHD = "/usr/sbin/sshd"
DATA_DIR = Path(__file__).parent / "data" / "openbmc"

FORCE_COMMAND = textwrap.dedent(
    """\
    import os, shlex, sys
    DATA_DIR = {data_dir!r}
    STATE = {state!r}
    LOG = {log!r}
    ASSET = {asset!r}
    raw = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    with open(LOG, "a") as fh:
        fh.write(raw + "\\n")
    try:
        words = shlex.split(raw)
    except ValueError:
        words = [raw]

    def serve(name):
        with open(os.path.join(DATA_DIR, name)) as fh:
            sys.stdout.write(fh.read())
        sys.exit(0)

    def power():
        with open(STATE) as fh:
            return fh.read().strip()

    if words == ["cat", "/etc/os-release"]:
        serve("os-release")
    if words[:2] == ["obmcutil", "state"]:
        serve("obmcutil_state_running.txt" if power() == "on" else "obmcutil_state_off.txt")
    if words[:1] == ["obmcutil"] and len(words) == 2 and words[1] in ("poweron", "poweroff", "chassisoff"):
        with open(STATE, "w") as fh:
            fh.write("on" if words[1] == "poweron" else "off")
        sys.exit(0)
    if words[:1] == ["obmcutil"]:
        sys.stderr.write("ERROR: Invalid command '%s'\\n" % (words[1] if len(words) > 1 else ""))
        sys.exit(1)
    if words[:2] == ["busctl", "get-property"]:
        if ASSET and len(words) >= 5 and words[3] == "/xyz/openbmc_project/inventory/system":
            serve("busctl_asset.txt")
        sys.stderr.write("Failed to get property Manufacturer on interface %s: Unknown object\\n" % words[-4])
        sys.exit(1)
    sys.stderr.write("sh: %s: not found\\n" % (words[0] if words else ""))
    sys.exit(127)
    """
)


@dataclass
class OpenBmcSshd:
    port: int
    dir: Path
    client_key: Path
    user: str
    known_hosts: Path
    state_file: Path
    command_log: Path

    def config(self, name: str = "bmc-obmc", **options: object) -> DeviceConfig:
        opts: dict[str, object] = {"known_hosts": str(self.known_hosts)}
        opts.update(options)
        return DeviceConfig(
            name=name,
            kind="bmc",
            driver="openbmc-ssh",
            host="127.0.0.1",
            port=self.port,
            credentials=Credentials(username=self.user, key_file=str(self.client_key)),
            options=opts,
            timeout_s=5.0,
        )

    def set_power(self, on: bool) -> None:
        self.state_file.write_text("on" if on else "off")

    @property
    def power_on(self) -> bool:
        return self.state_file.read_text().strip() == "on"

    def commands(self) -> list[str]:
        return self.command_log.read_text().splitlines() if self.command_log.exists() else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True, timeout=20)
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


@contextmanager
def openbmc_sshd(d: Path, *, asset: bool = True) -> Iterator[OpenBmcSshd]:
    """Run sshd in directory ``d`` until the context exits (then terminate/kill it by PID)."""
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        raise RuntimeError("OpenSSH server (/usr/sbin/sshd) and ssh-keygen are required")
    host_key_line = _keygen(d / "host_key")
    client_pub = _keygen(d / "client_key")
    (d / "authorized_keys").write_text(client_pub + "\n")
    state = d / "power.state"
    state.write_text("on")
    command_log = d / "commands.log"
    script = d / "force_command.py"
    script.write_text(FORCE_COMMAND.format(data_dir=str(DATA_DIR), state=str(state), log=str(command_log), asset=asset))
    port = _free_port()
    conf = d / "sshd_config"
    conf.write_text(
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
            LogLevel VERBOSE
            ForceCommand {sys.executable} -S {script}
            """
        )
    )
    os.makedirs("/run/sshd", exist_ok=True)
    log = d / "sshd.log"
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)], stdout=log_fh, stderr=subprocess.STDOUT)
    try:
        _wait_for_banner(proc, port, log)
        known_hosts = d / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key_line}\n")
        user = pwd.getpwuid(os.geteuid()).pw_name
        yield OpenBmcSshd(port, d, d / "client_key", user, known_hosts, state, command_log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
