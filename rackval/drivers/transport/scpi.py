"""SCPI over VISA (pyvisa with the pure-Python pyvisa-py backend): raw socket, VXI-11, HiSLIP.

The transport owns what every SCPI driver otherwise gets wrong: line termination on raw
sockets, timeouts in the unit VISA wants (ms), draining the instrument's error queue so a
rejected setup command is reported instead of silently producing wrong numbers, and turning
pyvisa/socket exceptions into DeviceErrors that name the device, its address and the command.

After any I/O failure (timeout, refused, reset, garbled reply) the connection is dropped and
reopened on next use: a reply that arrives after its timeout would otherwise be read as the
answer to the *next* query. ``generation`` counts (re)connections so a driver can redo its
per-connection setup.

pyvisa-py notes (checked against pyvisa-py 0.8.1):
- SOCKET resources are ``TCPIP[board]::host::port::SOCKET``; the board number is optional
  (``TCPIP::`` = ``TCPIP0::``) but a bare ``host:port`` is refused as an invalid resource name.
- Opening a SOCKET resource does not report "connection refused": the connect is non-blocking
  and the error surfaces as ``ConnectionRefusedError`` on the first write, so it is mapped
  there (the operation then names the first command).
- ``pyvisa.ResourceManager("@py")`` returns one shared manager per backend; closing it closes
  every session opened through it, so transports close only their own session.
- A peer that closes the socket is not detected on read: the read waits out the timeout.
- VI_ATTR_TCPIP_NODELAY cannot be set on SOCKET sessions ("Unknown attribute"). Not needed:
  pyvisa-py sends each command with its terminator in one send() and then waits for the reply,
  so Nagle never holds a write back (measured ~0.1 ms per query on loopback).
- Its timeouts are per read, not per operation: ``inst.query`` reads chunk after chunk, each
  with the full timeout, into one unbounded buffer, so an instrument that trickles a reply
  without its terminator holds the caller for ever and a 128 MiB reply grows the process by
  ~450 MB. HiSLIP waits per ``recv`` (5 s fixed while opening), VXI-11 per RPC (its portmapper
  and create_link calls 5 s and more whatever the VISA timeout), so opening a half-open peer
  takes 10 s or more.

Hence every operation here (open, write, query) has one deadline, ``config.timeout_s`` from its
start: a query writes the command, then reads the reply in chunks of at most 64 KiB, each with
the time left as its VISA timeout, refusing a reply beyond option ``max_reply_bytes``; the
process watchdog (``watchdog``) shuts the session's sockets down at the deadline, which ends any
wait inside pyvisa-py at once; opening runs in a helper thread that is abandoned (and its late
session closed) when the deadline passes. So an operation ends within ``timeout_s`` plus the
watchdog's wake-up (milliseconds; the documented slack is 2 s), whatever the instrument does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import pyvisa
from pyvisa import constants

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import ScpiOptions, parse_options
from rackval.drivers.transport.watchdog import WATCHDOG, abort_socket

DEFAULT_SOCKET_PORT = 5025
ERROR_QUERY = "SYST:ERR?"
_RM_LOCK = threading.Lock()
_READ_CHUNK = 65536
_T = TypeVar("_T")


class _ReplyTooLarge(Exception):
    """The reply went past ``max_reply_bytes`` (internal: becomes a DeviceProtocolError)."""


def _session_sockets(inst: Any) -> list[socket.socket]:
    """The sockets under a pyvisa-py session (a raw socket; VXI-11's RPC client; HiSLIP's two
    channels), found by looking two attribute levels down so no private name is relied on."""
    try:
        session = inst.visalib.sessions[inst.session]
    except (AttributeError, KeyError, TypeError):
        return []
    found: list[socket.socket] = []
    level = [session]
    for _ in range(3):
        children = []
        for obj in level:
            for value in getattr(obj, "__dict__", {}).values():
                if isinstance(value, socket.socket):
                    found.append(value)
                elif hasattr(value, "__dict__") and not isinstance(value, type):
                    children.append(value)
        level = children
    return found


def resource_string(config: DeviceConfig) -> str:
    """The VISA resource for a device: ``options['resource']`` or a raw socket on host:port."""
    explicit = parse_options(ScpiOptions, config.options, config.name, known_only=True).resource
    if explicit:
        return explicit
    return f"TCPIP0::{config.host}::{config.port or DEFAULT_SOCKET_PORT}::SOCKET"


def parse_error_reply(reply: str) -> tuple[int, str]:
    """'-113,"Undefined header"' -> (-113, 'Undefined header'). Raises ValueError if malformed."""
    code_text, sep, text = reply.strip().partition(",")
    if not sep:
        raise ValueError(f"no comma in {reply!r}")
    return int(code_text.strip()), text.strip().strip('"')


class ScpiTransport:
    """One VISA session to one SCPI instrument; thread-safe (one lock per instance).

    Options (``config.options``):
    - ``resource``: full VISA resource string, e.g. ``TCPIP0::10.0.0.5::inst0::INSTR`` (VXI-11)
      or ``TCPIP0::10.0.0.5::hislip0::INSTR`` (HiSLIP). Default: raw socket
      ``TCPIP0::{host}::{port or 5025}::SOCKET``.
    - ``read_termination`` / ``write_termination``: default "\\n" on SOCKET resources (a raw
      socket has no END indicator); VXI-11/HiSLIP keep VISA's defaults unless given.
    - ``max_reply_bytes`` (default 4 MiB): the largest reply accepted; a larger one is a
      DeviceProtocolError ("reply larger than N bytes") and the session is reopened.
    ``config.timeout_s`` bounds each operation (open, write, query) as a whole (module docstring).
    """

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.name = config.name
        self.resource_name = resource_string(config)
        self._opts = parse_options(ScpiOptions, config.options, config.name, known_only=True)
        self.generation = 0  # incremented on every (re)connection
        self._lock = threading.RLock()
        self._rm: Any = None
        self._inst: Any = None
        # Commands written since the error queue was last drained, named when check() fails.
        # (Queries are not listed: a rejected query already fails with a timeout naming it.)
        self._unchecked: deque[str] = deque(maxlen=8)

    # ---- errors ---------------------------------------------------------------------------
    def _error(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self.name, self.config.address, operation, f"{detail} [{self.resource_name}]")

    def _map(self, operation: str, exc: Exception) -> DeviceError:
        """Translate a pyvisa / socket / decoding failure into a DeviceError and drop the link."""
        self._drop()
        if isinstance(exc, pyvisa.errors.VisaIOError):
            if exc.error_code == constants.StatusCode.error_timeout:
                return self._error(DeviceTimeout, operation, f"no reply within {self.config.timeout_s:g} s")
            if exc.error_code == constants.StatusCode.error_invalid_resource_name:
                return self._error(DeviceError, operation, "invalid VISA resource string")
            return self._error(DeviceError, operation, f"VISA error: {exc.description}")
        if isinstance(exc, TimeoutError):
            return self._error(DeviceTimeout, operation, f"no reply within {self.config.timeout_s:g} s")
        if isinstance(exc, ConnectionRefusedError):
            return self._error(
                DeviceError, operation, "connection refused (instrument off, wrong port, or socket disabled)"
            )
        if isinstance(exc, OSError):
            return self._error(DeviceError, operation, f"network error: {exc.strerror or exc}")
        if isinstance(exc, UnicodeError):
            return self._error(DeviceProtocolError, operation, "garbled reply (not ASCII text)")
        if "error_timeout" in str(exc):  # pyvisa-py raises a bare Exception when connect times out
            return self._error(DeviceTimeout, operation, "connect timed out")
        return self._error(DeviceError, operation, f"{type(exc).__name__}: {exc}")

    # ---- connection -----------------------------------------------------------------------
    def _open(self, deadline: float) -> Any:
        if self._inst is not None:
            return self._inst
        operation = f"open SCPI session {self.resource_name}"
        inst = self._open_within(operation, deadline)
        try:
            is_socket = self.resource_name.upper().endswith("::SOCKET")
            if is_socket or self._opts.read_termination is not None:
                inst.read_termination = "\n" if self._opts.read_termination is None else self._opts.read_termination
            if is_socket or self._opts.write_termination is not None:
                inst.write_termination = "\n" if self._opts.write_termination is None else self._opts.write_termination
        except Exception as exc:
            with contextlib.suppress(Exception):
                inst.close()
            raise self._map(operation, exc) from exc
        self._inst = inst
        self.generation += 1
        self._unchecked.clear()
        return inst

    def _open_within(self, operation: str, deadline: float) -> Any:
        """``open_resource`` in a helper thread, given up at ``deadline`` (its late session closed)."""
        if self._rm is None:
            try:
                with _RM_LOCK:  # pyvisa shares one manager per backend; create it once
                    self._rm = pyvisa.ResourceManager("@py")
            except Exception as exc:
                raise self._map(operation, exc) from exc
        rm, remaining = self._rm, deadline - time.monotonic()
        box: dict[str, Any] = {}
        done, lock = threading.Event(), threading.Lock()

        def work() -> None:
            try:
                inst = rm.open_resource(self.resource_name, open_timeout=max(1, round(remaining * 1000)))
            except Exception as exc:
                box["error"] = exc
            else:
                with lock:
                    if "abandoned" not in box:
                        box["inst"] = inst
                        inst = None
                if inst is not None:  # too late: nobody will use it
                    with contextlib.suppress(Exception):
                        inst.close()
            finally:
                done.set()

        threading.Thread(target=work, name=f"scpi-open-{self.name}", daemon=True).start()
        done.wait(max(remaining, 0.0))
        with lock:
            box.setdefault("abandoned", True)
            if "inst" in box:
                return box["inst"]
        if "error" in box:
            raise self._map(operation, box["error"]) from box["error"]
        raise self._error(DeviceTimeout, operation, f"no session within {self.config.timeout_s:g} s")

    def connect(self) -> int:
        """Open the session now if it is not open; return ``generation`` (changes on reconnect)."""
        with self._lock:
            self._open(time.monotonic() + self.config.timeout_s)
            return self.generation

    def _drop(self) -> None:
        inst, self._inst = self._inst, None
        if inst is not None:
            with contextlib.suppress(Exception):
                inst.close()

    def close(self) -> None:
        """Release this session. Idempotent.

        The ResourceManager is deliberately not closed: pyvisa hands every caller the *same*
        manager per backend, and closing it closes every other transport's session too.
        """
        with self._lock:
            self._drop()
            self._rm = None

    # ---- I/O ------------------------------------------------------------------------------
    def _bounded(self, operation: str, action: Callable[[Any, float], _T]) -> _T:
        """``action(inst, deadline)`` on the open session (opened if needed), all by one deadline."""
        deadline = time.monotonic() + self.config.timeout_s
        inst = self._open(deadline)
        remaining = deadline - time.monotonic()
        guard = WATCHDOG.schedule(max(remaining, 0.0), lambda: [abort_socket(s) for s in _session_sockets(inst)])
        try:
            if remaining <= 0:
                raise TimeoutError
            result = action(inst, deadline)
        except _ReplyTooLarge as exc:
            self._drop()  # the rest of the reply is still on its way: the link is out of step
            raise self._error(DeviceProtocolError, operation, str(exc)) from None
        except Exception as exc:
            guard.cancel()  # returns once a watchdog that fired has shut the sockets down
            if guard.fired:
                self._drop()
                raise self._error(DeviceTimeout, operation, self._late()) from exc
            raise self._map(operation, exc) from exc
        finally:
            guard.cancel()
        if guard.fired:  # the reply came as the deadline passed: the session was shut down under it
            self._drop()
            raise self._error(DeviceTimeout, operation, self._late())
        return result

    def _late(self) -> str:
        return f"no complete reply within {self.config.timeout_s:g} s"

    def _read_reply(self, inst: Any, deadline: float) -> str:
        """The reply, read in chunks each given the time left, at most ``max_reply_bytes``."""
        limit = self._opts.max_reply_bytes
        buf = bytearray()
        more = constants.StatusCode.success_max_count_read
        with inst.ignore_warning(more):  # "the chunk is full, more may follow": what we read on
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                inst.timeout = max(1, round(remaining * 1000))
                chunk, status = inst.visalib.read(inst.session, min(_READ_CHUNK, limit + 1 - len(buf)))
                buf += chunk
                if len(buf) > limit:
                    raise _ReplyTooLarge(f"reply larger than {limit} bytes (option 'max_reply_bytes')")
                if status != more:  # END, terminator (or both)
                    break
        reply = bytes(buf).decode(inst.encoding)
        termination = inst.read_termination
        return reply[: -len(termination)] if termination and reply.endswith(termination) else reply

    def _query(self, cmd: str) -> str:
        def ask(inst: Any, deadline: float) -> str:
            inst.timeout = max(1, round((deadline - time.monotonic()) * 1000))
            inst.write(cmd)
            return self._read_reply(inst, deadline)

        return self._bounded(f"SCPI query {cmd!r}", ask).strip()

    def query(self, cmd: str) -> str:
        """Send a query and return its reply, stripped of termination and whitespace."""
        with self._lock:
            return self._query(cmd)

    def write(self, cmd: str) -> None:
        """Send a command that has no reply. Whether it was accepted shows up in ``check``."""

        def send(inst: Any, deadline: float) -> None:
            inst.timeout = max(1, round((deadline - time.monotonic()) * 1000))
            inst.write(cmd)

        with self._lock:
            self._unchecked.append(cmd)
            self._bounded(f"SCPI write {cmd!r}", send)

    def opc(self) -> None:
        """Wait for pending operations with *OPC? (which must answer 1), not with a sleep."""
        with self._lock:
            reply = self._query("*OPC?")
            try:
                done = int(float(reply)) == 1
            except ValueError:
                done = False
            if not done:
                raise self._error(DeviceProtocolError, "SCPI query '*OPC?'", f"expected 1, got {reply!r}")

    def errors(self, max_items: int = 32) -> list[tuple[int, str]]:
        """Drain the error queue with SYST:ERR? until code 0, reading at most ``max_items``."""
        with self._lock:
            found: list[tuple[int, str]] = []
            for _ in range(max_items):
                reply = self._query(ERROR_QUERY)
                try:
                    code, text = parse_error_reply(reply)
                except ValueError:
                    raise self._error(
                        DeviceProtocolError,
                        f"SCPI query {ERROR_QUERY!r}",
                        f"expected '<code>,\"<text>\"', got {reply[:80]!r}",
                    ) from None
                if code == 0:
                    self._unchecked.clear()
                    break
                found.append((code, text))
            return found

    def check(self, operation: str) -> None:
        """Drain the error queue; raise DeviceError for ``operation`` if it held any error."""
        with self._lock:
            recent = list(self._unchecked)
            found = self.errors()
            if not found:
                return
            listed = "; ".join(f'{code},"{text}"' for code, text in found)
            detail = f"instrument reported {listed}"
            if len(found) >= 32:
                detail += " (more errors left unread)"
            if recent:
                detail += f" after commands {', '.join(repr(c) for c in recent)}"
            raise self._error(DeviceError, operation, detail)

    def clear(self) -> None:
        """*CLS: empty the error queue and status registers before an operation we judge."""
        with self._lock:
            self.write("*CLS")
            self._unchecked.clear()

    def identity(self) -> tuple[str, str, str, str]:
        """(maker, model, serial, firmware) from *IDN?."""
        with self._lock:
            reply = self._query("*IDN?")
        parts = [p.strip() for p in reply.split(",", 3)]
        if len(parts) < 4:
            raise self._error(
                DeviceProtocolError,
                "SCPI query '*IDN?'",
                f"expected 'maker,model,serial,firmware', got {reply[:80]!r}",
            )
        return parts[0], parts[1], parts[2], parts[3]

    def __enter__(self) -> ScpiTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
