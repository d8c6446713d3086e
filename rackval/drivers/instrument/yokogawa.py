"""Yokogawa WT-series power analyzer (WT5000, WT1800, WT500...) over SCPI.

The analyzer is the reference meter on a rack feed: the PDU and BMC power figures are judged
against it, so a wrong number here is worse than no number. Hence the driver configures exactly
the four items it parses (instead of trusting whatever the front panel left in the item list),
checks the error queue once after configuring, and refuses NAN/INF/9.91E+37 ("no data" or
over-range) instead of returning them as readings. The power factor is optional: with no
current it is undefined and the analyzer sends "no data" for it; ``power_factor`` is then None
(not available) and the voltage, current and power of the same reading are kept.

Commands ([S], Yokogawa WT5000 communication manual; see domain.md §4):
``:NUMeric:FORMat ASCII``, ``:NUMeric:NORMal:NUMber 4``, ``:NUMeric:NORMal:ITEM<k> <func>,<el>``,
``:NUMeric:NORMal:VALue?`` -> comma-separated values in item order.
"""

from __future__ import annotations

import math
import threading

from rackval.core.errors import DeviceProtocolError
from rackval.drivers.capabilities import AnalyzerReading, Device, Identity, PowerAnalyzer, PowerMeter
from rackval.drivers.config import DeviceConfig
from rackval.drivers.options import YokogawaOptions, parse_options
from rackval.drivers.transport.scpi import ScpiTransport

# (function, field name for messages) in the order the driver configures ITEM1..ITEM4.
ITEMS: tuple[tuple[str, str], ...] = (
    ("U", "voltage"),
    ("I", "current"),
    ("P", "active power"),
    ("LAMBDA", "power factor"),
)
OPTIONAL_ITEMS = frozenset({"LAMBDA"})  # undefined without current: None, not an error
VALUE_QUERY = ":NUMeric:NORMal:VALue?"
# IEEE 488.2 / SCPI "not a number" marker; Yokogawa also sends 9.91E+37 for no-data items.
INVALID_MAGNITUDE = 9.9e37


class YokogawaWtAnalyzer(Device, PowerMeter, PowerAnalyzer):
    """Device, PowerAnalyzer and PowerMeter for a Yokogawa WT power analyzer.

    Options (``config.options``):
    - ``element``: input element to read, 1..7, or ``"SIGMA"`` for the wiring unit's sum
      (default 1).
    - ``resource``, ``read_termination``, ``write_termination``: passed to ScpiTransport
      (default resource: raw socket ``TCPIP0::{host}::{port or 5025}::SOCKET``).
    """

    options_model = YokogawaOptions

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.name = config.name
        self.element = str(parse_options(self.options_model, config.options, config.name).element)
        self.transport = ScpiTransport(config)
        self._lock = threading.Lock()
        self._configured_generation = -1  # transport connection our item setup belongs to

    # ---- Device ---------------------------------------------------------------------------
    def identify(self) -> Identity:
        with self._lock:
            maker, model, serial, firmware = self.transport.identity()
        return Identity(vendor=maker, model=model, serial=serial, firmware=firmware)

    def close(self) -> None:
        with self._lock:
            self.transport.close()
            self._configured_generation = -1

    # ---- PowerAnalyzer / PowerMeter -------------------------------------------------------
    def _configure(self) -> None:
        """Once per connection: ASCII, 4 items = U, I, P, LAMBDA on our element, then check."""
        t = self.transport
        if t.connect() == self._configured_generation:
            return
        t.clear()  # a stale error from before must not be blamed on (or hide) our setup
        t.write(":NUMeric:FORMat ASCII")
        t.write(f":NUMeric:NORMal:NUMber {len(ITEMS)}")
        for k, (func, _label) in enumerate(ITEMS, start=1):
            t.write(f":NUMeric:NORMal:ITEM{k} {func},{self.element}")
        t.check(f"configure numeric items U,I,P,LAMBDA on element {self.element}")
        self._configured_generation = t.generation

    def _parse(self, reply: str) -> list[float | None]:
        fields = [f.strip() for f in reply.split(",")]
        operation = f"SCPI query {VALUE_QUERY!r}"
        if len(fields) != len(ITEMS):
            raise DeviceProtocolError(
                self.name,
                self.config.address,
                operation,
                f"expected {len(ITEMS)} values (U,I,P,LAMBDA), got {len(fields)}: {reply[:120]!r}",
            )
        values: list[float | None] = []
        for k, (field, (func, label)) in enumerate(zip(fields, ITEMS, strict=True), start=1):
            item = f"ITEM{k} {func},{self.element} ({label})"
            try:
                value = float(field)  # Python accepts "NAN" / "INF": caught just below
            except ValueError:
                raise DeviceProtocolError(
                    self.name, self.config.address, operation, f"{item}: not a number: {field!r}"
                ) from None
            if not math.isfinite(value) or abs(value) >= INVALID_MAGNITUDE:
                if func in OPTIONAL_ITEMS:
                    values.append(None)  # not available in this reading: not a reason to lose the others
                    continue
                raise DeviceProtocolError(
                    self.name,
                    self.config.address,
                    operation,
                    f"{item} is {field} (no data or over-range on the analyzer)",
                )
            values.append(value)
        return values

    def read(self) -> AnalyzerReading:
        """Voltage, current, active power and power factor on the configured element."""
        with self._lock:
            self._configure()
            reply = self.transport.query(VALUE_QUERY)
        voltage, current, power, pf = self._parse(reply)
        assert voltage is not None and current is not None and power is not None  # required items raise
        return AnalyzerReading(voltage_v=voltage, current_a=current, power_w=power, power_factor=pf)

    def power_watts(self) -> float:
        return self.read().power_w
