"""The simulated rack's devices as data, and the small physics helpers every part uses.

Dataclasses for nodes (with their PSUs and GPUs), PDUs (with outlets), switches (with ports) and
analyzers; ``Meter``, a device's view of a true value (its accuracy and noise); the state codes
the model reports; linear interpolation on curves, the PSU efficiency curve and the exact
first-order lag step.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import threading
from dataclasses import dataclass, field

from rackval.sim.reference import PSU_EFFICIENCY_CURVE

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

COUNTERS = ("in_octets", "out_octets", "in_errors", "fec_corrected", "fec_uncorrected")


def interp(curve: tuple[tuple[float, float], ...], x: float) -> float:
    """Linear interpolation on (x, y) points, clamped to the ends."""
    if x <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return curve[-1][1]


def psu_efficiency(load_fraction: float, curve: tuple[tuple[float, float], ...] = PSU_EFFICIENCY_CURVE) -> float:
    """Efficiency of a PSU at a fraction of its rating (clamped to the curve's ends)."""
    return interp(curve, min(max(load_fraction, 0.0), 1.0))


def lag_step(x: float, target: float, dt: float, tau: float) -> float:
    """Exact first-order lag step: x(t+dt) = target + (x - target) e^(-dt/tau); tau 0 = instant."""
    if tau <= 0:
        return target
    return target + (x - target) * math.exp(-dt / tau)


def stable_seed(*parts: object) -> int:
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
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    residue: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0.0))

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
