"""What rackval reads from a device, declared once per capability.

Two parts of rackval read devices without changing them: ``rackval probe`` takes one reading of
every capability a driver has, and telemetry samples time series (channels) at a fixed rate.
Both read ``CAPABILITY_READERS``: one row per capability Protocol (checked with ``isinstance``)
holding the probe's one-shot readings and the telemetry channel builder side by side, so a new
capability gets its probe reading and its telemetry channels in one place.

Only readers appear here. OutletSwitch and GpuNode also have destructive methods (switch an
outlet, start load), as do PumpControl and ShelfControl (stop a pump, open a feed); nothing here
calls them. A CDU's loops and pumps, a liquid-cooled node's coolant connectors, leak detectors
and a power shelf's feeds, rectifiers, DC output and batteries each get their own readings and
channels: a list the device has not got (``NotAvailable``) has none, the others still do.

A channel is one time series (``pdu-a/outlet3/power_w``, ``node05/gpu2/temperature_c``,
``tor1/Ethernet8/in_errors``). Channels that come from the same driver call share one *reader*
(``reader(driver) -> {channel name: value}``), so one ``outlets()`` call gives power and current
of every outlet and one ``gpus()`` call gives every GPU's power, temperature, utilisation and
clocks-event mask. A builder asks the device once what it has (outlets, sensors, GPUs, ports),
so channel names are fixed for the run; it raises the DeviceError of a device that does not
answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rackval.core.errors import DeviceError, NotAvailable
from rackval.drivers.capabilities import (
    Bmc,
    CoolingUnit,
    GpuNode,
    LeakDetection,
    LiquidCooledNode,
    NetSwitch,
    OutletSwitch,
    PortCounterSource,
    PowerAnalyzer,
    PowerMeter,
    PowerShelf,
)

Reader = Callable[[Any], Mapping[str, float | None]]
"""``reader(driver)`` -> values of several channels of one device, keyed by channel name."""


@dataclass(frozen=True, eq=False)
class Channel:
    """One time series. ``read`` is the device-level reader it shares with its siblings: the
    sampler calls each distinct reader of a device once per tick. ``wrap_bits`` marks a
    cumulative counter that wraps at ``2**wrap_bits`` (None: a gauge)."""

    name: str
    device: str
    unit: str
    read: Reader
    wrap_bits: int | None = None

    @staticmethod
    def single(name: str, device: str, unit: str, fn: Callable[[Any], float | None]) -> Channel:
        """A channel with its own driver call (``fn(driver) -> value``), for one-off readings."""
        return Channel(name, device, unit, lambda drv: {name: fn(drv)})


@dataclass(frozen=True)
class ProbeReading:
    """One reading the probe takes: ``read(driver)`` (read-only) gives what ``rackval probe
    --json`` prints under ``readings[name]``; ``text(reading)`` is its short table cell."""

    name: str
    read: Callable[[Any], dict[str, Any]]
    text: Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class CapabilityReader:
    """What to read from a driver that implements ``capability``.

    ``channels(driver, device)`` builds its telemetry channels (None: it has none). A reader
    ``superseded_by`` another capability is skipped when the driver has that one too (an
    analyzer's ``read()`` already gives the power a PowerMeter would)."""

    capability: type
    probe: tuple[ProbeReading, ...] = ()
    channels: Callable[[Any, str], list[Channel]] | None = None
    superseded_by: tuple[type, ...] = ()

    def applies_to(self, driver: Any) -> bool:
        return isinstance(driver, self.capability) and not any(isinstance(driver, s) for s in self.superseded_by)


# ---- value helpers ---------------------------------------------------------------------------------
def _slug(text: str) -> str:
    """A sensor name as a channel path element: 'Inlet Temp' -> 'inlet_temp'."""
    return re.sub(r"[^0-9a-z]+", "_", text.strip().lower()).strip("_") or "sensor"


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    return float(value)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _max(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _fmt(value: float | None, unit: str, digits: int = 1) -> str:
    return "?" if value is None else f"{value:.{digits}f} {unit}"


# ---- power (PowerMeter) ------------------------------------------------------------------------------
def _power_channels(drv: Any, device: str) -> list[Channel]:
    """``<device>/power_w``: one ``power_watts()`` call; none for a device whose power is not
    available (asked once; any other failure keeps the channel: its samples record the errors)."""
    try:
        drv.power_watts()
    except NotAvailable:
        return []
    except DeviceError:
        pass
    return [Channel.single(f"{device}/power_w", device, "W", lambda d: d.power_watts())]


POWER = CapabilityReader(
    PowerMeter,
    probe=(ProbeReading("power", lambda d: {"w": _r(d.power_watts())}, lambda r: f"power {_fmt(r['w'], 'W')}"),),
    channels=_power_channels,
    superseded_by=(PowerAnalyzer,),
)


# ---- outlets (OutletSwitch) ----------------------------------------------------------------------------
NOT_AVAILABLE = "not available on this device"


def _ranges(numbers: Iterable[int]) -> str:
    """[1, 2, 3, 5, 7, 8] -> "1-3,5,7-8"."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(n)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def _probe_outlets(drv: Any) -> dict[str, Any]:
    """Every outlet's state; power summed over the outlets that have a meter, and how many do.

    ``total_w`` is None when no outlet reports power: an unmetered PDU reads "not available", never 0 W.
    """
    readings = drv.outlets()
    metered = [o for o in readings if o.power_w is not None]
    on = [o.outlet for o in readings if o.on]
    off = [o.outlet for o in readings if not o.on]
    return {
        "count": len(readings),
        "on": len(on),
        "metered": len(metered),
        "total_w": _r(sum(o.power_w for o in metered)) if metered else None,
        "states": {"on": _ranges(on), "off": _ranges(off)},
    }


def _outlets_text(o: dict[str, Any]) -> str:
    states = "; ".join(f"{k} {v}" for k, v in o.get("states", {}).items() if v)
    text = f"outlets {o['count']} ({states or str(o['on']) + ' on'})"
    if not o.get("metered"):
        return f"{text}; outlet power: {NOT_AVAILABLE}"
    if o["metered"] < o["count"]:
        return f"{text}; {_fmt(o['total_w'], 'W')} ({o['metered']} of {o['count']} outlets metered)"
    return f"{text} {_fmt(o['total_w'], 'W')}"


def _outlet_channels(drv: Any, pdu: str) -> list[Channel]:
    """Per outlet ``<pdu>/outlet<N>/on`` (1/0), and ``/power_w``, ``/current_a`` for the outlets whose
    meters answered when the channels were built (an unmetered outlet has no power channel, so it
    never reads as 0 W): one ``outlets()`` call."""

    def read_outlets(d: Any) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for o in d.outlets():
            base = f"{pdu}/outlet{o.outlet}"
            out[f"{base}/power_w"] = _num(o.power_w)
            out[f"{base}/current_a"] = _num(o.current_a)
            out[f"{base}/on"] = 1.0 if o.on else 0.0
        return out

    channels: list[Channel] = []
    for o in drv.outlets():
        base = f"{pdu}/outlet{o.outlet}"
        if o.power_w is not None:
            channels.append(Channel(f"{base}/power_w", pdu, "W", read_outlets))
        if o.current_a is not None:
            channels.append(Channel(f"{base}/current_a", pdu, "A", read_outlets))
        channels.append(Channel(f"{base}/on", pdu, "", read_outlets))
    return channels


OUTLETS = CapabilityReader(
    OutletSwitch,
    probe=(ProbeReading("outlets", _probe_outlets, _outlets_text),),
    channels=_outlet_channels,
)


# ---- ports and LLDP (NetSwitch) ---------------------------------------------------------------------
def _probe_ports(drv: Any) -> dict[str, Any]:
    found = drv.ports()
    return {"up": sum(1 for p in found if p.oper_up), "total": len(found)}


NETWORK = CapabilityReader(
    NetSwitch,
    probe=(
        ProbeReading("ports", _probe_ports, lambda p: f"ports {p['up']}/{p['total']} up"),
        ProbeReading(
            "lldp", lambda d: {"neighbors": len(d.lldp_neighbors())}, lambda n: f"lldp {n['neighbors']} neighbors"
        ),
    ),
)


# ---- host power state and temperatures (Bmc) ------------------------------------------------------------
def _probe_temperatures(drv: Any) -> dict[str, Any]:
    values = drv.temperatures()
    return {"sensors": len(values), "max_c": _r(_max(values.values()), 1)}


def _temperatures_text(t: dict[str, Any]) -> str:
    if not t["sensors"]:  # no temperature sensor (an IPMI BMC without SDRs): absent, not an error
        return f"temperatures: {NOT_AVAILABLE}"
    return f"max {_fmt(t['max_c'], 'C')}"


def _temperature_channels(drv: Any, bmc: str) -> list[Channel]:
    """``<bmc>/<sensor slug>/temperature_c`` per temperature sensor the BMC reports now (e.g.
    ``bmc-node01/inlet_temp/temperature_c``): one ``temperatures()`` call."""

    def read_temps(d: Any) -> dict[str, float | None]:
        return {f"{bmc}/{_slug(k)}/temperature_c": _num(v) for k, v in d.temperatures().items()}

    channels: list[Channel] = []
    seen: set[str] = set()
    for sensor in drv.temperatures():
        name = f"{bmc}/{_slug(sensor)}/temperature_c"
        if name not in seen:
            seen.add(name)
            channels.append(Channel(name, bmc, "degC", read_temps))
    return channels


BMC = CapabilityReader(
    Bmc,
    probe=(
        ProbeReading("power_state", lambda d: {"state": d.power_state()}, lambda s: f"host {s['state']}"),
        ProbeReading("temperatures", _probe_temperatures, _temperatures_text),
    ),
    channels=_temperature_channels,
)


# ---- a bench power analyzer (PowerAnalyzer) ---------------------------------------------------------------
def _probe_analyzer(drv: Any) -> dict[str, Any]:
    r = drv.read()
    return {"v": _r(r.voltage_v), "a": _r(r.current_a, 3), "w": _r(r.power_w), "pf": _r(r.power_factor, 3)}


def _analyzer_channels(drv: Any, analyzer: str) -> list[Channel]:
    """``<analyzer>/voltage_v``, ``/current_a``, ``/power_w``, ``/power_factor``: one ``read()``."""

    def read(d: Any) -> dict[str, float | None]:
        r = d.read()
        return {
            f"{analyzer}/voltage_v": _num(r.voltage_v),
            f"{analyzer}/current_a": _num(r.current_a),
            f"{analyzer}/power_w": _num(r.power_w),
            f"{analyzer}/power_factor": _num(r.power_factor),
        }

    units = {"voltage_v": "V", "current_a": "A", "power_w": "W", "power_factor": ""}
    return [Channel(f"{analyzer}/{k}", analyzer, u, read) for k, u in units.items()]


ANALYZER = CapabilityReader(
    PowerAnalyzer,
    probe=(
        ProbeReading(
            "analyzer",
            _probe_analyzer,
            lambda a: f"U {_fmt(a['v'], 'V')} I {_fmt(a['a'], 'A', 3)} P {_fmt(a['w'], 'W')}",
        ),
    ),
    channels=_analyzer_channels,
)


# ---- GPUs (GpuNode) -------------------------------------------------------------------------------------
GPU_FIELDS: tuple[tuple[str, str], ...] = (
    ("power_w", "W"),
    ("temperature_c", "degC"),
    ("utilization_pct", "%"),
    ("sm_clock_mhz", "MHz"),
    ("event_reasons", ""),
    ("ecc_uncorrected", "count"),
)


def _probe_gpus(drv: Any) -> dict[str, Any]:
    found = drv.gpus()
    return {"count": len(found), "max_temp_c": _r(_max(g.temperature_c for g in found), 1)}


def gpu_field_channels(drv: Any, node: str, fields: Sequence[tuple[str, str]] = GPU_FIELDS) -> list[Channel]:
    """Per GPU ``<node>/gpu<i>/<field>`` for ``fields`` ((field, unit) pairs of ``GpuTelemetry``;
    ``event_reasons`` is NVML's clocks-event bit mask as a number): one ``gpus()`` call per tick,
    whatever the number of fields."""

    def read(d: Any) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for g in d.gpus():
            for f, _ in fields:
                out[f"{node}/gpu{g.index}/{f}"] = _num(getattr(g, f))
        return out

    return [Channel(f"{node}/gpu{g.index}/{f}", node, u, read) for g in drv.gpus() for f, u in fields]


GPUS = CapabilityReader(
    GpuNode,
    probe=(ProbeReading("gpus", _probe_gpus, lambda g: f"gpus {g['count']} max {_fmt(g['max_temp_c'], 'C')}"),),
    channels=gpu_field_channels,
)


# ---- switch port counters (PortCounterSource) ----------------------------------------------------------------
COUNTER_FIELDS = ("in_octets", "out_octets", "in_errors", "out_errors", "in_discards", "out_discards")


def _counter_channels(drv: Any, switch: str) -> list[Channel]:
    """Per port ``<switch>/<port>/<counter>`` for ``COUNTER_FIELDS``, raw cumulative values with
    their wrap width (``octet_bits`` / ``error_bits``): one ``counters()`` call per tick."""

    def read(d: Any) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for p in d.counters():
            for f in COUNTER_FIELDS:
                out[f"{switch}/{p.name}/{f}"] = _num(getattr(p, f))
        return out

    channels = []
    for p in drv.counters():
        for f in COUNTER_FIELDS:
            octets = f.endswith("octets")
            unit, bits = ("B", p.octet_bits) if octets else ("count", p.error_bits)
            channels.append(Channel(f"{switch}/{p.name}/{f}", switch, unit, read, wrap_bits=bits))
    return channels


PORT_COUNTERS = CapabilityReader(PortCounterSource, channels=_counter_channels)


# ---- liquid cooling: CDUs (CoolingUnit), nodes (LiquidCooledNode), leak detectors (LeakDetection) -------------
LOOP_FIELDS: tuple[tuple[str, str], ...] = (
    ("supply_temp_c", "degC"),
    ("return_temp_c", "degC"),
    ("flow_lpm", "L/min"),
    ("delta_pressure_kpa", "kPa"),
    ("heat_kw", "kW"),
)


def _loops_probe(connectors: Sequence[Any]) -> dict[str, Any]:
    return {
        (c.loop or c.name): {
            "supply_c": _r(c.supply_temp_c, 1),
            "return_c": _r(c.return_temp_c, 1),
            "flow_lpm": _r(c.flow_lpm, 1),
        }
        for c in connectors
    }


def _loops_text(loops: dict[str, Any]) -> str:
    return "; ".join(
        f"{name} {_fmt(v['supply_c'], 'C')}->{_fmt(v['return_c'], 'C')} {_fmt(v['flow_lpm'], 'L/min')}"
        for name, v in loops.items()
    )


def _pumps_probe(pumps: Sequence[Any]) -> dict[str, Any]:
    return {
        "count": len(pumps),
        "running": sum(1 for p in pumps if p.running),
        "speed_pct": {p.name: _r(p.speed_pct, 1) for p in pumps},
    }


def _pumps_text(p: dict[str, Any]) -> str:
    speeds = ", ".join(f"{n} {_fmt(v, '%', 0)}" for n, v in p["speed_pct"].items())
    return f"pumps {p['running']}/{p['count']} running ({speeds})"


def _coolant_channels(connectors: Callable[[Any], Sequence[Any]], prefix: str) -> Callable[[Any, str], list[Channel]]:
    """``<device>/<prefix><loop or connector>/<field>`` for ``LOOP_FIELDS`` the device reports now
    (a field it does not report gets no channel, so it never reads as 0): one call per tick."""

    def build(drv: Any, device: str) -> list[Channel]:
        def key(c: Any) -> str:
            return f"{device}/{prefix}{_slug(c.loop or c.name)}"

        def read(d: Any) -> dict[str, float | None]:
            return {f"{key(c)}/{f}": _num(getattr(c, f)) for c in connectors(d) for f, _ in LOOP_FIELDS}

        return [
            Channel(f"{key(c)}/{f}", device, u, read)
            for c in connectors(drv)
            for f, u in LOOP_FIELDS
            if getattr(c, f) is not None
        ]

    return build


def _pump_channels(drv: Any, device: str) -> list[Channel]:
    """``<device>/pump_<name>/speed_pct`` per pump that reports a speed: one ``pumps()`` call."""

    def read(d: Any) -> dict[str, float | None]:
        return {f"{device}/pump_{_slug(p.name)}/speed_pct": _num(p.speed_pct) for p in d.pumps()}

    return [
        Channel(f"{device}/pump_{_slug(p.name)}/speed_pct", device, "%", read)
        for p in drv.pumps()
        if p.speed_pct is not None
    ]


def _leaks_probe(drv: Any) -> dict[str, Any]:
    found = drv.leak_detectors()
    return {
        "count": len(found),
        "leaking": [d.name for d in found if d.dry is False],
        "unknown": [d.name for d in found if d.dry is None],
    }


def _leaks_text(leaks: dict[str, Any]) -> str:
    text = f"leak detectors {leaks['count']}: " + (
        f"LEAK at {', '.join(leaks['leaking'])}" if leaks["leaking"] else "dry"
    )
    return text + (f" ({len(leaks['unknown'])} without a state)" if leaks["unknown"] else "")


def _leak_channels(drv: Any, device: str) -> list[Channel]:
    """``<device>/leak_<detector>/dry``: 1 dry, 0 a leak, None no state: one ``leak_detectors()`` call."""

    def read(d: Any) -> dict[str, float | None]:
        return {
            f"{device}/leak_{_slug(x.name)}/dry": None if x.dry is None else float(x.dry) for x in d.leak_detectors()
        }

    return [Channel(f"{device}/leak_{_slug(x.name)}/dry", device, "", read) for x in drv.leak_detectors()]


def _cdu_channels(drv: Any, device: str) -> list[Channel]:
    return _coolant_channels(lambda d: d.loops(), "")(drv, device) + _optional(_pump_channels, drv, device)


def _node_channels(drv: Any, device: str) -> list[Channel]:
    return _coolant_channels(lambda d: d.coolant_connectors(), "coolant_")(drv, device) + _optional(
        _pump_channels, drv, device
    )


def _optional(build: Callable[[Any, str], list[Channel]], drv: Any, device: str) -> list[Channel]:
    """``build``'s channels, or none when the device has not got that reading (NotAvailable)."""
    try:
        return build(drv, device)
    except NotAvailable:
        return []


COOLING = CapabilityReader(
    CoolingUnit,
    probe=(
        ProbeReading("cooling_mode", lambda d: {"mode": d.cooling_mode()}, lambda m: f"mode {m['mode']}"),
        ProbeReading("pumps", lambda d: _pumps_probe(d.pumps()), _pumps_text),
        ProbeReading("coolant_loops", lambda d: _loops_probe(d.loops()), _loops_text),
    ),
    channels=_cdu_channels,
)
LIQUID_NODE = CapabilityReader(
    LiquidCooledNode,
    probe=(
        ProbeReading("coolant", lambda d: _loops_probe(d.coolant_connectors()), lambda c: "coolant " + _loops_text(c)),
        ProbeReading("node_pumps", lambda d: _pumps_probe(d.pumps()), _pumps_text),
    ),
    channels=_node_channels,
)
LEAKS = CapabilityReader(
    LeakDetection, probe=(ProbeReading("leaks", _leaks_probe, _leaks_text),), channels=_leak_channels
)


# ---- power shelves (PowerShelf) ------------------------------------------------------------------------------
def _feeds_probe(drv: Any) -> dict[str, Any]:
    return {f.name: {"v": _r(f.voltage_v, 1), "w": _r(f.power_w, 1), "on": f.on} for f in drv.feeds()}


def _rectifiers_probe(drv: Any) -> dict[str, Any]:
    found = drv.rectifiers()
    working = [r for r in found if r.state == "Enabled" and r.health in ("", "OK")]
    return {
        "count": len(found),
        "ok": len(working),
        "output_w": _r(sum(r.output_power_w or 0.0 for r in found), 1)
        if any(r.output_power_w is not None for r in found)
        else None,
    }


def _dc_probe(drv: Any) -> dict[str, Any]:
    out = drv.dc_output()
    return {"v": _r(out.voltage_v, 2), "a": _r(out.current_a, 2), "w": _r(out.power_w, 1)}


def _batteries_probe(drv: Any) -> dict[str, Any]:
    return {
        b.name: {"charge_pct": _r(b.charge_pct, 1), "state": b.charge_state, "holdup_s": _r(b.holdup_s, 0)}
        for b in drv.batteries()
    }


def _feeds_text(f: dict[str, Any]) -> str:
    return "feeds " + ", ".join(f"{n} {_fmt(v['v'], 'V')} {_fmt(v['w'], 'W')}" for n, v in f.items())


def _rectifiers_text(r: dict[str, Any]) -> str:
    return f"rectifiers {r['ok']}/{r['count']} ok, out {_fmt(r['output_w'], 'W')}"


def _batteries_text(b: dict[str, Any]) -> str:
    return "BBU " + ", ".join(f"{n} {_fmt(v['charge_pct'], '%', 0)} {v['state'] or '?'}" for n, v in b.items())


# list -> (its reader, the fields sampled): ``<shelf>/<kind>_<name>/<field>``
SHELF_LISTS: dict[str, tuple[Callable[[Any], Sequence[Any]], tuple[tuple[str, str], ...]]] = {
    "feed": (lambda d: d.feeds(), (("voltage_v", "V"), ("current_a", "A"), ("power_w", "W"))),
    "rectifier": (lambda d: d.rectifiers(), (("output_power_w", "W"), ("input_power_w", "W"))),
    "battery": (lambda d: d.batteries(), (("charge_pct", "%"), ("holdup_s", "s"))),
}
DC_FIELDS = (("voltage_v", "V"), ("current_a", "A"), ("power_w", "W"))


def _shelf_list_channels(kind: str) -> Callable[[Any, str], list[Channel]]:
    items_of, fields = SHELF_LISTS[kind]

    def build(drv: Any, shelf: str) -> list[Channel]:
        def read(d: Any) -> dict[str, float | None]:
            return {f"{shelf}/{kind}_{_slug(x.name)}/{f}": _num(getattr(x, f)) for x in items_of(d) for f, _ in fields}

        return [
            Channel(f"{shelf}/{kind}_{_slug(x.name)}/{f}", shelf, u, read)
            for x in items_of(drv)
            for f, u in fields
            if getattr(x, f) is not None
        ]

    return build


def _dc_channels(drv: Any, shelf: str) -> list[Channel]:
    def read(d: Any) -> dict[str, float | None]:
        out = d.dc_output()
        return {f"{shelf}/dc/{f}": _num(getattr(out, f)) for f, _ in DC_FIELDS}

    now = drv.dc_output()
    return [Channel(f"{shelf}/dc/{f}", shelf, u, read) for f, u in DC_FIELDS if getattr(now, f) is not None]


def _shelf_channels(drv: Any, shelf: str) -> list[Channel]:
    """Per feed, rectifier and battery ``<shelf>/<kind>_<name>/<field>`` (``SHELF_LISTS``) and
    ``<shelf>/dc/<field>``, for what the shelf reports now: one call per list per tick; a list
    the shelf has not got (NotAvailable) has no channels, the others still do."""
    builders = [_shelf_list_channels(kind) for kind in SHELF_LISTS] + [_dc_channels]
    return [c for build in builders for c in _optional(build, drv, shelf)]


SHELF = CapabilityReader(
    PowerShelf,
    probe=(
        ProbeReading("feeds", _feeds_probe, _feeds_text),
        ProbeReading("rectifiers", _rectifiers_probe, _rectifiers_text),
        ProbeReading("dc_output", _dc_probe, lambda d: f"DC {_fmt(d['v'], 'V', 2)} {_fmt(d['w'], 'W')}"),
        ProbeReading("batteries", _batteries_probe, _batteries_text),
    ),
    channels=_shelf_channels,
)


# ---- the table ----------------------------------------------------------------------------------------------
CAPABILITY_READERS: tuple[CapabilityReader, ...] = (
    POWER,
    OUTLETS,
    NETWORK,
    BMC,
    ANALYZER,
    GPUS,
    PORT_COUNTERS,
    COOLING,
    LIQUID_NODE,
    LEAKS,
    SHELF,
)
"""In the order the probe reads and prints them and telemetry lists a device's channels."""


def readers_of(driver: Any, only: Sequence[CapabilityReader] = CAPABILITY_READERS) -> list[CapabilityReader]:
    """The rows (of ``only``, in table order) that apply to ``driver``."""
    return [r for r in CAPABILITY_READERS if r in only and r.applies_to(driver)]


def probe_readings(driver: Any) -> list[ProbeReading]:
    """Every one-shot reading the probe takes from ``driver``, in table order."""
    return [p for r in readers_of(driver) for p in r.probe]


def channels_of(driver: Any, device: str, only: Sequence[CapabilityReader] = CAPABILITY_READERS) -> list[Channel]:
    """The telemetry channels of ``driver`` (device ``device``) for every row of ``only`` it has.

    A capability the device answers "not available" for (``NotAvailable``) has no channels; the
    device's other capabilities still do.
    """
    channels: list[Channel] = []
    for row in readers_of(driver, only):
        if row.channels is None:
            continue
        try:
            channels += row.channels(driver, device)
        except NotAvailable:
            continue
    return channels


def readings_text(readings: Mapping[str, dict[str, Any]], not_available: Iterable[str] = ()) -> str:
    """The probe's readings (``{reading name: reading}``) as one short table cell, in table order;
    readings in ``not_available`` say so."""
    absent = set(not_available)
    parts = [
        p.text(readings[p.name]) if p.name in readings else f"{p.name}: {NOT_AVAILABLE}"
        for r in CAPABILITY_READERS
        for p in r.probe
        if p.name in readings or p.name in absent
    ]
    return "; ".join(parts) or "-"
