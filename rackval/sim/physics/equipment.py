"""The rack's liquid-cooling and power-shelf equipment as data: CDU, pumps, cold plates, shelves, BBUs.

Why a module of its own: the state (``physics.state``) holds these, the parts ``physics.cooling``
and ``physics.shelves`` compute over them, the fault catalogue changes them and the protocol
servers read them; keeping the dataclasses apart lets every one of those import them without
importing each other. A design without liquid cooling or power shelves has none of them (the
state's ``cdus``, ``cold_plates`` and ``shelves`` stay empty), so an air-cooled rack is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rackval.sim.physics.devices import DeviceInfo, Meter

BUSBAR = "busbar"  # the feed name of a PSU (a node's DC-DC stage) that draws from the rack's DC busbar
PUMP_OK, PUMP_FAILED, PUMP_STOPPED = "OK", "Failed", "Stopped"
LEAK_OK, LEAK_CRITICAL = "OK", "Critical"


@dataclass
class Pump:
    """One CDU pump; ``head_factor`` < 1 is a degraded pump (worn impeller, air in the volute)."""

    name: str
    speed_percent: float  # commanded speed (its set point)
    running: bool = True  # commanded on (a gated action may stop it)
    failed: bool = False
    head_factor: float = 1.0
    flow_lpm: float = 0.0  # derived by the hydraulics

    @property
    def status(self) -> str:
        if self.failed:
            return PUMP_FAILED
        return PUMP_OK if self.running else PUMP_STOPPED


@dataclass
class LeakDetector:
    name: str  # e.g. "node01-tray", "CDU-Moisture"
    where: str  # node name or CDU name
    wet: bool = False

    @property
    def state(self) -> str:
        return LEAK_CRITICAL if self.wet else LEAK_OK


@dataclass
class ColdPlate:
    """The cold-plate branch of one liquid-cooled node tray (its GPUs' plates in parallel)."""

    node: str
    resistance_factor: float = 1.0  # a clogged plate multiplies its hydraulic resistance
    flow_lpm: float = 0.0  # derived by the hydraulics
    dp_kpa: float = 0.0  # pressure across the branch (derived)


@dataclass
class Cdu:
    """An in-rack coolant distribution unit: pumps, reservoir, filter, leak detectors, supply control."""

    name: str
    info: DeviceInfo
    pumps: list[Pump]
    detectors: list[LeakDetector]
    setpoint_c: float  # secondary supply temperature setpoint
    supply_c: float  # secondary supply temperature (first-order toward setpoint + drift)
    reservoir_l: float
    reservoir_capacity_l: float
    meter: Meter = field(default_factory=lambda: Meter(0.02, 0))
    drift_c: float = 0.0  # supply_drift fault: the controller holds setpoint + drift
    leak_lpm: float = 0.0  # coolant lost (sum of the active leaks)
    flow_lpm: float = 0.0  # secondary loop flow (derived)
    head_kpa: float = 0.0  # pump head = secondary differential pressure (derived)
    switch_flow_lpm: float = 0.0  # the switch-tray branch (derived)
    step_supply_c: float | None = None  # the supply's mean over the step being integrated

    def supply_for_plates_c(self) -> float:
        """Coolant temperature the cold plates see: the step's mean while integrating, else the present."""
        return self.supply_c if self.step_supply_c is None else self.step_supply_c


@dataclass
class Rectifier:
    """A power-shelf PSU: AC input from its feed, DC onto the busbar."""

    name: str
    feed: str
    rated_w: float
    failed: bool = False
    enabled: bool = True  # a gated action may switch it off


@dataclass
class Bbu:
    """A battery backup unit: state of charge (0..1) of ``capacity_wh`` (reduced by a fault)."""

    name: str
    capacity_wh: float
    soc: float = 1.0
    capacity_factor: float = 1.0  # bbu_capacity_reduced fault: state of health
    mode: str = "Idle"  # Idle | Charging | Discharging


@dataclass
class PowerShelf:
    name: str
    info: DeviceInfo
    feeds: tuple[str, ...]  # its mains inputs, in order (AC1 on the first)
    rectifiers: list[Rectifier]
    bbus: list[Bbu]
    meter: Meter = field(default_factory=lambda: Meter(0.01, 0))
    open_mains: set[str] = field(default_factory=set)  # feeds whose input breaker on this shelf is open

    def has_input(self, feed_up: dict[str, bool], feed: str) -> bool:
        """Whether the shelf's mains input on ``feed`` is live (the feed up, its breaker closed)."""
        return feed_up.get(feed, False) and feed not in self.open_mains
