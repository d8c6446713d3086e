"""Which telemetry the report draws, and how: one figure per kind of channel, its envelope across
every channel of that kind, and the few channels that matter drawn on top.

Why: a rack soak samples ~300 channels (3,000 on a big rack). Drawing 8 of them picked by peak
value hid the rest; mixing units put power factor and a bit mask on one "(no unit)" axis; joining
points across a sampling gap drew a ramp that never happened. So:

* Channels are grouped by **kind**: the device's kind (from the run's device list) and the rest of
  the channel name with numbers folded (``node07/gpu3/power_w`` -> ``node/gpu#/power_w``), in one
  unit. One figure per kind, so every figure has one quantity and one unit.
* A kind is **discrete** (a bit mask, a state, an enumeration) when its unit says so or its
  quantity is named like one (``DISCRETE_WORDS``); averaging or joining such values means nothing,
  so discrete channels are not line-plotted: they stay in the channel table.
* The figure draws the **envelope** of all channels of the kind per time bucket (minimum and
  maximum across channels as a band, the median of the channels' bucket midpoints as a line), so
  nothing is hidden, then the **relevant** channels on top: worst margin to a borrowed limit first,
  then the strongest outliers (robust z-score of the channel's mean against the kind's channels).
* **Gaps stay gaps**: a line breaks where consecutive points are further apart than
  ``plots.GAP_FACTOR`` times the channels' median sampling interval (or the bucket width).
* Everything is drawn from ``telemetry.summarise``'s grid (min/max per channel and time bucket,
  read in the same scan as the statistics), so a figure costs no further read of the store.
* Values are shown in the **spec's unit** of a limit borrowed by the kind, else as recorded
  (``rackval.harness.report.display``: watts of 10 kW and more read as kW); limits are drawn.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from markupsafe import Markup

from rackval.core.errors import ConfigError
from rackval.harness.measure import Measurement
from rackval.harness.report import plots, telemetry
from rackval.harness.report.display import display_unit
from rackval.harness.store.records import DeviceRecord
from rackval.harness.units import convert

MAX_KIND_FIGURES = 8
"""Telemetry figures (one per kind); further kinds are in the channel table."""
HIGHLIGHTED = 4
"""Channels drawn on top of a kind's envelope."""
DISCRETE_UNITS = frozenset({"bitmask", "enum", "state"})
DISCRETE_WORDS = ("reasons", "mask", "flags", "state", "status", "bits")
"""A unitless quantity whose name ends in one of these is a code, not a magnitude."""
_UNIT_SUFFIX = re.compile(r"_(w|c|a|v|pct|mhz|rpm|hz|kw|degc)$")


@dataclass(frozen=True)
class Plot:
    """One figure; ``svg`` None: no data (the caption says what would be shown)."""

    title: str
    caption: str
    svg: Markup | None


@dataclass(frozen=True)
class ChannelRow:
    """One telemetry channel in the channel table: statistics, limits, kind and whether it is drawn
    on top of its kind's envelope (every channel of a plotted kind is in the envelope)."""

    stats: telemetry.ChannelStats
    kind: str
    low: float | None
    high: float | None
    beyond: bool
    plotted: bool
    discrete: bool


def channel_kind(channel: str, device: str, device_kinds: dict[str, str]) -> str:
    """``node07/gpu3/power_w`` on device ``node07`` (kind node) -> ``node/gpu#/power_w``."""
    rest = channel[len(device) :].lstrip("/.") if device and channel.startswith(device) else channel
    prefix = device_kinds.get(device) or re.sub(r"\d+", "#", device)
    folded = re.sub(r"\d+", "#", rest)
    return f"{prefix}/{folded}" if prefix else folded


def quantity_of(kind: str) -> str:
    """``node/gpu#/power_w`` -> ``power``: the words an axis label uses."""
    last = kind.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    return _UNIT_SUFFIX.sub("", last.lower()).replace("_", " ") or last


def is_discrete(kind: str, unit: str) -> bool:
    name = kind.rsplit("/", 1)[-1].lower()
    return unit in DISCRETE_UNITS or (unit in ("", "count") and name.endswith(DISCRETE_WORDS))


def _token(text: str) -> str:
    """A channel or component name compared loosely: ``GPU0`` and ``gpu0`` are the same part."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _component(channel: str, device: str) -> str:
    """``node01/gpu0/temperature_c`` on ``node01`` -> ``gpu0``: the part between device and quantity."""
    rest = channel[len(device) :].lstrip("/.") if device and channel.startswith(device) else channel
    parts = re.split(r"[/.]", rest)
    return _token("".join(parts[:-1])) if len(parts) > 1 else ""


def _limits_by_channel(measurements: list[Measurement]) -> dict[tuple[str, str], list[Measurement]]:
    """Limited measurements keyed by (channel, device), and by (device, ``_token(channel)``) marked
    with a leading NUL: a telemetry channel borrows their limits."""
    out: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        if m.channel and (m.low is not None or m.high is not None):
            out.setdefault((m.channel, m.device), []).append(m)
            if m.device:
                out.setdefault(("\0" + m.device, _token(m.channel)), []).append(m)
    return out


def _channel_limits(
    key: telemetry.ChannelKey, limited: dict[tuple[str, str], list[Measurement]]
) -> tuple[list[float], list[float], set[str]]:
    """Lows and highs of measurements on the same channel (and device, or no device named), or on
    the same device naming the channel's component (``GPU0`` for ``node01/gpu0/temperature_c``),
    converted to the channel's unit, and their requirement keys; limits in an incompatible unit
    are not borrowed (so a GPU's power limit never lands on its temperature)."""
    channel, device, unit = key
    lows: set[float] = set()
    highs: set[float] = set()
    requirements: set[str] = set()
    component = _component(channel, device)
    lenders = limited.get((channel, device), []) + (limited.get((channel, ""), []) if device else [])
    if device and component and unit:  # a looser match: only between stated, compatible units
        lenders += [m for m in limited.get(("\0" + device, component), []) if m.unit and m not in lenders]
    for m in lenders:
        for value, bucket in ((m.low, lows), (m.high, highs)):
            if value is None or math.isnan(value):
                continue
            try:
                bucket.add(convert(value, m.unit, unit) if unit and m.unit else value)
            except ConfigError:
                continue
            if m.requirement:
                requirements.add(m.requirement)
    return sorted(lows), sorted(highs), requirements


@dataclass
class _Channel:
    stats: telemetry.ChannelStats
    kind: str
    low: float | None
    high: float | None
    requirements: set[str]

    @property
    def beyond(self) -> bool:
        c = self.stats
        return (self.low is not None and c.minimum is not None and c.minimum < self.low) or (
            self.high is not None and c.maximum is not None and c.maximum > self.high
        )

    def margin_pct(self) -> float:
        """Worst distance of the channel's extremes to its limits, % of the reference (inf: none)."""
        c = self.stats
        if c.minimum is None or c.maximum is None or (self.low is None and self.high is None):
            return math.inf
        margins = []
        if self.high is not None:
            margins.append(self.high - c.maximum)
        if self.low is not None:
            margins.append(c.minimum - self.low)
        reference = (self.high - self.low) if self.low is not None and self.high is not None else abs(
            self.high if self.high is not None else self.low or 0.0)  # fmt: skip
        return 100.0 * min(margins) / reference if reference else min(margins)


def _outlier_scores(members: list[_Channel]) -> dict[telemetry.ChannelKey, float]:
    """Robust z-score of each channel's mean against the kind's channels (median and MAD)."""
    means = np.array([m.stats.mean if m.stats.mean is not None else np.nan for m in members], dtype=float)
    finite = means[~np.isnan(means)]
    if finite.size < 3:
        return {m.stats.key: 0.0 for m in members}
    median = float(np.median(finite))
    mad = float(np.median(np.abs(finite - median))) * 1.4826
    scale = mad if mad > 0 else max(abs(median) * 1e-6, 1e-12)
    return {m.stats.key: (0.0 if np.isnan(v) else abs(v - median) / scale) for m, v in zip(members, means, strict=True)}


def _pick(members: list[_Channel]) -> list[tuple[_Channel, str]]:
    """The channels worth drawing on top, each with why: worst margin first, then outliers."""
    scores = _outlier_scores(members)
    chosen: list[tuple[_Channel, str]] = []
    limited = sorted((m for m in members if math.isfinite(m.margin_pct())), key=lambda m: (m.margin_pct(), m.stats.key))
    for m in limited[: HIGHLIGHTED // 2]:
        chosen.append((m, "beyond its limit" if m.beyond else f"margin {m.margin_pct():+.3g} %"))
    taken = {m.stats.key for m, _ in chosen}
    outliers = sorted((m for m in members if m.stats.key not in taken and scores[m.stats.key] > 3.5),
                      key=lambda m: (-scores[m.stats.key], m.stats.key))  # fmt: skip
    for m in outliers[: HIGHLIGHTED - len(chosen)]:
        chosen.append((m, f"outlier, z {scores[m.stats.key]:.1f}"))
    return chosen


def _figure(grid: telemetry.Grid, kind: str, members: list[_Channel], spec_units: dict[str, str],
            index: int) -> tuple[Plot, set[telemetry.ChannelKey]] | None:  # fmt: skip
    keys = [m.stats.key for m in members if m.stats.key in grid.low]
    if not keys:
        return None
    grid_low = np.vstack([grid.low[k] for k in keys])
    grid_high = np.vstack([grid.high[k] for k in keys])
    present = ~np.all(np.isnan(grid_low), axis=0)
    with np.errstate(all="ignore"):
        low = np.nanmin(grid_low[:, present], axis=0)
        high = np.nanmax(grid_high[:, present], axis=0)
        median = np.nanmedian((grid_low[:, present] + grid_high[:, present]) / 2.0, axis=0)
    unit = members[0].stats.unit
    peaks = [abs(v) for m in members for v in (m.stats.minimum, m.stats.maximum) if v is not None]
    requirements = sorted({r for m in members for r in m.requirements})
    spec_unit = next((spec_units[r] for r in requirements if r in spec_units), "")
    shown_unit = display_unit(unit, max(peaks) if peaks else None, spec_unit)
    scale = convert(1.0, unit, shown_unit) if shown_unit != unit else 1.0
    steps = [grid.interval[k] for k in keys if math.isfinite(grid.interval.get(k, math.nan))]
    gap = plots.GAP_FACTOR * max(float(np.median(steps)) if steps else 0.0, grid.width)
    t0 = grid.t0
    span = grid.width * grid.buckets
    minutes = span > 600
    x_scale = 60.0 if minutes else 1.0
    centres = grid.centres()
    t_env, low, high, median = plots.broken_at_gaps(
        centres[present], low * scale, high * scale, median * scale, gap=gap
    )
    highlights = []
    picked = _pick(members)
    for m, why in picked:
        if m.stats.key not in grid.low:
            continue
        row_low, row_high = grid.low[m.stats.key], grid.high[m.stats.key]
        has = ~np.isnan(row_low)
        t_ch, lo_ch, hi_ch = plots.broken_at_gaps(centres[has], row_low[has] * scale, row_high[has] * scale, gap=gap)
        label = m.stats.channel if not m.stats.device or m.stats.channel.startswith(m.stats.device) else (
            f"{m.stats.device}/{m.stats.channel}")  # fmt: skip
        highlights.append(plots.ChannelTrace(f"{label} ({why})", ((t_ch - t0) / x_scale).tolist(), lo_ch.tolist(),
                                             hi_ch.tolist()))  # fmt: skip
    limits = sorted({v * scale for m in members for v in (m.low, m.high) if v is not None})
    quantity = quantity_of(kind)
    svg = plots.kind_chart(
        title=f"{kind}: {len(members)} channel{'s' if len(members) != 1 else ''}",
        y_label=f"{quantity} ({shown_unit or 'no unit'})",
        x_label=f"{'minutes' if minutes else 'seconds'} since the first sample (run clock)",
        envelope=plots.ChannelTrace("all channels: min-max", ((t_env - t0) / x_scale).tolist(), low.tolist(),
                                    high.tolist(), median.tolist()),
        highlights=highlights,
        limits=limits,
        id_prefix=f"tm{index}",
    )  # fmt: skip
    caption = (
        f"{quantity.capitalize()} of all {len(members)} channel{'s' if len(members) != 1 else ''} of kind {kind}"
        f" in {shown_unit or 'no unit'}: the band is their minimum-maximum per {plots.TELEMETRY_BUCKETS}th of the"
        " time span, the line their median, so no channel is hidden."
        + (" Drawn on top, by worst margin to a limit, then by how far their mean lies from the others' (robust"
           f" z-score > 3.5): {'; '.join(h.label for h in highlights)}." if highlights
           else " No channel stands out (none near a limit, no outlier).")
        + (" Dashed lines are limits of measurements on these channels"
           f"{' (' + ', '.join(requirements) + ')' if requirements else ''}." if limits else "")
        + f" Lines break where samples are more than {gap:.3g} s apart."
    )  # fmt: skip
    return Plot(title=f"Telemetry: {kind}", caption=caption, svg=Markup(svg)), {m.stats.key for m, _ in picked}


def telemetry_figures(
    store: Any, run_id: str, measurements: list[Measurement], devices: list[DeviceRecord], spec_units: dict[str, str]
) -> tuple[list[Plot], list[ChannelRow], int, tuple[str, ...]]:
    """Figures (one per kind, most relevant kinds first, capped), the row of every channel, the
    total sample count, and a line per channel whose samples could not be read back (a bad
    segment: the channel keeps its row, from the segments' statistics, but no p99 and no line)."""
    summary = telemetry.summarise(store, run_id, plots.TELEMETRY_BUCKETS)
    stats, grid = summary.stats, summary.grid
    if not stats or grid is None:
        return [], [], sum(c.count for c in stats), summary.unreadable
    device_kinds = {d.name: d.kind for d in devices}
    limited = _limits_by_channel(measurements)
    channels: list[_Channel] = []
    for c in stats:
        lows, highs, requirements = _channel_limits(c.key, limited)
        kind = channel_kind(c.channel, c.device, device_kinds)
        channels.append(_Channel(c, kind, max(lows) if lows else None, min(highs) if highs else None, requirements))
    kinds: dict[tuple[str, str], list[_Channel]] = {}
    for ch in channels:
        kinds.setdefault((ch.kind, ch.stats.unit), []).append(ch)
    drawable = {k: v for k, v in kinds.items() if not is_discrete(*k)}

    def relevance(item: tuple[tuple[str, str], list[_Channel]]) -> tuple[int, float, int, tuple[str, str]]:
        key, members = item
        worst = min(m.margin_pct() for m in members)
        rank = 0 if any(m.beyond for m in members) else 1 if math.isfinite(worst) else 2
        return (rank, worst if math.isfinite(worst) else 0.0, -len(members), key)

    figures: list[Plot] = []
    on_top: set[telemetry.ChannelKey] = set()
    plotted_kinds: set[tuple[str, str]] = set()
    for (kind, unit), members in sorted(drawable.items(), key=relevance)[:MAX_KIND_FIGURES]:
        made = _figure(grid, kind, members, spec_units, len(figures))
        if made is not None:
            figures.append(made[0])
            on_top |= made[1]
            plotted_kinds.add((kind, unit))
    rows = [
        ChannelRow(stats=ch.stats, kind=ch.kind, low=ch.low, high=ch.high, beyond=ch.beyond,
                   plotted=ch.stats.key in on_top or (ch.kind, ch.stats.unit) in plotted_kinds,
                   discrete=is_discrete(ch.kind, ch.stats.unit))
        for ch in channels
    ]  # fmt: skip
    rows.sort(key=lambda r: (not r.beyond, r.kind, r.stats.key))
    return figures, rows, sum(c.count for c in stats), summary.unreadable
