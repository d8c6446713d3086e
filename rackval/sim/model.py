"""One physical model of a rack, read by every simulated device.

Every simulated device (PDU agent, BMC, analyzer, switch) reads the same numbers from here, each
through its own ``Meter`` with that device's accuracy and noise, so that the PDU, the BMC and the
analyzer agree the way real instruments do: within their stated accuracy, not exactly.

``RackModel`` is the one entry point the protocol servers, shells, control channel and tests
use. It composes the parts in ``rackval.sim.physics`` over one shared state and clock, where the
physics is (figures in ``rackval.sim.reference.ModelParams``):

- power (``physics.power``): feeds, outlets, PSUs, node power, inrush, power capping;
- thermal (``physics.thermal``): GPU temperatures, throttling, fans, exhaust air;
- sequencing (``physics.sequencing``): input -> BMC boot -> host PoweringOn -> On -> OS up, with
  a power-restore policy; PDU all-on staggers outlets; too little PSU capacity trips the node;
- network (``physics.network``): link state, LLDP peers, 64-bit octet, error and FEC counters;
- inventory and events: firmware per device component (``physics.inventory``); a SEL per BMC;
- faults: the catalogue (``rackval.sim.faults``) says what each kind does, ``physics.injected``
  keeps the injected ones;
- liquid cooling (``physics.cooling``: CDU pumps, cold plates, coolant temperatures, leaks) and
  busbar power (``physics.shelves``: rectifiers, BBUs), for designs that have them, read and
  driven through ``model.cooling`` and ``model.shelves`` (``rackval.sim.equipment_model``).

Time: state advances lazily (``physics.parts``). Every public read brings the state up to
``clock.now()`` with exact closed-form steps, processing scheduled events at their own times, so a
30-minute jump costs a few microseconds and is as accurate as many small steps. Reading
``model.nodes`` (and the other device dicts) also brings the state up to date, so servers that
read dataclass fields directly see the present.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from rackval.sim.clock import SimClock
from rackval.sim.equipment_model import CoolingView, ShelvesView
from rackval.sim.faults import Fault, Problem
from rackval.sim.physics.devices import (
    BMC_READY,
    COUNTER_WRAP,
    HOST_ON,
    REASON_GPU_IDLE,
    REASON_HW_THERMAL,
    REASON_SW_POWER_CAP,
    REASON_SW_THERMAL,
    Analyzer,
    DeviceInfo,
    Meter,
    Node,
    Outlet,
    Pdu,
    Port,
    Psu,
    SelEntry,
    Switch,
    psu_efficiency,
)
from rackval.sim.physics.injected import InjectedFaults
from rackval.sim.physics.parts import ModelParts
from rackval.sim.reference import (
    PSU_EFFICIENCY_CURVE,
    QUASI_STATIC_PARAMS,
    REFERENCE_PARAMS,
    ModelParams,
    RackSize,
)

__all__ = [
    "COUNTER_WRAP",
    "PSU_EFFICIENCY_CURVE",
    "QUASI_STATIC_PARAMS",
    "REASON_GPU_IDLE",
    "REASON_HW_THERMAL",
    "REASON_SW_POWER_CAP",
    "REASON_SW_THERMAL",
    "REFERENCE_PARAMS",
    "Analyzer",
    "DeviceInfo",
    "Meter",
    "ModelParams",
    "Node",
    "Outlet",
    "Pdu",
    "Port",
    "Psu",
    "RackModel",
    "RackSize",
    "SelEntry",
    "Switch",
    "psu_efficiency",
]

T = TypeVar("T")


class RackModel:
    """The state of the whole simulated rack, and the physics that derives readings from it.

    ``params`` defaults to ``QUASI_STATIC_PARAMS`` (every transition instantaneous: what the
    protocol-server tests expect); pass ``REFERENCE_PARAMS`` (or your own) for the full dynamic
    model with time constants and boot times. The rack starts settled: every node's BMC ready,
    host on, OS up, temperatures at their steady state.

    All access goes through methods that take ``lock``: the protocol servers run in threads.
    """

    def __init__(
        self, size: RackSize | None = None, clock: SimClock | None = None, params: ModelParams | None = None
    ) -> None:
        parts = ModelParts(size or RackSize(), clock or SimClock(), params or QUASI_STATIC_PARAMS)
        self._parts = parts
        self._s = parts.state
        self._power, self._thermal, self._network = parts.power, parts.thermal, parts.network
        self._faults = InjectedFaults(parts)
        self.size, self.clock, self.params, self.lock = self._s.size, self._s.clock, self._s.params, self._s.lock
        # Liquid cooling and busbar power: what the CDU, the shelves and liquid nodes' BMCs read.
        self.cooling = CoolingView(parts)
        self.shelves = ShelvesView(parts)

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the state brought up to now, under the lock."""
        with self.lock:
            self._parts.update()
            return fn(*args)

    def _change(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` at the present time, then derive the consequences, under the lock."""
        with self.lock:
            self._parts.update()
            result = fn(*args)
            self._parts.changed()
            return result

    # ---- device dicts (reading them brings the state up to date) ------------------------
    @property
    def nodes(self) -> dict[str, Node]:
        self.update()
        return self._s.nodes

    @property
    def pdus(self) -> dict[str, Pdu]:
        self.update()
        return self._s.pdus

    @property
    def switches(self) -> dict[str, Switch]:
        self.update()
        return self._s.switches

    @property
    def analyzers(self) -> dict[str, Analyzer]:
        self.update()
        return self._s.analyzers

    @property
    def ambient_c(self) -> float:
        return self._s.ambient_c

    @ambient_c.setter
    def ambient_c(self, value: float) -> None:
        self._change(setattr, self._s, "ambient_c", value)

    # ---- time ---------------------------------------------------------------------------
    def update(self) -> None:
        """Bring the state up to ``clock.now()`` (every public method does this itself)."""
        with self.lock:
            self._parts.update()

    def now(self) -> float:
        """The model's virtual time (what SEL timestamps and fault start times use)."""
        return self._read(lambda: self._s.t)

    # ---- state changes ------------------------------------------------------------------
    def set_outlet(self, pdu: str, outlet: int, on: bool) -> None:
        """Command an outlet relay (a stuck relay accepts the command and ignores it)."""
        self._change(self._power.switch_outlet, pdu, outlet, on)

    def pdu_all_on(self, pdu: str) -> dict[int, float]:
        """Switch every off outlet on, one inrush-guard delay apart; returns outlet -> virtual time."""
        return self._change(self._power.all_on, pdu)

    def pdu_all_off(self, pdu: str) -> None:
        def all_off() -> None:
            for idx in self._s.pdus[pdu].outlets:
                self._power.switch_outlet(pdu, idx, False)

        self._change(all_off)

    def set_feed(self, feed: str, up: bool) -> None:
        """Power a whole feed on or off (its PDU and every PSU on it)."""
        self._change(self._power.set_feed, feed, up)

    def feed_up(self, feed: str) -> bool:
        return self._read(self._s.feed_up.__getitem__, feed)

    def set_host_power(self, node: str, on: bool) -> None:
        """Request host power on or off (on waits for the BMC if it is still booting)."""
        self._change(lambda: self._parts.sequencing.set_host_power(self._s.nodes[node], on))

    def host_power_on(self, node: str) -> None:
        self.set_host_power(node, True)

    def host_power_off(self, node: str) -> None:
        self.set_host_power(node, False)

    def set_utilization(self, node: str, utilization: float) -> None:
        """Utilisation of every GPU of the node (per-GPU overrides still win)."""
        if not 0.0 <= utilization <= 1.0:
            raise ValueError(f"utilization must be within 0..1, got {utilization}")
        self._change(lambda: setattr(self._s.nodes[node], "utilization", utilization))

    def set_gpu_utilization(self, node: str, gpu: int, utilization: float | None) -> None:
        """Override one GPU's utilisation (None: follow the node's again)."""
        if utilization is not None and not 0.0 <= utilization <= 1.0:
            raise ValueError(f"utilization must be within 0..1, got {utilization}")
        self._change(lambda: setattr(self._s.nodes[node].gpu_state[gpu], "util_override", utilization))

    def set_power_cap(self, node: str, watts: float | None, correction_ms: float | None = None) -> None:
        """Set (or with None remove) the node's input power limit, met within ``correction_ms``."""
        if watts is not None and watts <= 0:
            raise ValueError(f"power cap must be > 0 W, got {watts}")
        self._change(lambda: self._power.set_cap(self._s.nodes[node], watts, correction_ms))

    def power_cap(self, node: str) -> float | None:
        with self.lock:
            return self._s.nodes[node].power_cap_w

    # ---- power ----------------------------------------------------------------------------
    def node_is_up(self, node: str) -> bool:
        """Host running: host power state On (and so at least one working PSU has input)."""

        def up() -> bool:
            n = self._s.nodes[node]
            return n.host_state == HOST_ON and bool(self._s.live_psus(n))

        return self._read(up)

    def node_dc_power_w(self, node: str) -> float:
        return self._read(lambda: self._power.dc_w(self._s.nodes[node]))

    def gpu_power_w(self, node: str, gpu: int) -> float:
        return self._read(lambda: self._power.gpu_power_w(self._s.nodes[node], gpu))

    def gpu_utilization(self, node: str, gpu: int) -> float:
        """The utilisation the GPU actually runs at (0 while the OS is not up)."""
        return self._read(lambda: self._s.gpu_util(self._s.nodes[node], gpu))

    def psu_input_power_w(self, node: str, psu_name: str) -> float:
        """AC power a PSU draws from its outlet: its share of the DC load over its efficiency."""
        return self._read(lambda: self._power.psu_input_w(self._s.nodes[node], self._s.psu(node, psu_name)))

    def psu_input_voltage_v(self, node: str, psu_name: str) -> float:
        """Nominal voltage at the PSU's input: its PDU's line voltage (callers decide what a PSU
        without input reads), or the busbar's present voltage for a busbar-fed PSU."""

        def volts() -> float:
            psu = self._s.psu(node, psu_name)
            return self._s.pdus[psu.pdu].voltage_v if psu.pdu else self._parts.shelves.busbar_voltage_v()

        return self._read(volts)

    def psu_status(self, node: str, psu_name: str) -> str:
        """OK | NoInput | Failed."""
        return self._read(lambda: self._s.psu_status(self._s.psu(node, psu_name)))

    def node_input_power_w(self, node: str) -> float:
        return self._read(lambda: self._power.node_input_w(self._s.nodes[node]))

    def outlet_power_w(self, pdu: str, outlet: int) -> float:
        return self._read(self._power.outlet_w, pdu, outlet)

    def power_factor(self, power_w: float) -> float:
        """PSUs with active PFC: about 0.99 under load, worse when lightly loaded."""
        return self._power.pf(power_w)

    def outlet_current_a(self, pdu: str, outlet: int) -> float:
        """RMS current, including the decaying inrush transient after the outlet switched on."""
        return self._read(self._power.outlet_a, pdu, outlet)

    def outlet_inrush_peak_a(self, pdu: str, outlet: int) -> float:
        """Peak current of the outlet's last inrush (0 if it never switched on in the model)."""
        return self._read(lambda: self._s.pdus[pdu].outlets[outlet].inrush_peak_a)

    def outlet_last_on_s(self, pdu: str, outlet: int) -> float | None:
        """Virtual time the outlet last switched off -> on (None: on since the start)."""
        return self._read(lambda: self._s.pdus[pdu].outlets[outlet].last_on_s)

    def pdu_power_w(self, pdu: str) -> float:
        return self._read(self._power.pdu_w, pdu)

    def pdu_phase_power_w(self, pdu: str, phase: int) -> float:
        """Power on one of the PDU's three phases (its own consumption split evenly)."""
        return self._read(self._power.phase_w, pdu, phase)

    def pdu_phase_current_a(self, pdu: str, phase: int) -> float:
        return self._read(self._power.phase_a, pdu, phase)

    def feed_power_w(self, feed: str) -> float:
        return self._read(self._power.feed_w, feed)

    # ---- sequencing state -------------------------------------------------------------------
    def bmc_ready(self, node: str) -> bool:
        return self._read(lambda: self._s.nodes[node].bmc_state == BMC_READY)

    def bmc_state(self, node: str) -> str:
        """Off | Booting | Ready."""
        return self._read(lambda: self._s.nodes[node].bmc_state)

    def host_state(self, node: str) -> str:
        """Off | PoweringOn | On."""
        return self._read(lambda: self._s.nodes[node].host_state)

    def os_up(self, node: str) -> bool:
        return self._read(lambda: self._s.nodes[node].os_up)

    # ---- thermal ----------------------------------------------------------------------------
    def gpu_temperature_c(self, node: str, gpu: int | None = None) -> float:
        """A GPU's temperature; without ``gpu``, the hottest GPU of the node."""

        def temperature() -> float:
            n = self._s.nodes[node]
            return self._thermal.hottest_c(n) if gpu is None else n.gpu_state[gpu].temp_c

        return self._read(temperature)

    def gpu_event_reasons(self, node: str, gpu: int) -> int:
        """nvidia-smi clocks_event_reasons mask: GpuIdle 0x1, SwPowerCap 0x4, SwThermal 0x20, HwThermal 0x40."""
        return self._read(lambda: self._thermal.event_mask(self._s.nodes[node], gpu))

    def gpu_readings(self, node: str) -> list[tuple[float, float, int, float]]:
        """(power W, utilisation 0..1, clocks-event mask, temperature C) of every GPU of ``node``,
        all at one instant: what one nvidia-smi query reads (one lock and update, not 4 per GPU)."""

        def readings() -> list[tuple[float, float, int, float]]:
            n = self._s.nodes[node]
            on = bool(self._s.live_psus(n))
            power, thermal = self._power, self._thermal
            return [
                (power.gpu_power_w(n, i, on), self._s.gpu_util(n, i), thermal.event_mask(n, i, on), g.temp_c)
                for i, g in enumerate(n.gpu_state)
            ]

        return self._read(readings)

    def fan_speed_percent(self, node: str) -> float:
        """Duty of the node's working fans (the curve of the hottest GPU; 100 % if a fan failed)."""
        return self._read(lambda: self._thermal.fan_duty(self._s.nodes[node]))

    def fan_rpm(self, node: str, fan: int) -> int:
        """RPM of fan ``fan`` (1-based); 0 for a failed fan."""
        return self._read(lambda: self._thermal.fan_rpm(self._s.nodes[node], fan))

    def node_outlet_temperature_c(self, node: str) -> float:
        """Exhaust air: inlet + P / (airflow x rho x c_p), airflow from the fan duty."""

        def exhaust() -> float:
            n = self._s.nodes[node]
            return self._thermal.exhaust_c(n, self._power.dc_w(n))

        return self._read(exhaust)

    # ---- network ----------------------------------------------------------------------------
    def port_oper_up(self, switch: str, port: str | int) -> bool:
        return self._read(lambda: self._s.port(switch, port).oper_up)

    def port_counters(self, switch: str, port: str | int) -> dict[str, int]:
        """64-bit counters (wrap at 2**64): in_octets, out_octets, in_errors, fec_corrected, fec_uncorrected."""
        return self._read(lambda: dict(self._s.port(switch, port).counters))

    def set_port_counters(self, switch: str, port: str | int, **values: int) -> None:
        """Preset counters (e.g. near 2**64 to exercise a consumer's wrap handling)."""
        self._read(lambda: self._network.set_counters(self._s.port(switch, port), values))

    # ---- inventory and events -----------------------------------------------------------------
    def firmware(self, device: str) -> dict[str, str]:
        """Firmware version per component of a device (node, BMC, PDU, switch, analyzer)."""
        return self._read(lambda: dict(self._s.firmware[device]))

    def baseline_firmware(self, device: str) -> dict[str, str]:
        return dict(self._s.baseline[device])

    def sel(self, node: str) -> list[SelEntry]:
        """The node BMC's event log, oldest first (also accepts the BMC's name)."""
        return self._read(lambda: list(self._s.node_by_any(node).sel))

    def clear_sel(self, node: str) -> None:
        self._read(lambda: self._s.node_by_any(node).sel.clear())

    # ---- faults -------------------------------------------------------------------------------
    def fault_targets(self) -> set[str]:
        """Every name a fault may target: devices (nodes, BMCs, PDUs, switches, analyzers) and feeds."""
        return self._faults.targets()

    def fault_problems(self, fault: Fault) -> list[Problem]:
        """Why ``inject(fault)`` would refuse ``fault`` (a known kind): (field path, message) pairs.

        Lets a fault file be checked against the rack before anything is started."""
        with self.lock:
            return self._faults.problems(fault)

    def inject(self, fault: Fault) -> str:
        """Schedule ``fault`` (active from ``start_at``, or now if that has passed); returns its id."""
        return self._change(self._faults.inject, fault)

    def clear_fault(self, fault_id: str) -> None:
        """Remove a fault (undoing its effect if active); unknown ids raise KeyError."""
        self._change(self._faults.clear, fault_id)

    def active_faults(self, device: str | None = None) -> list[Fault]:
        """Active faults, optionally only those on ``device`` (protocol servers act on these)."""
        return self._read(self._faults.active, device)

    def injected_faults(self) -> list[Fault]:
        """Every injected fault, pending or active."""
        with self.lock:
            return self._faults.injected()

    # ---- what devices read (true value through the device's meter) ------------------------
    def pdu_reading_outlet_w(self, pdu: str, outlet: int) -> float:
        with self.lock:
            return self._s.pdus[pdu].meter.read(self.outlet_power_w(pdu, outlet))

    def pdu_reading_outlet_a(self, pdu: str, outlet: int) -> float:
        with self.lock:
            return self._s.pdus[pdu].meter.read(self.outlet_current_a(pdu, outlet))

    def pdu_reading_total_w(self, pdu: str) -> float:
        with self.lock:
            return self._s.pdus[pdu].meter.read(self.pdu_power_w(pdu))

    def bmc_reading_power_w(self, node: str) -> float:
        with self.lock:
            return self._s.nodes[node].bmc_meter.read(self.node_input_power_w(node))

    def analyzer_reading(self, analyzer: str) -> tuple[float, float, float, float]:
        """(voltage V, current A, active power W, power factor) on the analyzer's feeds."""
        return self._read(self._power.analyzer_reading, analyzer)
