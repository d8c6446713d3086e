"""One physical model of a rack, read by every simulated device.

Every simulated device (PDU agent, BMC, analyzer, switch) reads the same numbers from here, each
through its own ``Meter`` with that device's accuracy and noise, so that the PDU, the BMC and the
analyzer agree the way real instruments do: within their stated accuracy, not exactly.

Physics in this first model (the reference-rack issue deepens it):
node DC power = base + per GPU (idle + utilisation x (max - idle)) while the host is on, standby
while only the BMC is powered; the DC load is shared equally by the PSUs that have input; each
PSU draws DC / efficiency(load fraction) from its outlet; outlet current = P / (V x PF); a PDU's
total is its outlets plus its own consumption; the analyzer on the rack feed sees both PDUs.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import threading
from dataclasses import dataclass, field

from drivers.sim.clock import SimClock

# 80 PLUS Titanium-like efficiency at (load fraction, efficiency) points; interpolated linearly.
PSU_EFFICIENCY_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.80),
    (0.10, 0.90),
    (0.20, 0.94),
    (0.50, 0.96),
    (1.00, 0.94),
)


def psu_efficiency(load_fraction: float) -> float:
    """Efficiency of a PSU at a fraction of its rating (clamped to the curve's ends)."""
    x = min(max(load_fraction, 0.0), 1.0)
    for (x0, e0), (x1, e1) in itertools.pairwise(PSU_EFFICIENCY_CURVE):
        if x <= x1:
            return e0 + (e1 - e0) * (x - x0) / (x1 - x0)
    return PSU_EFFICIENCY_CURVE[-1][1]


def _stable_seed(*parts: object) -> int:
    """A seed from names, stable across processes (``hash()`` is salted per process)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


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


@dataclass
class Psu:
    name: str
    feed: str
    pdu: str
    outlet: int
    rated_w: float = 3000.0


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
    host_on: bool = True
    utilization: float = 0.0
    bmc_meter: Meter = field(default_factory=lambda: Meter(0.03, 0))


@dataclass
class Outlet:
    index: int
    name: str
    on: bool = True
    psu: tuple[str, str] | None = None  # (node, psu name)


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

    @property
    def oper_up(self) -> bool:
        return self.admin_up and self.peer is not None


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


@dataclass(frozen=True)
class RackSize:
    """How big a simulated rack to build."""

    nodes: int = 4
    psus_per_node: int = 2
    gpus_per_node: int = 8
    switch_ports: int = 32
    seed: int = 1


class RackModel:
    """The state of the whole simulated rack, and the physics that derives readings from it.

    All access goes through methods that take ``lock``: the protocol servers run in threads.
    """

    def __init__(self, size: RackSize = RackSize(), clock: SimClock | None = None) -> None:
        self.size = size
        self.clock = clock or SimClock()
        self.lock = threading.RLock()
        self.ambient_c = 25.0
        self.nodes: dict[str, Node] = {}
        self.pdus: dict[str, Pdu] = {}
        self.switches: dict[str, Switch] = {}
        self.analyzers: dict[str, Analyzer] = {}
        self._build()

    # ---- construction -------------------------------------------------------------------
    def _serial(self, prefix: str, name: str) -> str:
        return f"{prefix}{_stable_seed(self.size.seed, name) % 10**8:08d}"

    def _meter(self, accuracy: float, name: str) -> Meter:
        return Meter(accuracy, _stable_seed(self.size.seed, "meter", name))

    def _build(self) -> None:
        size = self.size
        outlets_per_pdu = max(size.nodes * size.psus_per_node // 2, 1)
        feeds = ("A", "B")
        for feed in feeds:
            name = f"pdu-{feed.lower()}"
            self.pdus[name] = Pdu(
                name=name,
                feed=feed,
                info=DeviceInfo("APC", "AP8886", self._serial("5A", name), "v7.0.4"),
                outlets={i: Outlet(index=i, name=f"Outlet {i}") for i in range(1, outlets_per_pdu + 1)},
                meter=self._meter(0.01, name),
            )
        next_outlet = {feed: 1 for feed in feeds}
        for n in range(1, size.nodes + 1):
            node_name = f"node{n:02d}"
            psus = []
            for p in range(1, size.psus_per_node + 1):
                feed = feeds[(p - 1) % 2]
                pdu = self.pdus[f"pdu-{feed.lower()}"]
                outlet = next_outlet[feed]
                next_outlet[feed] += 1
                psu = Psu(name=f"PSU{p}", feed=feed, pdu=pdu.name, outlet=outlet)
                pdu.outlets[outlet].psu = (node_name, psu.name)
                pdu.outlets[outlet].name = f"{node_name}-{psu.name}"
                psus.append(psu)
            self.nodes[node_name] = Node(
                name=node_name,
                bmc=f"bmc-{node_name}",
                info=DeviceInfo("SimCo", "SC-8GPU-1", self._serial("SN", node_name), "1.4.2"),
                bmc_info=DeviceInfo("SimCo", "SC-BMC", self._serial("BMC", node_name), "2.18.0"),
                psus=psus,
                gpus=size.gpus_per_node,
                bmc_meter=self._meter(0.03, f"bmc-{node_name}"),
            )
        ports = [
            Port(name=f"Ethernet{8 * i}", index=i + 1, speed_mbps=400_000, alias=f"etp{i + 1}")
            for i in range(size.switch_ports)
        ]
        for i, node_name in enumerate(self.nodes):
            if i < len(ports):
                ports[i].peer = (node_name, "eth0")
        self.switches["tor1"] = Switch(
            name="tor1",
            info=DeviceInfo("SONiC", "Mellanox-SN4600C-C64", self._serial("MT", "tor1"), "SONiC.202311.1"),
            ports=ports,
            mgmt_mac="b8:59:9f:00:00:01",
        )
        self.analyzers["analyzer"] = Analyzer(
            name="analyzer",
            info=DeviceInfo("YOKOGAWA", "WT5000", self._serial("91N", "analyzer"), "F1.05"),
            feeds=feeds,
            meter=self._meter(0.001, "analyzer"),
        )

    # ---- state changes --------------------------------------------------------------------
    def set_outlet(self, pdu: str, outlet: int, on: bool) -> None:
        with self.lock:
            self.pdus[pdu].outlets[outlet].on = on

    def set_host_power(self, node: str, on: bool) -> None:
        with self.lock:
            self.nodes[node].host_on = on

    def set_utilization(self, node: str, utilization: float) -> None:
        if not 0.0 <= utilization <= 1.0:
            raise ValueError(f"utilization must be within 0..1, got {utilization}")
        with self.lock:
            self.nodes[node].utilization = utilization

    # ---- true physics ---------------------------------------------------------------------
    def _psu_has_input(self, psu: Psu) -> bool:
        return self.pdus[psu.pdu].outlets[psu.outlet].on

    def node_has_input(self, node: str) -> bool:
        with self.lock:
            return any(self._psu_has_input(p) for p in self.nodes[node].psus)

    def node_is_up(self, node: str) -> bool:
        """Host running: powered on and at least one PSU has input."""
        with self.lock:
            n = self.nodes[node]
            return n.host_on and self.node_has_input(node)

    def node_dc_power_w(self, node: str) -> float:
        with self.lock:
            n = self.nodes[node]
            if not self.node_has_input(node):
                return 0.0
            if not n.host_on:
                return n.standby_w
            per_gpu = n.gpu_idle_w + n.utilization * (n.gpu_max_w - n.gpu_idle_w)
            return n.base_w + n.gpus * per_gpu

    def psu_input_power_w(self, node: str, psu_name: str) -> float:
        """AC power a PSU draws from its outlet: its share of the DC load over its efficiency."""
        with self.lock:
            n = self.nodes[node]
            live = [p for p in n.psus if self._psu_has_input(p)]
            psu = next(p for p in n.psus if p.name == psu_name)
            if psu not in live:
                return 0.0
            share = self.node_dc_power_w(node) / len(live)
            return share / psu_efficiency(share / psu.rated_w)

    def node_input_power_w(self, node: str) -> float:
        with self.lock:
            return sum(self.psu_input_power_w(node, p.name) for p in self.nodes[node].psus)

    def outlet_power_w(self, pdu: str, outlet: int) -> float:
        with self.lock:
            o = self.pdus[pdu].outlets[outlet]
            if not o.on or o.psu is None:
                return 0.0
            return self.psu_input_power_w(*o.psu)

    @staticmethod
    def power_factor(power_w: float) -> float:
        """PSUs with active PFC: about 0.99 under load, worse when lightly loaded."""
        return 0.99 if power_w > 300 else 0.90

    def outlet_current_a(self, pdu: str, outlet: int) -> float:
        with self.lock:
            p = self.outlet_power_w(pdu, outlet)
            return p / (self.pdus[pdu].voltage_v * self.power_factor(p)) if p else 0.0

    def pdu_power_w(self, pdu: str) -> float:
        with self.lock:
            d = self.pdus[pdu]
            return d.self_power_w + sum(self.outlet_power_w(pdu, i) for i in d.outlets)

    def feed_power_w(self, feed: str) -> float:
        with self.lock:
            return sum(self.pdu_power_w(name) for name, d in self.pdus.items() if d.feed == feed)

    def gpu_temperature_c(self, node: str) -> float:
        """Steady-state GPU temperature: inlet plus a thermal resistance times GPU power."""
        with self.lock:
            n = self.nodes[node]
            if not self.node_is_up(node):
                return self.ambient_c
            per_gpu = n.gpu_idle_w + n.utilization * (n.gpu_max_w - n.gpu_idle_w)
            return self.ambient_c + 0.06 * per_gpu

    def node_outlet_temperature_c(self, node: str) -> float:
        """Exhaust air: inlet + P / (mass flow x c_p), with a fixed 0.1 m^3/s of air per node."""
        with self.lock:
            airflow_kg_s = 0.1 * 1.2
            return self.ambient_c + self.node_dc_power_w(node) / (airflow_kg_s * 1005.0)

    # ---- what devices read (true value through the device's meter) ------------------------
    def pdu_reading_outlet_w(self, pdu: str, outlet: int) -> float:
        with self.lock:
            return self.pdus[pdu].meter.read(self.outlet_power_w(pdu, outlet))

    def pdu_reading_outlet_a(self, pdu: str, outlet: int) -> float:
        with self.lock:
            return self.pdus[pdu].meter.read(self.outlet_current_a(pdu, outlet))

    def pdu_reading_total_w(self, pdu: str) -> float:
        with self.lock:
            return self.pdus[pdu].meter.read(self.pdu_power_w(pdu))

    def bmc_reading_power_w(self, node: str) -> float:
        with self.lock:
            return self.nodes[node].bmc_meter.read(self.node_input_power_w(node))

    def analyzer_reading(self, analyzer: str) -> tuple[float, float, float, float]:
        """(voltage V, current A, active power W, power factor) on the analyzer's feeds."""
        with self.lock:
            a = self.analyzers[analyzer]
            power = sum(self.feed_power_w(f) for f in a.feeds)
            pf = self.power_factor(power / max(len(self.nodes), 1))
            voltage = a.meter.read(a.voltage_v)
            current = a.meter.read(power / (a.voltage_v * pf)) if power else 0.0
            return voltage, current, a.meter.read(power), pf
