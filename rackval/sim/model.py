"""One physical model of a rack, read by every simulated device.

Every simulated device (PDU agent, BMC, analyzer, switch) reads the same numbers from here, each
through its own ``Meter`` with that device's accuracy and noise, so that the PDU, the BMC and the
analyzer agree the way real instruments do: within their stated accuracy, not exactly.

Physics (figures in ``rackval.sim.reference.ModelParams``):

- Power: GPU power = idle + utilisation x (max - idle) (node utilisation, or a per-GPU
  override), node DC = base + GPUs while the host is on, standby while only the BMC is powered;
  the DC load is shared equally by the working PSUs with input; each draws DC / efficiency(load
  fraction) from its outlet; outlet current = P / (V x PF) plus an inrush transient after
  switch-on; outlets sit on 3 phases round-robin; a PDU's total is its outlets plus itself.
- Power capping: a node limit is met by scaling GPU power; the scale factor is a first-order lag
  with tau = CorrectionInMs / 5, aiming a margin below the limit (SwPowerCap 0x4).
- Thermal: GPU temperature is a first-order lag toward inlet + R_th x P. At the slowdown limit the
  GPU throttles to the power that holds it there (SwThermal 0x20); above the hardware limit
  HwThermal 0x40. Fans follow a curve of the hottest GPU; exhaust = inlet + P / (airflow x rho c_p).
- Sequencing: input -> BMC boot -> host PoweringOn -> On -> OS up, with a power-restore policy;
  PDU all-on staggers outlets by an inrush-guard delay; too little PSU capacity trips the node.
- Network: per-port 64-bit octet, error and FEC counters growing with traffic and bit errors.
- Inventory and events: firmware per device component; a SEL per BMC.

Time: state advances lazily. Every public read integrates from the last update to
``clock.now()`` with exact closed-form steps (exponentials, and the exact time a GPU reaches its
limit), processing scheduled events (boot complete, fault start ...) at their own times, so a
30-minute jump costs a few microseconds and is as accurate as many small steps. Reading
``model.nodes`` (and the other device dicts) also brings the state up to date, so servers that
read dataclass fields directly see the present.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import itertools
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rackval.sim.clock import SimClock
from rackval.sim.faults import CATALOGUE, Fault
from rackval.sim.reference import (
    PSU_EFFICIENCY_CURVE,
    QUASI_STATIC_PARAMS,
    REFERENCE_PARAMS,
    ModelParams,
    RackSize,
)

__all__ = [
    "PSU_EFFICIENCY_CURVE",
    "QUASI_STATIC_PARAMS",
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

# nvidia-smi clocks_event_reasons bits
REASON_GPU_IDLE = 0x1
REASON_SW_POWER_CAP = 0x4
REASON_SW_THERMAL = 0x20
REASON_HW_THERMAL = 0x40

COUNTER_WRAP = 2**64
HOST_OFF, HOST_POWERING_ON, HOST_ON = "Off", "PoweringOn", "On"
BMC_OFF, BMC_BOOTING, BMC_READY = "Off", "Booting", "Ready"
PSU_OK, PSU_NO_INPUT, PSU_FAILED = "OK", "NoInput", "Failed"
SEV_OK, SEV_WARNING, SEV_CRITICAL = "OK", "Warning", "Critical"

_AIR_RHO_CP = 1.2 * 1005.0  # J / (m^3 K)
_COUNTERS = ("in_octets", "out_octets", "in_errors", "fec_corrected", "fec_uncorrected")


def _interp(curve: tuple[tuple[float, float], ...], x: float) -> float:
    """Linear interpolation on (x, y) points, clamped to the ends."""
    if x <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return curve[-1][1]


def psu_efficiency(load_fraction: float, curve: tuple[tuple[float, float], ...] = PSU_EFFICIENCY_CURVE) -> float:
    """Efficiency of a PSU at a fraction of its rating (clamped to the curve's ends)."""
    return _interp(curve, min(max(load_fraction, 0.0), 1.0))


def _step(x: float, target: float, dt: float, tau: float) -> float:
    """Exact first-order lag step: x(t+dt) = target + (x - target) e^(-dt/tau); tau 0 = instant."""
    if tau <= 0:
        return target
    return target + (x - target) * math.exp(-dt / tau)


def _stable_seed(*parts: object) -> int:
    """A seed from names, stable across processes (``hash()`` is salted per process)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


UPDATE_RESOLUTION_WALL_S = 0.1


class Meter:
    """A device's view of a true value: a fixed gain error within its accuracy, plus noise.

    ``accuracy`` is the device's stated relative accuracy (0.01 = 1 %). The gain error is drawn
    once per device, uniformly within +-accuracy/2; the noise is Gaussian with sigma accuracy/6,
    so a reading stays within the stated accuracy with overwhelming probability.
    """

    def __init__(self, accuracy: float, seed: int) -> None:
        self.accuracy = accuracy
        self._rng = random.Random(seed)
        self.gain = 1.0 + self._rng.uniform(-accuracy / 2, accuracy / 2)
        self._lock = threading.Lock()

    def read(self, true_value: float) -> float:
        with self._lock:
            noise = self._rng.gauss(0.0, self.accuracy / 6)
        return true_value * (self.gain + noise)


@dataclass(frozen=True)
class DeviceInfo:
    vendor: str
    model: str
    serial: str
    firmware: str


@dataclass(frozen=True)
class SelEntry:
    """One BMC event-log entry (Redfish LogEntry-like); ``created_s`` is virtual time."""

    id: int
    created_s: float
    severity: str  # OK | Warning | Critical
    message_id: str
    message: str


@dataclass
class Psu:
    name: str
    feed: str
    pdu: str
    outlet: int
    rated_w: float = 3000.0
    failed: bool = False


@dataclass
class GpuState:
    """Dynamic state of one GPU."""

    temp_c: float
    util_override: float | None = None
    throttled: bool = False  # held at the slowdown limit
    hw_hot: bool = False  # above the hardware slowdown limit
    r_th_factor: float = 1.0  # gpu_overheat fault multiplies this
    delta_c: float = 0.0  # gpu_overheat fault adds this


@dataclass
class Node:
    name: str
    bmc: str
    info: DeviceInfo
    bmc_info: DeviceInfo
    psus: list[Psu]
    gpus: int = 8
    base_w: float = 450.0
    standby_w: float = 35.0
    gpu_idle_w: float = 70.0
    gpu_max_w: float = 700.0
    host_on: bool = True  # host power requested on (also what LastState restores)
    utilization: float = 0.0
    bmc_meter: Meter = field(default_factory=lambda: Meter(0.03, 0))
    fans: int = 6
    gpu_state: list[GpuState] = field(default_factory=list)
    failed_fans: set[int] = field(default_factory=set)  # 1-based fan numbers
    bmc_state: str = BMC_READY
    host_state: str = HOST_ON
    os_up: bool = True
    power_cap_w: float | None = None
    cap_tau_s: float = 0.0
    cap_factor: float = 1.0
    cap_slowdown: float = 1.0  # power_cap_slow fault multiplies the capping time constant
    bmc_boot_extra_s: float = 0.0  # bmc_slow_boot fault adds this to every BMC boot
    sel: list[SelEntry] = field(default_factory=list)
    bmc_gen: int = 0  # invalidates scheduled boot events when input is lost again
    host_gen: int = 0
    psu_status_seen: dict[str, str] = field(default_factory=dict)


@dataclass
class Outlet:
    index: int
    name: str
    on: bool = True  # the relay's actual state
    psu: tuple[str, str] | None = None  # (node, psu name)
    stuck: bool = False  # relay ignores commands (fault)
    last_on_s: float | None = None  # virtual time of the last off -> on
    inrush_peak_a: float = 0.0  # peak of the last inrush
    inrush_at_s: float | None = None

    @property
    def phase(self) -> int:
        """Phase 1..3: outlets are wired round-robin across the three phases."""
        return (self.index - 1) % 3 + 1


@dataclass
class Pdu:
    name: str
    feed: str
    info: DeviceInfo
    outlets: dict[int, Outlet]
    voltage_v: float = 230.0
    self_power_w: float = 12.0
    meter: Meter = field(default_factory=lambda: Meter(0.01, 0))


@dataclass
class Port:
    name: str
    index: int
    speed_mbps: int
    alias: str
    admin_up: bool = True
    peer: tuple[str, str] | None = None  # (node, nic)
    fault_down: bool = False  # link_down fault: no signal
    peer_powered: bool = True  # the peer NIC has power
    ber: float | None = None  # link_errors fault: pre-FEC BER (None = healthy)
    uncorrectable_fraction: float | None = None
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    residue: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0.0))

    @property
    def oper_up(self) -> bool:
        return self.admin_up and self.peer is not None and not self.fault_down and self.peer_powered


@dataclass
class Switch:
    name: str
    info: DeviceInfo
    ports: list[Port]
    mgmt_mac: str = "00:00:00:00:00:00"


@dataclass
class Analyzer:
    name: str
    info: DeviceInfo
    feeds: tuple[str, ...]
    voltage_v: float = 230.0
    meter: Meter = field(default_factory=lambda: Meter(0.001, 0))


# Which firmware component is the one a device reports as its own (DeviceInfo.firmware).
# The component holding each kind's main firmware ("AOS" names a PDU's, whatever its make).
_MAIN_FIRMWARE = {"node": "BIOS", "bmc": "BMC", "pdu": "AOS", "switch": "SONiC", "analyzer": "firmware"}


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
        self.size = size or RackSize()
        self.clock = clock or SimClock()
        self.params = params or QUASI_STATIC_PARAMS
        self.lock = threading.RLock()
        self._ambient_c = self.params.ambient_c
        self._nodes: dict[str, Node] = {}
        self._pdus: dict[str, Pdu] = {}
        self._switches: dict[str, Switch] = {}
        self._analyzers: dict[str, Analyzer] = {}
        self._feed_up: dict[str, bool] = {}
        self._firmware: dict[str, dict[str, str]] = {}
        self._baseline: dict[str, dict[str, str]] = {}
        self._device_kind: dict[str, str] = {}
        self._faults: dict[str, Fault] = {}
        self._active: dict[str, Fault] = {}
        self._undo: dict[str, Callable[[], None]] = {}
        self._fault_serial: dict[str, int] = {}
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._t = self.clock.now()
        self._dirty = True
        self._build()
        with self.lock:
            self._reconcile(log=False)
            for n in self._nodes.values():  # start settled: every GPU at its steady temperature
                for i, g in enumerate(n.gpu_state):
                    g.temp_c = self._ambient_c + g.delta_c + self._r_th(n, g) * self._gpu_demand_w(n, i)
            self._integrate(0.0)

    # ---- device dicts (reading them brings the state up to date) ------------------------
    @property
    def nodes(self) -> dict[str, Node]:
        self.update()
        return self._nodes

    @property
    def pdus(self) -> dict[str, Pdu]:
        self.update()
        return self._pdus

    @property
    def switches(self) -> dict[str, Switch]:
        self.update()
        return self._switches

    @property
    def analyzers(self) -> dict[str, Analyzer]:
        self.update()
        return self._analyzers

    @property
    def ambient_c(self) -> float:
        return self._ambient_c

    @ambient_c.setter
    def ambient_c(self, value: float) -> None:
        with self.lock:
            self._update()
            self._ambient_c = value
            self._changed()

    # ---- construction -------------------------------------------------------------------
    def _serial(self, prefix: str, name: str) -> str:
        return f"{prefix}{_stable_seed(self.size.seed, name) % 10**8:08d}"

    def _meter(self, accuracy: float, name: str) -> Meter:
        return Meter(accuracy, _stable_seed(self.size.seed, "meter", name))

    def _build(self) -> None:
        size, prm = self.size, self.params
        feeds = ("A", "B")
        # PSU p of every node goes to feed A when p is odd, B when even; a feed gets as many PDUs
        # as its PSUs need, filled in node order (pdu-a, or pdu-a1, pdu-a2 ... when more than one).
        psus_on = {f: sum(1 for p in range(1, size.psus_per_node + 1) if feeds[(p - 1) % 2] == f) for f in feeds}
        pdus_by_feed: dict[str, list[str]] = {}
        for feed in feeds:
            self._feed_up[feed] = True
            needed = max(size.nodes * psus_on[feed], 1)
            count = max(-(-needed // size.outlets_per_pdu), 1)
            names = [f"pdu-{feed.lower()}"] if count == 1 else [f"pdu-{feed.lower()}{i}" for i in range(1, count + 1)]
            pdus_by_feed[feed] = names
            for name in names:
                outlets = min(size.outlets_per_pdu, needed) if count == 1 else size.outlets_per_pdu
                self._pdus[name] = Pdu(
                    name=name,
                    feed=feed,
                    info=self._pdu_info(getattr(size, f"pdu_vendor_{feed.lower()}"), name),
                    outlets={i: Outlet(index=i, name=f"Outlet {i}") for i in range(1, outlets + 1)},
                    voltage_v=prm.pdu_voltage_v,
                    self_power_w=prm.pdu_self_power_w,
                    meter=self._meter(0.01, name),
                )
                self._add_firmware(name, "pdu", {"AOS": self._pdus[name].info.firmware})
        next_outlet = dict.fromkeys(feeds, 1)
        pw = prm.power
        for n in range(1, size.nodes + 1):
            node_name = f"node{n:02d}"
            psus = []
            for p in range(1, size.psus_per_node + 1):
                feed = feeds[(p - 1) % 2]
                slot = next_outlet[feed] - 1
                next_outlet[feed] += 1
                pdu = self._pdus[pdus_by_feed[feed][min(slot // size.outlets_per_pdu, len(pdus_by_feed[feed]) - 1)]]
                outlet = slot % size.outlets_per_pdu + 1 if len(pdus_by_feed[feed]) > 1 else slot + 1
                psu = Psu(name=f"PSU{p}", feed=feed, pdu=pdu.name, outlet=outlet, rated_w=prm.psu.rated_w)
                if outlet not in pdu.outlets:  # odd PSU counts: give the PDU the outlet it needs
                    pdu.outlets[outlet] = Outlet(index=outlet, name=f"Outlet {outlet}")
                pdu.outlets[outlet].psu = (node_name, psu.name)
                pdu.outlets[outlet].name = f"{node_name}-{psu.name}"
                psus.append(psu)
            node = Node(
                name=node_name,
                bmc=f"bmc-{node_name}",
                info=DeviceInfo("SimCo", "SC-8GPU-1", self._serial("SN", node_name), "1.4.2"),
                bmc_info=DeviceInfo("SimCo", "SC-BMC", self._serial("BMC", node_name), "2.18.0"),
                psus=psus,
                gpus=size.gpus_per_node,
                base_w=pw.base_w,
                standby_w=pw.standby_w,
                gpu_idle_w=pw.gpu_idle_w,
                gpu_max_w=pw.gpu_max_w,
                bmc_meter=self._meter(0.03, f"bmc-{node_name}"),
                fans=prm.fans.count,
                gpu_state=[GpuState(temp_c=self._ambient_c) for _ in range(size.gpus_per_node)],
            )
            self._nodes[node_name] = node
            fw = {"BIOS": "1.4.2", "CPLD": "0.9.3", "NIC": "28.39.1002"}
            fw |= {f"GPU{i}": "96.00.99.00.01" for i in range(size.gpus_per_node)}
            fw |= {p.name: "3.1.0" for p in psus}
            self._add_firmware(node_name, "node", fw)
            self._add_firmware(node.bmc, "bmc", {"BMC": "2.18.0"})
        for s in range(1, max(size.switches, 1) + 1):
            name = f"tor{s}"
            ports = [
                Port(name=f"Ethernet{8 * i}", index=i + 1, speed_mbps=400_000, alias=f"etp{i + 1}")
                for i in range(size.switch_ports)
            ]
            self._switches[name] = Switch(
                name=name,
                info=DeviceInfo("SONiC", "Mellanox-SN4600C-C64", self._serial("MT", name), "SONiC.202311.1"),
                ports=ports,
                mgmt_mac=f"b8:59:9f:00:00:{s:02x}",
            )
            self._add_firmware(name, "switch", {"SONiC": "SONiC.202311.1", "ONIE": "2022.05", "ASIC": "2012.2120.0"})
        switches = list(self._switches.values())
        for nic in range(max(size.nics_per_node, 1)):
            switch = switches[nic % len(switches)]
            free = [p for p in switch.ports if p.peer is None]
            for node_name, port in zip(self._nodes, free, strict=False):
                port.peer = (node_name, f"eth{nic}")
        groups = [(f"analyzer-{f.lower()}", (f,)) for f in feeds] if size.analyzer_per_feed else [("analyzer", feeds)]
        for name, measured in groups:
            self._analyzers[name] = Analyzer(
                name=name,
                info=DeviceInfo("YOKOGAWA", "WT5000", self._serial("91N", name), "F1.05"),
                feeds=measured,
                voltage_v=prm.pdu_voltage_v,
                meter=self._meter(0.001, name),
            )
            self._add_firmware(name, "analyzer", {"firmware": "F1.05"})

    # PDU identity per make: (vendor, model, serial prefix, firmware).
    _PDU_MAKES: ClassVar[dict[str, tuple[str, str, str, str]]] = {
        "apc": ("APC", "AP8886", "5A", "v7.0.4"),
        "raritan": ("Raritan", "PX3-5902V", "RA", "4.0.20.5-48096"),
        "servertech": ("ServerTech", "C2WG36TE-DQME2M66/C", "ST", "8.0r"),
    }

    def _pdu_info(self, make: str, name: str) -> DeviceInfo:
        if make not in self._PDU_MAKES:
            raise ValueError(f"unknown PDU make {make!r} (known: {', '.join(self._PDU_MAKES)})")
        vendor, model, prefix, firmware = self._PDU_MAKES[make]
        return DeviceInfo(vendor, model, self._serial(prefix, name), firmware)

    def _add_firmware(self, device: str, kind: str, components: dict[str, str]) -> None:
        self._device_kind[device] = kind
        self._firmware[device] = dict(components)
        self._baseline[device] = dict(components)

    # ---- time -----------------------------------------------------------------------------
    def update(self) -> None:
        """Bring the state up to ``clock.now()`` (every public method does this itself)."""
        with self.lock:
            self._update()

    def _update(self) -> None:
        now = max(self.clock.now(), self._t)
        while self._events and self._events[0][0] <= now:
            t_evt, _, action = heapq.heappop(self._events)
            if t_evt > self._t:
                self._integrate(t_evt - self._t)
                self._t = t_evt
            action()
            self._reconcile()
            self._dirty = True
        # Integrating the whole rack costs ~1 ms at 32 nodes; a telemetry poll reads thousands of
        # values a second. With a running clock, state is brought forward at most every 100 ms of
        # wall time (events and state changes still land exactly); a frozen clock is exact.
        if now - self._t >= UPDATE_RESOLUTION_WALL_S * self.clock.time_scale or self._dirty:
            if now > self._t:
                self._integrate(now - self._t)
                self._t = now
            self._dirty = False

    def _schedule(self, at: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (max(at, self._t), next(self._seq), action))

    def _changed(self) -> None:
        """After a state change at ``self._t``: derived states, zero-delay events, settle."""
        self._reconcile()
        self._dirty = True
        self._update()

    def now(self) -> float:
        """The model's virtual time (what SEL timestamps and fault start times use)."""
        with self.lock:
            self._update()
            return self._t

    # ---- discrete state: PSU status, BMC/host sequencing, overload, link power -----------
    def _psu_has_input(self, psu: Psu) -> bool:
        return self._feed_up[psu.feed] and self._pdus[psu.pdu].outlets[psu.outlet].on

    def _psu_status(self, psu: Psu) -> str:
        if psu.failed:
            return PSU_FAILED
        return PSU_OK if self._psu_has_input(psu) else PSU_NO_INPUT

    def _live_psus(self, n: Node) -> list[Psu]:
        return [p for p in n.psus if not p.failed and self._psu_has_input(p)]

    def _log(self, n: Node, severity: str, message_id: str, message: str, at: float | None = None) -> None:
        entry_id = n.sel[-1].id + 1 if n.sel else 1
        n.sel.append(SelEntry(entry_id, self._t if at is None else at, severity, message_id, message))

    def _reconcile(self, log: bool = True) -> None:
        for n in self._nodes.values():
            for p in n.psus:
                status, before = self._psu_status(p), n.psu_status_seen.get(p.name)
                if log and before is not None and status != before:
                    if status == PSU_FAILED:
                        self._log(n, SEV_CRITICAL, "Power.1.0.PowerSupplyFailed", f"{p.name} failed.")
                    elif status == PSU_NO_INPUT:
                        self._log(n, SEV_WARNING, "Power.1.0.PowerSupplyInputLost", f"{p.name} lost input power.")
                    elif before == PSU_NO_INPUT:
                        self._log(n, SEV_OK, "Power.1.0.PowerSupplyInputRestored", f"{p.name} input restored.")
                    else:
                        self._log(n, SEV_OK, "Power.1.0.PowerSupplyRecovered", f"{p.name} is working again.")
                n.psu_status_seen[p.name] = status
            live = self._live_psus(n)
            if not live:
                if n.bmc_state != BMC_OFF:
                    n.bmc_state, n.host_state, n.os_up = BMC_OFF, HOST_OFF, False
                    n.bmc_gen += 1
                    n.host_gen += 1
            elif n.bmc_state == BMC_OFF:
                n.bmc_state = BMC_BOOTING
                n.bmc_gen += 1
                boot_s = self.params.timing.bmc_boot_s + n.bmc_boot_extra_s
                self._schedule(self._t + boot_s, self._bmc_ready_action(n, n.bmc_gen))
            if live and n.host_state != HOST_OFF:
                capacity = sum(p.rated_w for p in live)
                load = self._dc_w(n)
                if load > capacity + 1e-9:
                    self._host_off(n)
                    n.host_on = False
                    if log:
                        self._log(
                            n, SEV_CRITICAL, "Power.1.0.PowerSupplyOverload",
                            f"Load {load:.0f} W exceeds the {capacity:.0f} W of the working PSUs; host powered off.",
                        )  # fmt: skip
        for sw in self._switches.values():
            for port in sw.ports:
                port.peer_powered = port.peer is not None and (
                    port.peer[0] not in self._nodes or self._nodes[port.peer[0]].bmc_state != BMC_OFF
                )

    def _bmc_ready_action(self, n: Node, gen: int) -> Callable[[], None]:
        def ready() -> None:
            if n.bmc_gen != gen or n.bmc_state != BMC_BOOTING:
                return
            n.bmc_state = BMC_READY
            policy = self.params.timing.restore_policy
            if policy == "AlwaysOn" or (policy == "LastState" and n.host_on):
                n.host_on = True
                self._start_power_on(n)
            elif policy == "AlwaysOff":
                n.host_on = False

        return ready

    def _start_power_on(self, n: Node) -> None:
        n.host_state = HOST_POWERING_ON
        n.host_gen += 1
        gen = n.host_gen
        timing = self.params.timing

        def on() -> None:
            if n.host_gen == gen and n.host_state == HOST_POWERING_ON:
                n.host_state = HOST_ON
                self._schedule(self._t + timing.os_boot_s, os_up)

        def os_up() -> None:
            if n.host_gen == gen and n.host_state == HOST_ON:
                n.os_up = True

        self._schedule(self._t + timing.host_power_on_s, on)

    def _host_off(self, n: Node) -> None:
        n.host_state, n.os_up = HOST_OFF, False
        n.host_gen += 1

    # ---- state changes --------------------------------------------------------------------
    def set_outlet(self, pdu: str, outlet: int, on: bool) -> None:
        """Command an outlet relay (a stuck relay accepts the command and ignores it)."""
        with self.lock:
            self._update()
            self._switch_outlet(pdu, outlet, on)
            self._changed()

    def _switch_outlet(self, pdu: str, outlet: int, on: bool, force: bool = False) -> None:
        o = self._pdus[pdu].outlets[outlet]
        if o.stuck and not force:
            return
        if on and not o.on:
            o.last_on_s = self._t
            if self._feed_up[self._pdus[pdu].feed]:
                self._record_inrush(o)
        o.on = on

    def _record_inrush(self, o: Outlet) -> None:
        if o.psu is not None:
            o.inrush_peak_a = self.params.psu.inrush_peak_a
            o.inrush_at_s = self._t

    def pdu_all_on(self, pdu: str) -> dict[int, float]:
        """Switch every off outlet on, one inrush-guard delay apart; returns outlet -> virtual time."""
        with self.lock:
            self._update()
            delay = self.params.timing.pdu_sequence_delay_s
            plan: dict[int, float] = {}
            for k, idx in enumerate(i for i, o in sorted(self._pdus[pdu].outlets.items()) if not o.on):
                at = self._t + k * delay
                plan[idx] = at
                self._schedule(at, lambda idx=idx: self._switch_outlet(pdu, idx, True))
            self._changed()
            return plan

    def pdu_all_off(self, pdu: str) -> None:
        with self.lock:
            self._update()
            for idx in self._pdus[pdu].outlets:
                self._switch_outlet(pdu, idx, False)
            self._changed()

    def set_feed(self, feed: str, up: bool) -> None:
        """Power a whole feed on or off (its PDU and every PSU on it)."""
        with self.lock:
            self._update()
            if feed not in self._feed_up:
                raise KeyError(f"no feed {feed!r} (have {sorted(self._feed_up)})")
            if up and not self._feed_up[feed]:
                for d in self._pdus.values():
                    if d.feed == feed:
                        for o in d.outlets.values():
                            if o.on:
                                self._record_inrush(o)
            self._feed_up[feed] = up
            self._changed()

    def feed_up(self, feed: str) -> bool:
        with self.lock:
            self._update()
            return self._feed_up[feed]

    def set_host_power(self, node: str, on: bool) -> None:
        """Request host power on or off (on waits for the BMC if it is still booting)."""
        with self.lock:
            self._update()
            n = self._nodes[node]
            n.host_on = on
            if on:
                if n.bmc_state == BMC_READY and n.host_state == HOST_OFF:
                    self._start_power_on(n)
            elif n.host_state != HOST_OFF:
                self._host_off(n)
            self._changed()

    def host_power_on(self, node: str) -> None:
        self.set_host_power(node, True)

    def host_power_off(self, node: str) -> None:
        self.set_host_power(node, False)

    def set_utilization(self, node: str, utilization: float) -> None:
        """Utilisation of every GPU of the node (per-GPU overrides still win)."""
        if not 0.0 <= utilization <= 1.0:
            raise ValueError(f"utilization must be within 0..1, got {utilization}")
        with self.lock:
            self._update()
            self._nodes[node].utilization = utilization
            self._changed()

    def set_gpu_utilization(self, node: str, gpu: int, utilization: float | None) -> None:
        """Override one GPU's utilisation (None: follow the node's again)."""
        if utilization is not None and not 0.0 <= utilization <= 1.0:
            raise ValueError(f"utilization must be within 0..1, got {utilization}")
        with self.lock:
            self._update()
            self._nodes[node].gpu_state[gpu].util_override = utilization
            self._changed()

    def set_power_cap(self, node: str, watts: float | None, correction_ms: float | None = None) -> None:
        """Set (or with None remove) the node's input power limit, met within ``correction_ms``."""
        if watts is not None and watts <= 0:
            raise ValueError(f"power cap must be > 0 W, got {watts}")
        with self.lock:
            self._update()
            n = self._nodes[node]
            ms = self.params.timing.power_cap_correction_ms if correction_ms is None else correction_ms
            n.power_cap_w = watts
            n.cap_tau_s = max(ms, 0.0) / 1000.0 / 5.0
            if watts is None:
                self._log(n, SEV_OK, "Power.1.0.PowerLimitRemoved", "Power limit removed.")
            else:
                self._log(n, SEV_OK, "Power.1.0.PowerLimitApplied", f"Power limit of {watts:.0f} W applied.")
            self._changed()

    def power_cap(self, node: str) -> float | None:
        with self.lock:
            return self._nodes[node].power_cap_w

    # ---- power ----------------------------------------------------------------------------
    def _gpu_util(self, n: Node, i: int) -> float:
        if n.host_state != HOST_ON or not n.os_up:
            return 0.0
        o = n.gpu_state[i].util_override
        return n.utilization if o is None else o

    def _gpu_demand_w(self, n: Node, i: int) -> float:
        return n.gpu_idle_w + self._gpu_util(n, i) * (n.gpu_max_w - n.gpu_idle_w)

    def _r_th(self, n: Node, g: GpuState) -> float:
        th = self.params.thermal
        return th.gpu_r_th_c_per_w * g.r_th_factor * (1.0 + th.r_th_increase_per_failed_fan * len(n.failed_fans))

    def _p_thermal_w(self, n: Node, g: GpuState) -> float:
        """The GPU power that holds the GPU exactly at its slowdown limit."""
        return (self.params.thermal.gpu_slowdown_c - self._ambient_c - g.delta_c) / self._r_th(n, g)

    def _throttled_power(self, n: Node, g: GpuState, demand: float) -> float:
        floor = min(self.params.power.gpu_min_w, demand)
        return min(demand, max(self._p_thermal_w(n, g), floor))

    def _gpu_power_w(self, n: Node, i: int, has_input: bool | None = None) -> float:
        """``has_input``: whether the node has a live PSU, if the caller already knows."""
        if n.host_state != HOST_ON or not (self._live_psus(n) if has_input is None else has_input):
            return 0.0
        d = self._gpu_demand_w(n, i) * n.cap_factor
        g = n.gpu_state[i]
        return self._throttled_power(n, g, d) if g.throttled else d

    def _dc_w(self, n: Node) -> float:
        if not self._live_psus(n):
            return 0.0
        if n.host_state == HOST_OFF:
            return n.standby_w
        if n.host_state == HOST_POWERING_ON:
            return n.standby_w + self.params.power.powering_on_w
        return n.base_w + sum(self._gpu_power_w(n, i, True) for i in range(len(n.gpu_state)))

    def _input_for_dc(self, n: Node, dc: float, live: list[Psu]) -> float:
        share = dc / len(live)
        return sum(share / psu_efficiency(share / p.rated_w, self.params.psu.efficiency_curve) for p in live)

    def _psu_input_w(self, n: Node, psu: Psu, memo: dict[int, float] | None = None) -> float:
        """``memo`` (node id -> DC load) lets a sum over many outlets compute each node's load
        once instead of once per PSU (an analyzer reading covers every outlet of a feed)."""
        live = self._live_psus(n)
        if psu not in live:
            return 0.0
        if memo is None:
            dc = self._dc_w(n)
        else:
            dc = memo.get(id(n))
            if dc is None:
                dc = memo[id(n)] = self._dc_w(n)
        share = dc / len(live)
        return share / psu_efficiency(share / psu.rated_w, self.params.psu.efficiency_curve)

    def _outlet_w(self, pdu: str, outlet: int, memo: dict[int, float] | None = None) -> float:
        d = self._pdus[pdu]
        o = d.outlets[outlet]
        if not o.on or o.psu is None or not self._feed_up[d.feed]:
            return 0.0
        node, psu = o.psu
        n = self._nodes[node]
        return self._psu_input_w(n, next(p for p in n.psus if p.name == psu), memo)

    def _pf(self, power_w: float) -> float:
        psu = self.params.psu
        return psu.pf_loaded if power_w > psu.pf_threshold_w else psu.pf_light

    def _outlet_a(self, pdu: str, outlet: int, memo: dict[int, float] | None = None) -> float:
        d = self._pdus[pdu]
        p = self._outlet_w(pdu, outlet, memo)
        steady = p / (d.voltage_v * self._pf(p)) if p else 0.0
        o, tau = d.outlets[outlet], self.params.psu.inrush_tau_s
        if o.inrush_at_s is not None and tau > 0 and o.on and self._feed_up[d.feed]:
            x = (self._t - o.inrush_at_s) / tau
            if x < 50:
                steady += max(o.inrush_peak_a - steady, 0.0) * math.exp(-x)
        return steady

    def _pdu_w(self, pdu: str, memo: dict[int, float] | None = None) -> float:
        d = self._pdus[pdu]
        if not self._feed_up[d.feed]:
            return 0.0
        memo = {} if memo is None else memo
        return d.self_power_w + sum(self._outlet_w(pdu, i, memo) for i in d.outlets)

    def node_is_up(self, node: str) -> bool:
        """Host running: host power state On (and so at least one working PSU has input)."""
        with self.lock:
            self._update()
            n = self._nodes[node]
            return n.host_state == HOST_ON and bool(self._live_psus(n))

    def node_dc_power_w(self, node: str) -> float:
        with self.lock:
            self._update()
            return self._dc_w(self._nodes[node])

    def gpu_power_w(self, node: str, gpu: int) -> float:
        with self.lock:
            self._update()
            return self._gpu_power_w(self._nodes[node], gpu)

    def gpu_utilization(self, node: str, gpu: int) -> float:
        """The utilisation the GPU actually runs at (0 while the OS is not up)."""
        with self.lock:
            self._update()
            return self._gpu_util(self._nodes[node], gpu)

    def psu_input_power_w(self, node: str, psu_name: str) -> float:
        """AC power a PSU draws from its outlet: its share of the DC load over its efficiency."""
        with self.lock:
            self._update()
            n = self._nodes[node]
            return self._psu_input_w(n, next(p for p in n.psus if p.name == psu_name))

    def psu_status(self, node: str, psu_name: str) -> str:
        """OK | NoInput | Failed."""
        with self.lock:
            self._update()
            return self._psu_status(next(p for p in self._nodes[node].psus if p.name == psu_name))

    def node_input_power_w(self, node: str) -> float:
        with self.lock:
            self._update()
            n = self._nodes[node]
            memo: dict[int, float] = {}
            return sum(self._psu_input_w(n, p, memo) for p in n.psus)

    def outlet_power_w(self, pdu: str, outlet: int) -> float:
        with self.lock:
            self._update()
            return self._outlet_w(pdu, outlet)

    def power_factor(self, power_w: float) -> float:
        """PSUs with active PFC: about 0.99 under load, worse when lightly loaded."""
        return self._pf(power_w)

    def outlet_current_a(self, pdu: str, outlet: int) -> float:
        """RMS current, including the decaying inrush transient after the outlet switched on."""
        with self.lock:
            self._update()
            return self._outlet_a(pdu, outlet)

    def outlet_inrush_peak_a(self, pdu: str, outlet: int) -> float:
        """Peak current of the outlet's last inrush (0 if it never switched on in the model)."""
        with self.lock:
            self._update()
            return self._pdus[pdu].outlets[outlet].inrush_peak_a

    def outlet_last_on_s(self, pdu: str, outlet: int) -> float | None:
        """Virtual time the outlet last switched off -> on (None: on since the start)."""
        with self.lock:
            self._update()
            return self._pdus[pdu].outlets[outlet].last_on_s

    def pdu_power_w(self, pdu: str) -> float:
        with self.lock:
            self._update()
            return self._pdu_w(pdu)

    def pdu_phase_power_w(self, pdu: str, phase: int) -> float:
        """Power on one of the PDU's three phases (its own consumption split evenly)."""
        with self.lock:
            self._update()
            d = self._pdus[pdu]
            if not self._feed_up[d.feed]:
                return 0.0
            return d.self_power_w / 3 + sum(self._outlet_w(pdu, i) for i, o in d.outlets.items() if o.phase == phase)

    def pdu_phase_current_a(self, pdu: str, phase: int) -> float:
        with self.lock:
            self._update()
            d = self._pdus[pdu]
            if not self._feed_up[d.feed]:
                return 0.0
            own = d.self_power_w / 3 / (d.voltage_v * self._pf(0.0))
            return own + sum(self._outlet_a(pdu, i) for i, o in d.outlets.items() if o.phase == phase)

    def feed_power_w(self, feed: str) -> float:
        with self.lock:
            self._update()
            memo: dict[int, float] = {}
            return sum(self._pdu_w(name, memo) for name, d in self._pdus.items() if d.feed == feed)

    # ---- sequencing state -------------------------------------------------------------------
    def bmc_ready(self, node: str) -> bool:
        with self.lock:
            self._update()
            return self._nodes[node].bmc_state == BMC_READY

    def bmc_state(self, node: str) -> str:
        """Off | Booting | Ready."""
        with self.lock:
            self._update()
            return self._nodes[node].bmc_state

    def host_state(self, node: str) -> str:
        """Off | PoweringOn | On."""
        with self.lock:
            self._update()
            return self._nodes[node].host_state

    def os_up(self, node: str) -> bool:
        with self.lock:
            self._update()
            return self._nodes[node].os_up

    # ---- thermal ----------------------------------------------------------------------------
    def gpu_temperature_c(self, node: str, gpu: int | None = None) -> float:
        """A GPU's temperature; without ``gpu``, the hottest GPU of the node."""
        with self.lock:
            self._update()
            states = self._nodes[node].gpu_state
            if gpu is not None:
                return states[gpu].temp_c
            return max((g.temp_c for g in states), default=self._ambient_c)

    def gpu_event_reasons(self, node: str, gpu: int) -> int:
        """nvidia-smi clocks_event_reasons mask: GpuIdle 0x1, SwPowerCap 0x4, SwThermal 0x20, HwThermal 0x40."""
        with self.lock:
            self._update()
            return self._event_mask(self._nodes[node], gpu)

    def gpu_readings(self, node: str) -> list[tuple[float, float, int, float]]:
        """(power W, utilisation 0..1, clocks-event mask, temperature C) of every GPU of ``node``,
        all at one instant: what one nvidia-smi query reads (one lock and update, not 4 per GPU)."""
        with self.lock:
            self._update()
            n = self._nodes[node]
            has_input = bool(self._live_psus(n))
            return [
                (self._gpu_power_w(n, i, has_input), self._gpu_util(n, i), self._event_mask(n, i, has_input), g.temp_c)
                for i, g in enumerate(n.gpu_state)
            ]

    def _event_mask(self, n: Node, gpu: int, has_input: bool | None = None) -> int:
        g = n.gpu_state[gpu]
        if n.host_state != HOST_ON or not (self._live_psus(n) if has_input is None else has_input):
            return 0
        mask = 0
        if self._gpu_util(n, gpu) < 0.01:
            mask |= REASON_GPU_IDLE
        if n.power_cap_w is not None and n.cap_factor < 0.999:
            mask |= REASON_SW_POWER_CAP
        if g.throttled and self._gpu_demand_w(n, gpu) * n.cap_factor > self._p_thermal_w(n, g) + 1e-9:
            mask |= REASON_SW_THERMAL
        if g.temp_c > self.params.thermal.gpu_hw_slowdown_c:
            mask |= REASON_HW_THERMAL
        return mask

    def _fan_duty(self, n: Node) -> float:
        if n.host_state == HOST_OFF or not self._live_psus(n):
            return 0.0
        if n.host_state == HOST_POWERING_ON or n.failed_fans:
            return 100.0
        hottest = max((g.temp_c for g in n.gpu_state), default=self._ambient_c)
        return _interp(self.params.fans.curve, hottest)

    def fan_speed_percent(self, node: str) -> float:
        """Duty of the node's working fans (the curve of the hottest GPU; 100 % if a fan failed)."""
        with self.lock:
            self._update()
            return self._fan_duty(self._nodes[node])

    def fan_rpm(self, node: str, fan: int) -> int:
        """RPM of fan ``fan`` (1-based); 0 for a failed fan."""
        with self.lock:
            self._update()
            n = self._nodes[node]
            if not 1 <= fan <= n.fans:
                raise KeyError(f"{node} has fans 1..{n.fans}, not {fan}")
            if fan in n.failed_fans:
                return 0
            return round(self.params.fans.max_rpm * self._fan_duty(n) / 100.0)

    def _airflow_m3_s(self, n: Node) -> float:
        fp = self.params.fans
        duty = self._fan_duty(n)
        working = (n.fans - len(n.failed_fans)) / max(n.fans, 1)
        return max(fp.max_airflow_m3_s * duty / 100.0 * working, fp.standby_airflow_m3_s)

    def node_outlet_temperature_c(self, node: str) -> float:
        """Exhaust air: inlet + P / (airflow x rho x c_p), airflow from the fan duty."""
        with self.lock:
            self._update()
            n = self._nodes[node]
            return self._ambient_c + self._dc_w(n) / (self._airflow_m3_s(n) * _AIR_RHO_CP)

    # ---- integration ------------------------------------------------------------------------
    def _integrate(self, dt: float) -> None:
        for n in self._nodes.values():
            self._integrate_node(n, dt)
        for sw in self._switches.values():
            for port in sw.ports:
                if dt > 0:
                    self._integrate_port(port, dt)

    def _cap_target(self, n: Node, live: list[Psu]) -> float:
        """GPU power scale that brings the node's input power a margin below its limit."""
        assert n.power_cap_w is not None
        goal = n.power_cap_w * (1.0 - self.params.timing.power_cap_margin)
        lo, hi = 0.0, sum(p.rated_w for p in live)
        for _ in range(40):  # input(dc) is monotonic: bisect for the DC that draws ``goal``
            mid = (lo + hi) / 2
            if self._input_for_dc(n, mid, live) > goal:
                hi = mid
            else:
                lo = mid
        demands = [self._gpu_demand_w(n, i) for i in range(len(n.gpu_state))]
        total = sum(demands)
        if total <= 0:
            return 1.0
        floor = min(1.0, sum(min(self.params.power.gpu_min_w, d) for d in demands) / total)
        return min(1.0, max((lo - n.base_w) / total, floor))

    def _integrate_node(self, n: Node, dt: float) -> None:
        live = self._live_psus(n)
        on = n.host_state == HOST_ON and bool(live)
        target = self._cap_target(n, live) if on and n.power_cap_w is not None else 1.0
        tau = n.cap_tau_s * n.cap_slowdown
        t = 0.0
        while True:
            rem = dt - t
            if tau <= 0 or rem <= 0 or abs(n.cap_factor - target) < 1e-9:
                if tau <= 0 or abs(n.cap_factor - target) < 1e-9:
                    n.cap_factor = target
                self._integrate_gpus(n, max(rem, 0.0), n.cap_factor, on, self._t + t)
                return
            h = min(rem, tau)
            a = math.exp(-h / tau)
            f0 = n.cap_factor
            average = target + (f0 - target) * tau / h * (1.0 - a)  # exact mean over the substep
            self._integrate_gpus(n, h, average, on, self._t + t)
            n.cap_factor = target + (f0 - target) * a
            t += h

    def _integrate_gpus(self, n: Node, dt: float, factor: float, on: bool, t0: float) -> None:
        th = self.params.thermal
        tau, limit = th.gpu_tau_s, th.gpu_slowdown_c
        for i, g in enumerate(n.gpu_state):
            r = self._r_th(n, g)
            base = self._ambient_c + g.delta_c
            d = self._gpu_demand_w(n, i) * factor if on else 0.0
            t_ss = base + r * d
            if not on or t_ss <= limit:
                if g.throttled and on:
                    self._log(n, SEV_OK, "SensorEvent.1.0.ReadingBelowUpperCautionThreshold",
                              f"GPU{i} temperature back below {limit:.0f} C; throttling ended.", t0)  # fmt: skip
                g.throttled = False
                g.temp_c = _step(g.temp_c, t_ss, dt, tau)
            else:
                remaining = dt
                if not g.throttled:
                    hit = 0.0
                    if g.temp_c < limit:
                        hit = 0.0 if tau <= 0 else tau * math.log((t_ss - g.temp_c) / (t_ss - limit))
                        if remaining < hit:
                            g.temp_c = _step(g.temp_c, t_ss, remaining, tau)
                            self._check_hw(n, i, g, t0 + dt)
                            continue
                        g.temp_c = limit
                        remaining -= hit
                    g.throttled = True
                    self._log(n, SEV_WARNING, "SensorEvent.1.0.ReadingAboveUpperCautionThreshold",
                              f"GPU{i} temperature reached the {limit:.0f} C slowdown limit; clocks reduced.",
                              t0 + hit)  # fmt: skip
                p = self._throttled_power(n, g, d)
                g.temp_c = _step(g.temp_c, base + r * p, remaining, tau)
            self._check_hw(n, i, g, t0 + dt)

    def _check_hw(self, n: Node, i: int, g: GpuState, at: float) -> None:
        hw = self.params.thermal.gpu_hw_slowdown_c
        hot = g.temp_c > hw
        if hot and not g.hw_hot:
            message = f"GPU{i} temperature {g.temp_c:.1f} C above the {hw:.0f} C hardware slowdown limit."
            self._log(n, SEV_CRITICAL, "SensorEvent.1.0.ReadingAboveUpperCriticalThreshold", message, at)
        g.hw_hot = hot

    def _integrate_port(self, port: Port, dt: float) -> None:
        if not port.oper_up:
            return
        net = self.params.network
        util = 0.0
        if port.peer is not None and port.peer[0] in self._nodes:
            n = self._nodes[port.peer[0]]
            if n.host_state == HOST_ON and n.os_up:
                util = n.utilization
        rate_bps = net.idle_rate_bps + util * net.load_fraction * port.speed_mbps * 1e6
        bits = rate_bps * dt
        ber = net.healthy_ber if port.ber is None else port.ber
        unc = net.uncorrectable_fraction if port.uncorrectable_fraction is None else port.uncorrectable_fraction
        errors = bits * ber
        self._count(port, "out_octets", bits / 8)
        self._count(port, "in_octets", bits / 8 * 0.98)
        self._count(port, "fec_corrected", errors * (1 - unc))
        self._count(port, "fec_uncorrected", errors * unc)
        self._count(port, "in_errors", errors * unc)

    @staticmethod
    def _count(port: Port, name: str, amount: float) -> None:
        total = port.residue[name] + amount
        whole = math.floor(total)
        port.residue[name] = total - whole
        port.counters[name] = (port.counters[name] + whole) % COUNTER_WRAP

    # ---- network ----------------------------------------------------------------------------
    def _port(self, switch: str, port: str | int) -> Port:
        for p in self._switches[switch].ports:
            if p.name == port or p.index == port:
                return p
        raise KeyError(f"no port {port!r} on {switch}")

    def port_oper_up(self, switch: str, port: str | int) -> bool:
        with self.lock:
            self._update()
            return self._port(switch, port).oper_up

    def port_counters(self, switch: str, port: str | int) -> dict[str, int]:
        """64-bit counters (wrap at 2**64): in_octets, out_octets, in_errors, fec_corrected, fec_uncorrected."""
        with self.lock:
            self._update()
            return dict(self._port(switch, port).counters)

    def set_port_counters(self, switch: str, port: str | int, **values: int) -> None:
        """Preset counters (e.g. near 2**64 to exercise a consumer's wrap handling)."""
        with self.lock:
            self._update()
            p = self._port(switch, port)
            for name, value in values.items():
                if name not in p.counters:
                    raise KeyError(f"no counter {name!r} (have {', '.join(p.counters)})")
                p.counters[name] = value % COUNTER_WRAP

    # ---- inventory and events -----------------------------------------------------------------
    def firmware(self, device: str) -> dict[str, str]:
        """Firmware version per component of a device (node, BMC, PDU, switch, analyzer)."""
        with self.lock:
            self._update()
            return dict(self._firmware[device])

    def baseline_firmware(self, device: str) -> dict[str, str]:
        return dict(self._baseline[device])

    def _set_firmware(self, device: str, component: str, version: str) -> None:
        self._firmware[device][component] = version
        kind = self._device_kind[device]
        if component != _MAIN_FIRMWARE[kind]:
            return
        if kind == "node":
            n = self._nodes[device]
            n.info = dataclasses.replace(n.info, firmware=version)
        elif kind == "bmc":
            n = next(x for x in self._nodes.values() if x.bmc == device)
            n.bmc_info = dataclasses.replace(n.bmc_info, firmware=version)
        else:
            table: dict[str, Any] = {"pdu": self._pdus, "switch": self._switches, "analyzer": self._analyzers}[kind]
            table[device].info = dataclasses.replace(table[device].info, firmware=version)

    def sel(self, node: str) -> list[SelEntry]:
        """The node BMC's event log, oldest first (also accepts the BMC's name)."""
        with self.lock:
            self._update()
            return list(self._node_by_any(node).sel)

    def clear_sel(self, node: str) -> None:
        with self.lock:
            self._update()
            self._node_by_any(node).sel.clear()

    def _node_by_any(self, name: str) -> Node:
        if name in self._nodes:
            return self._nodes[name]
        for n in self._nodes.values():
            if n.bmc == name:
                return n
        raise KeyError(f"no node or BMC {name!r}")

    def fault_targets(self) -> set[str]:
        """Every name a fault may target: devices (nodes, BMCs, PDUs, switches, analyzers) and feeds."""
        return set(self._device_kind) | set(self._feed_up)

    # ---- faults -------------------------------------------------------------------------------
    def inject(self, fault: Fault) -> str:
        """Schedule ``fault`` (active from ``start_at``, or now if that has passed); returns its id."""
        with self.lock:
            self._update()
            if fault.id in self._faults:
                raise ValueError(f"fault id {fault.id!r} is already injected")
            self._validate_target(fault)
            self._faults[fault.id] = fault
            start = max(fault.start_at, self._t)
            serial = next(self._seq)  # a cleared and re-injected id must not fire stale events
            self._fault_serial[fault.id] = serial

            def start_fault() -> None:
                if self._fault_serial.get(fault.id) == serial:
                    self._activate(fault.id)

            def end_fault() -> None:
                if self._fault_serial.get(fault.id) == serial:
                    self._deactivate(fault.id)

            self._schedule(start, start_fault)
            if fault.duration_s is not None:
                self._schedule(start + fault.duration_s, end_fault)
            self._changed()
            return fault.id

    def clear_fault(self, fault_id: str) -> None:
        """Remove a fault (undoing its effect if active); unknown ids raise KeyError."""
        with self.lock:
            self._update()
            if fault_id not in self._faults:
                raise KeyError(f"no fault {fault_id!r} (have {sorted(self._faults)})")
            self._deactivate(fault_id)
            del self._faults[fault_id]
            self._fault_serial.pop(fault_id, None)
            self._changed()

    def active_faults(self, device: str | None = None) -> list[Fault]:
        """Active faults, optionally only those on ``device`` (protocol servers act on these)."""
        with self.lock:
            self._update()
            return [f for f in self._active.values() if device is None or f.device == device]

    def injected_faults(self) -> list[Fault]:
        """Every injected fault, pending or active."""
        with self.lock:
            return list(self._faults.values())

    def _validate_target(self, f: Fault) -> None:
        kind = CATALOGUE.get(f.kind)
        if kind is None:
            raise ValueError(f"fault {f.id}: unknown kind {f.kind!r}")

        def bad(msg: str) -> ValueError:
            return ValueError(f"fault {f.id} ({f.kind}): {msg}")

        where = {"node": self._nodes, "pdu": self._pdus, "switch": self._switches, "feed": self._feed_up}
        pool = where.get(kind.target, self._device_kind)
        if f.device not in pool:
            raise bad(f"no {kind.target} {f.device!r} (have {', '.join(sorted(pool))})")
        c = f.component
        if f.kind == "psu_failure" and c not in {p.name for p in self._nodes[f.device].psus}:
            raise bad(f"{f.device} has no PSU {c!r}")
        if f.kind == "fan_failure":
            fans = self._nodes[f.device].fans
            if c not in {f"Fan{i}" for i in range(1, fans + 1)}:
                raise bad(f"{f.device} has fans Fan1..Fan{fans}, not {c!r}")
        if (
            f.kind == "gpu_overheat"
            and c is not None
            and c not in {f"GPU{i}" for i in range(self._nodes[f.device].gpus)}
        ):
            raise bad(f"{f.device} has no GPU {c!r}")
        if f.kind == "bmc_slow_boot" and not float(f.param("extra_s")) >= 0:
            raise bad(f"extra_s must be >= 0, got {f.param('extra_s')!r}")
        if f.kind == "power_cap_slow" and not float(f.param("factor")) > 0:
            raise bad(f"factor must be > 0, got {f.param('factor')!r}")
        if f.kind == "outlet_relay_stuck":
            if not (c or "").isdigit() or int(c or 0) not in self._pdus[f.device].outlets:
                raise bad(f"{f.device} has no outlet {c!r}")
            if f.param("state") not in ("", "on", "off"):
                raise bad(f"state must be on or off, got {f.param('state')!r}")
        if f.kind in ("link_down", "miscabled_port", "link_errors"):
            names = {p.name for p in self._switches[f.device].ports}
            if c not in names:
                raise bad(f"{f.device} has no port {c!r}")
            if f.kind == "miscabled_port" and (f.param("other_port") not in names or f.param("other_port") == c):
                raise bad(f"other_port must be another port of {f.device}, got {f.param('other_port')!r}")
        if f.kind == "firmware_off_baseline" and c is not None and c not in self._firmware[f.device]:
            raise bad(f"{f.device} has no firmware component {c!r} (have {', '.join(self._firmware[f.device])})")

    def _activate(self, fault_id: str) -> None:
        f = self._faults.get(fault_id)
        if f is None or fault_id in self._active:
            return
        self._active[fault_id] = f
        undo: Callable[[], None] = lambda: None  # noqa: E731 - protocol faults only record
        c = f.component
        if f.kind == "psu_failure":
            psu = next(p for p in self._nodes[f.device].psus if p.name == c)
            psu.failed = True

            def undo() -> None:
                psu.failed = False
        elif f.kind == "fan_failure":
            n, fan = self._nodes[f.device], int((c or "Fan0")[3:])
            n.failed_fans.add(fan)
            self._log(n, SEV_CRITICAL, "SensorEvent.1.0.ReadingBelowLowerFatalThreshold", f"{c} failed (0 RPM).")

            def undo() -> None:
                n.failed_fans.discard(fan)
                self._log(n, SEV_OK, "SensorEvent.1.0.ReadingAboveLowerFatalThreshold", f"{c} is spinning again.")
        elif f.kind == "bmc_slow_boot":
            n, extra = self._nodes[f.device], float(f.param("extra_s"))
            n.bmc_boot_extra_s += extra

            def undo() -> None:
                n.bmc_boot_extra_s -= extra
        elif f.kind == "power_cap_slow":
            n, slow = self._nodes[f.device], float(f.param("factor"))
            n.cap_slowdown *= slow

            def undo() -> None:
                n.cap_slowdown /= slow
        elif f.kind == "gpu_overheat":
            n = self._nodes[f.device]
            gpus = [n.gpu_state[int(c[3:])]] if c else list(n.gpu_state)
            factor, delta = float(f.param("r_th_factor")), float(f.param("delta_c"))
            for g in gpus:
                g.r_th_factor *= factor
                g.delta_c += delta

            def undo() -> None:
                for g in gpus:
                    g.r_th_factor /= factor
                    g.delta_c -= delta
        elif f.kind == "outlet_relay_stuck":
            pdu, idx = f.device, int(c or 0)
            state = f.param("state")
            if state:
                self._switch_outlet(pdu, idx, state == "on", force=True)
            outlet = self._pdus[pdu].outlets[idx]
            outlet.stuck = True

            def undo() -> None:
                outlet.stuck = False
        elif f.kind == "link_down":
            port = self._port(f.device, c or "")
            port.fault_down = True

            def undo() -> None:
                port.fault_down = False
        elif f.kind == "miscabled_port":
            a, b = self._port(f.device, c or ""), self._port(f.device, f.param("other_port"))
            a.peer, b.peer = b.peer, a.peer

            def undo() -> None:
                a.peer, b.peer = b.peer, a.peer
        elif f.kind == "link_errors":
            port = self._port(f.device, c or "")
            port.ber, port.uncorrectable_fraction = float(f.param("ber")), float(f.param("uncorrectable_fraction"))

            def undo() -> None:
                port.ber = port.uncorrectable_fraction = None
        elif f.kind == "firmware_off_baseline":
            device = f.device
            component = c or _MAIN_FIRMWARE[self._device_kind[device]]
            baseline = self._baseline[device][component]
            self._set_firmware(device, component, f.param("version") or f"{baseline}-offbaseline")

            def undo() -> None:
                self._set_firmware(device, component, baseline)
        elif f.kind == "feed_loss":
            feed = f.device
            self._feed_up[feed] = False

            def undo() -> None:
                self._feed_up[feed] = True
                for d in self._pdus.values():
                    if d.feed == feed:
                        for o in d.outlets.values():
                            if o.on:
                                self._record_inrush(o)

        self._undo[fault_id] = undo

    def _deactivate(self, fault_id: str) -> None:
        if self._active.pop(fault_id, None) is not None:
            self._undo.pop(fault_id)()

    # ---- what devices read (true value through the device's meter) ------------------------
    def pdu_reading_outlet_w(self, pdu: str, outlet: int) -> float:
        with self.lock:
            return self._pdus[pdu].meter.read(self.outlet_power_w(pdu, outlet))

    def pdu_reading_outlet_a(self, pdu: str, outlet: int) -> float:
        with self.lock:
            return self._pdus[pdu].meter.read(self.outlet_current_a(pdu, outlet))

    def pdu_reading_total_w(self, pdu: str) -> float:
        with self.lock:
            return self._pdus[pdu].meter.read(self.pdu_power_w(pdu))

    def bmc_reading_power_w(self, node: str) -> float:
        with self.lock:
            return self._nodes[node].bmc_meter.read(self.node_input_power_w(node))

    def analyzer_reading(self, analyzer: str) -> tuple[float, float, float, float]:
        """(voltage V, current A, active power W, power factor) on the analyzer's feeds."""
        with self.lock:
            self._update()
            a = self._analyzers[analyzer]
            memo: dict[int, float] = {}
            power = sum(self._pdu_w(name, memo) for name, d in self._pdus.items() if d.feed in a.feeds)
            pf = self._pf(power / max(len(self._nodes), 1))
            live = any(self._feed_up[f] for f in a.feeds)
            voltage = a.meter.read(a.voltage_v) if live else 0.0
            current = a.meter.read(power / (a.voltage_v * pf)) if power else 0.0
            return voltage, current, a.meter.read(power), pf
