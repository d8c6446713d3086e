"""What the liquid-cooling and power-shelf plans share: which equipment the rack has, which nodes sit
on the coolant loop, whether hosts are on, and the heat a coolant flow carries.

Why a module of its own: three plans (``test_liquid_cooling``, ``test_pump_redundancy``,
``test_power_shelves``) ask the same questions of a liquid-cooled, busbar-fed rack, and each must
skip cleanly, with the same words, on a rack that has no CDU or no power shelf (the air-cooled
reference). Devices are found by capability (``isinstance``), never by driver name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rackval.core.errors import NotAvailable
from rackval.drivers.capabilities import CoolingUnit, LiquidCooledNode, PowerShelf
from rackval.harness.inventory import Inventory
from rackval.harness.rack import Rack
from rackval.harness.spec import Coolant

# NVML clocks-event reasons that mean the GPU is slowed by heat or power (SwPowerCap HwSlowdown
# SwThermal HwThermal HwPowerBrake), as the load soak judges them
THROTTLE_BITS = 0x004 | 0x008 | 0x020 | 0x040 | 0x080
_ON = frozenset({"On"})


def devices_with(rack: Rack, kind: str, capability: type) -> list[str]:
    """The rack's devices of ``kind`` whose driver has ``capability``."""
    return [n for n in rack.names(kind) if isinstance(rack.driver(n), capability)]


def cdus(rack: Rack) -> list[str]:
    return devices_with(rack, "cdu", CoolingUnit)


def power_shelves(rack: Rack) -> list[str]:
    return devices_with(rack, "power_shelf", PowerShelf)


def no_equipment_reason(inventory: Inventory, what: str, kind: str) -> str:
    return f"{inventory.path} has no {what} (no device of kind {kind!r}): nothing to test on this rack"


def liquid_nodes(rack: Rack, inventory: Inventory) -> dict[str, str]:
    """node -> its BMC, for every node whose BMC reports coolant connectors (a node on the loop).
    A BMC that says it has none (NotAvailable) is an air-cooled node; one that does not answer is
    a DeviceError for the plan to report."""
    out = {}
    for node, spec in inventory.data.nodes.items():
        drv = rack.driver(spec.bmc) if spec.bmc else None
        if not isinstance(drv, LiquidCooledNode):
            continue
        try:
            drv.coolant_connectors()
        except NotAvailable:
            continue
        out[node] = spec.bmc  # type: ignore[assignment]
    return out


def host_states(rack: Rack, bmcs: dict[str, str]) -> dict[str, str]:
    """node -> "" when its host is On, else why not (PowerState, or the BMC's error)."""
    results = rack.fan_out(list(bmcs.values()), lambda d: d.power_state())
    out = {}
    for node, bmc in bmcs.items():
        r = results[bmc]
        if not r.ok:
            out[node] = f"{bmc} did not answer: {r.error}"
        elif r.value not in _ON:
            out[node] = f"host PowerState {r.value} ({bmc})"
        else:
            out[node] = ""
    return out


def coolant_heat_w(coolant: Coolant, flow_lpm: float, supply_c: float, return_c: float) -> float:
    """Heat a coolant flow carries: Q = rho q c_p (T_return - T_supply) (W; flow in L/min)."""
    return coolant.density_kg_m3 * flow_lpm / 60_000.0 * coolant.specific_heat_j_kg_k * (return_c - supply_c)


def series_mean(sampler: Any, name: str) -> float | None:
    """Mean of one channel's finite samples (None: no sample)."""
    _, values = sampler.series(name)
    finite = values[~np.isnan(values)] if values.size else values
    return float(finite.mean()) if finite.size else None


def series_min(sampler: Any, name: str) -> float | None:
    _, values = sampler.series(name)
    finite = values[~np.isnan(values)] if values.size else values
    return float(finite.min()) if finite.size else None


def first_channel(sampler: Any, pattern: str) -> str | None:
    names = sampler.names(pattern)
    return names[0] if names else None


def throttled_seconds(sampler: Any, host: str) -> float:
    """Seconds during which any GPU of ``host`` reported a thermal or power clocks-event reason."""
    hit_any, times = None, None
    for name in sampler.names(f"{host}/gpu*/event_reasons"):
        times, values = sampler.series(name)
        hit = (np.nan_to_num(values, nan=0.0).astype(np.int64) & THROTTLE_BITS) != 0
        hit_any = hit if hit_any is None else hit_any | hit
    if hit_any is None or times is None:
        return 0.0
    held = np.append(np.diff(times), sampler.period)
    return float(held[hit_any].sum())
