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
"""Up to this many limited measurements the margin chart is a labelled bar chart; above, a strip."""
MAX_SERIES_PER_PLOT = 10
MAX_TIME_SERIES_PLOTS = 12
"""Each time-series figure costs tens of milliseconds; beyond this the report lists the rest."""

_SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_ID_REF = re.compile(r'(\bid="|href="#|url\(#)([^"()]+)')
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


def _where(m: Measurement) -> str:
    return "/".join(part for part in (m.device, m.channel) if part)


def figure_to_svg(fig: Figure, id_prefix: str, aria_label: str = "") -> str:
    """Serialise ``fig`` as an SVG fragment fit for inlining in HTML (see module docstring).

    ``id_prefix`` must be unique within the document and made of [A-Za-z0-9_-]; ``aria_label``
    is plain text and is escaped here.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", id_prefix):
        raise ValueError(f"bad SVG id prefix {id_prefix!r}")
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=_SVG_METADATA)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)
    svg = _COMMENT.sub("", svg)

    renamed: dict[str, str] = {}
    for match in re.finditer(r'\bid="([^"]+)"', svg):
        renamed.setdefault(match.group(1), f"{id_prefix}-{len(renamed)}")

    def _rename(match: re.Match[str]) -> str:
        return match.group(1) + renamed.get(match.group(2), match.group(2))

    svg = _ID_REF.sub(_rename, svg)
    label = aria_label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    # Keep matplotlib's width/height (a sane default size); CSS caps the width to the page.
    svg = svg.replace("<svg", f'<svg class="plot" role="img" aria-label="{label}"', 1)
    return re.sub(r"\n\s*", "\n", svg).strip()


def margin_chart(measurements: Sequence[Measurement], id_prefix: str = "margin") -> str | None:
    """Where each limited measurement sits relative to its limits, coloured by outcome.

    Few measurements: one labelled horizontal bar each. Many: a strip of points in recording
    order (labels would be unreadable). None when no measurement has limits.
    """
    points = [(m, normalised_margin(m)) for m in measurements]
    limited = [(m, y) for m, y in points if y is not None]
    if not limited:
        return None
    if len(limited) <= BAR_CHART_MAX:
        fig = Figure(figsize=(9, 0.28 * len(limited) + 1.3), layout="constrained")
        ax = fig.add_subplot()
        positions = list(range(len(limited)))
        ax.barh(
            positions,
            [y for _, y in limited],
            color=[OUTCOME_COLOURS[m.outcome] for m, _ in limited],
            height=0.7,
        )
        labels = [label_text(f"{m.name} [{_where(m)}]" if _where(m) else m.name) for m, _ in limited]
        ax.set_yticks(positions, labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0.0, color=LIMIT_COLOUR, linewidth=1.2, linestyle="--")
        ax.set_xlim(-CLIP_PERCENT * 1.05, CLIP_PERCENT * 1.05)
        ax.set_xlabel("margin to nearest limit, % of limit reference (0 = on the limit, < 0 = outside)")
    else:
        fig = Figure(figsize=(9, 3.6), layout="constrained")
        ax = fig.add_subplot()
        for outcome in (Outcome.PASS, Outcome.MARGINAL, Outcome.FAIL):
            xs = [i for i, (m, _) in enumerate(limited) if m.outcome == outcome]
            ys = [limited[i][1] for i in xs]
            if xs:
                ax.plot(xs, ys, linestyle="none", marker="o", markersize=3, color=OUTCOME_COLOURS[outcome])
        ax.axhline(0.0, color=LIMIT_COLOUR, linewidth=1.2, linestyle="--")
        ax.set_ylim(-CLIP_PERCENT * 1.05, CLIP_PERCENT * 1.05)
        ax.set_xlabel("limited measurement, in recording order")
        ax.set_ylabel("margin, % of limit reference")
    present = [o for o in (Outcome.PASS, Outcome.MARGINAL, Outcome.FAIL) if any(m.outcome == o for m, _ in limited)]
    handles = [Line2D([], [], color=OUTCOME_COLOURS[o], marker="s", linestyle="none") for o in present]
    handles.append(Line2D([], [], color=LIMIT_COLOUR, linestyle="--"))
    ax.legend(handles, [o.value for o in present] + ["limit"], fontsize=8, loc="best")
    ax.grid(True, alpha=0.3)
    return figure_to_svg(fig, id_prefix, "margin of every limited measurement relative to its limits")


def _series_key(m: Measurement) -> tuple[str, str]:
    return (m.device, m.channel)


def time_series_groups(measurements: Sequence[Measurement]) -> dict[str, list[Measurement]]:
    """Measurement names recorded repeatedly on the same device/channel, in plotting priority.

    A name measured once on each of 24 outlets is a snapshot, not a time series, so a name
    qualifies only when at least one (device, channel) has two or more samples. Names with a
    failing, then a marginal, sample come first, so the cap drops the least interesting plots.
    """
    by_name: dict[str, list[Measurement]] = {}
    for m in measurements:
        by_name.setdefault(m.name, []).append(m)
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
        ax.plot([_x(m) for m in samples], [m.value for m in samples], marker=".", linewidth=1.2, label=label)
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
    ax.set_title(label_text(name, 80), fontsize=10)
    ax.set_xlabel(x_label)
    ax.set_ylabel(label_text(unit, 16) or "value")
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


MAX_TELEMETRY_CHANNELS_PER_PLOT = 8
"""Channels drawn in one telemetry figure; the rest of the group is in the channel table."""
MAX_TELEMETRY_PLOTS = 8
"""Telemetry figures (one per unit); further units are only in the channel table."""
TELEMETRY_BUCKETS = 500
"""Time buckets per channel: about one per horizontal pixel of the plot area, so the min/max
envelope looks exactly like the raw samples would while costing a fixed ~20 kB per channel."""


@dataclass(frozen=True)
class EnvelopeSeries:
    """One channel's min/max envelope, ready to draw (``t`` is bucket centres, run clock s)."""

    label: str
    t: Sequence[float]
    low: Sequence[float]
    high: Sequence[float]


def telemetry_chart(
    title: str,
    unit: str,
    series: Sequence[EnvelopeSeries],
    limits: Sequence[float],
    id_prefix: str,
) -> str:
    """A group of telemetry channels of one unit over the run clock, each as its min/max band.

    Drawing the per-bucket envelope (not the raw points) keeps every spike visible while the SVG
    stays the same size for 3,600 or 3.6 M samples. Limits from measurements on these channels
    are dashed lines.
    """
    fig = Figure(figsize=(9, 3.4))
    fig.subplots_adjust(left=0.09, right=0.78, bottom=0.14, top=0.9)
    ax = fig.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(series))]
    handles: list[Line2D] = []
    labels: list[str] = []
    for s, colour in zip(series, colours, strict=True):
        if len(s.t) == 0:
            continue
        ax.fill_between(s.t, s.low, s.high, color=colour, alpha=0.35, linewidth=0.7, edgecolor=colour)
        handles.append(Line2D([], [], color=colour, linewidth=4, alpha=0.6))
        labels.append(label_text(s.label, 32))
    for value in sorted(set(limits))[:6]:
        ax.axhline(value, color=LIMIT_COLOUR, linewidth=1.0, linestyle="--")
    if limits:
        handles.append(Line2D([], [], color=LIMIT_COLOUR, linestyle="--"))
        labels.append("limit")
    ax.set_title(label_text(title, 80), fontsize=10)
    ax.set_xlabel("clock (s)")
    ax.set_ylabel(label_text(unit, 16) or "value")
    ax.grid(True, alpha=0.3)
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return figure_to_svg(fig, id_prefix, title)
