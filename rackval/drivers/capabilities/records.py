"""The records capabilities return: small frozen dataclasses, in SI units, shared by every driver.

They live here, not in the module of the first driver that needed them, so that a driver of one
make never imports another make's driver to return the same thing (IPMI's SEL entries are
``LogEntry`` records just like Redfish's), and so that plans and the harness depend only on the
capability layer. A field a device does not report is ``None`` (never 0) unless said otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- every device --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What a device says it is."""

    vendor: str
    model: str
    serial: str
    firmware: str


# ---- power: PDUs and analyzers -------------------------------------------------------------------


@dataclass(frozen=True)
class OutletReading:
    """One outlet's switch state and meter readings, in SI units (already scaled)."""

    outlet: int
    name: str
    on: bool
    power_w: float | None
    current_a: float | None


@dataclass(frozen=True)
class AnalyzerReading:
    """A power analyzer's reading on one element: RMS voltage, RMS current, active power."""

    voltage_v: float
    current_a: float
    power_w: float
    power_factor: float | None = None


# ---- BMCs: event log, power supplies, sensor thresholds ------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    """One BMC event-log record, in Redfish LogEntry terms (IPMI SEL entries are mapped onto it).

    ``created`` is the BMC's timestamp text as reported (ISO 8601 for Redfish); ``severity`` is
    OK, Warning or Critical; ``message_id`` is empty when the BMC gives none.
    """

    id: str
    created: str
    severity: str
    message: str
    message_id: str


@dataclass(frozen=True)
class PowerSupplyState:
    """One PSU as its BMC sees it: what a power-map check needs to tell "lost input" from "failed".

    ``state`` / ``health`` are the Redfish Status members (empty when not reported);
    ``input_ok`` is True when the PSU has line input, False when it has lost it, None when the
    BMC does not say (see ``RedfishBmc.power_supplies``); ``input_voltage`` / ``input_watts``
    are the BMC's readings, None when not reported.
    """

    name: str
    state: str
    health: str
    input_ok: bool | None
    input_voltage: float | None = None
    input_watts: float | None = None


@dataclass(frozen=True)
class SensorThresholds:
    """A sensor's upper thresholds as the BMC reports them (None when it reports none)."""

    caution: float | None
    critical: float | None


# ---- switches: ports, LLDP, counters, sensors ----------------------------------------------------


@dataclass(frozen=True)
class PortStatus:
    """One switch port as the switch reports it."""

    name: str
    oper_up: bool
    admin_up: bool
    speed_mbps: int | None
    alias: str = ""


@dataclass(frozen=True)
class LldpNeighbor:
    """What a switch port sees at the other end of its cable."""

    local_port: str
    remote_system: str
    remote_port: str


@dataclass(frozen=True)
class PortCounters:
    """One port's cumulative traffic and error counters as the device reports them (raw).

    Raw counters mean something only as differences between two polls (see
    ``rackval.drivers.capabilities.counters.CounterTracker``). ``octet_bits`` / ``error_bits`` say where the
    octet and the error/discard counters wrap (IF-MIB: 64 for ifHC*, 32 for ifInErrors etc.;
    EOS JSON: 64). ``discontinuity`` is a marker that changes when the device re-initialised
    the port's counters (IF-MIB ifCounterDiscontinuityTime); ``uptime_s`` is the agent's uptime
    at the poll (a decrease means the agent restarted). ``None`` = not reported.
    """

    name: str
    in_octets: int | None
    out_octets: int | None
    in_errors: int | None
    out_errors: int | None
    in_discards: int | None = None
    out_discards: int | None = None
    octet_bits: int = 64
    error_bits: int = 64
    discontinuity: int | None = None
    uptime_s: float | None = None


@dataclass(frozen=True)
class PortCounterDelta:
    """How much one port's counters grew between two polls (wraps already accounted for).

    ``reset`` is True when the counters were re-initialised in between (discontinuity marker
    changed, agent restarted, or a counter went backwards by more than a wrap explains): the
    growth is then unknown and every count is ``None``; the next poll gives a clean baseline.
    """

    name: str
    interval_s: float
    reset: bool
    in_octets: int | None
    out_octets: int | None
    in_errors: int | None
    out_errors: int | None
    in_discards: int | None = None
    out_discards: int | None = None


@dataclass(frozen=True)
class SensorReading:
    """One environmental sensor: temperature (C), fan (rpm), power (W), voltage (V), current (A)...

    ``value`` is already scaled to the unit in ``unit`` and is ``None`` when the sensor has no
    valid reading. ``status`` is lower case: "ok", or what the device said instead
    ("unavailable", "nonoperational", "alert", "failed", ...). ``warning`` / ``critical`` are the
    device's own thresholds when it reports them.
    """

    name: str
    kind: str
    value: float | None
    unit: str
    status: str
    description: str = ""
    warning: float | None = None
    critical: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ---- GPU nodes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuTelemetry:
    """One GPU as nvidia-smi reports it at one instant. ``None`` = the GPU reports "[N/A]" /
    "[Not Supported]" for that field (common on some SKUs and in MIG mode), never 0.

    ``event_reasons`` is NVML's clocks-event (formerly "throttle") reason bit mask and
    ``event_reason_names`` its decoded bits (e.g. ``("SwThermal",)``), so a plan can fail on
    thermal or power-brake slowdown while tolerating GpuIdle.
    """

    index: int
    uuid: str
    power_w: float | None
    power_limit_w: float | None
    temperature_c: float | None
    sm_clock_mhz: float | None
    utilization_pct: float | None
    event_reasons: int | None
    event_reason_names: tuple[str, ...]
    ecc_uncorrected: int | None


@dataclass(frozen=True)
class DiagTestResult:
    """One test of a GPU diagnostic on one GPU (``gpu`` None: the test is not per GPU).

    ``status`` is lower case: "pass", "fail", "warn", "skip" (or whatever else the tool said).
    """

    category: str
    name: str
    status: str
    gpu: int | None
    detail: str = ""


@dataclass(frozen=True)
class DiagResult:
    """A GPU diagnostic run (``dcgmi diag -r level``): passed means no test failed."""

    level: int
    passed: bool
    tests: tuple[DiagTestResult, ...]

    @property
    def failures(self) -> tuple[DiagTestResult, ...]:
        return tuple(t for t in self.tests if t.status == "fail")
