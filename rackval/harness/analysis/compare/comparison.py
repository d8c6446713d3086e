"""The whole comparison: both sides resolved, paired and classified, with the overlay plots of the
telemetry both sides sampled. What ``render`` writes and ``command`` prints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rackval.harness.analysis.compare.pairing import CLASS_ORDER, DEFAULT_THRESHOLD_PCT, Row, collect, pair
from rackval.harness.analysis.compare.selection import Selection, resolve

if TYPE_CHECKING:
    from rackval.harness.store import Store

MAX_OVERLAYS = 12
"""Sampled channels drawn as overlay plots; the rest are listed by name (each plot costs time)."""
MAX_POINTS_PER_CURVE = 2000


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

    @property
    def new_failures(self) -> list[Row]:
        return [r for r in self.rows if r.new_failure]

    @property
    def exit_status(self) -> int:
        return 1 if self.new_failures else 0

    def counts(self) -> list[tuple[str, int]]:
        return [(c, sum(1 for r in self.rows if r.classification == c)) for c in CLASS_ORDER]


def compare(
    store: Store, baseline: str, candidate: str, *, threshold_pct: float = DEFAULT_THRESHOLD_PCT, plots: bool = True
) -> Comparison:
    """Resolve both selectors, pair and classify; draw the sample overlays when ``plots``."""
    base = resolve(store, baseline, "baseline")
    cand = resolve(store, candidate, "candidate")
    rows = pair(collect(store, base), collect(store, cand), threshold_pct)
    result = Comparison(base, cand, rows, threshold_pct)
    if plots:
        result.overlays, result.omitted_channels = overlay_plots(store, base, cand)
    return result


def overlay_plots(store: Store, baseline: Selection, candidate: Selection) -> tuple[list[Overlay], list[str]]:
    """Samples vs run clock for every (channel, device) sampled on both sides, one curve per run."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from rackval.harness.report.plots import figure_to_svg, label_text

    def channels(sel: Selection) -> dict[tuple[str, str], set[str]]:
        found: dict[tuple[str, str], set[str]] = {}
        for used in sel.runs:
            for c in store.sample_channels(used.run.run_id):
                found.setdefault((c.channel, c.device), set()).add(c.unit)
        return found

    base_channels, cand_channels = channels(baseline), channels(candidate)
    common = sorted(set(base_channels) & set(cand_channels))
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
        ax.legend(handles, labels, fontsize=8, loc="best")
        svg = figure_to_svg(fig, f"overlay{index}", f"{title}: baseline and candidate samples over time")
        overlays.append(Overlay(channel, device, svg))
    omitted = [f"{c} on {d}" if d else c for c, d in common[MAX_OVERLAYS:]]
    return overlays, omitted
