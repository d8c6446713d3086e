"""Report sections of a liquid-cooled, busbar-fed rack: the cooling loop and the power shelves.

Why a module of its own: these sections exist only for a rack with a CDU or power shelves (an
air-cooled run leaves both out), and they read what the liquid plans recorded, by requirement key
(``coolant_node_flow``, ``cdu_supply_temperature``, ``coolant_loop_delta_t``,
``coolant_heat_fraction``; ``busbar_voltage``, ``rectifier_load``, ``bbu_recharge_time``...), plus
the CDU's and the shelves' telemetry channels (``<cdu>/secondary/supply_temp_c``,
``<shelf>/battery_<bbu>/charge_pct``...) drawn over the run clock with the spec's limits.

- cooling loop: the CDU's secondary supply and return temperature and flow over the run (the
  soak samples them) with the supply limits, and per node its flow and energy balance against
  their limits, and the lowest flow with each pump stopped;
- power shelves: each BBU's state of charge over the run (the holdup test's discharge and the
  recharge after it), the busbar voltage during the rectifier and holdup steps, and the
  rectifier loads and recharge times against their limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from markupsafe import Markup
from matplotlib.figure import Figure

from rackval.harness.measure import Measurement
from rackval.harness.report.plots import LIMIT_COLOUR, broken_at_gaps, figure_to_svg, label_text, set_title
from rackval.harness.report.run_data import RunData
from rackval.harness.store.sql import StoreError

MAX_LINES = 12  # channels drawn per chart (a 72-BBU rack draws the lowest ones)


@dataclass(frozen=True)
class Chart:
    title: str
    caption: str
    svg: Markup


def _series(data: RunData, channel: str, device: str, unit: str) -> tuple[np.ndarray, ...]:
    """One channel's samples over the run clock, broken where the sampling paused (a gap is drawn
    as a gap, not a ramp). A channel a damaged segment makes unreadable draws nothing here: the
    telemetry section names it."""
    try:
        return broken_at_gaps(*data.store.sample_arrays(data.run_id, channel, device=device, unit=unit))
    except StoreError:
        return np.zeros(0), np.zeros(0)


def _chart(
    data: RunData, title: str, caption: str, unit: str, keys: list[tuple[str, str]], limits: list[float], prefix: str
) -> Chart | None:
    lines = [(channel, *_series(data, channel, device, unit)) for channel, device in keys]
    lines = [(c, t, v) for c, t, v in lines if t.size and not np.isnan(v).all()]
    if not lines:
        return None
    lines.sort(key=lambda ctv: float(np.nanmin(ctv[2])))  # the lowest first: the ones that matter
    fig = Figure(figsize=(9, 3.2))
    fig.subplots_adjust(left=0.09, right=0.74, bottom=0.15, top=0.9)
    ax = fig.add_subplot()
    for channel, t, v in lines[:MAX_LINES]:
        ax.plot(t, v, linewidth=1.0, label=label_text(channel, 40))
    for value in sorted(set(limits)):
        ax.axhline(value, color=LIMIT_COLOUR, linewidth=1.0, linestyle="--")
    set_title(ax, label_text(title, 80))
    ax.set_xlabel("run clock (s)")
    ax.set_ylabel(f"{label_text(title, 40)} ({unit})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    drawn = ", ".join(c for c, _, _ in lines[:MAX_LINES])
    more = f" ({MAX_LINES} lowest of {len(lines)})" if len(lines) > MAX_LINES else ""
    return Chart(title, f"{caption} Channels{more}: {drawn}.", Markup(figure_to_svg(fig, prefix, title)))


def _limits(ms: list[Measurement]) -> list[float]:
    return sorted({x for m in ms for x in (m.low, m.high) if x is not None})


def _by(data: RunData, requirement: str, prefix: str = "") -> list[Measurement]:
    return [m for m in data.measurements if m.requirement == requirement and m.name.startswith(prefix)]


def _kind(data: RunData, kind: str) -> set[str]:
    return {d.name for d in data.devices if d.kind == kind}


def cooling_section(data: RunData) -> dict[str, Any] | None:
    """The CDU loop over the run and each node's flow and energy balance; None without a CDU."""
    cdus = _kind(data, "cdu")
    if not cdus:
        return None
    channels = [c for c in data.store.sample_channels(data.run_id) if c.device in cdus and "/secondary/" in c.channel]
    supply = _by(data, "cdu_supply_temperature")
    charts = [
        chart for chart in (
            _chart(data, "CDU secondary loop temperatures", "Supply and return to the rack, as the CDU reports them;"
                   " dashed: the supply temperature limits (cdu_supply_temperature).", "degC",
                   [(c.channel, c.device) for c in channels if c.channel.endswith("_temp_c")], _limits(supply),
                   "cooling-t"),
            _chart(data, "CDU secondary loop flow", "Total flow to the rack, as the CDU reports it.", "L/min",
                   [(c.channel, c.device) for c in channels if c.channel.endswith("/flow_lpm")], [], "cooling-q"),
        ) if chart is not None
    ]  # fmt: skip
    node_flow = _by(data, "coolant_node_flow", "node coolant flow under full load")
    loop = supply + _by(data, "coolant_loop_delta_t")
    balance = {m.device: m for m in _by(data, "coolant_heat_fraction")}
    pump_steps = _by(data, "coolant_node_flow", "lowest node coolant flow")
    if not (charts or node_flow or loop or pump_steps):
        return None
    return {
        "cooling_charts": charts,
        "cooling_loop": loop,
        "cooling_nodes": [(m, balance.get(m.device)) for m in sorted(node_flow, key=lambda m: m.value)],
        "cooling_pump_steps": pump_steps,
    }


def shelves_section(data: RunData) -> dict[str, Any] | None:
    """BBU charge over the run (the holdup discharge and recharge), busbar and rectifier figures;
    None without power shelves."""
    shelves = _kind(data, "power_shelf")
    if not shelves:
        return None
    channels = [c for c in data.store.sample_channels(data.run_id) if c.device in shelves]
    charts = [
        chart for chart in (
            _chart(data, "BBU state of charge", "Each battery backup unit's charge while the shelves ran on"
                   " batteries (feeds dropped) and while they recharged.", "%",
                   [(c.channel, c.device) for c in channels if c.channel.endswith("/charge_pct")], [], "shelf-soc"),
            _chart(data, "Busbar voltage", "Each shelf's DC output during the rectifier and holdup steps;"
                   " dashed: the busbar_voltage limits.", "V",
                   [(c.channel, c.device) for c in channels if c.channel.endswith("/dc/voltage_v")],
                   _limits(_by(data, "busbar_voltage")), "shelf-v"),
        ) if chart is not None
    ]  # fmt: skip
    figures = [
        m for key in ("rectifiers_unhealthy", "busbar_voltage", "bbu_state_of_health", "bbu_holdup_time",
                      "bbu_recharge_time", "shelf_event_node_outages")
        for m in _by(data, key) if key != "shelf_event_node_outages" or m.value
    ]  # fmt: skip
    loads = sorted(_by(data, "rectifier_load"), key=lambda m: -m.value)[:MAX_LINES]
    if not (charts or figures or loads):
        return None
    return {"shelf_charts": charts, "shelf_figures": figures, "shelf_loads": loads}
