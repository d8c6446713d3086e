"""A real OpenSSH sshd on 127.0.0.1 that plays a GPU node, for tests/test_node_linux_sshd.py.

The sshd itself comes from tests/support/sshd_peer.py (own config, pinned host key, client key, bracketed
known_hosts entry, stop by PID); what is specific here is the ForceCommand script, which
answers like a GPU node:

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

import shlex
import textwrap
from pathlib import Path

from tests.support.sshd_peer import SshdPeer, python_command, start_sshd

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "node"

FORCE_COMMAND = textwrap.dedent(
    """\
    import os, shlex, sys
    DATA_DIR = {data_dir!r}
    DIR = {dir!r}
    if len(sys.argv) > 1:  # run as a tool from a shell session (bin/ shims on its PATH)
        raw = shlex.join(sys.argv[1:])
    else:
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
        # a real shell whose PATH finds this node's tools (bin/ shims back into this script)
        env = dict(os.environ, PATH=os.path.join(DIR, "bin") + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
        os.execve("/bin/sh", ["sh", "-c", raw], env)
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


class NodeSshd(SshdPeer):
    """The running node peer; ``config()`` defaults to a ``linux-gpu-node`` driver named node-sshd."""

    DEVICE_NAME = "node-sshd"
    DEVICE_KIND = "node"
    DEVICE_DRIVER = "linux-gpu-node"

    def commands(self) -> list[str]:
        """Command lines received so far, oldest first."""
        path = self.dir / "commands.log"
        return path.read_text().splitlines() if path.exists() else []


def node_sshd(d: Path, dmi: dict[str, str]) -> NodeSshd:
    """Start sshd playing a GPU node from directory ``d``; ``dmi`` = /sys/class/dmi/id file contents.

    Use as ``with node_sshd(...) as peer:`` (stops it on exit) or call ``stop()``.
    """
    (d / "dmi").mkdir(parents=True)
    for field, text in dmi.items():
        (d / "dmi" / field).write_text(text)
    script = d / "force_command.py"
    script.write_text(FORCE_COMMAND.format(data_dir=str(DATA_DIR), dir=str(d)))
    # The node's tools as programs on a shell's PATH too, so a shell session (run_persistent)
    # finds them like on a real host, not only single exec commands.
    (d / "bin").mkdir()
    for tool in ("nvidia-smi", "nvidia-smi-r470", "dcgmi"):
        shim = d / "bin" / tool
        shim.write_text(f'#!/bin/sh\nexec {shlex.join(python_command(script))} {tool} "$@"\n')
        shim.chmod(0o755)
    return start_sshd(d, python_command(script), peer_type=NodeSshd)


def process_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan's zombie may never be reaped here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
