"""Opening one SSH connection to a device: host key verified, authenticated, every wait bounded.

This is the part that is easy to get wrong: host keys are checked against an explicit known_hosts
file (never silently trusting a new key; ``trust_on_first_use`` only when configured, and a
*changed* key is always refused, naming both fingerprints), TCP_NODELAY is set (without it every
command pays ~40 ms of Nagle/delayed-ACK latency), and connecting, the SSH banner, the key
exchange and authenticating together end within ``config.timeout_s``: paramiko bounds each of
them (and each banner read) on its own, so a server that trickles its banner or stalls each step
just in time would add them up; the process watchdog (``watchdog``) shuts the socket down when
the whole connect's deadline passes. A server that accepts TCP but never speaks SSH (a hung BMC)
is DeviceTimeout, not a protocol error.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import paramiko

from rackval.core.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import DeviceConfig
from rackval.drivers.transport.ssh_options import SshSettings
from rackval.drivers.transport.watchdog import WATCHDOG, abort_socket

DEFAULT_SSH_PORT = 22


def key_fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint, the form ``ssh-keygen -lf`` prints and engineers compare."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    """The name OpenSSH files a host under: bare for port 22, ``[host]:port`` otherwise."""
    return host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"


class _PreferAead(paramiko.Transport):
    """A paramiko transport that offers AES-GCM first (the server still picks from our list, so a
    device without it negotiates AES-CTR as before). With an AEAD cipher the integrity tag is
    checked inside ``cryptography``; with CTR + HMAC paramiko compares every packet's MAC byte by
    byte in Python, which was a fifth of the client's CPU per command when sampling 32 nodes."""

    _preferred_ciphers = tuple(
        sorted(paramiko.Transport._preferred_ciphers, key=lambda c: not c.endswith("-gcm@openssh.com"))
    )  # a stable sort: GCM first, the rest in paramiko's order


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


def _handshake_stalled(exc: BaseException, elapsed: float, timeout: float) -> bool:
    """Did the SSH handshake fail because the server stayed silent (rather than refused)?

    paramiko reports a silent server in two ways depending on which wait runs out first: the
    reader thread raises "Error reading SSH protocol banner" from a socket timeout, or
    ``start_client`` returns quietly at its timeout and the next step fails with "No existing
    session". A peer that closed the connection (EOF, reset) is a refusal, never a timeout.
    """
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(e, EOFError | ConnectionError) for e in chain):
        return False
    if any(isinstance(e, TimeoutError) for e in chain):
        return True
    return elapsed >= timeout * 0.95


def open_client(config: DeviceConfig, port: int, options: SshSettings) -> paramiko.SSHClient:
    """A new connection to ``config.host``: verified, authenticated, with keepalives if configured.

    Raises DeviceAuthError (credentials, host key), DeviceTimeout (a silent or hung server) or
    DeviceError/DeviceProtocolError, each naming the device, its address and the operation."""

    def error(cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(config.name, config.address, operation, detail)

    host = config.host
    known_hosts = options.known_hosts
    creds = config.credentials
    username = creds.username
    operation = f"SSH connect as {username or '<no username>'}"
    if not username:
        raise error(DeviceAuthError, operation, "no SSH username in the device's credentials")
    if creds.key_file is not None and not os.path.isfile(os.path.expanduser(creds.key_file)):
        raise error(DeviceAuthError, operation, f"key file {creds.key_file} does not exist")
    timeout = config.timeout_s
    began = time.monotonic()

    client = paramiko.SSHClient()
    if known_hosts.is_file():
        try:
            client.load_host_keys(str(known_hosts))
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            raise error(DeviceAuthError, operation, f"cannot read known_hosts file {known_hosts}: {exc}") from exc
    policy = _TrustOnFirstUse(known_hosts) if options.trust_on_first_use else _RejectUnknown()
    client.set_missing_host_key_policy(policy)

    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as exc:
        client.close()
        raise error(DeviceTimeout, operation, f"TCP connect timed out after {timeout:g} s") from exc
    except OSError as exc:
        client.close()
        raise error(DeviceError, operation, f"TCP connect failed: {exc}") from exc
    # Without TCP_NODELAY each small SSH packet waits for a delayed ACK: ~40 ms per command.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    guard = WATCHDOG.schedule(max(timeout - (time.monotonic() - began), 0.0), lambda: abort_socket(sock))
    try:
        _handshake(client, config, port, options, sock, error, lambda: guard.fired)
    except DeviceError as exc:
        guard.cancel()  # returns once a watchdog that fired has shut the socket down
        if guard.fired and not isinstance(exc, DeviceTimeout):
            raise error(DeviceTimeout, operation, f"no SSH session within {timeout:g} s") from exc
        raise
    finally:
        guard.cancel()
    if guard.fired:  # the handshake completed as the deadline passed, on a socket now shut down
        client.close()
        raise error(DeviceTimeout, operation, f"no SSH session within {timeout:g} s")
    transport = client.get_transport()
    if transport is not None and options.keepalive_s > 0:
        transport.set_keepalive(int(max(options.keepalive_s, 1)))
    return client


def _handshake(
    client: paramiko.SSHClient,
    config: DeviceConfig,
    port: int,
    options: SshSettings,
    sock: socket.socket,
    error: Callable[[type[DeviceError], str, str], DeviceError],
    aborted: Callable[[], bool],
) -> None:
    """Banner, key exchange, host key check and authentication on ``sock``, failures mapped
    (``aborted()``: the watchdog ended the connect, so a closed connection is a timeout)."""
    creds = config.credentials
    host, username, timeout, known_hosts = config.host, creds.username, config.timeout_s, options.known_hosts
    operation = f"SSH connect as {username}"
    hostname = known_hosts_name(host, port)
    password = creds.password.reveal() if creds.password is not None else None
    started = time.monotonic()
    try:
        client.connect(
            hostname=host,
            port=port,
            username=username,
            password=password,
            key_filename=os.path.expanduser(creds.key_file) if creds.key_file else None,
            sock=sock,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            allow_agent=options.allow_agent,
            look_for_keys=options.look_for_keys,
            transport_factory=_PreferAead,
        )
    except _UnknownHostKey as exc:
        client.close()
        where = (
            f"known_hosts file {known_hosts}"
            if known_hosts.is_file()
            else f"known_hosts file {known_hosts} (which does not exist)"
        )
        raise error(
            DeviceAuthError,
            operation,
            f"host key {exc.key.get_name()} {key_fingerprint(exc.key)} offered for {exc.hostname} "
            f"is not in {where}; add the device's key there (or set trust_on_first_use)",
        ) from exc
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise error(
            DeviceAuthError,
            operation,
            f"HOST KEY CHANGED for {hostname}: the device offered {exc.key.get_name()} "
            f"{key_fingerprint(exc.key)} but known_hosts file {known_hosts} has "
            f"{exc.expected_key.get_name()} {key_fingerprint(exc.expected_key)} (re-imaged device, "
            "wrong address, or someone in the middle)",
        ) from exc
    except paramiko.AuthenticationException as exc:
        if str(exc) == "Authentication timeout.":  # paramiko's wording when auth_timeout runs out
            client.close()
            raise error(DeviceTimeout, operation, f"no answer to authentication within {timeout:g} s") from exc
        client.close()
        method = " and ".join(m for m, given in (("password", password), ("key file", creds.key_file)) if given)
        raise error(
            DeviceAuthError,
            operation,
            f"authentication refused for user {username} (tried {method or 'no credentials'}): {exc}",
        ) from exc
    except TimeoutError as exc:
        client.close()
        raise error(DeviceTimeout, operation, f"no SSH handshake within {timeout:g} s") from exc
    except (paramiko.SSHException, EOFError, OSError) as exc:
        stalled = aborted() or _handshake_stalled(exc, time.monotonic() - started, timeout)
        transport = client.get_transport()
        got_banner = bool(transport is not None and transport.remote_version)
        keyed = bool(transport is not None and transport.session_id)
        client.close()
        if stalled:
            what = (
                "authentication did not complete" if keyed
                else "key exchange did not complete" if got_banner
                else "TCP connection accepted but no SSH banner received"
            )  # fmt: skip
            raise error(
                DeviceTimeout,
                operation,
                f"{what} within {timeout:g} s (device hung or overloaded, or not an SSH service?)",
            ) from exc
        raise error(DeviceProtocolError, operation, f"SSH handshake failed: {exc}") from exc
    finally:
        password = None
