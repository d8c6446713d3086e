"""Injectable faults of the simulated rack: the catalogue of kinds, and the declarative ``Fault``.

A fault names what breaks (``kind``), where (``device`` and, for most kinds, ``component``), when
(``start_at`` virtual seconds on the simulator clock, optional ``duration_s``) and how
(``params``). ``RackModel.inject(fault)`` applies it, ``RackModel.clear_fault(id)`` removes it;
``rackval.sim.fault_file.load_faults`` reads them from a ``--sim-faults`` file, the control
channel (``rackval.sim.control``) builds them with ``make_fault`` for the ``sim_faults`` fixture.

The catalogue is the single source: each kind is ONE entry that declares its parameters (type,
default, range), what its device and component must be, and its effect on the model. Adding a
fault is adding an entry:

- a *physical* kind is a function decorated with ``@physical(...)``: it changes the model's parts
  (``rackval.sim.physics.parts.ModelParts``) and returns the undo that clears it, so every device
  that reads the model sees the consequence the way real instruments would;
- a *protocol* kind (``_protocol(...)``) changes how one device's server answers (silent, slow,
  malformed ...). The model only records it as active per device
  (``RackModel.active_faults(device)``); each protocol server acts on the ones that concern it.

Validation happens twice, from the same entry: ``check_fault`` (kind, component presence,
parameter names, types, finite values and ranges) when a fault is built or a file is loaded, and
``FaultKind.rack_problems`` (the device is of the right kind, the component exists on it) when
the fault is injected into a rack. Every message names the field and what arrived.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rackval.core.hints import did_you_mean
from rackval.sim.physics.devices import SEV_CRITICAL, SEV_OK

if TYPE_CHECKING:
    from rackval.sim.physics.parts import ModelParts

Undo = Callable[[], None]
Problem = tuple[tuple[str, ...], str]  # (field path, message)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a fault kind: its type, default, meaning and the values it accepts.

    ``required``: no default, the fault must give it. Ranges (``above``, ``at_least``,
    ``at_most``) apply to numbers, which must also be finite; ``choices`` and ``check`` (a
    function returning what is wrong, or None) to any value.
    """

    type: type
    default: Any
    description: str
    required: bool = False
    above: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    choices: tuple[Any, ...] = ()
    check: Callable[[Any], str | None] | None = None

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this parameter, or None."""
        if not _type_ok(value, self.type):
            return f"must be {self.type.__name__}, got {value!r}"
        if self.type in (float, int) and not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if self.above is not None and not value > self.above:
            return f"must be > {self.above:g}, got {value!r}"
        if self.at_least is not None and not value >= self.at_least:
            return f"must be >= {self.at_least:g}, got {value!r}"
        if self.at_most is not None and not value <= self.at_most:
            return f"must be <= {self.at_most:g}, got {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
        return self.check(value) if self.check is not None else None


def _type_ok(value: Any, want: type) -> bool:
    if want is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def _numeric_oid(value: str) -> str | None:
    if value == "" or re.fullmatch(r"\.?\d+(\.\d+)*", value):
        return None
    return f"must be a numeric OID such as 1.3.6.1.2.1.31, got {value!r}"


@dataclass(frozen=True)
class Component:
    """What a kind's ``component`` names, and which names a device of the rack has."""

    meaning: str  # for people: "PSU name (PSU1)"
    noun: str  # for errors: "node01 has no PSU 'PSU9'"
    names: Callable[[ModelParts, str], Collection[str]]  # (parts, device) -> valid names
    required: bool = True


@dataclass(frozen=True)
class FaultKind:
    """A catalogue entry: what the fault targets, its parameters, and (physical) its effect.

    ``target``: node | pdu | switch | feed | cdu | power_shelf | device (any device of the rack).
    ``apply`` changes the model and returns the undo; protocol kinds have none (servers act on them).
    ``check``: problems of the parameters against the rack (e.g. another port of the switch).
    """

    name: str
    target: str
    description: str
    component: Component | None = None
    params: dict[str, ParamSpec] = field(default_factory=dict)
    apply: Callable[[ModelParts, Fault], Undo] | None = None
    check: Callable[[ModelParts, Fault], list[Problem]] | None = None

    @property
    def layer(self) -> str:
        return "protocol" if self.apply is None else "physical"

    def rack_problems(self, parts: ModelParts, f: Fault) -> list[Problem]:
        """Why ``f`` cannot be injected into this rack (device kind, component, parameters)."""
        s = parts.state
        pools: dict[str, Collection[str]] = {
            "node": s.nodes, "pdu": s.pdus, "switch": s.switches, "feed": s.feed_up, "cdu": s.cdus,
            "power_shelf": s.shelves,
        }  # fmt: skip
        pool = pools.get(self.target, s.device_kind)
        if f.device not in pool:
            return [(("device",), f"no {self.target} {f.device!r} ({suggest(f.device, pool)})")]
        c = self.component
        if c is not None and f.component is not None:
            names = c.names(parts, f.device)
            if f.component not in names:
                return [(("component",), f"{f.device} has no {c.noun} {f.component!r} (have {_listing(names)})")]
        return self.check(parts, f) if self.check is not None else []


def _listing(names: Collection[str]) -> str:
    items = list(names)
    if len(items) > 12:
        return f"{', '.join(items[:4])}, ..., {items[-1]} ({len(items)} in all)"
    return ", ".join(items)


def suggest(word: str, names: Collection[str]) -> str:
    """``did you mean 'x'?`` for the closest of ``names``, else what there is (``have ...``)."""
    return did_you_mean(word, names) or f"have {_listing(sorted(names)) or 'none'}"


CATALOGUE: dict[str, FaultKind] = {}


def physical(
    name: str,
    target: str,
    description: str,
    *,
    component: Component | None = None,
    check: Callable[[ModelParts, Fault], list[Problem]] | None = None,
    **params: ParamSpec,
) -> Callable[[Callable[[ModelParts, Fault], Undo]], Callable[[ModelParts, Fault], Undo]]:
    """Register the decorated effect (it changes the model, returns the undo) as fault kind ``name``."""

    def register(apply: Callable[[ModelParts, Fault], Undo]) -> Callable[[ModelParts, Fault], Undo]:
        CATALOGUE[name] = FaultKind(name, target, description, component, params, apply, check)
        return apply

    return register


def _protocol(name: str, description: str, **params: ParamSpec) -> None:
    CATALOGUE[name] = FaultKind(name, "device", description, None, params)


# ---- components a device has ------------------------------------------------------------------
def _psus(parts: ModelParts, device: str) -> list[str]:
    return [p.name for p in parts.state.nodes[device].psus]


def _fans(parts: ModelParts, device: str) -> list[str]:
    return [f"Fan{i}" for i in range(1, parts.state.nodes[device].fans + 1)]


def _gpus(parts: ModelParts, device: str) -> list[str]:
    return [f"GPU{i}" for i in range(parts.state.nodes[device].gpus)]


def _outlets(parts: ModelParts, device: str) -> list[str]:
    return [str(i) for i in parts.state.pdus[device].outlets]


def _ports(parts: ModelParts, device: str) -> list[str]:
    return [p.name for p in parts.state.switches[device].ports]


def _firmware_components(parts: ModelParts, device: str) -> list[str]:
    return list(parts.state.firmware[device])


_PORT = Component("port name (Ethernet0)", "port", _ports)


def _other_port(parts: ModelParts, f: Fault) -> list[Problem]:
    other = f.param("other_port")
    if other not in _ports(parts, f.device) or other == f.component:
        return [(("params", "other_port"), f"must be another port of {f.device}, got {other!r}")]
    return []


# ---- physical kinds: the model implements these ---------------------------------------------
@physical("psu_failure", "node", "The PSU stops delivering power; the others carry the load or the node "
          "trips; PSU status Failed; SEL Critical.", component=Component("PSU name (PSU1)", "PSU", _psus))  # fmt: skip
def _psu_failure(parts: ModelParts, f: Fault) -> Undo:
    psu = parts.state.psu(f.device, f.component or "")
    psu.failed = True

    def undo() -> None:
        psu.failed = False

    return undo


@physical("fan_failure", "node", "The fan stops (0 RPM); the others run at 100 %; GPU thermal resistance "
          "rises; SEL Critical.", component=Component("fan name (Fan1)", "fan", _fans))  # fmt: skip
def _fan_failure(parts: ModelParts, f: Fault) -> Undo:
    s, c = parts.state, f.component or ""
    n, fan = s.nodes[f.device], int(c[3:])
    n.failed_fans.add(fan)
    s.log(n, SEV_CRITICAL, "SensorEvent.1.0.ReadingBelowLowerFatalThreshold", f"{c} failed (0 RPM).")

    def undo() -> None:
        n.failed_fans.discard(fan)
        s.log(n, SEV_OK, "SensorEvent.1.0.ReadingAboveLowerFatalThreshold", f"{c} is spinning again.")

    return undo


@physical(
    "gpu_overheat", "node", "Cooling defect on a GPU: thermal resistance multiplied and/or a fixed extra "
    "rise; the GPU throttles (SwThermal 0x20) and, if even minimum power is too hot, HwThermal 0x40.",
    component=Component("GPU name (GPU0); omitted = every GPU", "GPU", _gpus, required=False),
    r_th_factor=ParamSpec(float, 2.5, "multiplier on the GPU's thermal resistance", above=0),
    delta_c=ParamSpec(float, 0.0, "extra temperature rise independent of power (C)"),
)  # fmt: skip
def _gpu_overheat(parts: ModelParts, f: Fault) -> Undo:
    n, c = parts.state.nodes[f.device], f.component
    gpus = [n.gpu_state[int(c[3:])]] if c else list(n.gpu_state)
    factor, delta = float(f.param("r_th_factor")), float(f.param("delta_c"))
    for g in gpus:
        g.r_th_factor *= factor
        g.delta_c += delta

    def undo() -> None:
        for g in gpus:
            g.r_th_factor /= factor
            g.delta_c -= delta

    return undo


@physical(
    "bmc_slow_boot", "node", "The BMC takes longer to boot after its PSUs get input (a slow flash, a "
    "firmware self-test): Redfish answers only after the normal boot time plus extra_s. Seen on a power "
    "cycle; a running BMC is unaffected.",
    extra_s=ParamSpec(float, 60.0, "seconds added to every BMC boot", at_least=0),
)  # fmt: skip
def _bmc_slow_boot(parts: ModelParts, f: Fault) -> Undo:
    n, extra = parts.state.nodes[f.device], float(f.param("extra_s"))
    n.bmc_boot_extra_s += extra

    def undo() -> None:
        n.bmc_boot_extra_s -= extra

    return undo


@physical(
    "power_cap_slow", "node", "The BMC's power-capping loop is slow: a new limit is met only after "
    "`factor` times the CorrectionInMs it advertises (firmware bug, a capping loop that polls slowly).",
    factor=ParamSpec(float, 30.0, "multiplier on the capping response time", above=0),
)  # fmt: skip
def _power_cap_slow(parts: ModelParts, f: Fault) -> Undo:
    n, slow = parts.state.nodes[f.device], float(f.param("factor"))
    n.cap_slowdown *= slow

    def undo() -> None:
        n.cap_slowdown /= slow

    return undo


@physical(
    "outlet_relay_stuck", "pdu", "The outlet relay no longer follows commands (welded or open); "
    "switching it is accepted but changes nothing.",
    component=Component("outlet number (3)", "outlet", _outlets),
    state=ParamSpec(str, "", "on | off: the state the relay sticks in (default: as it is)", choices=("", "on", "off")),
)  # fmt: skip
def _outlet_relay_stuck(parts: ModelParts, f: Fault) -> Undo:
    pdu, idx = f.device, int(f.component or 0)
    state = f.param("state")
    if state:
        parts.power.switch_outlet(pdu, idx, state == "on", force=True)
    outlet = parts.state.pdus[pdu].outlets[idx]
    outlet.stuck = True

    def undo() -> None:
        outlet.stuck = False

    return undo


@physical("link_down", "switch", "The link loses signal: oper down although admin up.", component=_PORT)
def _link_down(parts: ModelParts, f: Fault) -> Undo:
    port = parts.state.port(f.device, f.component or "")
    port.fault_down = True

    def undo() -> None:
        port.fault_down = False

    return undo


@physical(
    "miscabled_port", "switch", "The cables of two ports are swapped: each port's peer (LLDP neighbour) "
    "is the other's.", component=_PORT, check=_other_port,
    other_port=ParamSpec(str, None, "the port swapped with component", required=True),
)  # fmt: skip
def _miscabled_port(parts: ModelParts, f: Fault) -> Undo:
    a, b = parts.state.port(f.device, f.component or ""), parts.state.port(f.device, f.param("other_port"))
    a.peer, b.peer = b.peer, a.peer

    def undo() -> None:
        a.peer, b.peer = b.peer, a.peer

    return undo


@physical(
    "link_errors", "switch", "A bad cable/optic: bit errors at the given pre-FEC BER; FEC "
    "corrected/uncorrected and in_errors counters grow.", component=_PORT,
    ber=ParamSpec(float, 1e-6, "pre-FEC bit error ratio", at_least=0, at_most=1),
    uncorrectable_fraction=ParamSpec(float, 1e-3, "fraction of bit errors FEC cannot fix", at_least=0, at_most=1),
)  # fmt: skip
def _link_errors(parts: ModelParts, f: Fault) -> Undo:
    port = parts.state.port(f.device, f.component or "")
    port.ber, port.uncorrectable_fraction = float(f.param("ber")), float(f.param("uncorrectable_fraction"))

    def undo() -> None:
        port.ber = port.uncorrectable_fraction = None

    return undo


@physical(
    "firmware_off_baseline", "device", "A component runs a firmware version other than the baseline.",
    component=Component("firmware component (BIOS, BMC, GPU0, ...); omitted = the device's main firmware",
                        "firmware component", _firmware_components, required=False),
    version=ParamSpec(str, "", "the version reported (default: baseline + '-offbaseline')"),
)  # fmt: skip
def _firmware_off_baseline(parts: ModelParts, f: Fault) -> Undo:
    device, inventory = f.device, parts.inventory
    component = f.component or inventory.main_component(device)
    baseline = parts.state.baseline[device][component]
    inventory.set_firmware(device, component, f.param("version") or f"{baseline}-offbaseline")

    def undo() -> None:
        inventory.set_firmware(device, component, baseline)

    return undo


@physical("feed_loss", "feed", "The feed (device = feed name, e.g. A) loses power: its PDU and every PSU "
          "on it lose input; SEL Warning per PSU.")  # fmt: skip
def _feed_loss(parts: ModelParts, f: Fault) -> Undo:
    feed = f.device
    parts.state.feed_up[feed] = False

    def undo() -> None:
        parts.state.feed_up[feed] = True
        parts.power.feed_restored(feed)

    return undo


# ---- liquid cooling and power shelves ---------------------------------------------------------
def _pumps(parts: ModelParts, device: str) -> list[str]:
    return [p.name for p in parts.state.cdus[device].pumps]


def _rectifiers(parts: ModelParts, device: str) -> list[str]:
    return [r.name for r in parts.state.shelves[device].rectifiers]


def _bbus(parts: ModelParts, device: str) -> list[str]:
    return [b.name for b in parts.state.shelves[device].bbus]


_PUMP = Component("pump name (Pump1)", "pump", _pumps)


def _liquid_node(parts: ModelParts, f: Fault) -> list[Problem]:
    if f.device not in parts.state.cold_plates:
        return [(("device",), f"{f.device} has no cold plate (the design is not liquid cooled)")]
    return []


def _leak_site(parts: ModelParts, f: Fault) -> list[Problem]:
    s = parts.state
    if f.device not in s.cold_plates and f.device not in s.cdus:
        sites = [*s.cold_plates, *s.cdus]
        where = _listing(sites) or "none"
        return [(("device",), f"{f.device} has no coolant to leak (liquid-cooled nodes and CDUs: {where})")]
    return []


@physical("pump_failure", "cdu", "The CDU pump stops (failed); the others carry the loop through their "
          "check valves, at the flow the remaining pump curve gives.", component=_PUMP)  # fmt: skip
def _pump_failure(parts: ModelParts, f: Fault) -> Undo:
    pump = next(p for p in parts.state.cdus[f.device].pumps if p.name == f.component)
    pump.failed = True

    def undo() -> None:
        pump.failed = False

    return undo


@physical(
    "pump_degraded", "cdu", "A weak pump (worn impeller, air in the volute): its head is scaled by "
    "head_factor; loop flow drops, and below the others' head its check valve closes.", component=_PUMP,
    head_factor=ParamSpec(float, 0.5, "fraction of the pump's healthy head", above=0, at_most=1),
)  # fmt: skip
def _pump_degraded(parts: ModelParts, f: Fault) -> Undo:
    pump = next(p for p in parts.state.cdus[f.device].pumps if p.name == f.component)
    factor = float(f.param("head_factor"))
    pump.head_factor *= factor

    def undo() -> None:
        pump.head_factor /= factor

    return undo


@physical(
    "cold_plate_clogged", "node", "The node tray's cold plates are clogged (debris, corrosion): their "
    "hydraulic resistance is multiplied; that node's flow drops and its GPUs run hotter (and throttle).",
    check=_liquid_node,
    factor=ParamSpec(float, 10.0, "multiplier on the plates' hydraulic resistance", at_least=1),
)  # fmt: skip
def _cold_plate_clogged(parts: ModelParts, f: Fault) -> Undo:
    plate, factor = parts.state.cold_plates[f.device], float(f.param("factor"))
    plate.resistance_factor *= factor

    def undo() -> None:
        plate.resistance_factor /= factor

    return undo


@physical(
    "coolant_leak", "device", "Coolant leaks at a node tray (device = the node) or in the CDU (device = "
    "the CDU): that place's leak detector reads Critical and the reservoir drains at rate_lpm; when it is "
    "empty the pumps run dry (no flow). Clearing it refills the reservoir.", check=_leak_site,
    rate_lpm=ParamSpec(float, 0.5, "coolant lost (L/min)", at_least=0),
)  # fmt: skip
def _coolant_leak(parts: ModelParts, f: Fault) -> Undo:
    s = parts.state
    cdu = s.cdus.get(f.device) or next(iter(s.cdus.values()))
    name = f"{f.device}-tray" if f.device in s.cold_plates else "CDU-Moisture"
    detector = next(d for d in cdu.detectors if d.name == name)
    rate = float(f.param("rate_lpm"))
    detector.wet = True
    cdu.leak_lpm += rate

    def undo() -> None:
        detector.wet = False
        cdu.leak_lpm = max(cdu.leak_lpm - rate, 0.0)
        cdu.reservoir_l = cdu.reservoir_capacity_l

    return undo


@physical(
    "supply_temperature_drift", "cdu", "The CDU's supply temperature control drifts (a sensor offset, a "
    "sticking valve): supply settles at setpoint + offset_c with the control's time constant, while the "
    "setpoint reads unchanged.",
    offset_c=ParamSpec(float, 8.0, "how far the supply settles from its setpoint (C)"),
)  # fmt: skip
def _supply_temperature_drift(parts: ModelParts, f: Fault) -> Undo:
    cdu, offset = parts.state.cdus[f.device], float(f.param("offset_c"))
    cdu.drift_c += offset

    def undo() -> None:
        cdu.drift_c -= offset

    return undo


@physical("rectifier_failure", "power_shelf", "A power-shelf rectifier (PSU) fails: the others share the "
          "busbar load; without enough of them the BBUs discharge.",
          component=Component("rectifier name (PSU1)", "rectifier", _rectifiers))  # fmt: skip
def _rectifier_failure(parts: ModelParts, f: Fault) -> Undo:
    rect = next(r for r in parts.state.shelves[f.device].rectifiers if r.name == f.component)
    rect.failed = True

    def undo() -> None:
        rect.failed = False

    return undo


@physical(
    "bbu_capacity_reduced", "power_shelf", "Aged BBU cells: the BBU's usable energy is its rating times "
    "state_of_health, so holdup at a given load shrinks by that factor.",
    component=Component("BBU name (BBU1); omitted = every BBU of the shelf", "BBU", _bbus, required=False),
    state_of_health=ParamSpec(float, 0.3, "fraction of the rated energy left", above=0, at_most=1),
)  # fmt: skip
def _bbu_capacity_reduced(parts: ModelParts, f: Fault) -> Undo:
    shelf, soh = parts.state.shelves[f.device], float(f.param("state_of_health"))
    bbus = [b for b in shelf.bbus if f.component in (None, b.name)]
    for b in bbus:
        b.capacity_factor *= soh

    def undo() -> None:
        for b in bbus:
            b.capacity_factor /= soh

    return undo


# ---- protocol: recorded for the device's server to act on -----------------------------------
_protocol("device_silent", "The device answers nothing (requests time out).")
_protocol("device_slow", "Every answer is delayed.",
          delay_s=ParamSpec(float, 2.0, "added delay per request (s)", at_least=0),
          jitter_s=ParamSpec(float, 0.0, "uniform extra delay 0..jitter_s (s)", at_least=0))  # fmt: skip
_protocol("malformed_reply", "Answers are corrupted.",
          probability=ParamSpec(float, 1.0, "fraction of replies affected", at_least=0, at_most=1),
          mode=ParamSpec(str, "truncate", "truncate | garbage | wrong_length",
                         choices=("truncate", "garbage", "wrong_length")))  # fmt: skip
_protocol("auth_failure", "Valid credentials are refused.")
_protocol("session_exhaustion", "No new session can be opened (Redfish 503 / SSH refused) beyond max_sessions.",
          max_sessions=ParamSpec(int, 0, "sessions still allowed", at_least=0))  # fmt: skip
_OID_PREFIX = ParamSpec(str, "", "only OIDs under this prefix (default: every OID)", check=_numeric_oid)
_protocol("snmp_no_such_object", "The agent answers noSuchObject.", oid_prefix=_OID_PREFIX)
_protocol("snmp_wrong_type", "The agent answers with a wrong ASN.1 type.", oid_prefix=_OID_PREFIX)
_protocol("scpi_error", "The instrument queues an SCPI error.",
          code=ParamSpec(int, -222, "SCPI error code"),
          message=ParamSpec(str, "Data out of range", "SCPI error message"),
          command=ParamSpec(str, "", "only for commands starting with this (default: every command)"))  # fmt: skip
_protocol("ssh_disconnect", "The SSH server drops the connection.",
          after_commands=ParamSpec(int, 0, "commands answered before the drop", at_least=0))  # fmt: skip

PHYSICAL_KINDS = frozenset(k for k, v in CATALOGUE.items() if v.layer == "physical")
PROTOCOL_KINDS = frozenset(k for k, v in CATALOGUE.items() if v.layer == "protocol")

_ids = itertools.count(1)


@dataclass(frozen=True)
class Fault:
    """One fault to inject. ``params`` are completed with the kind's defaults by ``make_fault``."""

    kind: str
    device: str
    component: str | None = None
    start_at: float = 0.0
    duration_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def param(self, name: str) -> Any:
        spec = CATALOGUE[self.kind].params[name]
        return self.params.get(name, spec.default)


def check_fault(
    kind: str, component: str | None, params: dict[str, Any], start_at: float, duration_s: float | None
) -> list[Problem]:
    """Problems with a fault's fields as (field path, message); empty when it is valid."""
    spec = CATALOGUE.get(kind)
    if spec is None:
        hint = did_you_mean(kind, CATALOGUE) or f"known: {', '.join(sorted(CATALOGUE))}"
        return [(("kind",), f"unknown fault kind {kind!r} ({hint})")]
    problems: list[Problem] = []
    if not _type_ok(start_at, float) or not math.isfinite(start_at):
        problems.append((("start_at",), f"must be a finite number of virtual seconds, got {start_at!r}"))
    elif start_at < 0:
        problems.append((("start_at",), "must be >= 0 (virtual seconds since the rack started)"))
    if duration_s is not None and (not _type_ok(duration_s, float) or not math.isfinite(duration_s)):
        problems.append((("duration_s",), f"must be a finite number of seconds, got {duration_s!r}"))
    elif duration_s is not None and duration_s <= 0:
        problems.append((("duration_s",), "must be > 0"))
    if spec.component is None and component is not None:
        problems.append((("component",), f"{kind} takes no component"))
    if spec.component is not None and spec.component.required and not component:
        problems.append((("component",), f"{kind} needs a component: {spec.component.meaning}"))
    for name, value in params.items():
        p = spec.params.get(name)
        if p is None:
            hint = did_you_mean(name, spec.params) or f"known: {', '.join(spec.params) or 'none'}"
            problems.append((("params", name), f"unknown parameter of {kind} ({hint})"))
        elif (why := p.problem(value)) is not None:
            problems.append((("params", name), why))
    for name, p in spec.params.items():
        if p.required and name not in params:
            problems.append((("params", name), f"missing required parameter of {kind}: {p.description}"))
    return problems


def make_fault(
    kind: str,
    device: str,
    component: str | None = None,
    *,
    start_at: float = 0.0,
    duration_s: float | None = None,
    id: str | None = None,  # the field is called id in fault files
    **params: Any,
) -> Fault:
    """Build a validated ``Fault`` with defaults filled in; raises ValueError naming the problem."""
    problems = check_fault(kind, component, params, start_at, duration_s)
    if problems:
        raise ValueError(f"fault {kind} on {device}: " + "; ".join(f"{'.'.join(f)}: {m}" for f, m in problems))
    spec = CATALOGUE[kind]
    full = {name: params.get(name, p.default) for name, p in spec.params.items()}
    return Fault(kind, device, component, float(start_at), duration_s, full, id or f"fault-{next(_ids)}")
