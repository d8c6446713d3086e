"""Run OpenSSH ``sshd`` as a third-party peer that answers switch CLI commands from fixture files.

The sshd itself comes from tests/support/sshd_peer.py (own config, pinned host key, client key, bracketed
known_hosts entry, stop by PID). What is specific here is the ``ForceCommand`` script: it looks
SSH_ORIGINAL_COMMAND up in a table of command -> file. A file of the same name in the ``overlay``
directory wins over the data directory, so a test can serve truncated or wrong output for one
command and then remove it. Unknown commands print an EOS-style ``% Invalid input`` on stdout
(exit 0); ``sleep N`` sleeps.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.support.sshd_peer import SshdPeer, python_command, start_sshd

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


class SwitchSshd(SshdPeer):
    """The running switch peer; pass the driver name to ``config(name, driver, **options)``."""

    @property
    def overlay(self) -> Path:
        """Files here are served instead of the data directory's files of the same name."""
        return self.dir / "overlay"

    @contextmanager
    def serving(self, filename: str, text: str) -> Iterator[None]:
        """Serve ``text`` instead of the fixture ``filename`` for the duration of the block."""
        path = self.overlay / filename
        path.write_text(text)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def start_switch_sshd(workdir: Path, data_dir: Path, files: Mapping[str, str]) -> SwitchSshd:
    """Start sshd on 127.0.0.1:<free port> serving ``files`` (command -> file name in data_dir)."""
    overlay = workdir / "overlay"
    overlay.mkdir(parents=True)
    script = workdir / "force_command.py"
    script.write_text(FORCE_COMMAND.format(data_dir=str(data_dir), overlay_dir=str(overlay), files=dict(files)))
    return start_sshd(workdir, python_command(script), peer_type=SwitchSshd)
