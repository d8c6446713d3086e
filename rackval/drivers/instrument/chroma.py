"""Chroma 66200-family digital power meters (66202, 66203, 66204, 66205) over SCPI.

The 66200 meters sit in front of a node or a PSU to judge its draw and its inrush at power-on.
Commands ([S], domain.md §4; the Chroma programming manual calls the subsystem FETCh):
``FETC:VOLT:RMS?``, ``FETC:CURR:RMS?``, ``FETC:POW:REAL?`` and ``FETC:CURR:INR?`` (peak inrush
current captured since the inrush measurement was armed). FETC returns the latest completed
measurement without starting a new one, so the three values of one ``read()`` come from at most
two measurement cycles; good enough for steady-state draw, not for transients.
"""

from __future__ import annotations

from rackval.drivers.capabilities import AnalyzerReading, PowerAnalyzer
from rackval.drivers.instrument.generic import GenericScpiInstrument

VOLTAGE_QUERY = "FETC:VOLT:RMS?"
CURRENT_QUERY = "FETC:CURR:RMS?"
POWER_QUERY = "FETC:POW:REAL?"
INRUSH_QUERY = "FETC:CURR:INR?"


class Chroma66200(GenericScpiInstrument, PowerAnalyzer):
    """Device, PowerAnalyzer and PowerMeter for a Chroma 66200-family power meter.

    Options: those of GenericScpiInstrument (``setup_commands``, ``resource``,
    ``read_termination``, ``write_termination``; ``power_query`` defaults to ``FETC:POW:REAL?``).
    The power factor is not read ([U] its query differs across 66200 models), so
    ``read().power_factor`` is None.
    """

    DEFAULT_POWER_QUERY = POWER_QUERY

    def read(self) -> AnalyzerReading:
        """RMS voltage, RMS current and real power of the latest measurement."""
        with self._lock:
            voltage = self.query_float(VOLTAGE_QUERY)
            current = self.query_float(CURRENT_QUERY)
            power = self.query_float(self.power_query or POWER_QUERY)
        return AnalyzerReading(voltage_v=voltage, current_a=current, power_w=power * self.power_scale)

    def inrush_current_a(self) -> float:
        """Peak inrush current in A captured by the meter (arm it with ``setup_commands`` if needed)."""
        return self.query_float(INRUSH_QUERY)
