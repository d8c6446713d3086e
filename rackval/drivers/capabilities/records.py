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


# ---- liquid cooling: CDUs and liquid-cooled nodes --------------------------------------------------
# States use the Redfish vocabulary whatever the protocol (a Modbus map's enum maps onto it):
# ``state`` is a Status.State word (Enabled, Disabled, StandbyOffline, UnavailableOffline, Absent,
# ...), ``health`` a Status.Health word (OK, Warning, Critical); "" when the device does not say.


@dataclass(frozen=True)
class RedundancyGroup:
    """A redundancy set as the device reports it (pumps of a CDU, rectifiers or feeds of a shelf).

    ``min_needed`` of the ``members`` must work for the group to carry its load; ``kind`` is the
    Redfish RedundancyType (NPlusM, Sharing, Failover, ...); None / "" when not reported.
    """

    kind: str
    min_needed: int | None
    max_supported: int | None
    members: tuple[str, ...]
    state: str = ""
    health: str = ""


@dataclass(frozen=True)
class PumpState:
    """One coolant pump: its state, speed now and the speed it is told to run at.

    ``speed_pct`` is the measured speed in percent of full speed; ``setpoint_pct`` and
    ``control_mode`` (Automatic, Manual, Override, Disabled) its speed control.
    """

    name: str
    state: str
    health: str
    speed_pct: float | None
    setpoint_pct: float | None = None
    control_mode: str = ""

    @property
    def running(self) -> bool | None:
        """True when the pump turns; None when neither a speed nor a state says."""
        if self.speed_pct is not None:
            return self.speed_pct > 0 and self.state not in ("Disabled", "UnavailableOffline", "Absent")
        return None if not self.state else self.state == "Enabled"


@dataclass(frozen=True)
class FilterState:
    """One coolant filter: health and how long it has served of its rated service life."""

    name: str
    state: str
    health: str
    service_hours: float | None
    rated_service_hours: float | None


@dataclass(frozen=True)
class ReservoirState:
    """One coolant reservoir: ``level_status`` (Redfish FluidLevelStatus: OK, Warning, Critical),
    ``level_pct`` (FluidLevelPercent), capacity in litres and internal pressure in kPa."""

    name: str
    state: str
    health: str
    level_status: str
    level_pct: float | None
    capacity_l: float | None
    pressure_kpa: float | None = None


@dataclass(frozen=True)
class CoolantReading:
    """One coolant connection: a CDU's primary (facility) or secondary (rack) loop, or a node's
    coolant connector (Redfish CoolantConnector). SI-ish units as the industry states them:
    temperatures in C, flow in L/min, pressures in kPa, heat in kW.

    ``loop`` is "primary", "secondary" (CDU) or "" (a node's connector). ``supply_setpoint_c`` is
    the supply temperature the CDU regulates to, when it says.
    """

    name: str
    loop: str
    state: str
    health: str
    supply_temp_c: float | None
    return_temp_c: float | None
    delta_temp_c: float | None
    flow_lpm: float | None
    supply_pressure_kpa: float | None
    return_pressure_kpa: float | None
    delta_pressure_kpa: float | None
    heat_kw: float | None
    supply_setpoint_c: float | None = None


@dataclass(frozen=True)
class LeakDetectorState:
    """One leak detector: ``detector_state`` is Redfish DetectorState (OK, Warning, Critical:
    a leak), "" when the detector gives no state (absent, unavailable)."""

    name: str
    detector_state: str
    health: str = ""
    detector_type: str = ""
    location: str = ""

    @property
    def dry(self) -> bool | None:
        """True: no leak; False: a leak (Warning or Critical); None: the detector does not say."""
        return None if not self.detector_state else self.detector_state == "OK"


# ---- power shelves: feeds, rectifiers, DC busbar, batteries ----------------------------------------------


@dataclass(frozen=True)
class FeedReading:
    """One AC (or DC) input feed of a power shelf (Redfish Mains circuit). ``on`` is whether the
    feed is energised / its breaker closed (None: not said)."""

    name: str
    state: str
    health: str
    voltage_v: float | None
    current_a: float | None
    power_w: float | None
    frequency_hz: float | None = None
    on: bool | None = None


@dataclass(frozen=True)
class RectifierState:
    """One rectifier / PSU of a power shelf.

    ``input_ok`` as in ``PowerSupplyState``; ``efficiency_pct`` is what the device reports, or
    output / input power x 100 when it reports both (then ``efficiency_measured`` is False).
    """

    name: str
    state: str
    health: str
    input_ok: bool | None
    input_power_w: float | None
    output_power_w: float | None
    efficiency_pct: float | None
    capacity_w: float | None = None
    output_voltage_v: float | None = None
    output_current_a: float | None = None
    efficiency_measured: bool = True


@dataclass(frozen=True)
class DcOutput:
    """The shelf's DC output to the busbar: voltage, current, power (None: not reported)."""

    name: str
    voltage_v: float | None
    current_a: float | None
    power_w: float | None


@dataclass(frozen=True)
class BatteryState:
    """One battery backup unit (BBU).

    ``charge_state`` is Redfish ChargeState (Idle, Charging, Discharging; "" not said);
    ``holdup_s`` how long it carries the present load (the device's estimate, or stored energy /
    present DC load when it reports those: then ``holdup_estimated`` is True).
    """

    name: str
    state: str
    health: str
    charge_pct: float | None
    health_pct: float | None
    charge_state: str
    holdup_s: float | None
    stored_energy_wh: float | None = None
    holdup_estimated: bool = False
