"""A real OpenSSH sshd on 127.0.0.1 that plays a GPU node, for tests/test_node_linux_sshd.py.

Same pattern as the fixture in tests/test_ssh_transport_sshd.py (own config, pinned host key,
authorized_keys in a temporary directory, bracketed known_hosts entry), with a ForceCommand
script that answers like a GPU node:

- ``cat /sys/class/dmi/id/<f>``: from files in ``<dir>/dmi/``; ``product_serial`` is refused
  with "Permission denied" as for a non-root user.
- ``uname -r``: a kernel release.
- ``nvidia-smi --query-gpu=...``: tests/data/node/nvidia_smi_query.csv. Called as
  ``nvidia-smi-r470`` it plays a pre-R535 driver: the new reason field name is refused with
  nvidia-smi's "is not a valid field to query" message (exit 2), the old name answered.
- ``dcgmi diag -r 1 --json``: the DCGM 4 pass file; ``-r 2``: the DCGM 3 failure file, exit 226.
- ``sh ...`` and ``kill ...``: really executed by /bin/sh, so the driver's detached start and its
  stop by PID run for real (the load tool in the tests is ``sleep``).
- anything else: "command not found", exit 127.

Every received command line is appended to ``<dir>/commands.log`` (one per line, NULs never
occur) so tests can check what went over the wire.
"""

from __future__ import annotations

import os
import pwd
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
DATA_DIR = Path(__file__).parent / "data" / "node"

FORCE_COMMAND = textwrap.dedent(
    """\
    import os, shlex, sys
    DATA_DIR = {data_dir!r}
    DIR = {dir!r}
    raw = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    with open(os.path.join(DIR, "commands.log"), "a") as log:
        log.write(raw.replace("\\n", "\\\\n") + "\\n")
    try:
        words = shlex.split(raw)
    except ValueError:
        words = [raw]
    cmd = words[0] if words else ""

    def answer(name, status=0):
        with open(os.path.join(DATA_DIR, name)) as fh:
            sys.stdout.write(fh.read())
        sys.exit(status)

    if cmd in ("sh", "kill"):
        os.execv("/bin/sh", ["sh", "-c", raw])
    if cmd == "cat" and len(words) == 2 and words[1].startswith("/sys/class/dmi/id/"):
        field = words[1].rsplit("/", 1)[1]
        if field == "product_serial":
            sys.stderr.write("cat: %s: Permission denied\\n" % words[1])
            sys.exit(1)
        try:
            with open(os.path.join(DIR, "dmi", field)) as fh:
                sys.stdout.write(fh.read())
        except OSError:
            sys.stderr.write("cat: %s: No such file or directory\\n" % words[1])
            sys.exit(1)
        sys.exit(0)
    if words == ["uname", "-r"]:
        sys.stdout.write("6.8.0-45-generic\\n")
        sys.exit(0)
    if cmd in ("nvidia-smi", "nvidia-smi-r470") and len(words) == 3 and words[1].startswith("--query-gpu="):
        if cmd == "nvidia-smi-r470" and "clocks_event_reasons.active" in words[1]:
            sys.stdout.write('Field "clocks_event_reasons.active" is not a valid field to query.\\n\\n')
            sys.exit(2)
        answer("nvidia_smi_query.csv")
    if words == ["dcgmi", "diag", "-r", "1", "--json"]:
        answer("dcgmi_diag_r1_dcgm4_pass.json")
    if words == ["dcgmi", "diag", "-r", "2", "--json"]:
        answer("dcgmi_diag_r2_dcgm3_fail.json", 226)
    sys.stderr.write("bash: line 1: %s: command not found\\n" % cmd)
    sys.exit(127)
    """
)


@dataclass
class NodeSshd:
    port: int
    dir: Path
    client_key: Path
    user: str
    known_hosts: Path

    def config(self, name: str = "node-sshd", **options: object) -> DeviceConfig:
        opts: dict[str, object] = {"known_hosts": str(self.known_hosts)}
        opts.update(options)
        return DeviceConfig(
            name=name,
            kind="node",
            driver="linux-gpu-node",
            host="127.0.0.1",
            port=self.port,
            credentials=Credentials(username=self.user, key_file=str(self.client_key)),
            options=opts,
            timeout_s=5.0,
        )

    def commands(self) -> list[str]:
        path = self.dir / "commands.log"
        return path.read_text().splitlines() if path.exists() else []


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


@contextmanager
def node_sshd(d: Path, dmi: dict[str, str]) -> Iterator[NodeSshd]:
    """Run sshd playing a GPU node from directory ``d``; ``dmi`` = /sys/class/dmi/id file contents."""
    (d / "dmi").mkdir()
    for field, text in dmi.items():
        (d / "dmi" / field).write_text(text)
    host_key_line = _keygen(d / "host_key")
    (d / "authorized_keys").write_text(_keygen(d / "client_key") + "\n")
    script = d / "force_command.py"
    script.write_text(FORCE_COMMAND.format(data_dir=str(DATA_DIR), dir=str(d)))
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
        yield NodeSshd(port, d, d / "client_key", user, known_hosts)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def process_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan's zombie may never be reaped here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
