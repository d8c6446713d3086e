"""OpenSSH sshd (third-party peer) on 127.0.0.1 posing as an OpenBMC shell, for driver tests.

The sshd itself comes from tests/support/sshd_peer.py (own config, pinned host key, client key, bracketed
known_hosts entry, stop by PID); what is specific here is the ForceCommand script. It answers
from tests/data/openbmc/ (OpenBMC-format output) and keeps the host power state in a file so that
``obmcutil poweroff`` / ``poweron`` change what ``obmcutil state`` prints next. Every command it
receives is appended to ``commands.log``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.support.sshd_peer import SshdPeer, python_command, start_sshd

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "openbmc"

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


class OpenBmcSshd(SshdPeer):
    """The running OpenBMC peer; ``config()`` defaults to an ``openbmc-ssh`` driver named bmc-obmc."""

    DEVICE_NAME = "bmc-obmc"
    DEVICE_KIND = "bmc"
    DEVICE_DRIVER = "openbmc-ssh"

    @property
    def state_file(self) -> Path:
        return self.dir / "power.state"

    @property
    def command_log(self) -> Path:
        return self.dir / "commands.log"

    def set_power(self, on: bool) -> None:
        self.state_file.write_text("on" if on else "off")

    @property
    def power_on(self) -> bool:
        return self.state_file.read_text().strip() == "on"

    def commands(self) -> list[str]:
        """Command lines received so far, oldest first."""
        return self.command_log.read_text().splitlines() if self.command_log.exists() else []


def openbmc_sshd(d: Path, *, asset: bool = True) -> OpenBmcSshd:
    """Start sshd in directory ``d`` with the host powered on.

    ``asset``: whether busctl answers the inventory object. Use as ``with openbmc_sshd(...) as
    peer:`` (stops it on exit) or call ``stop()``.
    """
    d.mkdir(parents=True, exist_ok=True)
    (d / "power.state").write_text("on")
    script = d / "force_command.py"
    script.write_text(
        FORCE_COMMAND.format(
            data_dir=str(DATA_DIR), state=str(d / "power.state"), log=str(d / "commands.log"), asset=asset
        )
    )
    return start_sshd(d, python_command(script), peer_type=OpenBmcSshd)
