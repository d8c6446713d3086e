"""SSH command transport over paramiko: verified host keys, one reused connection, bounded waits.

Switches, BMCs and GPU nodes are driven by running CLI commands over SSH exec channels. This
module owns the parts that are easy to get wrong: host-key verification against an explicit
known_hosts file (never silently trusting a new key), TCP_NODELAY (without it every command
pays ~40 ms of Nagle/delayed-ACK latency), a timeout on every wait, and reusing one connection
per device with a lock, because parallel channels on one paramiko connection are unreliable
(paramiko issue #1705).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import select
import shlex
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from drivers.config import DeviceConfig
from drivers.errors import (
    ConfigError,
    DeviceAuthError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeout,
)

DEFAULT_SSH_PORT = 22
_READ_CHUNK = 65536


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


def key_fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint, the form ``ssh-keygen -lf`` prints and engineers compare."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    """The name OpenSSH files a host under: bare for port 22, ``[host]:port`` otherwise."""
    return host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"


def _opt_bool(options: Mapping[str, Any], name: str, default: bool, device: str) -> bool:
    """Read a boolean option strictly: a typo like ``trust_on_first_use: flase`` must not mean yes."""
    value = options.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"device {device}: option {name!r} must be true or false, got {value!r}")


class _UnknownHostKey(paramiko.SSHException):
    """Raised by the reject policy; carries the offered key so the error can show its fingerprint."""

    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"host key for {hostname} not in known_hosts")
        self.hostname = hostname
        self.key = key


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise _UnknownHostKey(hostname, key)


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept an unknown host's key and append it to the known_hosts file (only when configured)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as fh:
            fh.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)


class SshTransport:
    """Runs commands on one device over SSH exec channels, reusing one verified connection.

    Credentials: ``username`` with ``password`` and/or ``key_file`` (a private key path).

    Options (``config.options``):

    - ``known_hosts`` (path, default ``~/.ssh/known_hosts``): the only file host keys are checked
      against. An unknown host or a changed key is refused with DeviceAuthError naming the
      offered key's fingerprint and this file. Entries for non-22 ports use OpenSSH's
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

    ``config.timeout_s`` bounds connecting, authenticating and (by default) each command.

    Thread safety: one lock serialises connect, run and close, so one instance may be shared by
    threads; commands on one device then run one at a time, which is what paramiko can do
    reliably on one connection.
    """

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        self._host = config.host
        self._port = config.port if config.port is not None else DEFAULT_SSH_PORT
        self._address = config.address  # as every driver names it in errors
        opts = config.options
        self._known_hosts = Path(os.path.expanduser(str(opts.get("known_hosts", "~/.ssh/known_hosts"))))
        self._tofu = _opt_bool(opts, "trust_on_first_use", False, config.name)
        self._allow_agent = _opt_bool(opts, "allow_agent", False, config.name)
        self._look_for_keys = _opt_bool(opts, "look_for_keys", False, config.name)
        self._keepalive_s = float(opts.get("keepalive_s", 0) or 0)
        self._encoding = str(opts.get("encoding", "utf-8"))
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None

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
        client, self._client = self._client, None
        if client is not None:
            # Closing a dead connection must never mask the error that made us drop it.
            with contextlib.suppress(Exception):
                client.close()

    def _connect(self) -> None:
        """Open, verify and authenticate a new connection. Caller holds the lock."""
        self._drop()
        creds = self._config.credentials
        username = creds.username
        operation = f"SSH connect as {username or '<no username>'}"
        if not username:
            raise self._error(DeviceAuthError, operation, "no SSH username in the device's credentials")
        if creds.key_file is not None and not os.path.isfile(os.path.expanduser(creds.key_file)):
            raise self._error(DeviceAuthError, operation, f"key file {creds.key_file} does not exist")
        timeout = self._config.timeout_s
        hostname = known_hosts_name(self._host, self._port)

        client = paramiko.SSHClient()
        if self._known_hosts.is_file():
            try:
                client.load_host_keys(str(self._known_hosts))
            except (OSError, paramiko.SSHException) as exc:
                client.close()
                raise self._error(
                    DeviceAuthError, operation, f"cannot read known_hosts file {self._known_hosts}: {exc}"
                ) from exc
        policy = _TrustOnFirstUse(self._known_hosts) if self._tofu else _RejectUnknown()
        client.set_missing_host_key_policy(policy)

        try:
            sock = socket.create_connection((self._host, self._port), timeout=timeout)
        except TimeoutError as exc:
            client.close()
            raise self._error(DeviceTimeout, operation, f"TCP connect timed out after {timeout:g} s") from exc
        except OSError as exc:
            client.close()
            raise self._error(DeviceError, operation, f"TCP connect failed: {exc}") from exc
        # Without TCP_NODELAY each small SSH packet waits for a delayed ACK: ~40 ms per command.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        password = creds.password.reveal() if creds.password is not None else None
        try:
            client.connect(
                hostname=self._host,
                port=self._port,
                username=username,
                password=password,
                key_filename=os.path.expanduser(creds.key_file) if creds.key_file else None,
                sock=sock,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                allow_agent=self._allow_agent,
                look_for_keys=self._look_for_keys,
            )
        except _UnknownHostKey as exc:
            client.close()
            where = (
                f"known_hosts file {self._known_hosts}"
                if self._known_hosts.is_file()
                else f"known_hosts file {self._known_hosts} (which does not exist)"
            )
            raise self._error(
                DeviceAuthError,
                operation,
                f"host key {exc.key.get_name()} {key_fingerprint(exc.key)} offered for {exc.hostname} "
                f"is not in {where}; add the device's key there (or set trust_on_first_use)",
            ) from exc
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise self._error(
                DeviceAuthError,
                operation,
                f"HOST KEY CHANGED for {hostname}: the device offered {exc.key.get_name()} "
                f"{key_fingerprint(exc.key)} but known_hosts file {self._known_hosts} has "
                f"{exc.expected_key.get_name()} {key_fingerprint(exc.expected_key)} (re-imaged device, "
                "wrong address, or someone in the middle)",
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            method = " and ".join(m for m, given in (("password", password), ("key file", creds.key_file)) if given)
            raise self._error(
                DeviceAuthError,
                operation,
                f"authentication refused for user {username} (tried {method or 'no credentials'}): {exc}",
            ) from exc
        except TimeoutError as exc:
            client.close()
            raise self._error(DeviceTimeout, operation, f"no SSH handshake within {timeout:g} s") from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            raise self._error(DeviceProtocolError, operation, f"SSH handshake failed: {exc}") from exc
        finally:
            password = None

        transport = client.get_transport()
        if transport is not None and self._keepalive_s > 0:
            transport.set_keepalive(int(max(self._keepalive_s, 1)))
        self._client = client

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
        """Run one command and return its exit status and output (a non-zero status is not an error).

        A sequence is an argv and is quoted with ``shlex.join`` so that each element arrives as one
        word. A ``str`` is sent exactly as given: the caller is responsible for quoting anything
        the remote shell must not split or interpret.

        Raises DeviceTimeout (naming the command) when the command has not finished within
        ``timeout`` (default ``config.timeout_s``); the channel is closed, the connection kept.
        """
        cmd = command if isinstance(command, str) else shlex.join(command)
        limit = self._config.timeout_s if timeout is None else timeout
        operation = f"SSH command {cmd!r}"
        with self._lock:
            start = time.monotonic()
            chan = self._open_channel(operation, limit)
            try:
                self._exec(chan, cmd, operation, limit)
                out, err, status = self._collect(chan, operation, start + limit, limit)
            finally:
                chan.close()
            duration = time.monotonic() - start
        return CommandResult(
            command=cmd,
            exit_status=status,
            stdout=out.decode(self._encoding, errors="replace"),
            stderr=err.decode(self._encoding, errors="replace"),
            duration_s=duration,
        )

    def _exec(self, chan: paramiko.Channel, cmd: str, operation: str, limit: float) -> None:
        # paramiko waits for the server's reply to an exec request without a timeout; a watchdog
        # closes the channel if it never comes, which wakes that wait.
        fired = threading.Event()

        def watchdog() -> None:
            fired.set()
            chan.close()

        timer = threading.Timer(limit, watchdog)
        timer.daemon = True
        timer.start()
        try:
            chan.exec_command(cmd)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if fired.is_set():
                raise self._error(
                    DeviceTimeout, operation, f"server did not accept the command within {limit:g} s"
                ) from exc
            if self._is_connected():
                raise self._error(DeviceProtocolError, operation, f"server refused to run it: {exc}") from exc
            self._drop()
            raise self._error(DeviceError, operation, f"connection lost while starting it: {exc}") from exc
        finally:
            timer.cancel()
            timer.join()
        if fired.is_set():  # the watchdog won the race against a reply that came just in time
            raise self._error(DeviceTimeout, operation, f"server did not accept the command within {limit:g} s")

    def _collect(
        self, chan: paramiko.Channel, operation: str, deadline: float, limit: float
    ) -> tuple[bytes, bytes, int]:
        """Read stdout and stderr together (so neither can fill the window and stall the other)."""
        out, err = bytearray(), bytearray()
        fd = chan.fileno()  # readable whenever either stream has data or the channel hit EOF

        def drain() -> None:
            while chan.recv_ready():
                out.extend(chan.recv(_READ_CHUNK))
            while chan.recv_stderr_ready():
                err.extend(chan.recv_stderr(_READ_CHUNK))

        def timed_out() -> DeviceError:
            return self._error(
                DeviceTimeout,
                operation,
                f"no exit status within {limit:g} s ({len(out)} bytes of stdout, {len(err)} of stderr so far)",
            )

        while True:
            drain()
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
