"""What the VXI-11 and HiSLIP servers of the simulated analyzer share: SCPI execution per END message.

Both LAN protocols carry the *same* IEEE 488.2 program messages as the raw socket server
(``rackval.sim.scpi_server``), so they drive the same ``ScpiInstrument`` (by default a
``WtAnalyzerSim`` over the rack model) and honour the same protocol faults. What differs is the
framing: VXI-11 and HiSLIP delimit a message with END instead of a newline, and a reply is
*fetched* (VXI-11 device_read) rather than pushed, so a slow device must make the read wait,
not the write. That is why fault handling here returns the delay instead of sleeping.

Fault handling is ``scpi_server.apply_faults``, the one copy all three servers use; the
threaded TCP frame is ``rackval.sim.tcp_shell``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rackval.sim.faults import Fault
from rackval.sim.model import RackModel
from rackval.sim.scpi_server import E_INPUT_OVERRUN, MAX_LINE_BYTES, ScpiInstrument, WtAnalyzerSim, apply_faults

# Upper bound on any wait a client can ask for (VXI-11 io_timeout / lock_timeout, HiSLIP lock
# timeout): 0xFFFFFFFF ms means "forever" on the wire, but a simulator thread must end.
MAX_WAIT_S = 60.0

# IEEE 488.2 status byte bits reported by device_readstb / AsyncStatusQuery.
STB_EAV = 0x04  # SCPI 1999 §9: error/event queue not empty
STB_MAV = 0x10  # message available: a reply is waiting to be read


@dataclass(frozen=True)
class Outcome:
    """The result of one END-terminated program message.

    ``reply`` is the response message (each query line's reply + "\\n") or None when there is
    nothing to read (no query, or the device is silent); ``delay_s`` is how long the device
    takes before the reply may be read (device_slow).
    """

    reply: bytes | None
    delay_s: float = 0.0


class ScpiEngine:
    """One instrument as a LAN server sees it: END-terminated program message in, Outcome out.

    Thread-safe: the instrument serialises messages with its own lock, the fault RNG is guarded.
    """

    def __init__(
        self, instrument: ScpiInstrument, faults: Callable[[], list[Fault]] | None = None, seed: int = 0
    ) -> None:
        self.instrument = instrument
        self._faults = faults or (lambda: [])
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def execute(self, message: bytes) -> Outcome:
        """Run every newline-separated line of ``message`` as the raw socket server would."""
        if len(message) > MAX_LINE_BYTES:
            self.push_error(*E_INPUT_OVERRUN)
            return Outcome(None)
        replies: list[bytes] = []
        delay = 0.0
        faults = self._faults()
        silent = any(f.kind == "device_silent" for f in faults)
        for raw in message.split(b"\n"):
            if not raw.strip():
                continue
            reply = self._handle(raw)  # a silent device still executes what it is sent
            with self._rng_lock:
                out, extra = apply_faults(self.instrument, faults, self._rng, raw, reply)
            delay += extra
            if out is not None:
                replies.append(out + b"\n")
        if silent or not replies:
            return Outcome(None)
        return Outcome(b"".join(replies), delay)

    def seed(self, value: int) -> None:
        """Seed the fault RNG (the socket server seeds with its port; so do the LAN servers)."""
        with self._rng_lock:
            self._rng.seed(value)

    def _handle(self, raw: bytes) -> str | None:
        line = raw.decode("ascii", "replace").rstrip("\r")
        try:
            return self.instrument.handle_message(line)
        except Exception:  # malformed input must never kill the client thread
            self.push_error(-300, "Device-specific error")
            return None

    def push_error(self, code: int, text: str) -> None:
        with self.instrument.lock:
            self.instrument.push_error(code, text)

    def status_byte(self, message_available: bool) -> int:
        """IEEE 488.2 status byte: EAV from the error queue, MAV from the caller's output state.

        The error count comes from ``:SYSTem:ERRor:COUNt?`` (non-destructive); ESB/RQS are not
        modelled because the instrument has no *ESE/*SRE.
        """
        try:
            count = int(self.instrument.handle_message(":SYSTem:ERRor:COUNt?") or "0")
        except ValueError:
            count = 0
        return (STB_EAV if count else 0) | (STB_MAV if message_available else 0)


def analyzer_engine(model: RackModel, analyzer: str, instrument: ScpiInstrument | None, elements: int) -> ScpiEngine:
    """The engine for ``model.analyzers[analyzer]``: a new WtAnalyzerSim unless one is shared in."""
    if analyzer not in model.analyzers:
        raise KeyError(f"no analyzer {analyzer!r} in the model (have {sorted(model.analyzers)})")
    if instrument is None:
        instrument = WtAnalyzerSim(model, analyzer, elements)
    return ScpiEngine(instrument, faults=lambda: model.active_faults(analyzer))
