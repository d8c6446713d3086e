"""The whole comparison: both sides resolved, paired and classified, with the overlay plots of the
telemetry both sides sampled. What ``render`` writes and ``command`` prints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rackval.core.errors import ConfigError
from rackval.harness.analysis.compare.pairing import (
    CLASS_ORDER,
    DEFAULT_THRESHOLD_PCT,
    REGRESSION,
    Row,
    Side,
    collect,
    pair,
)
from rackval.harness.analysis.compare.requirements import (
    RequirementChange,
    covered_count,
    rollup_comparison,
    tolerances,
)
from rackval.harness.analysis.compare.selection import Selection, resolve
from rackval.harness.analysis.rollup import SpecRecord, spec_record

if TYPE_CHECKING:
    from rackval.harness.store import Store

MAX_OVERLAYS = 8
"""Sampled channels drawn as overlay plots (those of regressed devices with a limit first); the
rest are listed by name (each plot costs time and ~40 KB of page)."""
MAX_POINTS_PER_CURVE = 600  # a 9-inch plot is ~900 px wide: more points only weigh the page
MAX_LIMIT_LINES = 2
"""Limit lines per overlay (the device's most regressed requirements in the channel's unit)."""


@dataclass(frozen=True)
class Overlay:
    channel: str
    device: str
    svg: str


@dataclass
class Comparison:
    baseline: Selection
    candidate: Selection
    rows: list[Row]
    threshold_pct: float
    overlays: list[Overlay] = field(default_factory=list)
    omitted_channels: list[str] = field(default_factory=list)
    # one row per requirement (``rackval.harness.analysis.rollup``), what a reader sees first
    requirements: list[RequirementChange] = field(default_factory=list)
    spec: SpecRecord = field(default_factory=SpecRecord)

    @property
    def coverage(self) -> tuple[int, int]:
        return covered_count(self.requirements, self.spec.requirements)

    @property
    def new_failures(self) -> list[Row]:
        return [r for r in self.rows if r.new_failure]

    @property
    def exit_status(self) -> int:
        return 1 if self.new_failures else 0

    def counts(self) -> list[tuple[str, int]]:
        return [(c, sum(1 for r in self.rows if r.classification == c)) for c in CLASS_ORDER]


def compare(
    store: Store, baseline: str, candidate: str, *, threshold_pct: float | None = None, plots: bool = True
) -> Comparison:
    """Resolve both selectors, pair and classify, roll up per requirement; draw the sample overlays
    when ``plots``. ``threshold_pct`` None: the candidate's spec's ``tolerance_pct`` (else the
    baseline's, else ``DEFAULT_THRESHOLD_PCT``); each requirement's stated ``tolerance`` applies too."""
    base = resolve(store, baseline, "baseline")
    cand = resolve(store, candidate, "candidate")
    spec = next((s for u in (*cand.runs[::-1], *base.runs[::-1]) if (s := spec_record(u.run)).known), SpecRecord())
    if threshold_pct is None:
        threshold_pct = spec.tolerance_pct if spec.known else DEFAULT_THRESHOLD_PCT
    rows = pair(collect(store, base), collect(store, cand), threshold_pct, tolerances(spec))
    result = Comparison(base, cand, rows, threshold_pct, spec=spec)
    result.requirements = rollup_comparison(rows, spec, threshold_pct)
    if plots:
        result.overlays, result.omitted_channels = overlay_plots(store, base, cand, result.requirements)
    return result


def _limits_by_device(requirements: list[RequirementChange]) -> dict[str, list[tuple[str, Side]]]:
    """{device: [(requirement, its side with limits)]}, in the requirements' rank order (most
    regressed first): which limit a sampled channel of that device can be drawn against."""
    found: dict[str, list[tuple[str, Side]]] = {}
    for change in requirements:
        for row in change.device_rows:
            side = row.candidate or row.baseline
            if side is not None and (side.low is not None or side.high is not None):
                found.setdefault(row.device, []).append((change.key, side))
    return found


def _channel_limits(limits: list[tuple[str, Side]], unit: str) -> list[tuple[str, float]]:
    """(label, value in ``unit``) of the limits of requirements measured in a unit ``unit`` converts
    to (a fan channel in rpm gets fan_speed's limits; a power channel in W, a limit in kW)."""
    from rackval.harness.units import convert

    lines: dict[tuple[str, float], None] = {}
    for key, side in limits:
        for bound, word in ((side.low, "≥"), (side.high, "≤")):
            if bound is None:
                continue
            try:
                value = convert(bound, side.unit, unit) if unit else bound
            except ConfigError:
                continue
            lines[(f"{key} {word} {bound:g} {side.unit}", value)] = None
    return list(lines)[:MAX_LIMIT_LINES]


def overlay_plots(
    store: Store, baseline: Selection, candidate: Selection, requirements: list[RequirementChange] | None = None
) -> tuple[list[Overlay], list[str]]:
    """Samples vs run clock for the (channel, device)s sampled on both sides, one curve per run:
    channels of devices whose requirements regressed first (in the rollup's order), then the rest
    by name (a channel in the unit of a regressed requirement of its device before the others);
    each with the limits of its device's requirements in a compatible unit."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from rackval.harness.report.plots import LIMIT_COLOUR, figure_to_svg, label_text

    def channels(sel: Selection) -> dict[tuple[str, str], set[str]]:
        found: dict[tuple[str, str], set[str]] = {}
        for used in sel.runs:
            for c in store.sample_channels(used.run.run_id):
                found.setdefault((c.channel, c.device), set()).add(c.unit)
        return found

    base_channels, cand_channels = channels(baseline), channels(candidate)
    limits = _limits_by_device(requirements or [])
    regressed = [r.device for c in requirements or [] if c.classification == REGRESSION for r in c.device_rows
                 if r.classification == REGRESSION]  # fmt: skip
    first = {device: i for i, device in reversed(list(enumerate(regressed)))}

    regressed_limits = _limits_by_device([c for c in requirements or [] if c.classification == REGRESSION])

    def relevance(cd: tuple[str, str]) -> tuple[object, ...]:
        """A channel showing a regressed requirement's quantity first, then its device's other channels."""
        units = base_channels[cd] | cand_channels[cd]
        shows = len(units) == 1 and bool(_channel_limits(regressed_limits.get(cd[1], []), next(iter(units))))
        return (not shows, first.get(cd[1], len(first)), cd)

    common = sorted(set(base_channels) & set(cand_channels), key=relevance)
    overlays: list[Overlay] = []
    for index, (channel, device) in enumerate(common[:MAX_OVERLAYS]):
        fig = Figure(figsize=(9, 3.2))
        fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.9)
        ax = fig.add_subplot()
        for sel, colour, style in ((baseline, "#1565c0", "-"), (candidate, "#e65100", "--")):
            for used in sel.runs:
                samples = store.samples(used.run.run_id, channel, device=device)
                step = max(1, math.ceil(len(samples) / MAX_POINTS_PER_CURVE))
                picked = samples[::step]
                ax.plot(
                    [s.t for s in picked],
                    [math.nan if s.value is None else s.value for s in picked],
                    color=colour,
                    linestyle=style,
                    linewidth=1.1,
                    alpha=0.85,
                )
        units = sorted((base_channels[(channel, device)] | cand_channels[(channel, device)]) - {""})
        title = f"{channel} on {device}" if device else channel
        ax.set_title(label_text(title, 80), fontsize=10)
        ax.set_xlabel("run clock (s)")
        ax.set_ylabel(label_text(" / ".join(units), 16) or "value")
        ax.grid(True, alpha=0.3)
        handles = [Line2D([], [], color="#1565c0", linestyle="-"), Line2D([], [], color="#e65100", linestyle="--")]
        labels = [label_text(f"baseline: {baseline.name}", 40), label_text(f"candidate: {candidate.name}", 40)]
        unit = units[0] if len(units) == 1 else ""
        for label, value in _channel_limits(limits.get(device, []), unit) if len(units) <= 1 else []:
            ax.axhline(value, color=LIMIT_COLOUR, linewidth=1.2, linestyle=":")
            handles.append(Line2D([], [], color=LIMIT_COLOUR, linestyle=":"))
            labels.append(label_text(f"limit: {label}", 48))
        ax.legend(handles, labels, fontsize=8, loc="best")
        svg = figure_to_svg(fig, f"overlay{index}", f"{title}: baseline and candidate samples over time")
        overlays.append(Overlay(channel, device, svg))
    omitted = [f"{c} on {d}" if d else c for c, d in common[MAX_OVERLAYS:]]
    return overlays, omitted
