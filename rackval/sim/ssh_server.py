"""A real SSH server (paramiko) for simulated devices, and the SONiC switch CLI it serves.

``SshServer`` accepts connections on 127.0.0.1, authenticates by password and answers exec
requests through a handler ``command -> CommandOutput``; ``start_switch_ssh`` wires it to a SONiC
CLI that renders ``show version``, ``show interfaces status``, ``show lldp table``, ``show
interfaces counters`` (text, ``-j`` JSON, ``errors``, ``fec-stats``), ``show platform
temperature`` and ``show platform psustatus`` from the live ``RackModel``, laid out the way
sonic-utilities prints them (tabulate "simple" tables, portstat's ``table_as_json``), so the
driver parses the same text it would get from hardware.

Protocol faults (``rackval.sim.faults``) are acted on by ``SshServer`` itself when it is given a
``faults`` callable (the device's active faults), checked per connection and per command:

- ``device_silent``: a new connection is accepted but never gets the SSH banner; commands on an
  open connection are never answered (the client's timeouts fire). The same happens while the
  ``reachable`` callable says False (a node whose OS is down, a BMC still booting).
- ``device_slow``: each reply is sent after ``delay_s`` plus uniform 0..``jitter_s``.
- ``auth_failure``: valid passwords are refused.
- ``session_exhaustion``: a new connection beyond ``max_sessions`` open ones is closed before the
  banner (what OpenSSH does past MaxStartups); open connections keep working.
- ``ssh_disconnect``: on each connection, after ``after_commands`` commands answered under the
  fault, the next command's reply is cut after half its output and the connection dropped.
- ``malformed_reply``: with ``probability``, stdout is cut in half (``truncate``), replaced by
  line noise (``garbage``) or followed by a repeated fragment (``wrong_length``); exit status 0.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import queue
import random
import re
import shlex
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from rackval.sim.faults import Fault
from rackval.sim.model import RackModel, Switch

_SHUTDOWN = object()  # queue sentinel: stop serving this connection

# One command line of a persistent shell session, as rackval.drivers.transport.ssh writes it: the
# command (in a group) with stdin from /dev/null, then its exit status after a marker on stdout and the
# marker alone on stderr, so the client knows where both streams of this command end.
SHELL_FRAME = re.compile(
    r"\{ (?P<command>.+); \} </dev/null; printf '\\n%s %d\\n' (?P<marker>RV[0-9a-f]+) \"\$\?\"; "
    r"printf '%s\\n' (?P=marker) >&2"
)


@dataclass(frozen=True)
class CommandOutput:
    """What a simulated command prints and returns."""

    stdout: str
    stderr: str = ""
    exit_status: int = 0


CommandHandler = Callable[[str], CommandOutput]
FaultSource = Callable[[], Sequence[Fault]]

_GARBAGE = "#%&*@!?~^|$0123456789abcdef\x1b[0;31m\ufffd \t"


def corrupt_output(text: str, mode: str, rng: random.Random) -> str:
    """What ``malformed_reply`` does to one stdout: truncate | garbage | wrong_length."""
    if mode == "garbage":
        return "".join(rng.choice(_GARBAGE) for _ in range(max(len(text), 32)))
    if mode == "wrong_length":  # more bytes than the content: a repeated fragment after it
        return text + text[: max(len(text) // 3, 1)]
    cut = len(text) // 2  # truncate (also the fallback for unknown modes) ...
    while 0 < cut < len(text) and text[cut - 1] == "\n":
        cut += 1  # ... mid-line: a cut on a line boundary could pass for a shorter, valid answer
    return text[:cut]


class _PasswordServer(paramiko.ServerInterface):
    """Password auth and exec-only sessions; exec requests are queued for the connection thread."""

    def __init__(self, username: str, password: str, refuse: Callable[[], bool] = lambda: False) -> None:
        self._username = username.encode()
        self._password = password.encode()
        self._refuse = refuse
        self.requests: queue.Queue[object] = queue.Queue()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        user_ok = hmac.compare_digest(username.encode(), self._username)
        pass_ok = hmac.compare_digest(password.encode(), self._password)
        if self._refuse():  # auth_failure fault: the right password is refused too
            return paramiko.AUTH_FAILED
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

    ``faults`` (optional) returns the device's active faults; the protocol kinds among them
    change how connections and replies are served (see the module docstring). ``reachable``
    (optional) returning False makes the server behave like a host that is down: connections
    and commands get no answer at all.

    ``shell_sessions``: an exec of ``sh`` starts a long-lived session (its own thread) that runs
    command lines framed the way ``SshTransport.run_persistent`` writes them
    (``SHELL_FRAME``), through the same handler and protocol faults as exec commands. It is
    the subset of a POSIX shell the harness uses; any other line gets exit status 127.
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
        faults: FaultSource | None = None,
        reachable: Callable[[], bool] | None = None,
        shell_sessions: bool = False,
    ) -> None:
        self._handler = handler
        self._shell_sessions = shell_sessions
        self._faults = faults
        self._reachable = reachable
        # One generator per server, seeded from its name: a fault run is reproducible.
        self._rng = random.Random(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))
        self._silent_socks: set[socket.socket] = set()
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

    # ---- protocol faults -----------------------------------------------------------------------
    def _active(self) -> dict[str, Fault]:
        """The active faults by kind (the first of each kind wins)."""
        if self._faults is None:
            return {}
        found: dict[str, Fault] = {}
        for fault in self._faults():
            found.setdefault(fault.kind, fault)
        return found

    def _silent(self, active: dict[str, Fault]) -> bool:
        return "device_silent" in active or (self._reachable is not None and not self._reachable())

    def _hold_silently(self, sock: socket.socket) -> None:
        """Keep an accepted connection open without ever sending the banner, until the client
        gives up or the server stops (what a hung device's TCP stack does)."""
        with self._lock:
            self._silent_socks.add(sock)
        try:
            sock.settimeout(0.5)
            while not self._stopping.is_set():
                try:
                    if not sock.recv(4096):
                        return  # the client closed its end
                except TimeoutError:
                    continue
                except OSError:
                    return
        finally:
            with self._lock:
                self._silent_socks.discard(sock)
            sock.close()

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
        try:
            active = self._active()
            if self._silent(active):
                self._hold_silently(sock)
                return
            exhausted = active.get("session_exhaustion")
            if exhausted is not None:
                with self._lock:  # a connection the client already closed no longer counts
                    open_sessions = sum(1 for t in self._transports if t.is_active())
                if open_sessions >= int(exhausted.param("max_sessions")):
                    sock.close()  # no banner: the client sees the connection closed at once
                    return
            self._serve_ssh(sock)
        except BaseException:
            sock.close()
            raise
        finally:
            with self._lock:
                self._conn_threads.discard(threading.current_thread())

    def _serve_ssh(self, sock: socket.socket) -> None:
        transport = paramiko.Transport(sock)
        transport.add_server_key(self._host_key)
        server = _PasswordServer(self._username, self._password, refuse=lambda: "auth_failure" in self._active())
        served: dict[str, int] = {}  # ssh_disconnect fault id -> commands answered under it
        answered: list[paramiko.Channel] = []  # closed once the client has moved on (see _run)
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
                for done in answered:  # the client started another command: it has these replies
                    done.close()
                answered.clear()
                answered.append(chan)
                if command.strip() == b"sh" and self._shell_sessions:
                    answered.remove(chan)
                    shell = threading.Thread(
                        target=self._run_shell, args=(transport, chan, served), name=f"sim-ssh-{self._name}-sh",
                        daemon=True,
                    )  # fmt: skip
                    with self._lock:
                        self._conn_threads.add(shell)
                    shell.start()
                    continue
                if not self._run(chan, command, served):
                    break  # ssh_disconnect: the connection is dropped
                # paramiko also queues every opened channel for accept(); drain so a long-lived
                # connection running thousands of commands does not keep them all alive.
                while transport.accept(timeout=0) is not None:
                    pass
        finally:
            for done in answered:
                done.close()
            transport.close()
            with self._lock:
                self._transports.discard(transport)
                self._servers.discard(server)
                self._conn_threads.discard(threading.current_thread())

    def _output(self, text: str, served: dict[str, int]) -> CommandOutput | bool | None:
        """One command's reply under the device's protocol faults: the output, None to stay
        silent (device_silent), False to drop the connection (stop, ssh_disconnect)."""
        active = self._active()
        if self._silent(active):
            return None  # never answer: the channel stays open until the client gives up
        try:
            out = self._handler(text)
        except Exception as exc:  # a simulator bug must show up as a failed command, not a hang
            out = CommandOutput("", f"rackval simulator: internal error running {text!r}: {exc!r}\n", 1)
        slow = active.get("device_slow")
        if slow is not None:
            delay = float(slow.param("delay_s")) + self._rng.uniform(0.0, float(slow.param("jitter_s")))
            if self._stopping.wait(max(delay, 0.0)):
                return False
        malformed = active.get("malformed_reply")
        if malformed is not None and self._rng.random() < float(malformed.param("probability")):
            out = CommandOutput(corrupt_output(out.stdout, str(malformed.param("mode")), self._rng), out.stderr, 0)
        drop = active.get("ssh_disconnect")
        if drop is not None:
            served[drop.id] = served.get(drop.id, 0) + 1
            if served[drop.id] > int(drop.param("after_commands")):
                return CommandOutput(out.stdout[: len(out.stdout) // 2], "", -1)  # half a reply, then gone
        return out

    def _run(self, chan: paramiko.Channel, command: bytes, served: dict[str, int]) -> bool:
        """Answer one exec request; False when the connection was dropped (ssh_disconnect)."""
        out = self._output(command.decode("utf-8", errors="replace"), served)
        if out is None:
            return True
        if out is False:
            chan.close()
            return False
        assert isinstance(out, CommandOutput)
        if out.exit_status == -1:  # ssh_disconnect
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                chan.sendall(out.stdout.encode())
            return False  # the caller closes the transport: the reply never completes
        try:
            if out.stdout:
                chan.sendall(out.stdout.encode())
            if out.stderr:
                chan.sendall_stderr(out.stderr.encode())
            chan.send_exit_status(out.exit_status)
            # EOF, but no CLOSE yet: paramiko's transport thread sends the exec request's
            # CHANNEL_SUCCESS only after check_channel_exec_request returned, so a fast reply's
            # CLOSE could overtake it and the client would see "Channel is not open". The client
            # closes the channel once it has the exit status; the server closes it at the next
            # command or when the connection ends.
            chan.shutdown_write()
        except (paramiko.SSHException, EOFError, OSError):
            chan.close()  # client gave up (e.g. its timeout fired); nothing to report to
        return True

    def _run_shell(self, transport: paramiko.Transport, chan: paramiko.Channel, served: dict[str, int]) -> None:
        """A persistent ``sh`` session: framed command lines in, framed replies out."""
        buf = b""
        chan.settimeout(0.5)  # look at the stop flag now and then
        try:
            while not self._stopping.is_set() and transport.is_active():
                try:
                    chunk = chan.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break  # the client closed its end
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode("utf-8", errors="replace")
                    frame = SHELL_FRAME.fullmatch(text)
                    if frame is None:
                        chan.sendall_stderr(f"sh: cannot run {text[:80]!r} here\n".encode())
                        continue
                    out = self._output(frame["command"], served)
                    if out is None:
                        continue
                    if out is False or (isinstance(out, CommandOutput) and out.exit_status == -1):
                        if isinstance(out, CommandOutput):
                            chan.sendall(out.stdout.encode())
                        transport.close()
                        return
                    assert isinstance(out, CommandOutput)
                    marker = frame["marker"]
                    chan.sendall(f"{out.stdout}\n{marker} {out.exit_status}\n".encode())
                    chan.sendall_stderr(f"{out.stderr}{marker}\n".encode())
        except (paramiko.SSHException, EOFError, OSError):
            pass  # the client or the connection went away
        finally:
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                chan.close()  # the connection may already be gone
            with self._lock:
                self._conn_threads.discard(threading.current_thread())

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
            silent = list(self._silent_socks)
        for sock in silent:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes its holder thread at once
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


# portstat (sonic-utilities utilities_common/portstat.py) column sets.
COUNTERS_HEADER = ["IFACE", "STATE", "RX_OK", "RX_BPS", "RX_UTIL", "RX_ERR", "RX_DRP", "RX_OVR",
                   "TX_OK", "TX_BPS", "TX_UTIL", "TX_ERR", "TX_DRP", "TX_OVR"]  # fmt: skip
COUNTERS_ERRORS_HEADER = ["IFACE", "STATE", "RX_ERR", "RX_DRP", "RX_OVR", "TX_ERR", "TX_DRP", "TX_OVR"]
COUNTERS_FEC_HEADER = ["IFACE", "STATE", "FEC_CORR", "FEC_UNCORR", "FEC_SYMBOL_ERR", "FEC_PRE_BER", "FEC_POST_BER"]
TEMPERATURE_HEADER = ["Sensor", "Temperature", "High TH", "Low TH", "Crit High TH", "Crit Low TH", "Warning",
                      "Timestamp"]  # fmt: skip
PSU_HEADER = ["PSU", "Model", "Serial", "HW Rev", "Voltage (V)", "Current (A)", "Power (W)", "Status", "LED"]
# The model counts octets; portstat shows packets. RoCE traffic on a 9100-MTU fabric runs 4 KiB
# payloads, so the simulator counts one packet per 4160 octets (payload plus headers).
MEAN_FRAME_OCTETS = 4160


def _comma(value: int) -> str:
    """portstat's ns_diff formatting: thousands separated by commas."""
    return f"{value:,}"


def _brate(rate: float) -> str:
    """portstat's format_brate: bytes per second as B/s, KB/s or MB/s."""
    if rate > 10_000_000:
        return f"{rate / 1e6:.2f} MB/s"
    if rate > 10_000:
        return f"{rate / 1e3:.2f} KB/s"
    return f"{rate:.2f} B/s"


@dataclass(frozen=True)
class _PortSample:
    t: float
    counters: dict[str, int]


class _PortRates:
    """Rates the way SONiC's flex counters give them: differences between two polls.

    Each show command compares the counters with the sample taken at least ``min_interval_s``
    of virtual time earlier (the first call of a fresh CLI has no rates yet: 0 / N/A).
    """

    def __init__(self, min_interval_s: float = 1.0) -> None:
        self._min = min_interval_s
        self._lock = threading.Lock()
        self._last: dict[str, _PortSample] = {}
        self._prev: dict[str, _PortSample] = {}

    def pair(self, port: str, now: float, counters: dict[str, int]) -> tuple[_PortSample | None, _PortSample]:
        with self._lock:
            current = _PortSample(now, dict(counters))
            last = self._last.get(port)
            if last is None or now - last.t >= self._min:
                if last is not None:
                    self._prev[port] = last
                self._last[port] = current
            return self._prev.get(port), current


def _delta(new: int, old: int) -> int:
    return (new - old) % 2**64  # 64-bit counters wrap


def _port_state(port: object) -> str:
    """portstat's STATE: U (up), D (admin up, oper down), X (admin down)."""
    if not getattr(port, "admin_up", True):
        return "X"
    return "U" if getattr(port, "oper_up", False) else "D"


def counters_rows(model: RackModel, switch: str, rates: _PortRates) -> list[dict[str, str]]:
    """One dict per port with every portstat column (strings, as portstat prints them)."""
    rows: list[dict[str, str]] = []
    now = model.now()
    for port in sorted(model.switches[switch].ports, key=lambda p: p.index):
        c = model.port_counters(switch, port.name)
        prev, cur = rates.pair(port.name, now, c)
        rx_bps = tx_bps = 0.0
        pre_ber = post_ber = "N/A"
        if prev is not None and cur.t > prev.t:
            dt_s = cur.t - prev.t
            rx_bps = _delta(c["in_octets"], prev.counters["in_octets"]) / dt_s
            tx_bps = _delta(c["out_octets"], prev.counters["out_octets"]) / dt_s
            bits = _delta(c["out_octets"], prev.counters["out_octets"]) * 8
            if bits > 0:
                corr = _delta(c["fec_corrected"], prev.counters["fec_corrected"])
                uncorr = _delta(c["fec_uncorrected"], prev.counters["fec_uncorrected"])
                pre_ber, post_ber = f"{(corr + uncorr) / bits:.2e}", f"{uncorr / bits:.2e}"
        line_bytes_s = port.speed_mbps * 1e6 / 8
        rows.append(
            {
                "IFACE": port.name,
                "STATE": _port_state(port),
                "RX_OK": _comma(c["in_octets"] // MEAN_FRAME_OCTETS),
                "RX_BPS": _brate(rx_bps),
                "RX_UTIL": f"{rx_bps / line_bytes_s * 100:.2f}%",
                "RX_ERR": _comma(c["in_errors"]),
                "RX_DRP": "0",
                "RX_OVR": "0",
                "TX_OK": _comma(c["out_octets"] // MEAN_FRAME_OCTETS),
                "TX_BPS": _brate(tx_bps),
                "TX_UTIL": f"{tx_bps / line_bytes_s * 100:.2f}%",
                "TX_ERR": "0",
                "TX_DRP": "0",
                "TX_OVR": "0",
                "FEC_CORR": _comma(c["fec_corrected"]),
                "FEC_UNCORR": _comma(c["fec_uncorrected"]),
                "FEC_SYMBOL_ERR": _comma(c["fec_corrected"]),
                "FEC_PRE_BER": pre_ber,
                "FEC_POST_BER": post_ber,
            }
        )
    return rows


def format_counters(rows: Sequence[dict[str, str]], header: Sequence[str], as_json: bool) -> str:
    """portstat output: a right-aligned simple table, or table_as_json (indent 4, sorted keys)."""
    if as_json:
        doc = {r[header[0]]: {h: r[h] for h in header[1:]} for r in rows}
        return json.dumps(doc, indent=4, sort_keys=True) + "\n"
    return tabulate_simple(header, [[r[h] for h in header] for r in rows], align="right") + "\n"


def temperature_rows(model: RackModel, switch: str) -> list[dict[str, str]]:
    """Switch thermal sensors (the model has no switch thermals: derived from ambient and links).

    ASIC and optics run warmer with more links up; thresholds are typical of a Spectrum-class
    switch. Rows as tempershow builds them from STATE_DB TEMPERATURE_INFO.
    """
    ambient = model.ambient_c
    ports = sorted(model.switches[switch].ports, key=lambda p: p.index)
    up = sum(1 for p in ports if p.oper_up)
    stamp = dt.datetime.now().strftime("%Y%m%d %H:%M:%S")
    sensors: list[tuple[str, float, float, float, float, float]] = [
        ("ASIC", ambient + 30.0 + 0.5 * up, 105.0, -5.0, 120.0, -10.0),
        ("CPU Core 0", ambient + 18.0, 95.0, -5.0, 105.0, -10.0),
        ("PSU 1 Temp", ambient + 12.0, 80.0, -5.0, 95.0, -10.0),
        ("PSU 2 Temp", ambient + 12.5, 80.0, -5.0, 95.0, -10.0),
    ]
    for p in ports:
        if p.oper_up:
            sensors.append((f"xSFP module {p.index} Temp", ambient + 20.0, 70.0, 0.0, 75.0, -5.0))
    return [
        {
            "Sensor": name,
            "Temperature": f"{t:.1f}",
            "High_TH": f"{hi:.1f}",
            "Low_TH": f"{lo:.1f}",
            "Crit_High_TH": f"{chi:.1f}",
            "Crit_Low_TH": f"{clo:.1f}",
            "Warning": "True" if t >= hi else "False",
            "Timestamp": stamp,
        }
        for name, t, hi, lo, chi, clo in sensors
    ]


def format_temperature(rows: Sequence[dict[str, str]], as_json: bool) -> str:
    """tempershow: right-aligned simple table, or a JSON list (indent 2)."""
    if as_json:
        return json.dumps(list(rows), indent=2) + "\n"
    keys = ["Sensor", "Temperature", "High_TH", "Low_TH", "Crit_High_TH", "Crit_Low_TH", "Warning", "Timestamp"]
    return tabulate_simple(TEMPERATURE_HEADER, [[r[k] for k in keys] for r in rows], align="right") + "\n"


def psu_rows(model: RackModel, switch: str) -> list[dict[str, str]]:
    """Two load-sharing 12 V PSUs (the model has no switch PSUs: a base load plus ~8 W per live link)."""
    ports = model.switches[switch].ports
    total = 250.0 + 8.0 * sum(1 for p in ports if p.oper_up)
    serial = model.switches[switch].info.serial
    rows = []
    for i in (1, 2):
        power = total / 2
        rows.append(
            {
                "index": str(i),
                "name": f"PSU {i}",
                "presence": "true",
                "status": "OK",
                "led_status": "green",
                "model": "MTEF-PSF-AC-C",
                "serial": f"{serial}-P{i}",
                "revision": "A1",
                "voltage": "12.00",
                "current": f"{power / 12.0:.2f}",
                "power": f"{power:.2f}",
            }
        )
    return rows


def format_psus(rows: Sequence[dict[str, str]], as_json: bool) -> str:
    """psushow -s: simple table, or a JSON list of per-PSU dicts (indent 4)."""
    if as_json:
        return json.dumps(list(rows), indent=4) + "\n"
    keys = ["name", "model", "serial", "revision", "voltage", "current", "power", "status", "led_status"]
    return tabulate_simple(PSU_HEADER, [[r[k] for k in keys] for r in rows], align="left") + "\n"


def _click_usage_error(words: Sequence[str], message: str) -> CommandOutput:
    cmd = " ".join(words[:3])
    return CommandOutput("", f'Usage: {cmd} [OPTIONS]\nTry "{cmd} -h" for help.\n\nError: {message}\n', 2)


def sonic_cli(model: RackModel, switch: str) -> CommandHandler:
    """A handler answering the SONiC show commands for ``model.switches[switch]``."""
    if switch not in model.switches:
        raise KeyError(f"no switch {switch!r} in the rack model (have: {', '.join(model.switches)})")
    rates = _PortRates()

    def counters(words: list[str]) -> CommandOutput:
        # show interfaces counters [errors|fec-stats] [-a|--printall] [-j|--json]
        rest = words[3:]
        header = COUNTERS_HEADER
        if rest and rest[0] in ("errors", "fec-stats"):
            header = COUNTERS_ERRORS_HEADER if rest[0] == "errors" else COUNTERS_FEC_HEADER
            rest = rest[1:]
        as_json = False
        for word in rest:
            if word in ("-j", "--json"):
                as_json = True
            elif word not in ("-a", "--printall"):
                return _click_usage_error(words, f"No such option: {word}")
        with model.lock:
            rows = counters_rows(model, switch, rates)
        return CommandOutput(format_counters(rows, header, as_json))

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
            if words[:3] in (["show", "interfaces", "counters"], ["show", "interface", "counters"]):
                return counters(words)
            if words[:3] == ["show", "platform", "temperature"]:
                return CommandOutput(format_temperature(temperature_rows(model, switch), _json_flag(words[3:])))
            if words[:3] == ["show", "platform", "psustatus"]:
                return CommandOutput(format_psus(psu_rows(model, switch), _json_flag(words[3:])))
        if words[0] == "show":
            return CommandOutput(
                "",
                'Usage: show [OPTIONS] COMMAND [ARGS]...\nTry "show -h" for help.\n\n'
                f'Error: No such command "{" ".join(words[1:])}".\n',
                2,
            )
        return CommandOutput("", f"bash: line 1: {words[0]}: command not found\n", 127)

    return handle


def _json_flag(rest: Sequence[str]) -> bool:
    return any(w in ("-j", "--json") for w in rest)


def start_switch_ssh(
    model: RackModel,
    switch: str,
    *,
    host: str = "127.0.0.1",
    username: str,
    password: str,
    host_key: paramiko.PKey,
    protocol_faults: bool = True,
) -> SshServer:
    """Serve the SONiC CLI of ``model.switches[switch]`` over SSH on ``host``, port chosen by the OS.

    Serves exec requests for ``show version``, ``show interfaces status``, ``show lldp table``,
    ``show interfaces counters [errors|fec-stats] [-a] [-j|--json]``, ``show platform
    temperature [--json]`` and ``show platform psustatus [--json]`` (live from the model); other
    ``show`` commands fail like SONiC's click CLI (exit 2), anything else like bash (exit 127).
    Password authentication only. Protocol faults injected on ``switch`` act on the server
    (``protocol_faults=False`` turns that off).
    """
    handler = sonic_cli(model, switch)
    faults = (lambda: model.active_faults(switch)) if protocol_faults else None
    server = SshServer(
        handler, host=host, username=username, password=password, host_key=host_key, name=switch, faults=faults
    )
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
