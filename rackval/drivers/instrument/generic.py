"""Any SCPI instrument as a Device, and as a PowerMeter once told which query reads power.

Bench meters differ in the one command that reads a number (``MEAS:POW?``, ``FETC:POW:REAL?``,
``:NUM:VAL? 3``...) and agree on the rest (IEEE 488.2 ``*IDN?``, ``*CLS``, ``SYST:ERR?``). So
the measurement command is an option, and this class owns what every meter needs around it:
numbers that are really numbers (NAN, INF and the SCPI 9.91E+37 "no data" marker are refused,
never returned as a reading), and an explanation when a query goes unanswered: an instrument
that rejects a query sends no reply, so after a timeout the error queue is read and its entry
("-113 Undefined header") is reported instead of a bare timeout.
"""

from __future__ import annotations

import math
import threading

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout, NotAvailable
from rackval.drivers.capabilities import Device, Identity, PowerMeter
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import GenericScpiOptions, parse_options
from rackval.drivers.transport.scpi import ScpiTransport

# IEEE 488.2 / SCPI "not a number" (9.91E+37) and over-range markers are at least this big.
INVALID_MAGNITUDE = 9.9e37


class GenericScpiInstrument(Device, PowerMeter):
    """Device (and PowerMeter when ``power_query`` is set) for any SCPI instrument.

    Options (``config.options``):
    - ``power_query``: the SCPI query whose reply is the active power in watts, e.g.
      ``"MEAS:POW?"``. Without it ``power_watts()`` raises DeviceError (nothing to ask).
    - ``power_scale`` (float, default 1.0): multiply the reply by this (e.g. 1000 for a meter
      that answers in kW).
    - ``setup_commands`` (list of SCPI commands): written once per connection before the first
      measurement, after ``*CLS``, then the error queue is checked so a rejected setting fails
      loudly instead of producing wrong numbers.
    - ``resource``, ``read_termination``, ``write_termination``: passed to ScpiTransport
      (default resource: raw socket ``TCPIP0::{host}::{port or 5025}::SOCKET``).
    """

    DEFAULT_POWER_QUERY: str | None = None

    options_model = GenericScpiOptions

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.name = config.name
        opts = parse_options(self.options_model, config.options, config.name)
        self.power_query: str | None = opts.power_query or self.DEFAULT_POWER_QUERY
        self.power_scale = opts.power_scale
        self.setup_commands = opts.setup_commands
        self.transport = ScpiTransport(config)
        self._lock = threading.RLock()
        self._setup_generation = -1  # transport connection our setup commands belong to

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.config.address!r})"

    # ---- Device ---------------------------------------------------------------------------
    def identify(self) -> Identity:
        with self._lock:
            maker, model, serial, firmware = self.transport.identity()
        return Identity(vendor=maker, model=model, serial=serial, firmware=firmware)

    def close(self) -> None:
        with self._lock:
            self.transport.close()
            self._setup_generation = -1

    # ---- measurements ---------------------------------------------------------------------
    def _setup(self) -> None:
        """Once per connection: *CLS, the setup commands, then check the error queue."""
        t = self.transport
        if t.connect() == self._setup_generation:
            return
        if self.setup_commands:
            t.clear()
            for cmd in self.setup_commands:
                t.write(cmd)
            t.check(f"configure the instrument ({'; '.join(self.setup_commands)})")
        self._setup_generation = t.generation

    def _explain_timeout(self, cmd: str, exc: DeviceTimeout) -> DeviceError:
        """A query that timed out was probably rejected: the error queue says why (bounded read)."""
        try:
            found = self.transport.errors(max_items=8)
        except DeviceError:
            return exc  # the instrument is not answering at all: the timeout is the story
        if not found:
            return exc
        listed = "; ".join(f'{code},"{text}"' for code, text in found)
        return DeviceProtocolError(
            self.name, self.config.address, f"SCPI query {cmd!r}", f"no reply; instrument reported {listed}"
        )

    def query_float(self, cmd: str) -> float:
        """Send ``cmd`` and return its reply as a finite float.

        The first number of a comma-separated reply is used. NAN / INF / 9.91E+37 raise
        DeviceProtocolError (the instrument has no valid reading: over-range or no signal).
        """
        with self._lock:
            self._setup()
            try:
                reply = self.transport.query(cmd)
            except DeviceTimeout as exc:
                raise self._explain_timeout(cmd, exc) from exc
        return self._to_float(cmd, reply)

    def _to_float(self, cmd: str, reply: str) -> float:
        operation = f"SCPI query {cmd!r}"
        text = reply.split(",", 1)[0].strip()
        try:
            value = float(text)  # accepts "NAN" / "INF": refused just below
        except ValueError:
            raise DeviceProtocolError(
                self.name, self.config.address, operation, f"reply is not a number: {reply[:80]!r}"
            ) from None
        if not math.isfinite(value) or abs(value) >= INVALID_MAGNITUDE:
            raise DeviceProtocolError(
                self.name, self.config.address, operation, f"reply is {text} (no valid reading: over-range or no data)"
            )
        return value

    def power_watts(self) -> float:
        """Active power in W from ``power_query`` (times ``power_scale``)."""
        if self.power_query is None:  # nothing to ask: the instrument's power is not available to us
            raise NotAvailable(
                self.name, self.config.address, "read power", "no 'power_query' option configured for this instrument"
            )
        return self.query_float(self.power_query) * self.power_scale
