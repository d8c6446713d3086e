"""What rackval reads from a device, declared once per capability.

Two parts of rackval read devices without changing them: ``rackval probe`` takes one reading of
every capability a driver has, and telemetry samples time series (channels) at a fixed rate.
Both read ``CAPABILITY_READERS``: one row per capability Protocol (checked with ``isinstance``)
holding the probe's one-shot readings and the telemetry channel builder side by side, so a new
capability gets its probe reading and its telemetry channels in one place.

Only readers appear here. OutletSwitch and GpuNode also have destructive methods (switch an
outlet, start load); nothing here calls them.

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
    GpuNode,
    NetSwitch,
    OutletSwitch,
    PortCounterSource,
    PowerAnalyzer,
    PowerMeter,
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


# ---- the table ----------------------------------------------------------------------------------------------
CAPABILITY_READERS: tuple[CapabilityReader, ...] = (POWER, OUTLETS, NETWORK, BMC, ANALYZER, GPUS, PORT_COUNTERS)
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
