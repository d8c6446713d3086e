"""One interactive shell on an SSH connection: typing a CLI command and reading up to the prompt.

For CLIs whose AAA refuses exec channels and only offer a login shell. The shell is a pty (wide,
so long command lines and table rows are not wrapped), opened once per connection and reused.
Reading stops when the last line, as a terminal shows it (``ssh_terminal``), matches the prompt
(never the echo of the command being typed); a pager prompt on the last line is answered with a
space. The output is cleaned: the echoed command line, ANSI escapes, ``\\r``/backspace
overwrites, pager prompts and the trailing prompt are removed; line ends are ``\\n``.

Failures come out as ``ShellTimeout`` and ``ShellGone``: ``SshTransport`` closes the shell (its
state is unknown), names the device and the command, and opens a new shell on the next call.
"""

from __future__ import annotations

import codecs
import re
import select
import time
from dataclasses import dataclass, field

import paramiko

from rackval.drivers.transport.ssh_terminal import is_echo, last_line_shown, render_terminal, strip_pager_prompts

READ_CHUNK = 65536


class ShellTimeout(Exception):
    """What the shell waited for did not come within the limit (the message says what)."""


class ShellTooLarge(Exception):
    """The output went past the cap before the prompt came back (the message says how much)."""


class ShellGone(Exception):
    """The interactive session ended under us; ``__cause__`` is the error that ended it, if any."""


@dataclass
class InteractiveShell:
    """One interactive shell channel, what has been set up on it, and how commands are typed."""

    chan: paramiko.Channel
    transport: paramiko.Transport
    decoder: codecs.IncrementalDecoder
    encoding: str
    newline: str
    max_chars: int
    setup_done: set[str] = field(default_factory=set)

    def command(self, cmd: str, prompt_re: re.Pattern[str], pager_re: re.Pattern[str], limit: float) -> str:
        """Type ``cmd`` and return its cleaned output once the prompt is back."""
        chan = self.chan
        try:
            while chan.recv_ready():  # unsolicited lines (log messages) since the last prompt
                chan.recv(READ_CHUNK)
            chan.settimeout(limit)
            chan.sendall((cmd + self.newline).encode(self.encoding))
        except TimeoutError as exc:
            raise ShellTimeout(f"could not send it within {limit:g} s") from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ShellGone from exc
        raw = self.read_to_prompt(cmd, prompt_re, pager_re, limit, "the CLI prompt")
        # Everything before the prompt's line, as a terminal would have shown it.
        text = render_terminal(raw[: raw.rfind("\n") + 1])
        first, sep, rest = text.partition("\n")
        if sep and first.rstrip().endswith(cmd.strip()):  # the echoed command line
            text = rest
        return strip_pager_prompts(text, pager_re)

    def read_to_prompt(
        self, cmd: str, prompt_re: re.Pattern[str], pager_re: re.Pattern[str], limit: float, waiting_for: str
    ) -> str:
        """Read until the last line is a prompt, answering pager prompts; the raw text read.

        Only the last line is rendered and matched, so a long output costs linear time.
        """
        chan = self.chan
        deadline = time.monotonic() + limit
        raw = ""
        answered_at = 0  # pager prompts before this offset have been answered already
        echo_pending = bool(cmd.strip())
        while True:
            try:
                while chan.recv_ready() and len(raw) <= self.max_chars:
                    raw += self.decoder.decode(chan.recv(READ_CHUNK))
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise ShellGone from exc
            if len(raw) > self.max_chars:
                raise ShellTooLarge(f"output larger than {self.max_chars} characters (option 'max_output_bytes')")
            shown = last_line_shown(raw)
            if not (echo_pending and "\n" not in raw and is_echo(shown, cmd)) and prompt_re.search(shown):
                return raw  # (the echo of the command line is never taken for the prompt)
            if pager_re.search(last_line_shown(raw, answered_at)):
                try:
                    chan.sendall(b" ")
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise ShellGone from exc
                answered_at = len(raw)
                continue
            if chan.closed or chan.eof_received:
                if chan.recv_ready():
                    continue
                raise ShellGone
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = render_terminal(raw[-200:]).strip().splitlines()
                raise ShellTimeout(
                    f"{waiting_for} did not come back within {limit:g} s ({len(raw)} characters received, "
                    f"last line {tail[-1][-80:] if tail else ''!r}; does option prompt_regex match the "
                    "device's prompt?)"
                )
            select.select([chan], [], [], min(remaining, 1.0))
