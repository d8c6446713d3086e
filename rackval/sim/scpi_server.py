"""A simulated Yokogawa WT power analyzer speaking SCPI over a raw TCP socket (like port 5025).

The driver cannot tell this server from the instrument except by address, so it implements the
parts of SCPI / IEEE 488.2 that drivers trip over on real hardware: long and short header forms
in any case, compound messages (``a;b`` with the SCPI relative-path rule), a real FIFO error queue
that overflows the standard way, *ESR? bits, and queries that answer nothing when they fail (so
a driver that ignores the error queue sees a timeout, as it would on the bench).

Simplifications (change them here, in one place, when a test needs more):
- The analyzer has ``elements`` input elements (default 1). Every element and SIGMA read the
  analyzer's *total* over all its feeds (``RackModel.analyzer_reading``): the model does not yet
  split the reading per element.
- FU (voltage frequency) is a constant 50.0 Hz.
- Only ASCII numeric format is supported; ``:NUM:FORM FLO`` is refused with -221.
- A new query while a previous reply is still unread is *not* detected (a real instrument
  reports -410 "Query INTERRUPTED"); replies are simply written in order.
- Instrument state (settings, error queue, ESR) is shared by every connection, as on a real
  instrument; commands from concurrent connections are processed one message at a time.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from rackval.sim.faults import Fault
from rackval.sim.model import RackModel
from rackval.sim.tcp_shell import StopAwareSocket, TcpServerShell

ERROR_QUEUE_SIZE = 32
MAX_LINE_BYTES = 64 * 1024

# SCPI / IEEE 488.2 standard error codes and texts used here.
E_NO_ERROR = (0, "No error")
E_SYNTAX = (-102, "Syntax error")
E_DATA_TYPE = (-104, "Data type error")
E_PARAM_NOT_ALLOWED = (-108, "Parameter not allowed")
E_MISSING_PARAM = (-109, "Missing parameter")
E_UNDEFINED_HEADER = (-113, "Undefined header")
E_SUFFIX_RANGE = (-114, "Header suffix out of range")
E_SETTINGS_CONFLICT = (-221, "Settings conflict")
E_DATA_RANGE = (-222, "Data out of range")
E_ILLEGAL_PARAM = (-224, "Illegal parameter value")
E_QUEUE_OVERFLOW = (-350, "Queue overflow")
E_INPUT_OVERRUN = (-363, "Input buffer overrun")


class ScpiError(Exception):
    """Raised by a command handler: the code and text go to the error queue, no reply is sent."""

    def __init__(self, error: tuple[int, str], detail: str = "") -> None:
        self.code, self.text = error
        if detail:  # SCPI allows device-dependent info after ';' inside the quoted text
            clean = "".join(ch if ch.isprintable() and ch != '"' else "?" for ch in detail)
            self.text = f"{self.text};{clean}"
        super().__init__(f"{self.code},{self.text}")


# ---- header patterns ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """One header node: long form (mixed case marks the short form), optional, numeric suffix."""

    long: str
    short: str
    optional: bool
    numeric: bool


def _compile_pattern(pattern: str) -> tuple[_Node, ...]:
    """':NUMeric[:NORMal]:ITEM#' -> nodes. '[...]' marks an optional node, '#' a numeric suffix."""
    nodes = []
    for raw in re.findall(r"\[:?[^\]]+\]|:?[^:\[]+", pattern):
        optional = raw.startswith("[")
        name = raw.strip("[]:")
        numeric = name.endswith("#")
        name = name.rstrip("#")
        short = "".join(ch for ch in name if ch.isupper() or ch.isdigit() or ch == "*")
        nodes.append(_Node(name.upper(), short.upper() or name.upper(), optional, numeric))
    return tuple(nodes)


_TOKEN_RE = re.compile(r"^([A-Za-z_*]+?)(\d*)$")


def _match(nodes: tuple[_Node, ...], tokens: list[str]) -> list[int] | None:
    """Match typed header tokens against pattern nodes; return the numeric suffixes or None."""
    if not nodes:
        return [] if not tokens else None
    node, rest = nodes[0], nodes[1:]
    if tokens:
        m = _TOKEN_RE.match(tokens[0])
        if m:
            word, digits = m.group(1).upper(), m.group(2)
            if word in (node.long, node.short) and (node.numeric or not digits):
                tail = _match(rest, tokens[1:])
                if tail is not None:
                    return ([int(digits) if digits else 1] if node.numeric else []) + tail
    if node.optional:
        return _match(rest, tokens)
    return None


# ---- parameter helpers ----------------------------------------------------------------------


def _split_params(text: str) -> list[str]:
    """Split a parameter list on commas outside quotes."""
    if not text.strip():
        return []
    out, cur, quote = [], [], ""
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == ",":
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if quote:
        raise ScpiError(E_SYNTAX, "unterminated string")
    out.append("".join(cur).strip())
    return out


def _split_units(line: str) -> list[str]:
    """Split a program message on ';' outside quotes."""
    out, cur, quote = [], [], ""
    for ch in line:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == ";":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _mnemonic(value: str, choices: dict[str, str]) -> str:
    """Match a character-data parameter against {'ASCii': 'ASCII', ...} (long or short form)."""
    v = value.strip().upper()
    for form, canonical in choices.items():
        short = "".join(ch for ch in form if ch.isupper())
        if v in (form.upper(), short):
            return canonical
    raise ScpiError(E_ILLEGAL_PARAM, f"{value!r}")


def _integer(value: str, low: int, high: int) -> int:
    try:
        number = float(value)
    except ValueError:
        raise ScpiError(E_DATA_TYPE, f"{value!r} is not a number") from None
    if not math.isfinite(number) or not low <= round(number) <= high:
        raise ScpiError(E_DATA_RANGE, f"{value} not within {low}..{high}")
    return round(number)


Handler = Callable[[list[str], list[int]], str | None]


class ScpiInstrument:
    """IEEE 488.2 core: parser, dispatch, error queue, ESR. Subclasses add their subsystems.

    ``handle_message(line)`` takes one newline-terminated program message (terminator removed)
    and returns the response message (query replies joined with ';') or None when there is none.
    """

    idn: str = "SIM,SCPI,0,0"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._errors: deque[tuple[int, str]] = deque()
        self._esr = 0
        self._commands: list[tuple[tuple[_Node, ...], bool, Handler]] = []
        self.add_command("*IDN?", lambda p, s: self.idn)
        self.add_command("*RST", lambda p, s: self.reset())
        self.add_command("*CLS", lambda p, s: self.clear_status())
        self.add_command("*OPC", lambda p, s: self._set_esr(1))
        self.add_command("*OPC?", lambda p, s: "1")
        self.add_command("*WAI", lambda p, s: None)
        self.add_command("*TST?", lambda p, s: "0")
        self.add_command("*ESR?", lambda p, s: self._read_esr())
        self.add_command(":SYSTem:ERRor[:NEXT]?", lambda p, s: self._pop_error())
        self.add_command(":SYSTem:ERRor:COUNt?", lambda p, s: str(len(self._errors)))

    # ---- registration -------------------------------------------------------------------
    def add_command(self, pattern: str, handler: Handler, *, params: tuple[int, int] = (0, 0)) -> None:
        """Register a header. ``pattern`` ends in '?' for a query; ``params`` = (min, max) count."""
        query = pattern.endswith("?")
        nodes = _compile_pattern(pattern.rstrip("?"))
        low, high = params

        def checked(p: list[str], s: list[int]) -> str | None:
            if len(p) < low:
                raise ScpiError(E_MISSING_PARAM)
            if len(p) > high:
                raise ScpiError(E_PARAM_NOT_ALLOWED)
            return handler(p, s)

        self._commands.append((nodes, query, checked))

    # ---- state --------------------------------------------------------------------------
    def reset(self) -> None:
        """*RST: instrument settings to defaults. Does not touch the error queue (488.2)."""

    def clear_status(self) -> None:
        """*CLS: empty the error queue and clear the event status register."""
        self._errors.clear()
        self._esr = 0

    def push_error(self, code: int, text: str) -> None:
        """Append to the FIFO; when full, the newest entry becomes -350 (SCPI 1999 21.8)."""
        if code <= -100:
            self._set_esr({1: 32, 2: 16, 3: 8, 4: 4}.get(-code // 100, 8))
        if len(self._errors) >= ERROR_QUEUE_SIZE:
            self._errors[-1] = E_QUEUE_OVERFLOW
        else:
            self._errors.append((code, text))

    def _pop_error(self) -> str:
        code, text = self._errors.popleft() if self._errors else E_NO_ERROR
        return f'{code:+d},"{text}"'

    def _set_esr(self, bits: int) -> None:
        self._esr |= bits

    def _read_esr(self) -> str:
        value, self._esr = self._esr, 0
        return str(value)

    # ---- parsing and dispatch -----------------------------------------------------------
    def handle_message(self, line: str) -> str | None:
        """Execute one program message; return the joined replies, or None if nothing to send."""
        replies: list[str] = []
        path: list[str] = []  # SCPI current path: set by the previous header in this message
        with self.lock:
            for unit in _split_units(line):
                unit = unit.strip()
                if not unit:
                    continue
                try:
                    reply, path = self._execute(unit, path)
                except ScpiError as exc:
                    self.push_error(exc.code, exc.text)
                    continue
                except Exception as exc:  # a bug in a handler must not kill the connection
                    self.push_error(-300, f"Device-specific error; {type(exc).__name__}")
                    continue
                if reply is not None:
                    replies.append(reply)
        return ";".join(replies) if replies else None

    def _execute(self, unit: str, path: list[str]) -> tuple[str | None, list[str]]:
        header, _, rest = unit.partition(" ")
        if "\t" in header:  # header and parameters may be separated by any whitespace
            header, _, more = header.partition("\t")
            rest = f"{more} {rest}"
        query = header.endswith("?")
        bare = header[:-1] if query else header
        if not bare or not re.fullmatch(r"\*?[A-Za-z0-9_:]+", bare):
            raise ScpiError(E_SYNTAX if bare else E_UNDEFINED_HEADER, header)
        if bare.startswith("*"):
            tokens, new_path = [bare], path  # common commands do not change the current path
        else:
            typed = bare.lstrip(":").split(":")
            if any(not t for t in typed):
                raise ScpiError(E_SYNTAX, header)
            tokens = typed if bare.startswith(":") else path + typed
            new_path = tokens[:-1]
        params = _split_params(rest)
        for nodes, is_query, handler in self._commands:
            if is_query != query:
                continue
            suffixes = _match(nodes, tokens)
            if suffixes is not None:
                return handler(params, suffixes), new_path
        raise ScpiError(E_UNDEFINED_HEADER, header)


# ---- the Yokogawa WT analyzer ---------------------------------------------------------------

FUNCTIONS = ("U", "I", "P", "S", "Q", "LAMBDA", "FU", "NONE")
DEFAULT_ITEMS = ("U", "I", "P", "S", "Q", "LAMBDA", "FU")
DEFAULT_NUMBER = 15  # [U] WT5000 preset item count; items past DEFAULT_ITEMS are NONE (NAN)
MAX_ITEMS = 255


class WtAnalyzerSim(ScpiInstrument):
    """Yokogawa WT5000-like :NUMeric subsystem over the rack model's analyzer reading.

    [S] The WT series treats :NORMal as optional (``:NUMeric[:NORMal]:VALue?``).
    """

    def __init__(self, model: RackModel, analyzer: str, elements: int = 1) -> None:
        super().__init__()
        self.model = model
        self.analyzer = analyzer
        self.elements = elements
        info = model.analyzers[analyzer].info
        self.idn = f"{info.vendor},{info.model},{info.serial},{info.firmware}"
        self.reset()
        self.add_command(":NUMeric:FORMat", self._set_format, params=(1, 1))
        self.add_command(":NUMeric:FORMat?", lambda p, s: self.format)
        self.add_command(":NUMeric[:NORMal]:NUMber", self._set_number, params=(1, 1))
        self.add_command(":NUMeric[:NORMal]:NUMber?", lambda p, s: str(self.number))
        self.add_command(":NUMeric[:NORMal]:ITEM#", self._set_item, params=(1, 2))
        self.add_command(":NUMeric[:NORMal]:ITEM#?", self._get_item)
        self.add_command(":NUMeric[:NORMal]:VALue?", self._values, params=(0, 1))

    def reset(self) -> None:
        self.format = "ASCII"
        self.number = DEFAULT_NUMBER
        self.items: dict[int, tuple[str, str]] = {
            k: (DEFAULT_ITEMS[k - 1], "1") if k <= len(DEFAULT_ITEMS) else ("NONE", "") for k in range(1, MAX_ITEMS + 1)
        }

    def _set_format(self, params: list[str], _s: list[int]) -> None:
        fmt = _mnemonic(params[0], {"ASCii": "ASCII", "FLOat": "FLOAT"})
        if fmt != "ASCII":
            raise ScpiError(E_SETTINGS_CONFLICT, "only ASCII is simulated")
        self.format = fmt

    def _set_number(self, params: list[str], _s: list[int]) -> None:
        self.number = MAX_ITEMS if params[0].strip().upper() == "ALL" else _integer(params[0], 1, MAX_ITEMS)

    def _item_index(self, suffixes: list[int]) -> int:
        k = suffixes[0]
        if not 1 <= k <= MAX_ITEMS:
            raise ScpiError(E_SUFFIX_RANGE, f"ITEM{k}")
        return k

    def _set_item(self, params: list[str], suffixes: list[int]) -> None:
        k = self._item_index(suffixes)
        func = params[0].strip().upper()
        if func not in FUNCTIONS:
            raise ScpiError(E_ILLEGAL_PARAM, f"function {params[0]!r}")
        if func == "NONE":
            self.items[k] = ("NONE", "")
            return
        if len(params) < 2:
            raise ScpiError(E_MISSING_PARAM, "element")
        element = params[1].strip().upper()
        if element != "SIGMA":
            element = str(_integer(element, 1, self.elements))
        self.items[k] = (func, element)

    def _get_item(self, _p: list[str], suffixes: list[int]) -> str:
        func, element = self.items[self._item_index(suffixes)]
        return func if func == "NONE" else f"{func},{element}"

    def _values(self, params: list[str], _s: list[int]) -> str:
        # One model snapshot per query, so U, I and P in one reply belong together.
        voltage, current, power, pf = self.model.analyzer_reading(self.analyzer)
        apparent = voltage * current
        computed = {
            "U": voltage,
            "I": current,
            "P": power,
            "S": apparent,
            "Q": math.sqrt(max(apparent * apparent - power * power, 0.0)),
            "LAMBDA": pf,
            "FU": 50.0,
        }
        wanted = [_integer(params[0], 1, MAX_ITEMS)] if params else range(1, self.number + 1)
        out = []
        for k in wanted:
            func, _element = self.items[k]
            value = computed.get(func)
            out.append("NAN" if value is None else f"{value:.5E}")
        return ",".join(out)


# ---- the socket server ----------------------------------------------------------------------


def apply_faults(
    instrument: ScpiInstrument, faults: list[Fault], rng: random.Random, raw: bytes, reply: str | None
) -> tuple[bytes | None, float]:
    """Apply a device's protocol faults to one program message line and its reply.

    Returns the reply to send (None: nothing, e.g. device_silent) and the delay before it may be
    read (device_slow); the raw socket server sleeps it, VXI-11 delays the read with it. SCPI
    over LAN has no login, so auth_failure and session_exhaustion do not apply.
    """
    out = None if reply is None else reply.encode("ascii", "replace")
    delay = 0.0
    for fault in faults:
        p = fault.params
        if fault.kind == "device_silent":
            return None, 0.0
        if fault.kind == "device_slow":
            delay += p["delay_s"] + rng.uniform(0.0, p["jitter_s"])
        elif fault.kind == "scpi_error":
            command = raw.decode("ascii", "replace").strip().lstrip(":").upper()
            if command.startswith(p["command"].lstrip(":").upper()):
                with instrument.lock:
                    instrument.push_error(p["code"], p["message"])
        elif fault.kind == "malformed_reply" and out is not None and rng.random() < p["probability"]:
            if p["mode"] == "garbage":
                out = bytes(rng.randrange(128, 256) for _ in range(max(len(out), 8)))
            elif p["mode"] == "wrong_length":
                out += b"," + out
            else:  # truncate
                out = out[: max(len(out) // 2, 1)]
    return out, delay


class ScpiServer(TcpServerShell):
    """Raw-socket SCPI server: one thread per client, newline-terminated program messages."""

    thread_prefix = "scpi"

    def __init__(
        self,
        instrument: ScpiInstrument,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Callable[[], list[Fault]] | None = None,
    ) -> None:
        self.instrument = instrument
        self._faults = faults or (lambda: [])
        self._rng = random.Random(port)
        super().__init__(host, port)

    def serve(self, sock: StopAwareSocket) -> None:
        buf = bytearray()
        while (chunk := sock.recv_some()) is not None:
            buf.extend(chunk)
            while (nl := buf.find(b"\n")) >= 0:
                raw, buf = bytes(buf[:nl]), buf[nl + 1 :]
                reply = self._faulty(raw, self._handle(raw))
                if reply is not None and not sock.send(reply + b"\n"):
                    return
            if len(buf) > MAX_LINE_BYTES:
                buf.clear()
                with self.instrument.lock:
                    self.instrument.push_error(*E_INPUT_OVERRUN)

    def _faulty(self, raw: bytes, reply: str | None) -> bytes | None:
        """Apply the device's active protocol faults to one program message and its reply."""
        out, delay = apply_faults(self.instrument, self._faults(), self._rng, raw, reply)
        if delay:
            time.sleep(delay)
        return out

    def _handle(self, raw: bytes) -> str | None:
        line = raw.decode("ascii", "replace").rstrip("\r")
        try:
            return self.instrument.handle_message(line)
        except Exception:  # malformed input must never kill the client thread
            with self.instrument.lock:
                self.instrument.push_error(-300, "Device-specific error")
            return None


def start_analyzer_scpi(
    model: RackModel, analyzer: str, *, host: str = "127.0.0.1", port: int = 0, elements: int = 1
) -> ScpiServer:
    """Serve ``model.analyzers[analyzer]`` as a Yokogawa WT analyzer on a raw SCPI socket.

    ``port`` 0 lets the OS pick a free port (read it back from ``.port``). ``elements`` is the
    number of input elements the simulated analyzer accepts in ``:NUM:NORM:ITEM<k> <f>,<el>``.
    """
    if analyzer not in model.analyzers:
        raise KeyError(f"no analyzer {analyzer!r} in the model (have {sorted(model.analyzers)})")
    return ScpiServer(
        WtAnalyzerSim(model, analyzer, elements), host=host, port=port, faults=lambda: model.active_faults(analyzer)
    )
