"""Plots for the HTML report, drawn with matplotlib's object API and returned as inline SVG.

Why inline SVG: the report must be one self-contained file that opens on an air-gapped bench PC,
scales without blurring and diffs as text. Every figure is a ``matplotlib.figure.Figure`` of its
own (never pyplot's global figure manager), so rendering is thread-safe enough and leaves no
state behind. The SVG is post-processed so several plots can live in one HTML document: the XML
prolog, DOCTYPE, metadata and comments are dropped and every ``id`` is renamed to a per-plot
prefix with a counter, which makes the output deterministic and the ids unique.

Text that comes from the store (measurement names, devices, channels) only ever reaches the SVG
through matplotlib, which XML-escapes it; before that it is cleaned of control characters and
``$`` signs are escaped so a name can never switch matplotlib into mathtext.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from rackval.harness.measure import Measurement, Outcome, limit_reference, measurement_margin

OUTCOME_COLOURS: dict[Outcome, str] = {
    Outcome.PASS: "#2e7d32",
    Outcome.MARGINAL: "#e69500",
    Outcome.FAIL: "#c62828",
    Outcome.INFO: "#757575",
}
LIMIT_COLOUR = "#b71c1c"
CLIP_PERCENT = 100.0
BAR_CHART_MAX = 40
"""Requirements (rows) in the margin chart, worst margin first; the rest are in the tables."""
MAX_SERIES_PER_PLOT = 10
GAP_FACTOR = 2.0
"""A line breaks where consecutive points are more than this many nominal intervals apart."""
MAX_TIME_SERIES_PLOTS = 12
"""Each time-series figure costs tens of milliseconds; beyond this the report lists the rest."""

_SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_SVG_RC = {"svg.fonttype": "none"}
"""Text as SVG ``<text>`` (in the report's sans-serif), not as glyph outlines: a channel name in a
legend can be found with the browser's search and copied, and a figure with a legend of long
channel names draws in about half the time and weighs less."""
_ID_REF = re.compile(r'( id="|href="#|url\(#)([^"()]+)')  # one pass; a leading \b would make it 4x slower
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


@dataclass(frozen=True)
class TimeSeriesPlot:
    """One measurement name plotted over time; ``svg`` is trusted markup produced here."""

    name: str
    svg: str
    series_shown: int
    series_total: int
    x_label: str


def label_text(text: str, limit: int = 48) -> str:
    """Store text made safe to hand to matplotlib as a label.

    Control characters become spaces (a newline in a name would break the layout), long names are
    shortened, and ``$`` is escaped so an odd name cannot be parsed as mathtext (which could raise
    or render something other than what was recorded).
    """
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned.replace("$", r"\$")


def set_title(ax: Axes, text: str) -> None:
    """The axes' title at its default place, pinned there: left to place itself, matplotlib
    measures every tick label to dodge labels on the top axis (these figures have none; 27 ms a
    kind chart under cProfile, ~10 ms without)."""
    ax.set_title(text, fontsize=10, y=1.0)


def normalised_margin(m: Measurement) -> float | None:
    """Margin as a percentage of the limit reference, clipped to +/- ``CLIP_PERCENT``.

    0 % is exactly on a limit, negative is outside. A value that cannot be normalised (NaN, a
    zero reference) is drawn at the clip edge on the side its outcome says, so it stays visible.
    None when the measurement has no limits.
    """
    reference = limit_reference(m)
    margin = measurement_margin(m)
    if reference is None or margin is None:
        return None
    if math.isnan(margin) or math.isnan(reference):
        return -CLIP_PERCENT
    if reference <= 0:
        if margin == 0:
            return 0.0
        return CLIP_PERCENT if margin > 0 else -CLIP_PERCENT
    return max(-CLIP_PERCENT, min(CLIP_PERCENT, 100.0 * margin / reference))


def figure_to_svg(fig: Figure, id_prefix: str, aria_label: str = "") -> str:
    """Serialise ``fig`` as an SVG fragment fit for inlining in HTML (see module docstring).

    ``id_prefix`` must be unique within the document and made of [A-Za-z0-9_-]; ``aria_label``
    is plain text and is escaped here.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", id_prefix):
        raise ValueError(f"bad SVG id prefix {id_prefix!r}")
    buf = io.StringIO()
    with matplotlib.rc_context(_SVG_RC):
        fig.savefig(buf, format="svg", metadata=_SVG_METADATA)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)
    svg = _COMMENT.sub("", svg)

    renamed: dict[str, str] = {}

    def _rename(match: re.Match[str]) -> str:  # ids and references alike, numbered as first seen
        name = renamed.get(match.group(2))
        if name is None:
            name = renamed[match.group(2)] = f"{id_prefix}-{len(renamed)}"
        return match.group(1) + name

    svg = _ID_REF.sub(_rename, svg)
    label = aria_label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    # Keep matplotlib's width/height (a sane default size); CSS caps the width to the page.
    svg = svg.replace("<svg", f'<svg class="plot" role="img" aria-label="{label}"', 1)
    return "\n".join(line.lstrip() for line in svg.splitlines() if line.strip())


def margin_rows(measurements: Sequence[Measurement]) -> list[tuple[str, list[tuple[Measurement, float]]]]:
    """Limited measurements grouped by requirement (or name, without one), with their normalised
    margins; groups ordered worst margin first, so a cap keeps the requirements most at risk."""
    groups: dict[str, list[tuple[Measurement, float]]] = {}
    for m in measurements:
        y = normalised_margin(m)
        if y is not None:
            groups.setdefault(m.requirement or m.name, []).append((m, y))
    rank = {Outcome.FAIL: 0, Outcome.MARGINAL: 1}

    def order(kv: tuple[str, list[tuple[Measurement, float]]]) -> tuple[int, bool, float, str]:
        name, points = kv
        # a limit with no room by design (a count that must be 0) is not "at risk": after the rest
        exact = all(not limit_reference(m) for m, _ in points)
        return (min(rank.get(m.outcome, 2) for m, _ in points), exact, min(y for _, y in points), name)

    return sorted(groups.items(), key=order)


def margin_chart(measurements: Sequence[Measurement], id_prefix: str = "margin") -> str | None:
    """Where each requirement's measurements sit relative to their limits: one row per requirement
    (worst first, at most ``BAR_CHART_MAX``), a bar to its worst margin and a dot per measurement
    (device, channel), coloured by outcome. None when no measurement has limits."""
    rows = margin_rows(measurements)[:BAR_CHART_MAX]
    if not rows:
        return None
    fig = Figure(figsize=(9, 0.3 * len(rows) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    positions = list(range(len(rows)))
    worst = [min(points, key=lambda p: p[1]) for _, points in rows]
    ax.barh(positions, [y for _, y in worst], color=[OUTCOME_COLOURS[m.outcome] for m, _ in worst], height=0.6,
            alpha=0.35)  # fmt: skip
    for outcome in (Outcome.PASS, Outcome.MARGINAL, Outcome.FAIL):
        xs = [y for _, points in rows for m, y in points if m.outcome == outcome]
        ys = [i for i, (_, points) in enumerate(rows) for m, _ in points if m.outcome == outcome]
        if xs:
            ax.plot(xs, ys, linestyle="none", marker="o", markersize=3.5, color=OUTCOME_COLOURS[outcome])
    labels = [label_text(f"{name} ({len(points)})", 44) for name, points in rows]
    ax.set_yticks(positions, labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0.0, color=LIMIT_COLOUR, linewidth=1.2, linestyle="--")
    ax.set_xlim(-CLIP_PERCENT * 1.05, CLIP_PERCENT * 1.05)
    ax.set_xlabel("margin to the nearest limit, % of the limit reference (0 = on the limit, < 0 = outside)")
    present = [o for o in (Outcome.PASS, Outcome.MARGINAL, Outcome.FAIL)
               if any(m.outcome == o for _, points in rows for m, _ in points)]  # fmt: skip
    handles = [Line2D([], [], color=OUTCOME_COLOURS[o], marker="o", linestyle="none") for o in present]
    handles.append(Line2D([], [], color=LIMIT_COLOUR, linestyle="--"))
    ax.legend(handles, [o.value for o in present] + ["limit"], fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    return figure_to_svg(fig, id_prefix, "margin of every limited measurement relative to its limits, by requirement")


def _series_key(m: Measurement) -> tuple[str, str]:
    return (m.device, m.channel)


def time_series_groups(measurements: Sequence[Measurement]) -> dict[str, list[Measurement]]:
    """Measurement names recorded repeatedly on the same device/channel, in plotting priority.

    A name measured once on each of 24 outlets is a snapshot, not a time series, so a name
    qualifies only when at least one (device, channel) has two or more samples. Names with a
    failing, then a marginal, sample come first, so the cap drops the least interesting plots.
    """
    by_key: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        by_key.setdefault((m.name, m.unit), []).append(m)
    units_of: dict[str, int] = {}
    for name, _ in by_key:
        units_of[name] = units_of.get(name, 0) + 1
    # one unit per figure: a name recorded in two units becomes two figures, each titled with its unit
    by_name = {(name if units_of[name] == 1 else f"{name} [{unit or 'no unit'}]"): group
               for (name, unit), group in by_key.items()}  # fmt: skip
    qualifying: dict[str, list[Measurement]] = {}
    for name, group in by_name.items():
        counts: dict[tuple[str, str], int] = {}
        for m in group:
            counts[_series_key(m)] = counts.get(_series_key(m), 0) + 1
        if max(counts.values()) >= 2:
            qualifying[name] = group

    def _priority(item: tuple[int, str]) -> tuple[int, int]:
        index, name = item
        outcomes = {m.outcome for m in qualifying[name]}
        rank = 0 if Outcome.FAIL in outcomes else 1 if Outcome.MARGINAL in outcomes else 2
        return (rank, index)

    ordered = sorted(enumerate(qualifying), key=_priority)
    return {name: qualifying[name] for _, name in ordered}


def broken_at_gaps(t: np.ndarray, *series: np.ndarray, gap: float | None = None) -> tuple[np.ndarray, ...]:
    """``t`` and ``series`` with a NaN inserted wherever consecutive times are more than ``gap``
    apart (default: ``GAP_FACTOR`` times the median interval of ``t``), so lines and bands stop
    at a gap instead of drawing a ramp across it."""
    t = np.asarray(t, dtype=float)
    series = tuple(np.asarray(s, dtype=float) for s in series)
    if t.size < 2 or (gap is None and t.size < 3):
        return (t, *series)
    steps = np.diff(t)
    if gap is None:
        gap = GAP_FACTOR * float(np.median(steps))
        if gap <= 0:
            return (t, *series)
    cut = np.flatnonzero(steps > gap) + 1
    if cut.size == 0:
        return (t, *series)
    t_out = np.insert(t, cut, (t[cut - 1] + t[cut]) / 2.0)
    return (t_out, *(np.insert(s, cut, np.nan) for s in series))


def time_series_chart(name: str, group: Sequence[Measurement], run_started_at: float, id_prefix: str) -> TimeSeriesPlot:
    """One figure for one measurement name: a line per device/channel, limits as dashed lines.

    The x axis is the harness clock (``clock_s``, virtual time on the simulator) when every sample
    has one, else wall time since the run started.
    """
    use_clock = all(m.clock_s is not None for m in group)
    x_label = "clock (s)" if use_clock else "time since run start (s)"

    def _x(m: Measurement) -> float:
        return float(m.clock_s) if use_clock and m.clock_s is not None else m.recorded_at - run_started_at

    series: dict[tuple[str, str], list[Measurement]] = {}
    for m in group:
        series.setdefault(_series_key(m), []).append(m)
    shown = list(series.items())[:MAX_SERIES_PER_PLOT]

    # Fixed margins instead of constrained layout: layout engines make savefig draw twice, and
    # these figures all have the same furniture.
    fig = Figure(figsize=(9, 3.2))
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.9)
    ax = fig.add_subplot()
    for key, samples in shown:
        samples = sorted(samples, key=_x)
        label = label_text("/".join(p for p in key if p) or "value", 32)
        xs, ys = broken_at_gaps(np.array([_x(m) for m in samples]), np.array([m.value for m in samples]))
        ax.plot(xs, ys, marker=".", linewidth=1.2, label=label)
        for outcome in (Outcome.MARGINAL, Outcome.FAIL):
            flagged = [m for m in samples if m.outcome == outcome]
            if flagged:
                ax.plot(
                    [_x(m) for m in flagged],
                    [m.value for m in flagged],
                    linestyle="none",
                    marker="o",
                    markersize=6,
                    markerfacecolor="none",
                    markeredgecolor=OUTCOME_COLOURS[outcome],
                )
    lows = sorted({m.low for m in group if m.low is not None})[:4]
    highs = sorted({m.high for m in group if m.high is not None})[:4]
    for value in lows + highs:
        ax.axhline(value, color=LIMIT_COLOUR, linewidth=1.0, linestyle="--")
    unit = group[0].unit
    set_title(ax, label_text(name, 80))
    ax.set_xlabel(x_label)
    ax.set_ylabel(label_text(f"{name} ({unit or 'no unit'})", 40))
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if lows or highs:
        handles.append(Line2D([], [], color=LIMIT_COLOUR, linestyle="--"))
        labels.append("limit")
    if len(handles) > 1:
        ax.legend(handles, labels, fontsize=8, loc="best")
    return TimeSeriesPlot(
        name=name,
        svg=figure_to_svg(fig, id_prefix, f"time series of {name}"),
        series_shown=len(shown),
        series_total=len(series),
        x_label=x_label,
    )


TELEMETRY_BUCKETS = 500
"""Time buckets per channel: about one per horizontal pixel of the plot area, so the min/max
envelope looks exactly like the raw samples would while costing a fixed ~20 kB per channel."""
ENVELOPE_COLOUR = "#90a4ae"


@dataclass(frozen=True)
class ChannelTrace:
    """A min/max band over time (``median`` optional: drawn as a line), ready to draw; NaNs in
    the arrays are gaps (the band and line stop there)."""

    label: str
    t: Sequence[float]
    low: Sequence[float]
    high: Sequence[float]
    median: Sequence[float] = ()


def kind_chart(
    *,
    title: str,
    y_label: str,
    x_label: str,
    envelope: ChannelTrace,
    highlights: Sequence[ChannelTrace],
    limits: Sequence[float],
    id_prefix: str,
) -> str:
    """All channels of one kind: their envelope as a grey band with the median as a line, the
    relevant channels as coloured bands on top, limits as dashed lines. One quantity, one unit."""
    fig = Figure(figsize=(12, 3.6))
    fig.subplots_adjust(left=0.07, right=0.74, bottom=0.15, top=0.9)
    ax = fig.add_subplot()
    handles: list[Line2D] = []
    labels: list[str] = []
    if len(envelope.t):
        ax.fill_between(envelope.t, envelope.low, envelope.high, color=ENVELOPE_COLOUR, alpha=0.45, linewidth=0)
        handles.append(Line2D([], [], color=ENVELOPE_COLOUR, linewidth=6, alpha=0.6))
        labels.append(label_text(envelope.label, 40))
        if len(envelope.median):
            ax.plot(envelope.t, envelope.median, color="#455a64", linewidth=1.0)
            handles.append(Line2D([], [], color="#455a64", linewidth=1.0))
            labels.append("all channels: median")
    for i, trace in enumerate(highlights):
        colour = f"C{i % 10}"
        ax.fill_between(trace.t, trace.low, trace.high, color=colour, alpha=0.5, linewidth=0.8, edgecolor=colour)
        handles.append(Line2D([], [], color=colour, linewidth=4, alpha=0.7))
        labels.append(label_text(trace.label, 40))
    for value in sorted(set(limits))[:6]:
        ax.axhline(value, color=LIMIT_COLOUR, linewidth=1.0, linestyle="--")
    if limits:
        handles.append(Line2D([], [], color=LIMIT_COLOUR, linestyle="--"))
        labels.append("limit")
    set_title(ax, label_text(title, 80))
    ax.set_xlabel(label_text(x_label, 80))
    ax.set_ylabel(label_text(y_label, 40))
    ax.grid(True, alpha=0.3)
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return figure_to_svg(fig, id_prefix, title)
