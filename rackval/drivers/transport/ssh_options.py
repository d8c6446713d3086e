"""The options of an SSH device as ``SshTransport`` uses them: checked, defaulted and compiled.

Types, ranges and unknown keys are checked by the typed model (``rackval.drivers.options``, one
wording for every driver); here the defaults that are behaviour (the prompt, pager and exec-refusal
expressions, the shell setup) are named, and the expressions are compiled once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from rackval.core.errors import ConfigError
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import SshOptions, parse_options

CLI_MODES = ("exec", "shell", "auto")

# A prompt is a whole last line: a hostname-like word (``switch1``, ``admin@host:~``,
# ``leaf1(config-if-Et1)``, ``[admin@host ~]``, ``<HUAWEI>``) ending in ``#``, ``>`` or ``$``, at most
# one trailing space. No spaces outside brackets, so an output line that happens to end in ``>``
# or ``$`` at a read boundary ("cost 5$", "a -> b>") is not taken for a prompt.
DEFAULT_PROMPT_REGEX = r"^(?=[\w\[<])(?:[\w.@:~/()<+-]|\[[^\]\r\n]{0,64}\]){1,100}[#>$] ?$"
DEFAULT_PAGER_REGEX = r"--More--|-- ?More ?--|<--- More --->"
DEFAULT_SHELL_SETUP: tuple[str, ...] = ("terminal length 0",)
# What a CLI that only allows interactive logins prints when asked to exec a command.
DEFAULT_EXEC_REFUSAL_REGEX = (
    r"(?i)\bexec\w*\b.{0,60}?\b(?:not supported|unsupported|not (?:allowed|permitted|available)|denied"
    r"|disabled|refused)|interactive (?:session|shell|login|mode) (?:is )?(?:required|only)"
    r"|only (?:interactive|shell) (?:sessions?|access|logins?|mode)"
)


def compile_regex(regex: str, what: str, device: str, *, flags: int = 0) -> re.Pattern[str]:
    """A regular expression from the rack file, or ConfigError naming the device and what it is."""
    try:
        return re.compile(regex, flags)
    except re.error as exc:
        raise ConfigError(f"device {device}: {what} {regex!r} is not a valid regular expression: {exc}") from exc


def prompt_pattern(regex: str, device: str) -> re.Pattern[str]:
    """The prompt regex anchored at the end of the last line (trailing blanks allowed)."""
    return compile_regex(f"(?:{regex})[ \\t]*\\Z", "prompt_regex", device, flags=re.MULTILINE)


@dataclass(frozen=True)
class SshSettings:
    """The options (``config.options``) of one SSH device, as ``SshTransport`` uses them:

    - ``known_hosts`` (path; required unless ``trust_on_first_use``, which then defaults it to
      ``~/.ssh/known_hosts``): the only file host keys are checked against. An unknown host or
      a changed key is refused with DeviceAuthError naming the offered key's fingerprint and this
      file. Entries for non-22 ports use OpenSSH's
      ``[host]:port`` form; hashed entries work too.
    - ``trust_on_first_use`` (bool, default false): accept an unknown host's key and append it to
      the known_hosts file. A *changed* key is still refused.
    - ``allow_agent`` (bool, default false) and ``look_for_keys`` (bool, default false): let
      paramiko also try the SSH agent / ``~/.ssh/id_*``. Off by default so the rack file alone
      decides which identity is used.
    - ``keepalive_s`` (float, default 0 = off): send SSH keepalives at this interval so idle
      connections survive NAT and firewall timeouts during long soaks.
    - ``encoding`` (str, default ``utf-8``): decoding of stdout/stderr (undecodable bytes are
      replaced, never fatal).
    - ``cli_mode`` (``exec`` | ``shell`` | ``auto``, default ``exec``): how ``run_cli`` runs a
      command. ``auto`` tries exec and, on a clear refusal, switches to the interactive shell
      for the rest of this instance's life (reconnects included). A clear refusal is: the
      server denies the exec request; or the channel closes with a non-zero (or no) exit status
      and no output at all; or a short output matching ``exec_refusal_regex``. Anything else
      (a connection drop, a command error) is reported as usual, never retried in the shell.
    - ``exec_refusal_regex`` (regex, default ``DEFAULT_EXEC_REFUSAL_REGEX``: "exec ... not
      supported/denied/disabled", "interactive session required", ...): what such a CLI prints.
    - ``prompt_regex`` (regex, default ``DEFAULT_PROMPT_REGEX``: a hostname-like word ending in
      ``#``, ``>`` or ``$`` alone on the last line, e.g. ``switch1#``, ``leaf1(config)#``,
      ``admin@host:~$``): the CLI prompt, matched against the last line received (after ANSI
      escapes are removed) and anchored at its end; ``^`` is the start of that line.
    - ``pager_regex`` (regex, default ``DEFAULT_PAGER_REGEX``): a pager prompt on the last line,
      answered with a space and removed from the output.
    - ``shell_setup`` (list of commands, default ``["terminal length 0"]``): sent once per shell
      before the first command (their output and errors are ignored: a CLI that does not know
      the command still works, its pager is answered).
    - ``shell_width`` / ``shell_height`` (int, default 512 / 24): pty size. Wide, so long
      command lines and table rows are not wrapped by the CLI.
    - ``shell_newline`` (str, default ``"\\n"``): what ends a command line (some CLIs want
      ``"\\r"``).
    - ``max_output_bytes`` (int, default 16 MiB): the most output one command may produce
      (stdout and stderr together; characters in the interactive shell). More is a
      DeviceProtocolError ("output larger than N bytes") and its channel is closed.
    """

    known_hosts: Path
    trust_on_first_use: bool
    allow_agent: bool
    look_for_keys: bool
    keepalive_s: float
    encoding: str
    cli_mode: str
    refusal_re: re.Pattern[str]
    prompt_re: re.Pattern[str]
    pager_re: re.Pattern[str]
    setup: tuple[str, ...]
    shell_width: int
    shell_height: int
    newline: str
    max_output_bytes: int

    @classmethod
    def from_config(cls, config: DeviceConfig) -> SshSettings:
        """Read and check every option (ConfigError names the device and the option)."""
        opts = parse_options(SshOptions, config.options, config.name, known_only=True)
        return cls(
            known_hosts=Path(os.path.expanduser(opts.known_hosts or "~/.ssh/known_hosts")),
            trust_on_first_use=opts.trust_on_first_use,
            allow_agent=opts.allow_agent,
            look_for_keys=opts.look_for_keys,
            keepalive_s=opts.keepalive_s,
            encoding=opts.encoding,
            cli_mode=opts.cli_mode,
            refusal_re=compile_regex(
                opts.exec_refusal_regex or DEFAULT_EXEC_REFUSAL_REGEX, "exec_refusal_regex", config.name
            ),
            prompt_re=prompt_pattern(opts.prompt_regex or DEFAULT_PROMPT_REGEX, config.name),
            pager_re=compile_regex(opts.pager_regex or DEFAULT_PAGER_REGEX, "pager_regex", config.name),
            setup=DEFAULT_SHELL_SETUP if opts.shell_setup is None else opts.shell_setup,
            shell_width=opts.shell_width,
            shell_height=opts.shell_height,
            newline=opts.shell_newline,
            max_output_bytes=opts.max_output_bytes,
        )
