"""What the CDU, the power shelves and a liquid-cooled node's BMC read, and the actions they take.

Why a module of its own: ``RackModel`` is the one entry point of the simulated rack; its liquid
cooling and busbar power (``physics.cooling``, ``physics.shelves``) are reached through
``model.cooling`` and ``model.shelves``, the two views here, so the protocol servers (Redfish CDU
and power shelves, the Modbus CDU, node BMCs) read one consistent instant under the model's lock
without knowing the parts. Readings come through each device's ``Meter`` (its accuracy and
noise), as every other device's do; actions (a pump stopped, a rectifier switched off, a new
speed or setpoint) go through ``RackModel``'s change path, so their consequences follow at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rackval.sim.physics.cooling import coolant
from rackval.sim.physics.devices import psu_efficiency
from rackval.sim.physics.equipment import BUSBAR, Bbu, Cdu, PowerShelf, Pump, Rectifier
from rackval.sim.physics.parts import ModelParts

T = TypeVar("T")
RECT_OK, RECT_FAILED, RECT_NO_INPUT, RECT_OFF = "OK", "Failed", "NoInput", "Off"


@dataclass(frozen=True)
class PumpReading:
    name: str
    status: str  # OK | Failed | Stopped
    speed_percent: float  # 0 unless running
    setpoint_percent: float
    flow_lpm: float


@dataclass(frozen=True)
class CduReading:
    """One instant of a CDU, as its own sensors read it (flow L/min, kPa, C, W)."""

    supply_c: float
    return_c: float
    setpoint_c: float
    flow_lpm: float
    supply_kpa: float
    return_kpa: float
    delta_kpa: float
    heat_w: float
    primary_supply_c: float
    primary_return_c: float
    primary_flow_lpm: float
    pumps: tuple[PumpReading, ...]
    reservoir_l: float
    reservoir_capacity_l: float
    leaks: tuple[tuple[str, str, str], ...]  # (detector, where, OK | Critical)
    min_node_flow_lpm: float
    pumps_needed: int


@dataclass(frozen=True)
class CoolantConnectorReading:
    """A liquid-cooled node tray's coolant connection, as its BMC reads it."""

    flow_lpm: float
    supply_c: float
    return_c: float
    delta_kpa: float
    heat_w: float
    leak: str  # its tray's leak detector: OK | Critical


class _View:
    """Reads and changes over the model's parts, under its lock, as ``RackModel``'s own methods do."""

    def __init__(self, parts: ModelParts) -> None:
        self._parts = parts
        self._s = parts.state

    def _read(self, fn: Callable[[], T]) -> T:
        with self._s.lock:
            self._parts.update()
            return fn()

    def _change(self, fn: Callable[[], None]) -> None:
        with self._s.lock:
            self._parts.update()
            fn()
            self._parts.changed()


class CoolingView(_View):
    """The CDUs and cold plates of a liquid-cooled rack (empty for an air-cooled one)."""

    def cdus(self) -> list[str]:
        return list(self._s.cdus)

    def cdu(self, name: str) -> Cdu:
        """The CDU's state, brought up to the present (its fields are derived and read under the lock)."""
        return self._read(lambda: self._s.cdus[name])

    def liquid_nodes(self) -> list[str]:
        return list(self._s.cold_plates)

    def coolant(self) -> dict[str, Any]:
        """The coolant's type and properties (Redfish ``Coolant``)."""
        prm = self._s.params
        rho, cp = coolant(prm)
        kind = prm.cooling.coolant
        glycol = {"AdditiveName": "Propylene glycol", "AdditivePercent": 25} if kind == "PG25" else {}
        return {"CoolantType": "Water", **glycol, "DensityKgPerCubicMeter": rho,
                "SpecificHeatkJoulesPerKgK": cp / 1000.0}  # fmt: skip

    def reading(self, name: str) -> CduReading:
        def read() -> CduReading:
            cdu, cooling, c = self._s.cdus[name], self._parts.cooling, self._s.params.cooling
            m = cdu.meter.read
            pumps = tuple(
                PumpReading(p.name, p.status, p.speed_percent if p.status == "OK" else 0.0, p.speed_percent,
                            m(p.flow_lpm))
                for p in cdu.pumps
            )  # fmt: skip
            return CduReading(
                supply_c=m(cdu.supply_c), return_c=m(cooling.return_c()), setpoint_c=cdu.setpoint_c,
                flow_lpm=m(cdu.flow_lpm), supply_kpa=m(cooling.supply_pressure_kpa()),
                return_kpa=m(c.static_pressure_kpa), delta_kpa=m(cdu.head_kpa), heat_w=m(cooling.heat_w()),
                primary_supply_c=m(c.facility_supply_c), primary_return_c=m(cooling.primary_return_c()),
                primary_flow_lpm=m(c.primary_flow_lpm), pumps=pumps,
                reservoir_l=cdu.reservoir_l, reservoir_capacity_l=cdu.reservoir_capacity_l,
                leaks=tuple((d.name, d.where, d.state) for d in cdu.detectors),
                min_node_flow_lpm=c.min_node_flow_lpm, pumps_needed=c.pumps_needed,
            )  # fmt: skip

        return self._read(read)

    def node(self, node: str) -> CoolantConnectorReading | None:
        """The node tray's coolant connection (None: the node is air cooled)."""

        def read() -> CoolantConnectorReading | None:
            s = self._s
            plate = s.cold_plates.get(node)
            if plate is None:
                return None
            n, cooling = s.nodes[node], self._parts.cooling
            m = n.bmc_meter.read
            cdu = next(iter(s.cdus.values()))
            leak = next((d.state for d in cdu.detectors if d.where == node), "OK")
            return CoolantConnectorReading(
                flow_lpm=m(plate.flow_lpm), supply_c=m(cdu.supply_c), return_c=m(cooling.node_return_c(n)),
                delta_kpa=m(plate.dp_kpa), heat_w=m(cooling.node_heat_w(n)), leak=leak,
            )  # fmt: skip

        return self._read(read)

    def node_flow_lpm(self, node: str) -> float:
        """True flow through the node's plates (for tests and plans that compare with a reading)."""
        return self._read(lambda: self._s.cold_plates[node].flow_lpm)

    # ---- actions ------------------------------------------------------------------------------
    def _pump(self, cdu: str, pump: str) -> Pump:
        target = next((p for p in self._s.cdus[cdu].pumps if p.name == pump), None)
        if target is None:
            raise KeyError(f"{cdu} has no pump {pump!r}")
        return target

    def set_pump(self, cdu: str, pump: str, running: bool) -> None:
        """Start or stop one pump (a failed pump stays failed)."""
        target = self._pump(cdu, pump)
        self._change(lambda: setattr(target, "running", running))

    def set_pump_speed(self, cdu: str, pump: str, percent: float) -> None:
        """One pump's speed set point (affinity laws: its flow ~ speed, its head ~ speed^2)."""
        if not 0.0 < percent <= 100.0:
            raise ValueError(f"pump speed must be within 0..100 %, got {percent}")
        target = self._pump(cdu, pump)
        self._change(lambda: setattr(target, "speed_percent", float(percent)))

    def set_setpoint(self, cdu: str, celsius: float) -> None:
        if not 5.0 <= celsius <= 60.0:
            raise ValueError(f"supply setpoint must be within 5..60 C, got {celsius}")
        self._change(lambda: setattr(self._s.cdus[cdu], "setpoint_c", float(celsius)))


@dataclass(frozen=True)
class RectifierReading:
    name: str
    feed: str
    status: str  # OK | Failed | NoInput | Off
    input_w: float
    output_w: float
    efficiency: float  # 0 when it carries nothing
    rated_w: float
    input_v: float


@dataclass(frozen=True)
class BbuReading:
    name: str
    soc: float  # 0..1
    state_of_health: float  # 0..1
    mode: str  # Idle | Charging | Discharging
    power_w: float  # > 0 discharging
    capacity_wh: float  # rated


@dataclass(frozen=True)
class ShelfReading:
    """One instant of a power shelf, as its own meters read it (V, A, W; holdup in s)."""

    mains: tuple[tuple[str, float, float, float], ...]  # (feed, volts, amps, watts) per input
    rectifiers: tuple[RectifierReading, ...]
    bbus: tuple[BbuReading, ...]
    dc_v: float
    dc_a: float
    dc_w: float
    holdup_s: float  # the whole busbar's BBUs at the present load
    busbar_up: bool


class ShelvesView(_View):
    """The power shelves and the busbar of a busbar-fed rack (empty otherwise)."""

    def shelves(self) -> list[str]:
        return list(self._s.shelves)

    def shelf(self, name: str) -> PowerShelf:
        return self._read(lambda: self._s.shelves[name])

    def busbar_nodes(self) -> list[str]:
        return [n.name for n in self._s.nodes.values() if any(p.feed == BUSBAR for p in n.psus)]

    def _status(self, shelf: PowerShelf, r: Rectifier) -> str:
        if r.failed:
            return RECT_FAILED
        if not r.enabled:
            return RECT_OFF
        return RECT_OK if shelf.has_input(self._s.feed_up, r.feed) else RECT_NO_INPUT

    def reading(self, name: str) -> ShelfReading:
        def read() -> ShelfReading:
            s, sh = self._s, self._parts.shelves
            shelf, ps = s.shelves[name], s.params.power_shelves
            m = shelf.meter.read
            rects = []
            for r in shelf.rectifiers:
                out, inp = sh.rectifier_output_w(r), sh.rectifier_input_w(r)
                eff = psu_efficiency(out / r.rated_w, ps.efficiency_curve) if out > 0 else 0.0
                volts = ps.input_voltage_v if shelf.has_input(s.feed_up, r.feed) else 0.0
                status = self._status(shelf, r)
                rects.append(RectifierReading(r.name, r.feed, status, m(inp), m(out), eff, r.rated_w, volts))
            mains = []
            for feed in shelf.feeds:
                watts = sum(x.input_w for x in rects if x.feed == feed)
                volts = m(ps.input_voltage_v) if shelf.has_input(s.feed_up, feed) else 0.0
                mains.append((feed, volts, watts / (ps.input_voltage_v * 0.99) if watts else 0.0, watts))
            bbus = tuple(self._bbu(b) for b in shelf.bbus)
            dc_w = sum(x.output_w for x in rects) + sum(b.power_w for b in bbus)
            dc_v = m(sh.busbar_voltage_v())
            return ShelfReading(
                mains=tuple(mains), rectifiers=tuple(rects), bbus=bbus, dc_v=dc_v,
                dc_a=dc_w / dc_v if dc_v > 0 else 0.0, dc_w=max(dc_w, 0.0), holdup_s=sh.holdup_s(),
                busbar_up=s.busbar_up,
            )  # fmt: skip

        return self._read(read)

    def _bbu(self, b: Bbu) -> BbuReading:
        power = self._parts.shelves.bbu_power_w(b)
        return BbuReading(b.name, b.soc, b.capacity_factor, b.mode, power, b.capacity_wh)

    def busbar_up(self) -> bool:
        return self._read(lambda: self._s.busbar_up)

    def busbar_voltage_v(self) -> float:
        return self._read(self._parts.shelves.busbar_voltage_v)

    # ---- actions ------------------------------------------------------------------------------
    def mains_on(self, shelf: str, feed: str) -> bool:
        """Whether the shelf's input breaker on ``feed`` is closed."""
        return self._read(lambda: feed not in self._s.shelves[shelf].open_mains)

    def set_mains(self, shelf: str, feed: str, on: bool) -> None:
        """Close or open the shelf's input breaker on ``feed`` (its rectifiers on it lose input)."""
        target = self._s.shelves[shelf]
        if feed not in target.feeds:
            raise KeyError(f"{shelf} has no mains input on feed {feed!r} (have {', '.join(target.feeds)})")
        self._change(lambda: target.open_mains.discard(feed) if on else target.open_mains.add(feed))

    def set_rectifier(self, shelf: str, psu: str, on: bool) -> None:
        """Switch one rectifier off or back on (a failed one stays failed)."""
        target = next((r for r in self._s.shelves[shelf].rectifiers if r.name == psu), None)
        if target is None:
            raise KeyError(f"{shelf} has no rectifier {psu!r}")
        self._change(lambda: setattr(target, "enabled", on))
