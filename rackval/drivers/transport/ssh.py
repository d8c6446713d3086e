"""SSH command transport over paramiko: verified host keys, one reused connection, bounded waits.

Switches, BMCs and GPU nodes are driven by running CLI commands over SSH exec channels. This
module owns running them: an exec channel per command, a long-lived ``sh`` session for cheap
repeated commands, an interactive shell for CLIs that refuse exec, a timeout on every wait, and
reusing one connection per device with a lock, because parallel channels on one paramiko
connection are unreliable (paramiko issue #1705). Its neighbours own the rest: ``ssh_connect``
opening and verifying the connection (known_hosts, TCP_NODELAY), ``ssh_options`` the device's
options, ``ssh_session`` the ``sh`` session's wire protocol, ``ssh_shell`` and ``ssh_terminal``
the interactive shell, ``watchdog`` the deadlines of channel requests.
"""

from __future__ import annotations

import codecs
import contextlib
import re
import select
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NoReturn

import paramiko

from rackval.core.errors import ConfigError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import DeviceConfig
from rackval.drivers.transport.ssh_connect import DEFAULT_SSH_PORT, open_client
from rackval.drivers.transport.ssh_options import SshSettings, compile_regex, prompt_pattern
from rackval.drivers.transport.ssh_session import (
    SessionEnded,
    SessionSilent,
    SessionTooLarge,
    command_line,
    new_marker,
    read_result,
)
from rackval.drivers.transport.ssh_shell import READ_CHUNK, InteractiveShell, ShellGone, ShellTimeout, ShellTooLarge
from rackval.drivers.transport.watchdog import WATCHDOG

_REFUSAL_MAX_CHARS = 1000  # a refusal is a short message, not the output of a real command


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did.

    ``exit_status`` is -1 when the server closed the channel without reporting a status (for
    example when the command was killed by a signal).
    """

    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class _ExecRefused(DeviceProtocolError):
    """The server denied the exec request itself (``cli_mode: auto`` then uses the shell)."""


class _NoSession(Exception):
    """The device gives no ``sh`` session for run_persistent (internal: fall back to exec)."""


class SshTransport:
    """Runs commands on one device over SSH, reusing one verified connection.

    Three ways to run a command: an exec channel per command (``run``; one round trip, real exit
    status, separate stderr); one long-lived ``sh`` session per connection (``run_persistent``:
    the same result for a tenth of the cost, for telemetry sampled every second on hosts that
    have a POSIX shell); and one interactive shell per connection (``run_interactive``) for
    CLIs whose AAA refuses exec channels and only offer a login shell. ``run_cli`` picks
    between exec and the interactive shell by the ``cli_mode`` option.

    Credentials: ``username`` with ``password`` and/or ``key_file`` (a private key path).

    Options (``config.options``): see ``SshSettings`` (known_hosts, trust_on_first_use, allow_agent,
    look_for_keys, keepalive_s, encoding, cli_mode, exec_refusal_regex, prompt_regex, pager_regex,
    shell_setup, shell_width, shell_height, shell_newline).

    ``config.timeout_s`` bounds connecting, the SSH banner and key exchange, authenticating,
    opening a shell up to its first prompt and (by default) each command. A server that accepts
    TCP but never speaks SSH (a hung BMC) is DeviceTimeout, not a protocol error.

    Interactive output is cleaned: the echoed command line, ANSI escapes, ``\\r``/backspace
    overwrites, pager prompts and the trailing prompt are removed; line ends are ``\\n``.
    A command whose prompt does not come back within its timeout raises DeviceTimeout naming
    the command; that shell is then closed (its state is unknown) and the next call opens a
    new one on the same connection.

    Thread safety: one lock serialises connect, run, the shell and close, so one instance may
    be shared by threads; commands on one device then run one at a time, which is what
    paramiko can do reliably on one connection.
    """

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        self._port = config.port if config.port is not None else DEFAULT_SSH_PORT
        self._address = config.address  # as every driver names it in errors
        self._opts = SshSettings.from_config(config)
        self._active_mode = "shell" if self._opts.cli_mode == "shell" else "exec"
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._shell: InteractiveShell | None = None
        self._session: paramiko.Channel | None = None  # the long-lived ``sh`` of run_persistent
        self._session_unsupported = False  # the device gave us no shell: run_persistent uses exec

    def __repr__(self) -> str:
        return f"SshTransport({self.name!r}, {self._address!r})"

    # ---- errors ------------------------------------------------------------------------------
    def _error(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self.name, self._address, operation, detail)

    # ---- connection --------------------------------------------------------------------------
    def _is_connected(self) -> bool:
        if self._client is None:
            return False
        transport = self._client.get_transport()
        return transport is not None and transport.is_active()

    def _drop(self) -> None:
        self._close_shell()
        self._close_session()
        client, self._client = self._client, None
        if client is not None:
            # Closing a dead connection must never mask the error that made us drop it.
            with contextlib.suppress(Exception):
                client.close()

    def _connect(self) -> None:
        """Open, verify and authenticate a new connection. Caller holds the lock."""
        self._drop()
        self._client = open_client(self._config, self._port, self._opts)

    def connect(self) -> None:
        """Connect now instead of on the first command (to fail early on keys or credentials)."""
        with self._lock:
            if not self._is_connected():
                self._connect()

    # ---- commands ----------------------------------------------------------------------------
    def _open_channel(self, operation: str, timeout: float) -> paramiko.Channel:
        """A fresh session channel; reconnect once if the old connection turned out dead.

        Retrying is safe here because nothing has been sent to run yet.
        """
        last: Exception | None = None
        for _attempt in (1, 2):
            if not self._is_connected():
                self._connect()
            transport = self._client.get_transport() if self._client is not None else None
            if transport is None:  # closed under us between the check and here
                self._drop()
                continue
            try:
                return transport.open_session(timeout=timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                last = exc
                self._drop()
        raise self._error(
            DeviceError, operation, f"cannot open an SSH channel, even after reconnecting: {last}"
        ) from last

    def run(self, command: Sequence[str] | str, timeout: float | None = None) -> CommandResult:
        """Run one command on an exec channel and return its exit status and output.

        A non-zero status is not an error. This always uses an exec channel, whatever
        ``cli_mode`` says (use ``run_cli`` for CLIs that may refuse exec).

        A sequence is an argv and is quoted with ``shlex.join`` so that each element arrives as one
        word. A ``str`` is sent exactly as given: the caller is responsible for quoting anything
        the remote shell must not split or interpret.

        Raises DeviceTimeout (naming the command) when the command has not finished within
        ``timeout`` (default ``config.timeout_s``); the channel is closed, the connection kept.
        """
        cmd = command if isinstance(command, str) else shlex.join(command)
        limit = self._config.timeout_s if timeout is None else timeout
        with self._lock:
            return self._run_exec(cmd, limit)

    def run_persistent(self, command: Sequence[str] | str, timeout: float | None = None) -> CommandResult:
        """Run a command in this connection's long-lived ``sh`` session instead of an exec channel.

        Why: an exec channel costs ~9 SSH packets each way plus a fork and exec of a login shell
        on the device; sampling telemetry every second on dozens of nodes, that is most of the
        cost (measured against OpenSSH: 0.51 ms client CPU and 2.8 ms wall per exec, 0.04 ms and
        0.08 ms in a session). The session runs ``sh`` once; each command is one line in it, both
        of its streams delimited exactly (``ssh_session``).

        Same result and errors as ``run`` (quoting included). For read-only commands (telemetry):
        on a device that gives no shell (a ForceCommand, a restricted CLI) the first command's
        session ends or stays silent, and this transport then uses exec channels for good, which
        runs that first command a second time. A command that times out closes the session
        (its state is unknown); the next call opens a new one.
        """
        cmd = command if isinstance(command, str) else shlex.join(command)
        limit = self._config.timeout_s if timeout is None else timeout
        if "\n" in cmd or "\r" in cmd:
            raise ValueError("run_persistent runs one command line; use run() for multi-line scripts")
        with self._lock:
            if not self._session_unsupported:
                try:
                    return self._run_in_session(cmd, limit)
                except _NoSession:
                    self._session_unsupported = True
            return self._run_exec(cmd, limit)

    def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()

    def _run_in_session(self, cmd: str, limit: float) -> CommandResult:
        operation = f"SSH command {cmd!r}"
        start = time.monotonic()
        deadline = start + limit
        fresh = self._session is None or self._session.closed or not self._is_connected()
        if fresh:
            self._close_session()
            chan = self._open_channel(operation, limit)
            try:
                self._exec(chan, "sh", operation, limit)
            except _ExecRefused as exc:
                chan.close()
                raise _NoSession from exc
            except BaseException:
                chan.close()
                raise
            self._session = chan
        chan = self._session
        assert chan is not None
        marker = new_marker()
        try:
            chan.sendall(command_line(cmd, marker).encode(self._opts.encoding))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self._close_session()
            if fresh:
                raise _NoSession from exc
            return self._run_in_session(cmd, deadline - time.monotonic())  # nothing ran: a new session
        try:
            out, err, status_text = read_result(chan, marker, deadline, self._opts.max_output_bytes)
        except SessionTooLarge:
            self._close_session()
            raise self._error(DeviceProtocolError, operation, self._too_large()) from None
        except SessionEnded:
            self._close_session()
            if fresh:
                raise _NoSession from None
            raise self._error(
                DeviceError, operation, "connection lost while the command was running (its shell session ended)"
            ) from None
        except SessionSilent as silent:
            self._close_session()
            if fresh and not silent.out_bytes and not silent.err_bytes:
                raise _NoSession from None
            raise self._error(DeviceTimeout, operation, f"no exit status within {limit:g} s ({silent})") from None
        if not status_text.isdigit():
            self._close_session()
            raise self._error(DeviceProtocolError, operation, f"unreadable exit status {status_text[:20]!r}")
        return CommandResult(
            command=cmd,
            exit_status=int(status_text),
            stdout=out.decode(self._opts.encoding, errors="replace"),
            stderr=err.decode(self._opts.encoding, errors="replace"),
            duration_s=time.monotonic() - start,
        )

    def _run_exec(self, cmd: str, limit: float) -> CommandResult:
        """``run`` without the lock (the caller holds it)."""
        operation = f"SSH command {cmd!r}"
        start = time.monotonic()
        chan = self._open_channel(operation, limit)
        try:
            self._exec(chan, cmd, operation, limit)
            out, err, status = self._collect(chan, operation, start + limit, limit)
        finally:
            chan.close()
        return CommandResult(
            command=cmd,
            exit_status=status,
            stdout=out.decode(self._opts.encoding, errors="replace"),
            stderr=err.decode(self._opts.encoding, errors="replace"),
            duration_s=time.monotonic() - start,
        )

    def _request(
        self,
        chan: paramiko.Channel,
        call: Callable[[], object],
        operation: str,
        limit: float,
        what: str,
        refused: type[DeviceError] = DeviceProtocolError,
    ) -> None:
        """Make one channel request (exec, pty, shell) with a bounded wait for the server's reply.

        paramiko waits for the reply without a timeout; a watchdog closes the channel if it never
        comes, which wakes that wait.
        """
        deadline = WATCHDOG.schedule(limit, chan.close)
        try:
            call()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            deadline.cancel()  # returns once a watchdog that fired has closed the channel
            if deadline.fired:
                raise self._error(DeviceTimeout, operation, f"server did not accept {what} within {limit:g} s") from exc
            if self._is_connected():
                raise self._error(refused, operation, f"server refused {what}: {exc}") from exc
            self._drop()
            raise self._error(DeviceError, operation, f"connection lost while starting {what}: {exc}") from exc
        finally:
            deadline.cancel()
        if deadline.fired:  # the watchdog won the race against a reply that came just in time
            raise self._error(DeviceTimeout, operation, f"server did not accept {what} within {limit:g} s")

    def _too_large(self) -> str:
        return f"output larger than {self._opts.max_output_bytes} bytes (option 'max_output_bytes')"

    def _exec(self, chan: paramiko.Channel, cmd: str, operation: str, limit: float) -> None:
        self._request(chan, lambda: chan.exec_command(cmd), operation, limit, "the command", _ExecRefused)

    # ---- CLI commands: exec or interactive shell ---------------------------------------------
    @property
    def cli_mode(self) -> str:
        """The configured ``cli_mode`` option: ``exec``, ``shell`` or ``auto``."""
        return self._opts.cli_mode

    @property
    def active_cli_mode(self) -> str:
        """What ``run_cli`` uses now: ``exec``, or ``shell`` (configured, or learnt in auto mode)."""
        return self._active_mode

    def run_cli(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run one CLI command the way ``cli_mode`` says (exec channel or interactive shell).

        In the shell there is no exit status: a command whose prompt came back has
        ``exit_status`` 0, its output (stdout and stderr merged by the pty) is in ``stdout``
        and CLI errors show up there (e.g. EOS ``% Invalid input``), so callers must still check
        the text. In auto mode a clear exec refusal switches to the shell for good (see the
        class docstring) and the command is run there.
        """
        limit = self._config.timeout_s if timeout is None else timeout
        with self._lock:
            if self._active_mode == "exec":
                try:
                    result = self._run_exec(command, limit)
                except _ExecRefused:
                    if self._opts.cli_mode != "auto":
                        raise
                else:
                    if self._opts.cli_mode != "auto" or not self._exec_refused(result):
                        return result
                self._active_mode = "shell"
            start = time.monotonic()
            (output,) = self._run_shell([command], self._opts.prompt_re, self._opts.pager_re, self._opts.setup, limit)
            return CommandResult(command, 0, output, "", time.monotonic() - start)

    def _exec_refused(self, result: CommandResult) -> bool:
        text = (result.stdout + "\n" + result.stderr).strip()
        if not text:
            return result.exit_status != 0
        return len(text) <= _REFUSAL_MAX_CHARS and self._opts.refusal_re.search(text) is not None

    def run_interactive(
        self,
        commands: Sequence[str] | str,
        *,
        prompt_regex: str | None = None,
        pager_regex: str | None = None,
        setup: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> list[str]:
        """Run CLI commands in this connection's interactive shell; one clean output per command.

        The shell (pty, wide terminal) is opened on first use and reused by later calls; it is
        reopened when the device closed it. ``setup`` commands (default: option ``shell_setup``,
        i.e. ``terminal length 0``) run once per shell before the first command that asks for
        them. ``prompt_regex`` and ``pager_regex`` default to the options of the same name.
        Each command (and opening the shell) is bounded by ``timeout`` (default
        ``config.timeout_s``): DeviceTimeout names the command whose prompt did not come back.
        """
        cmds = [commands] if isinstance(commands, str) else list(commands)
        limit = self._config.timeout_s if timeout is None else timeout
        try:
            prompt_re = self._opts.prompt_re if prompt_regex is None else prompt_pattern(prompt_regex, self.name)
            pager_re = (
                self._opts.pager_re if pager_regex is None else compile_regex(pager_regex, "pager_regex", self.name)
            )
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        setup_cmds = self._opts.setup if setup is None else tuple(setup)
        with self._lock:
            return self._run_shell(cmds, prompt_re, pager_re, setup_cmds, limit)

    # ---- interactive shell internals (the caller holds the lock) -----------------------------
    def _close_shell(self) -> None:
        shell, self._shell = self._shell, None
        if shell is not None:
            with contextlib.suppress(Exception):
                shell.chan.close()

    def _shell_usable(self) -> bool:
        shell = self._shell
        if shell is None or not self._is_connected() or self._client is None:
            return False
        chan = shell.chan
        return shell.transport is self._client.get_transport() and not (
            chan.closed or chan.eof_received or chan.exit_status_ready()
        )

    def _run_shell(
        self,
        commands: Sequence[str],
        prompt_re: re.Pattern[str],
        pager_re: re.Pattern[str],
        setup: Sequence[str],
        limit: float,
    ) -> list[str]:
        if not self._shell_usable():
            self._open_shell(prompt_re, pager_re, limit)
        shell = self._shell
        assert shell is not None
        for cmd in setup:
            if cmd not in shell.setup_done:
                with self._shell_errors(f"SSH shell setup command {cmd!r}"):
                    shell.command(cmd, prompt_re, pager_re, limit)
                shell.setup_done.add(cmd)
        outputs = []
        for cmd in commands:
            with self._shell_errors(f"SSH shell command {cmd!r}"):
                outputs.append(shell.command(cmd, prompt_re, pager_re, limit))
        return outputs

    def _open_shell(self, prompt_re: re.Pattern[str], pager_re: re.Pattern[str], limit: float) -> None:
        self._close_shell()
        operation = "open SSH interactive shell"
        chan = self._open_channel(operation, limit)
        opts = self._opts
        try:
            self._request(
                chan,
                lambda: chan.get_pty(term="vt100", width=opts.shell_width, height=opts.shell_height),
                operation,
                limit,
                "a pseudo-terminal",
            )
            self._request(chan, chan.invoke_shell, operation, limit, "an interactive shell")
            chan.settimeout(limit)
            transport = self._client.get_transport() if self._client is not None else None
            assert transport is not None
            decoder = codecs.getincrementaldecoder(opts.encoding)(errors="replace")
            shell = InteractiveShell(chan, transport, decoder, opts.encoding, opts.newline, opts.max_output_bytes)
            with self._shell_errors(operation):
                shell.read_to_prompt("", prompt_re, pager_re, limit, "the first CLI prompt")
        except BaseException:
            with contextlib.suppress(Exception):
                chan.close()
            raise
        self._shell = shell

    @contextlib.contextmanager
    def _shell_errors(self, operation: str) -> Iterator[None]:
        """The shell's failures as errors naming the device and ``operation``; the shell is closed."""
        try:
            yield
        except ShellTimeout as exc:
            self._close_shell()
            raise self._error(DeviceTimeout, operation, str(exc)) from exc.__cause__
        except ShellTooLarge as exc:
            self._close_shell()
            raise self._error(DeviceProtocolError, operation, str(exc)) from None
        except ShellGone as exc:
            self._lost_shell(operation, exc.__cause__)

    def _lost_shell(self, operation: str, exc: BaseException | None) -> NoReturn:
        self._close_shell()
        if not self._is_connected():
            self._drop()
            raise self._error(DeviceError, operation, f"connection lost during the interactive session: {exc}")
        raise self._error(DeviceError, operation, "the device closed the interactive session")

    def _collect(
        self, chan: paramiko.Channel, operation: str, deadline: float, limit: float
    ) -> tuple[bytes, bytes, int]:
        """Read stdout and stderr together (so neither can fill the window and stall the other)."""
        out, err = bytearray(), bytearray()
        fd = chan.fileno()  # readable whenever either stream has data or the channel hit EOF

        cap = self._opts.max_output_bytes

        def drain() -> None:  # (a fast writer keeps recv_ready true: stop at the cap, not at a lull)
            while chan.recv_ready() and len(out) + len(err) <= cap:
                out.extend(chan.recv(READ_CHUNK))
            while chan.recv_stderr_ready() and len(out) + len(err) <= cap:
                err.extend(chan.recv_stderr(READ_CHUNK))

        def timed_out() -> DeviceError:
            return self._error(
                DeviceTimeout,
                operation,
                f"no exit status within {limit:g} s ({len(out)} bytes of stdout, {len(err)} of stderr so far)",
            )

        while True:
            drain()
            if len(out) + len(err) > cap:
                raise self._error(DeviceProtocolError, operation, self._too_large())
            if chan.eof_received or chan.closed:
                drain()  # data that raced in just before the EOF flag was read
                remaining = deadline - time.monotonic()
                if not chan.status_event.wait(max(remaining, 0.0)):
                    raise timed_out()
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise timed_out()
            select.select([fd], [], [], remaining)

        status = chan.recv_exit_status()
        if status == -1 and not self._is_connected():
            self._drop()
            raise self._error(DeviceError, operation, "connection lost while the command was running")
        return bytes(out), bytes(err), status

    def close(self) -> None:
        """Close the connection (idempotent); the next command reconnects."""
        with self._lock:
            self._drop()
