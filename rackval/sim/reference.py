"""The simulated reference rack's parameters, as data.

Everything the physical model needs that is a property of the hardware rather than of the
physics lives here: sizes, node power figures, the PSU efficiency curve, thermal constants, fan
curve, boot and sequencing times, link traffic and error rates. ``racks/sim-model-params.yaml``
documents the same defaults for users to copy and change; ``load_model_params(path)`` reads such a
file (errors name file, line and field).

Two presets:
- ``REFERENCE_PARAMS``: the full dynamic model (30 s GPU thermal lag, 40 s BMC boot, 5 s host
  power-on, 120 s OS boot, 1 s PDU sequencing, 10 ms inrush ...). Use it with a ``SimClock``.
- ``QUASI_STATIC_PARAMS``: the same figures with every delay and time constant at zero, so every
  change takes effect at once. This is the behaviour of the first model and what the protocol
  server tests rely on (they read a value right after changing it, on a real-time clock); it is
  therefore ``RackModel``'s default when no params are given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rackval.core.errors import ConfigError

# 80 PLUS Titanium-like efficiency at (load fraction, efficiency) points; interpolated linearly.
PSU_EFFICIENCY_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.80),
    (0.10, 0.90),
    (0.20, 0.94),
    (0.50, 0.96),
    (1.00, 0.94),
)

# Fan duty (percent) against the hottest GPU's temperature (C); interpolated, clamped at the ends.
FAN_CURVE: tuple[tuple[float, float], ...] = (
    (30.0, 30.0),
    (50.0, 40.0),
    (70.0, 70.0),
    (85.0, 100.0),
)

_FORBID = ConfigDict(extra="forbid")
Positive = Annotated[int, Field(ge=1)]  # a count of things the rack has: a file saying 0 or -2 is refused
NonNegative = Annotated[int, Field(ge=0)]


@dataclass(frozen=True)
class RackSize:
    """How big a simulated rack to build."""

    __pydantic_config__ = _FORBID

    nodes: Positive = 4
    psus_per_node: Positive = 2
    gpus_per_node: NonNegative = 8  # 0: management or storage nodes
    switch_ports: Positive = 32
    seed: int = 1
    # Topology. PSUs alternate feeds A/B; each feed gets as many PDUs of ``outlets_per_pdu`` as
    # its PSUs need (named pdu-a, or pdu-a1, pdu-a2 ... when a feed needs more than one).
    outlets_per_pdu: Positive = 48
    # ToR switches; NIC i of every node is cabled to switch i % switches (tor1, tor2 ...).
    switches: Positive = 1
    nics_per_node: Positive = 1
    # One analyzer measuring both feeds ("analyzer"), or one per feed ("analyzer-a", "analyzer-b").
    analyzer_per_feed: bool = False
    # PDU make per feed: "apc" (PowerNet-MIB rPDU2), "raritan" (PDU2-MIB), "servertech" (Sentry4),
    # "eaton" (EATON-EPDU-MIB): any SNMP PDU driver the simulator serves (``rackval.sim.pdu_vendors``),
    # by vendor or driver name.
    pdu_vendor_a: str = "apc"
    pdu_vendor_b: str = "apc"
    # The last N switches are managed over SNMP (IF-MIB, LLDP-MIB) instead of the SONiC CLI.
    snmp_switches: NonNegative = 0


@dataclass(frozen=True)
class PowerParams:
    """Node DC power figures (W). GPU power = idle + utilisation x (max - idle)."""

    __pydantic_config__ = _FORBID

    base_w: float = 450.0  # CPUs, memory, NICs, fans at nominal while the host is on
    standby_w: float = 35.0  # BMC only (host off)
    powering_on_w: float = 250.0  # extra while the host is powering on (fans at full, POST)
    gpu_idle_w: float = 70.0
    gpu_max_w: float = 700.0
    gpu_min_w: float = 100.0  # lowest power throttling (thermal or cap) can force a busy GPU to


@dataclass(frozen=True)
class PsuParams:
    """PSUs and what the PDU sees of them."""

    __pydantic_config__ = _FORBID

    rated_w: float = 3300.0  # DC output rating per PSU; above the sum of live ratings the node trips
    efficiency_curve: tuple[tuple[float, float], ...] = PSU_EFFICIENCY_CURVE
    inrush_peak_a: float = 40.0  # bulk capacitor charge current when an outlet switches on
    inrush_tau_s: float = 0.010  # decay time constant of the inrush peak
    pf_loaded: float = 0.99  # active PFC power factor above pf_threshold_w
    pf_light: float = 0.90
    pf_threshold_w: float = 300.0


@dataclass(frozen=True)
class ThermalParams:
    """GPU first-order thermal model: T -> inlet + R_th x P with time constant tau."""

    __pydantic_config__ = _FORBID

    gpu_r_th_c_per_w: float = 0.06
    gpu_tau_s: float = 30.0
    gpu_slowdown_c: float = 87.0  # software thermal slowdown holds the GPU here (SwThermal 0x20)
    gpu_hw_slowdown_c: float = 92.0  # above this the hardware slows the clocks (HwThermal 0x40)
    r_th_increase_per_failed_fan: float = 0.15  # relative R_th increase per failed fan


@dataclass(frozen=True)
class FanParams:
    __pydantic_config__ = _FORBID

    count: int = 6
    max_rpm: int = 16000
    curve: tuple[tuple[float, float], ...] = FAN_CURVE  # (hottest GPU C, duty %)
    max_airflow_m3_s: float = 0.25  # whole node at 100 % duty with every fan working
    standby_airflow_m3_s: float = 0.02  # natural draft with the fans stopped


@dataclass(frozen=True)
class TimingParams:
    """Sequencing delays and control time constants, in virtual seconds."""

    __pydantic_config__ = _FORBID

    bmc_boot_s: float = 40.0  # input power -> BMC ready
    host_power_on_s: float = 5.0  # PoweringOn -> On
    os_boot_s: float = 120.0  # host On -> OS up (workloads can run)
    pdu_sequence_delay_s: float = 1.0  # inrush guard between outlets switched on together
    power_cap_correction_ms: float = 1000.0  # default CorrectionInMs of a power limit (5 tau)
    power_cap_margin: float = 0.02  # the cap controller aims this fraction below the limit
    restore_policy: str = "LastState"  # after input returns: LastState | AlwaysOn | AlwaysOff


@dataclass(frozen=True)
class NetworkParams:
    __pydantic_config__ = _FORBID

    idle_rate_bps: float = 1.0e6  # management chatter on an up link
    load_fraction: float = 0.3  # of line rate, at node utilisation 1.0
    healthy_ber: float = 1.0e-12  # pre-FEC bit error ratio of a good link
    uncorrectable_fraction: float = 1.0e-3  # of bit errors FEC cannot correct (each drops a frame)


# Coolant properties at 30-40 C: (density kg/m^3, specific heat J/(kg K)). Water: Incropera & DeWitt,
# Fundamentals of Heat and Mass Transfer, Table A.6 (saturated water, 305-310 K: 995 kg/m^3, 4178
# J/(kg K)). PG25 (25 % propylene glycol by volume): ASHRAE Handbook - Fundamentals (2021) ch. 31,
# Tables 10-11 (about 1020 kg/m^3, 3.90 kJ/(kg K) at 35 C); DMTF's public-cooling-unit mockup states
# 1030 kg/m^3 and 3.974 kJ/(kg K) for a 20 % glycol mix.
COOLANTS: dict[str, tuple[float, float]] = {"water": (995.0, 4178.0), "PG25": (1020.0, 3900.0)}

# Rectifier (power-shelf PSU) efficiency at (load fraction, efficiency): an 80 PLUS Titanium-class
# 5.5 kW ORv3 PSU peaks near 97.5 % at half load (OCP Open Rack V3 PSU specification targets).
RECTIFIER_EFFICIENCY_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.85),
    (0.10, 0.93),
    (0.20, 0.96),
    (0.50, 0.975),
    (1.00, 0.965),
)

# BBU terminal voltage (V) against state of charge (0..1): a 14S Li-ion pack's discharge curve
# (3.2-3.8 V per cell), flat in the middle, steep near empty.
BBU_DISCHARGE_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 44.8),
    (0.10, 48.0),
    (0.50, 50.4),
    (0.90, 52.0),
    (1.00, 53.2),
)


# Constraints the params file is checked against (pydantic reports file, line and field).
_Positive = Annotated[float, Field(gt=0)]
_Fraction = Annotated[float, Field(ge=0, le=1)]
_Count = Annotated[int, Field(ge=0)]


@dataclass(frozen=True)
class CoolingParams:
    """How the rack is cooled. ``air`` (the default): every node as ``thermal``/``fans`` say.
    ``liquid``: every node tray has cold plates on an in-rack CDU's secondary loop (figures:
    ``rackval.sim.physics.cooling``; a design file states where its numbers come from)."""

    __pydantic_config__ = _FORBID

    mode: Literal["air", "liquid"] = "air"
    coolant: Literal["water", "PG25"] = "PG25"  # COOLANTS
    pumps: Annotated[int, Field(ge=1)] = 2  # CDU pumps in parallel (with check valves)
    pumps_needed: Annotated[int, Field(ge=1)] = 1  # redundancy: N+1 when pumps = pumps_needed + 1
    pump_shutoff_head_kpa: _Positive = 300.0  # pump curve at 100 % speed: H = H0 - a q^2
    pump_curve_kpa_per_lpm2: _Positive = 0.003  # a
    pump_speed_percent: Annotated[float, Field(gt=0, le=100)] = 70.0  # set point of every pump at start
    loop_dp_kpa: _Positive = 60.0  # CDU heat exchanger, filter and manifolds: dp at loop_rated_flow_lpm
    loop_rated_flow_lpm: _Positive = 160.0
    cold_plate_dp_kpa: _Positive = 50.0  # one node tray's cold-plate branch: dp at cold_plate_rated_flow_lpm
    cold_plate_rated_flow_lpm: _Positive = 8.0
    cold_plate_r_c_per_w: _Positive = 0.02  # GPU case to coolant (C/W) at the rated flow
    cold_plate_conv_fraction: _Fraction = 0.5  # share of that resistance that is convective (~ q^-0.8)
    liquid_fraction: _Fraction = 0.85  # of a node's heat taken by the cold plates; the rest goes to air
    switch_trays: _Count = 0  # liquid-cooled switch trays on the same loop (a lumped branch)
    switch_tray_heat_w: Annotated[float, Field(ge=0)] = 1000.0
    switch_tray_dp_kpa: _Positive = 50.0
    switch_tray_rated_flow_lpm: _Positive = 1.5
    supply_setpoint_c: float = 30.0
    supply_tau_s: Annotated[float, Field(ge=0)] = 120.0  # the CDU's supply temperature control: time constant
    facility_supply_c: float = 25.0  # primary (facility water) supply temperature
    primary_flow_lpm: _Positive = 200.0
    static_pressure_kpa: float = 100.0  # return-side pressure (expansion tank precharge)
    reservoir_l: _Positive = 20.0
    min_node_flow_lpm: Annotated[float, Field(ge=0)] = 5.0  # the design's minimum flow per node tray (alarm)

    def __post_init__(self) -> None:
        if self.pumps_needed > self.pumps:
            raise ValueError(f"pumps_needed ({self.pumps_needed}) must be at most pumps ({self.pumps})")


@dataclass(frozen=True)
class PowerShelfParams:
    """Power shelves feeding a DC busbar. ``count`` 0 (the default): nodes draw from PDU outlets.
    Otherwise every node's PSUs are DC-DC stages on the busbar and the rack has no PDUs."""

    __pydantic_config__ = _FORBID

    count: _Count = 0
    psus_per_shelf: Annotated[int, Field(ge=1)] = 6  # rectifiers; they alternate the shelf's feeds (A, B, A, ...)
    psu_rated_w: _Positive = 5500.0
    efficiency_curve: tuple[tuple[float, float], ...] = RECTIFIER_EFFICIENCY_CURVE
    input_voltage_v: _Positive = 230.0
    busbar_v: _Positive = 50.0  # regulated busbar voltage while the rectifiers carry the load
    bbus_per_shelf: _Count = 2
    bbu_capacity_wh: _Positive = 200.0  # per BBU at a new state of health
    bbu_rated_w: _Positive = 3000.0  # most one BBU can deliver
    bbu_soc_floor: Annotated[float, Field(ge=0, lt=1)] = 0.05  # the BBU disconnects here: the busbar drops
    bbu_charge_w: Annotated[float, Field(ge=0)] = 300.0  # recharge power per BBU (from the rectifiers)
    bbu_discharge_efficiency: Annotated[float, Field(gt=0, le=1)] = 0.95  # cell energy to busbar energy
    bbu_discharge_curve: tuple[tuple[float, float], ...] = BBU_DISCHARGE_CURVE


@dataclass(frozen=True)
class ModelParams:
    """All the figures of the simulated rack that are not physics."""

    __pydantic_config__ = _FORBID

    ambient_c: float = 25.0
    pdu_voltage_v: float = 230.0
    pdu_self_power_w: float = 12.0
    power: PowerParams = field(default_factory=PowerParams)
    psu: PsuParams = field(default_factory=PsuParams)
    thermal: ThermalParams = field(default_factory=ThermalParams)
    fans: FanParams = field(default_factory=FanParams)
    timing: TimingParams = field(default_factory=TimingParams)
    network: NetworkParams = field(default_factory=NetworkParams)
    cooling: CoolingParams = field(default_factory=CoolingParams)
    power_shelves: PowerShelfParams = field(default_factory=PowerShelfParams)

    def quasi_static(self) -> ModelParams:
        """The same figures with every delay and time constant zero: changes apply at once."""
        return dataclasses.replace(
            self,
            psu=dataclasses.replace(self.psu, inrush_tau_s=0.0),
            thermal=dataclasses.replace(self.thermal, gpu_tau_s=0.0),
            cooling=dataclasses.replace(self.cooling, supply_tau_s=0.0),
            timing=dataclasses.replace(
                self.timing,
                bmc_boot_s=0.0,
                host_power_on_s=0.0,
                os_boot_s=0.0,
                pdu_sequence_delay_s=0.0,
                power_cap_correction_ms=0.0,
            ),
        )


SKELETON_SIZE = RackSize()
# The reference AI rack: 32 nodes x 8 GPUs, 4 PSUs each (2 per feed), 48-outlet PDUs (two per
# feed: 64 PSUs per feed), two 64-port ToRs with a NIC of every node on each, an analyzer per feed.
REFERENCE_SIZE = RackSize(
    nodes=32, psus_per_node=4, gpus_per_node=8, switch_ports=64, outlets_per_pdu=48,
    switches=2, nics_per_node=2, analyzer_per_feed=True, pdu_vendor_a="apc", pdu_vendor_b="raritan",
    snmp_switches=1,
)  # fmt: skip
REFERENCE_PARAMS = ModelParams()
QUASI_STATIC_PARAMS = REFERENCE_PARAMS.quasi_static()

RESTORE_POLICIES = ("LastState", "AlwaysOn", "AlwaysOff")


DEFAULT_DESIGN_REVISION = "sim-rev-A"


@dataclass(frozen=True)
class RackIdentity:
    """Who the simulated rack says it is: the ``rack:`` section of a params file.

    ``seed`` drives serial numbers and meter errors; ``serial`` defaults to ``SIM-<seed>`` (4
    digits). The rack file ``rackval sim`` writes carries ``design_revision`` and ``serial``, so
    a run on it is recorded under them: rehearsing revision B means a params file saying so.
    """

    __pydantic_config__ = _FORBID

    design_revision: str = DEFAULT_DESIGN_REVISION
    serial: str = ""
    seed: int | None = None  # None: ``size.seed`` (where files before the ``rack:`` section kept it), else 1


class _ParamsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rack: RackIdentity = RackIdentity()
    size: RackSize = REFERENCE_SIZE
    params: ModelParams = REFERENCE_PARAMS


@dataclass(frozen=True)
class ParamsSource:
    """The params file a simulated rack was built from, as read: what a run records for traceability."""

    path: str
    sha256: str
    text: str


@dataclass(frozen=True)
class SimDesign:
    """Everything ``rackval sim`` builds a rack from: size (seed resolved), parameters, identity,
    and the params file they came from (None: the built-in reference rack)."""

    size: RackSize
    params: ModelParams
    design_revision: str = DEFAULT_DESIGN_REVISION
    serial: str = ""
    source: ParamsSource | None = None

    @property
    def rack_serial(self) -> str:
        return self.serial or f"SIM-{self.size.seed:04d}"


def sim_design(params_file: Path | str | None, *, nodes: int | None = None, seed: int | None = None) -> SimDesign:
    """What ``rackval sim`` builds its rack from: the reference rack, or ``params_file``'s identity,
    size and parameters; ``nodes`` and ``seed`` (when given: the command line's) win over the file.
    The pytest plugin checks a fault file against a model built from the same, so both agree on
    what devices exist."""
    design = load_sim_design(Path(params_file)) if params_file else SimDesign(REFERENCE_SIZE, REFERENCE_PARAMS)
    changes: dict[str, int] = {}
    if nodes is not None:
        if nodes < 1:
            raise ConfigError(f"simulated rack: the node count must be at least 1, not {nodes}")
        changes["nodes"] = nodes
    if seed is not None:
        changes["seed"] = seed
    return dataclasses.replace(design, size=dataclasses.replace(design.size, **changes)) if changes else design


def load_sim_design(path: Path) -> SimDesign:
    """Read a params file (``rack:``, ``size:`` and ``params:`` sections, all optional).

    The seed is ``rack.seed``; a file from before the ``rack:`` section keeps it in ``size.seed``,
    which is still read when ``rack.seed`` is absent (both given and different is an error, so
    no file means two things). Raises ``ConfigError`` naming file, line and field.
    """
    import hashlib

    from rackval.core.yamlfile import load_yaml_model, read_yaml  # the core owns YAML error reporting

    path = Path(path)
    doc, where = load_yaml_model(path, _ParamsFile, "simulator model parameters")
    if doc.params.timing.restore_policy not in RESTORE_POLICIES:
        raise where.error(("params", "timing", "restore_policy"), f"must be one of {', '.join(RESTORE_POLICIES)}")
    size = doc.size
    if doc.rack.seed is not None:
        raw, _ = read_yaml(path, "simulator model parameters")
        size_raw = raw.get("size")
        old = size_raw.get("seed") if isinstance(size_raw, dict) else None
        if old is not None and old != doc.rack.seed:
            raise where.error(
                ("size", "seed"), f"{old} disagrees with rack.seed {doc.rack.seed}: the seed belongs in rack.seed"
            )
        size = dataclasses.replace(size, seed=doc.rack.seed)
    data = path.read_bytes()
    source = ParamsSource(str(path), hashlib.sha256(data).hexdigest(), data.decode("utf-8", errors="replace"))
    return SimDesign(size, doc.params, doc.rack.design_revision, doc.rack.serial, source)


def load_model_params(path: Path) -> tuple[RackSize, ModelParams]:
    """A params file's size (seed resolved) and parameters; see ``load_sim_design``."""
    design = load_sim_design(path)
    return design.size, design.params
