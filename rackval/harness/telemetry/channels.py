"""Which channels a rack offers: every channel of every device (``rack_channels``), or the ones a
plan wants of one device (``pdu_channels``, ``analyzer_channels``, ``gpu_channels``...).

What each capability offers (its channels and their single shared reader) is declared in
``rackval.harness.readers``; this module only chooses devices and capabilities. Discovery asks
every device at once, so a dead device costs its own timeout and hides nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rackval.core.errors import ConfigError, DeviceError
from rackval.drivers.capabilities import GpuNode
from rackval.drivers.kinds import KIND_NAMES
from rackval.harness.rack import DeviceResult, Rack, values_or_raise
from rackval.harness.readers import (
    ANALYZER,
    BMC,
    COOLING,
    GPU_FIELDS,
    LEAKS,
    LIQUID_NODE,
    OUTLETS,
    PORT_COUNTERS,
    POWER,
    SHELF,
    Channel,
    channels_of,
    gpu_field_channels,
)

KINDS = KIND_NAMES
"""Every device kind: what ``rack_channels`` samples unless told otherwise."""


# ---- one device ----------------------------------------------------------------------------------
# Each asks the device once what it has, so channel names are fixed for the run, and raises the
# DeviceError of a device that does not answer.


def pdu_channels(rack: Rack, pdu: str) -> list[Channel]:
    """``<pdu>/power_w`` (total) when the driver is a PowerMeter; per outlet
    ``<pdu>/outlet<N>/power_w``, ``/current_a``, ``/on`` (1/0) from one ``outlets()`` call."""
    return channels_of(rack.driver(pdu), pdu, (POWER, OUTLETS))


def analyzer_channels(rack: Rack, analyzer: str) -> list[Channel]:
    """``<analyzer>/voltage_v``, ``/current_a``, ``/power_w``, ``/power_factor`` from one ``read()``
    (a plain PowerMeter: ``<analyzer>/power_w`` only)."""
    return channels_of(rack.driver(analyzer), analyzer, (POWER, ANALYZER))


def bmc_channels(rack: Rack, bmc: str) -> list[Channel]:
    """``<bmc>/power_w`` (PowerMeter) and ``<bmc>/<sensor slug>/temperature_c`` per temperature
    sensor the BMC reports now (e.g. ``bmc-node01/inlet_temp/temperature_c``)."""
    return channels_of(rack.driver(bmc), bmc, (POWER, BMC))


def gpu_channels(rack: Rack, node: str, fields: Sequence[tuple[str, str]] = GPU_FIELDS) -> list[Channel]:
    """Per GPU ``<node>/gpu<i>/<field>`` for ``fields`` ((field, unit) pairs, default
    ``GPU_FIELDS``): one ``gpus()`` call per tick, whatever the number of fields."""
    drv = rack.driver(node)
    return gpu_field_channels(drv, node, fields) if isinstance(drv, GpuNode) else []


def switch_counter_channels(rack: Rack, switch: str) -> list[Channel]:
    """Per port ``<switch>/<port>/<counter>`` for ``COUNTER_FIELDS``, raw cumulative values with
    their wrap width: one ``counters()`` call per tick."""
    return channels_of(rack.driver(switch), switch, (PORT_COUNTERS,))


def cdu_channels(rack: Rack, cdu: str) -> list[Channel]:
    """The CDU's loops ``<cdu>/<loop>/<field>`` (supply and return temperature, flow, differential
    pressure, heat), ``<cdu>/pump_<name>/speed_pct`` and ``<cdu>/leak_<detector>/dry``, for what it
    reports now: one call per reading per tick."""
    return channels_of(rack.driver(cdu), cdu, (COOLING, LEAKS))


def node_coolant_channels(rack: Rack, bmc: str) -> list[Channel]:
    """A liquid-cooled node's ``<bmc>/coolant_<connector>/<field>`` (flow, supply and return
    temperature, ...) from its BMC; none for an air-cooled node."""
    return channels_of(rack.driver(bmc), bmc, (LIQUID_NODE,))


def shelf_channels(
    rack: Rack, shelf: str, lists: Sequence[str] = ("feed", "rectifier", "battery", "dc")
) -> list[Channel]:
    """A power shelf's ``<shelf>/<list>_<name>/<field>`` for the ``lists`` asked (feeds, rectifiers,
    batteries: charge and holdup) and ``<shelf>/dc/<field>`` (``dc`` in ``lists``): a list not
    asked for is never read, so a long holdup samples only batteries and the busbar."""
    wanted = tuple(f"{shelf}/{k}_" for k in lists if k != "dc") + ((f"{shelf}/dc/",) if "dc" in lists else ())
    return [c for c in channels_of(rack.driver(shelf), shelf, (SHELF,)) if c.name.startswith(wanted)]


# ---- the whole rack --------------------------------------------------------------------------------
class ChannelSet(list[Channel]):
    """The channels ``rack_channels`` built, plus the devices it could not ask (``skipped``)."""

    skipped: dict[str, Exception]

    def __init__(self, channels: Iterable[Channel] = (), skipped: dict[str, Exception] | None = None) -> None:
        super().__init__(channels)
        self.skipped = dict(skipped or {})


def rack_channels(
    rack: Rack, kinds: Sequence[str] = KINDS, *, strict: bool = True, max_workers: int = 32
) -> ChannelSet:
    """Every channel the rack's devices of ``kinds`` offer, discovered concurrently.

    ``strict``: a device that cannot be asked raises ``FanOutError`` naming every such device;
    otherwise it is left out and listed in ``.skipped`` (sample the rest, report the gap)."""
    unknown = set(kinds) - set(KIND_NAMES)
    if unknown:
        raise ConfigError(f"telemetry: unknown device kinds {sorted(unknown)} (known: {', '.join(KIND_NAMES)})")
    names = [n for n in rack.names() if rack.inventory.configs[n].kind in kinds]

    def build(name: str) -> list[Channel]:
        return channels_of(rack.driver(name), name)

    results: dict[str, Any] = {}
    if names:
        with ThreadPoolExecutor(max_workers=min(max_workers, len(names)), thread_name_prefix="tm-discover") as pool:
            futures = {n: pool.submit(_device_result, n, build) for n in names}
            results = {n: f.result() for n, f in futures.items()}
    if strict:
        values = values_or_raise(results, "discover telemetry channels")
        return ChannelSet(ch for n in names for ch in values[n])
    skipped = {n: r.error for n, r in results.items() if not r.ok}
    return ChannelSet((ch for n in names if results[n].ok for ch in results[n].value), skipped)


def _device_result(name: str, fn: Callable[[str], Any]) -> DeviceResult[Any]:
    try:
        return DeviceResult(name, value=fn(name))
    except (DeviceError, ConfigError) as exc:
        return DeviceResult(name, error=exc)
