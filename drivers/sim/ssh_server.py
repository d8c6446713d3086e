"""A real SSH server (paramiko) for simulated devices, and the SONiC switch CLI it serves.

``SshServer`` accepts connections on 127.0.0.1, authenticates by password and answers exec
requests through a handler ``command -> CommandOutput``; ``start_switch_ssh`` wires it to a SONiC
CLI that renders ``show version``, ``show interfaces status`` and ``show lldp table`` from the
live ``RackModel``, laid out the way sonic-utilities prints them (tabulate "simple" tables), so
the driver parses the same text it would get from hardware.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import os
import queue
import shlex
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from drivers.sim.model import RackModel, Switch

_SHUTDOWN = object()  # queue sentinel: stop serving this connection


@dataclass(frozen=True)
class CommandOutput:
    """What a simulated command prints and returns."""

    stdout: str
    stderr: str = ""
    exit_status: int = 0


CommandHandler = Callable[[str], CommandOutput]


class _PasswordServer(paramiko.ServerInterface):
    """Password auth and exec-only sessions; exec requests are queued for the connection thread."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username.encode()
        self._password = password.encode()
        self.requests: queue.Queue[object] = queue.Queue()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        user_ok = hmac.compare_digest(username.encode(), self._username)
        pass_ok = hmac.compare_digest(password.encode(), self._password)
        return paramiko.AUTH_SUCCESSFUL if user_ok and pass_ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        # Runs on paramiko's transport thread: only hand the work over, never block here.
        self.requests.put((channel, command))
        return True


class SshServer:
    """An SSH server on ``host``: a thread accepting connections and one thread per connection.

    ``handler`` is called with each exec command (decoded text) on the connection's thread; an
    exception in it becomes exit status 1 with the message on stderr, so one bad command does
    not drop the connection.
    """

    def __init__(
        self,
        handler: CommandHandler,
        *,
        host: str = "127.0.0.1",
        username: str,
        password: str,
        host_key: paramiko.PKey,
        name: str = "ssh",
    ) -> None:
        self._handler = handler
        self._username = username
        self._password = password
        self._host_key = host_key
        self._name = name
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._conn_threads: set[threading.Thread] = set()
        self._transports: set[paramiko.Transport] = set()
        self._servers: set[_PasswordServer] = set()
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.5)  # bounded even if shutdown() fails to wake accept()
        self.host: str = self._listener.getsockname()[0]
        self.port: int = self._listener.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"sim-ssh-{name}-accept", daemon=True)

    def __repr__(self) -> str:
        return f"SshServer({self._name!r}, {self.host}:{self.port})"

    def start(self) -> SshServer:
        self._accept_thread.start()
        return self

    def __enter__(self) -> SshServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- serving -----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                self._stopping.wait(0.05)  # e.g. out of file descriptors: do not spin
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(
                target=self._serve_connection, args=(sock,), name=f"sim-ssh-{self._name}-conn", daemon=True
            )
            with self._lock:
                if self._stopping.is_set():
                    sock.close()
                    return
                self._conn_threads.add(thread)
            thread.start()

    def _serve_connection(self, sock: socket.socket) -> None:
        transport = paramiko.Transport(sock)
        transport.add_server_key(self._host_key)
        server = _PasswordServer(self._username, self._password)
        with self._lock:
            self._transports.add(transport)
            self._servers.add(server)
        try:
            if self._stopping.is_set():
                return
            try:
                transport.start_server(server=server)
            except (paramiko.SSHException, EOFError, OSError):
                return  # client went away or failed negotiation (e.g. rejected our host key)
            while not self._stopping.is_set() and transport.is_active():
                try:
                    item = server.requests.get(timeout=1.0)
                except queue.Empty:
                    continue
                if item is _SHUTDOWN:
                    break
                chan, command = item  # type: ignore[misc]
                self._run(chan, command)
                # paramiko also queues every opened channel for accept(); drain so a long-lived
                # connection running thousands of commands does not keep them all alive.
                while transport.accept(timeout=0) is not None:
                    pass
        finally:
            transport.close()
            with self._lock:
                self._transports.discard(transport)
                self._servers.discard(server)
                self._conn_threads.discard(threading.current_thread())

    def _run(self, chan: paramiko.Channel, command: bytes) -> None:
        text = command.decode("utf-8", errors="replace")
        try:
            out = self._handler(text)
        except Exception as exc:  # a simulator bug must show up as a failed command, not a hang
            out = CommandOutput("", f"rackval simulator: internal error running {text!r}: {exc!r}\n", 1)
        try:
            if out.stdout:
                chan.sendall(out.stdout.encode())
            if out.stderr:
                chan.sendall_stderr(out.stderr.encode())
            chan.send_exit_status(out.exit_status)
        except (paramiko.SSHException, EOFError, OSError):
            pass  # client gave up (e.g. its timeout fired); nothing to report to
        finally:
            chan.close()

    def stop(self) -> None:
        """Stop accepting, close every connection and join the threads (idempotent)."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
        self._listener.close()
        with self._lock:
            transports = list(self._transports)
            servers = list(self._servers)
            threads = list(self._conn_threads)
        for server in servers:
            server.requests.put(_SHUTDOWN)
        for transport in transports:
            transport.close()
        if self._accept_thread.is_alive() and self._accept_thread is not threading.current_thread():
            self._accept_thread.join(timeout=5)
        for thread in threads:
            thread.join(timeout=5)


# ---- SONiC CLI rendering --------------------------------------------------------------------


def tabulate_simple(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """Lay out a table like python-tabulate's "simple" format, as sonic-utilities prints it.

    tabulate gives each column width max(len(header) + 2, longest cell), separates columns with
    two spaces, aligns headers like their column and strips trailing blanks from every line.
    ``align`` is "right" (intfutil passes stralign='right') or "left" (lldpshow's default).
    """
    widths = [max([len(h) + 2] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if align == "right" else c.ljust(w) for c, w in zip(cells, widths, strict=True)]
        return "  ".join(padded).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def format_speed(speed_mbps: int) -> str:
    """intfutil's port_speed_parse: Mb/s -> '400G', '2.5G', '100M'."""
    if speed_mbps < 1000:
        return f"{speed_mbps}M"
    if speed_mbps % 1000 >= 100:
        return f"{speed_mbps / 1000:.1f}G"
    return f"{speed_mbps / 1000:.0f}G"


def _transceiver_type(speed_mbps: int) -> str:
    # Strings as SONiC's sfputil reports them in STATE_DB TRANSCEIVER_INFO.type.
    if speed_mbps >= 400_000:
        return "QSFP-DD Double Density 8X Pluggable Transceiver"
    return "QSFP28 or later"


def _uptime(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    span = f"{days} days, {hours:2d}:{minutes:02d}" if days else f"{hours:2d}:{minutes:02d}"
    now = dt.datetime.now()
    return f"{now:%H:%M:%S} up {span},  1 user,  load average: 0.52, 0.58, 0.59"


def format_show_version(switch: Switch, uptime_s: float) -> str:
    """``show version`` as SONiC prints it (sonic-utilities show/main.py, version command)."""
    info = switch.info
    now = dt.datetime.now(dt.UTC)
    return "\n".join(
        [
            "",  # sonic-utilities starts the output with an empty line
            f"SONiC Software Version: {info.firmware}",
            "SONiC OS Version: 11",
            "Distribution: Debian 11.8",
            "Kernel: 5.10.0-23-2-amd64",
            "Build commit: 5cd2a8f0c",
            "Build date: Tue Jan 16 08:15:42 UTC 2024",
            "Built by: sonicbld@rackval-sim",
            "",
            "Platform: x86_64-rackval_sim-r0",
            f"HwSKU: {info.model}",
            "ASIC: rackval-sim",
            "ASIC Count: 1",
            f"Serial Number: {info.serial}",
            f"Model Number: {info.model}",
            "Hardware Revision: A0",
            f"Uptime: {_uptime(uptime_s)}",
            f"Date: {now:%a %d %b %Y %H:%M:%S}",
            "",
            "Docker images:",
            "REPOSITORY                 TAG                 IMAGE ID            SIZE",
            "docker-orchagent           latest              1f2e3d4c5b6a        331MB",
            "docker-lldp                latest              6a5b4c3d2e1f        305MB",
            "docker-platform-monitor    latest              0a1b2c3d4e5f        421MB",
            "",
        ]
    )


def format_interfaces_status(switch: Switch) -> str:
    """``show interfaces status`` (intfutil): right-aligned simple table, natural port order."""
    headers = ["Interface", "Lanes", "Speed", "MTU", "FEC", "Alias", "Vlan", "Oper", "Admin", "Type", "Asym PFC"]
    rows = []
    for port in sorted(switch.ports, key=lambda p: p.index):
        lanes_per_port = 8 if port.speed_mbps >= 400_000 else 4
        first = (port.index - 1) * lanes_per_port
        rows.append(
            [
                port.name,
                ",".join(str(first + k) for k in range(lanes_per_port)),
                format_speed(port.speed_mbps),
                "9100",
                "rs",
                port.alias,
                "routed",
                "up" if port.oper_up else "down",
                "up" if port.admin_up else "down",
                _transceiver_type(port.speed_mbps) if port.peer is not None else "N/A",
                "off",
            ]
        )
    return tabulate_simple(headers, rows, align="right") + "\n"


def format_lldp_table(switch: Switch) -> str:
    """``show lldp table`` (lldpshow): neighbours on ports whose link is up.

    A GPU node's lldpd advertises its host name as system name and the NIC as port id and port
    description; a plain host has no Bridge/Router capability, which lldpshow prints as "O".
    """
    rows = [
        [port.name, port.peer[0], port.peer[1], "O", port.peer[1]]
        for port in sorted(switch.ports, key=lambda p: p.index)
        if port.oper_up and port.peer is not None
    ]
    table = tabulate_simple(
        ["LocalPort", "RemoteDevice", "RemotePortID", "Capability", "RemotePortDescr"], rows, align="left"
    )
    return (
        "Capability codes: (R) Router, (B) Bridge, (O) Other\n"
        f"{table}\n{'-' * 50}\nTotal entries displayed:  {len(rows)}\n"
    )


def sonic_cli(model: RackModel, switch: str) -> CommandHandler:
    """A handler answering the SONiC show commands for ``model.switches[switch]``."""
    if switch not in model.switches:
        raise KeyError(f"no switch {switch!r} in the rack model (have: {', '.join(model.switches)})")

    def handle(command: str) -> CommandOutput:
        try:
            words = shlex.split(command)
        except ValueError as exc:
            return CommandOutput("", f"bash: -c: line 1: {exc}\n", 2)
        if not words:
            return CommandOutput("", "", 0)
        key = " ".join(words)
        with model.lock:  # render from one consistent snapshot of the rack
            sw = model.switches[switch]
            if key == "show version":
                return CommandOutput(format_show_version(sw, model.clock.now()))
            if key in ("show interfaces status", "show interface status"):
                return CommandOutput(format_interfaces_status(sw))
            if key == "show lldp table":
                return CommandOutput(format_lldp_table(sw))
        if words[0] == "show":
            return CommandOutput(
                "",
                'Usage: show [OPTIONS] COMMAND [ARGS]...\nTry "show -h" for help.\n\n'
                f'Error: No such command "{" ".join(words[1:])}".\n',
                2,
            )
        return CommandOutput("", f"bash: line 1: {words[0]}: command not found\n", 127)

    return handle


def start_switch_ssh(
    model: RackModel,
    switch: str,
    *,
    host: str = "127.0.0.1",
    username: str,
    password: str,
    host_key: paramiko.PKey,
) -> SshServer:
    """Serve the SONiC CLI of ``model.switches[switch]`` over SSH on ``host``, port chosen by the OS.

    Serves exec requests for ``show version``, ``show interfaces status`` and ``show lldp table``
    (live from the model); other ``show`` commands fail like SONiC's click CLI (exit 2), anything
    else like bash (exit 127). Password authentication only.
    """
    handler = sonic_cli(model, switch)
    server = SshServer(handler, host=host, username=username, password=password, host_key=host_key, name=switch)
    return server.start()


def write_known_hosts(path: str | os.PathLike[str], host: str, port: int, key: paramiko.PKey) -> None:
    """Record ``key`` for host:port in a known_hosts file, replacing any older entry for it.

    Uses OpenSSH's ``[host]:port`` form (bare host for port 22) so both paramiko and OpenSSH's
    ``ssh`` find it. Other hosts' lines are kept as they are.
    """
    name = host if port == 22 else f"[{host}]:{port}"
    target = Path(path)
    kept: list[str] = []
    if target.exists():
        for line in target.read_text(encoding="ascii").splitlines():
            fields = line.split()
            if fields and not line.lstrip().startswith("#") and name in fields[0].split(","):
                continue
            kept.append(line)
    kept.append(f"{name} {key.get_name()} {key.get_base64()}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(kept) + "\n", encoding="ascii")
