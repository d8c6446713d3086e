"""A real SSH server (paramiko) for simulated devices, whatever their command set.

``SshServer`` accepts connections on 127.0.0.1, authenticates by password and answers exec
requests through a handler ``command -> CommandOutput``; with ``shell_sessions`` it also runs a
persistent ``sh`` session framed the way ``rackval.drivers.transport.ssh_session`` writes it. What the
commands print is not its business: each device kind has its own shell module that builds the
handler from the model and starts the server (``switch_shell``: SONiC, ``node_shell``: a Linux
GPU node, ``bmc_shell``: OpenBMC). ``write_known_hosts`` records a server's host key for the
clients.

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
import hashlib
import hmac
import os
import queue
import random
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from rackval.sim.faults import Fault

_SHUTDOWN = object()  # queue sentinel: stop serving this connection

# One command line of a persistent shell session, as rackval.drivers.transport.ssh_session writes it: the
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
