"""``rackval trend``: one measurement across runs and units, in time order, with control limits
and outliers, to see whether a unit, a station or a revision is out of family.

Points: every run (finished or not: each record was judged when it was taken) that recorded a
measurement whose requirement or name is the one asked for, optionally only on ``--device`` /
``--channel``. One point per run and (device, channel): several records of it in one run (a time
series) become their mean, like the subgroup mean of an X-bar chart; the point's outcome is the
worst of those records. Values in other units of the same quantity are converted to the unit of
the latest record (W and kW mix; W and A do not: ConfigError).

Control limits: mean +- 3 sigma of all points with a value (sample standard deviation, ddof=1),
shown with the spec limits recorded with the latest point (earlier, different spec limits are
drawn too). Only from ``MIN_CONTROL_POINTS`` (11) points on: with n points no point can lie more
than (n-1)/sqrt(n) sample sigmas from their mean, which is under 3 up to n = 10, so limits from
fewer points could never flag anything and would only look reassuring. Below that the output says
so, and outliers are judged by the robust z-score alone.

Outliers, the rule: a point is an outlier when it lies beyond the control limits **or** its
robust (modified) z-score exceeds 3.5 in magnitude: z = 0.6745 (x - median) / MAD, with MAD the
median absolute deviation from the median (Iglewicz and Hoaglin). Why both: with few points, one
wild unit inflates sigma so much that it can never leave mean +- 3 sigma (with n points the
largest possible z-score is (n-1)/sqrt(n), under 3 up to n = 10), while median and MAD barely move.
When MAD is 0 (more than half the points identical) the mean absolute deviation from the median
is used instead, z = (x - median) / (1.253314 * meanAD); when that is 0 too, nothing is an outlier
by this rule.
"""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rackval.core.errors import ConfigError
from rackval.core.printable import printable
from rackval.harness.analysis import environment, safe_path_part, write_atomic
from rackval.harness.cliutil import add_results_option, default_out_dir, open_results
from rackval.harness.measure import Measurement, Outcome

if TYPE_CHECKING:
    import pandas as pd

    from rackval.harness.store import Store

GROUP_COLUMNS = {"serial": "rack_serial", "revision": "design_revision", "station": "station"}
MIN_CONTROL_POINTS = 11
"""Points needed before mean +- 3 sigma is drawn (see the module docstring: (n-1)/sqrt(n) >= 3)."""
ROBUST_Z_LIMIT = 3.5
SIGMA_LIMIT = 3.0
MAD_SCALE = 0.6745  # the 0.75 quantile of the standard normal: makes MAD comparable to sigma
MEANAD_SCALE = 1.253314  # sqrt(pi/2): mean absolute deviation to sigma for a normal distribution
MAX_LEGEND_GROUPS = 12
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79")
CSV_COLUMNS = (
    "time_utc",
    "run_id",
    "rack_serial",
    "design_revision",
    "station",
    "device",
    "channel",
    "name",
    "requirement",
    "value",
    "unit",
    "low",
    "high",
    "records",
    "outcome",
    "run_status",
    "group",
    "robust_z",
    "beyond_control_limits",
    "outlier",
)
POINT_COLUMNS = (*CSV_COLUMNS[:17], "started_at")  # what load_points gives; analyse adds the rest
_SEVERITY = {Outcome.FAIL: 3, Outcome.MARGINAL: 2, Outcome.PASS: 1, Outcome.INFO: 0}


@dataclass(frozen=True)
class Stats:
    """Control statistics of the points with a value."""

    n: int
    mean: float
    sigma: float
    lcl: float
    ucl: float
    median: float
    mad: float


@dataclass
class Trend:
    name: str
    by: str
    device: str | None
    channel: str | None
    unit: str
    points: pd.DataFrame  # time order; one row per run and (device, channel); see CSV_COLUMNS
    stats: Stats
    spec_low: float | None
    spec_high: float | None
    groups: pd.DataFrame  # per group: n, mean, std, min, max, outliers

    @property
    def outliers(self) -> pd.DataFrame:
        return self.points[self.points["outlier"]]

    @property
    def spec_text(self) -> str:
        """The latest spec limits in words, as ``Limit.describe`` puts them."""
        from rackval.harness.report.html import format_number as num

        if self.spec_low is not None and self.spec_high is not None:
            return f"{num(self.spec_low)} .. {num(self.spec_high)} {self.unit}"
        if self.spec_high is not None:
            return f"<= {num(self.spec_high)} {self.unit}"
        if self.spec_low is not None:
            return f">= {num(self.spec_low)} {self.unit}"
        return "none recorded"

    @property
    def where(self) -> str:
        """The banner's requirement and devices: what exactly this trend follows."""
        reqs = sorted({r for r in self.points["requirement"] if r})
        devices = sorted({d for d in self.points["device"] if d})
        req = f"requirement {', '.join(reqs)}" if reqs else "no requirement (no limits recorded)"
        if not devices:
            dev = "no device"
        elif len(devices) <= 3:
            dev = f"device{'s' if len(devices) > 1 else ''} {', '.join(devices)}"
        else:
            dev = f"{len(devices)} devices ({', '.join(devices[:3])}, ...)"
        chan = f", channel {self.channel}" if self.channel else ""
        return f"{req}; {dev}{chan}"


# ---- statistics -------------------------------------------------------------------------------
def control_stats(values: pd.Series) -> Stats:
    """Mean, sigma (ddof=1), mean +- 3 sigma, median and MAD of the values that are not NaN."""
    v = values.dropna().astype(float)
    n = len(v)
    if n == 0:
        return Stats(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean = float(v.mean())
    sigma = float(v.std(ddof=1)) if n >= 2 else math.nan
    median = float(v.median())
    mad = float((v - median).abs().median())
    if n < MIN_CONTROL_POINTS:  # limits no point could ever leave: none (see MIN_CONTROL_POINTS)
        return Stats(n, mean, sigma, math.nan, math.nan, median, mad)
    return Stats(n, mean, sigma, mean - SIGMA_LIMIT * sigma, mean + SIGMA_LIMIT * sigma, median, mad)


def control_limits_refusal(n: int) -> str:
    """Why ``n`` points get no control limits; empty from ``MIN_CONTROL_POINTS`` on."""
    if n >= MIN_CONTROL_POINTS:
        return ""
    most = f"{(n - 1) / math.sqrt(n):.2f}" if n else "0"
    return (
        f"{n} value(s): no control limits below {MIN_CONTROL_POINTS} points (with {n}, no point can lie more than"
        f" {most} sigma from the mean, so mean ± 3 sigma could never flag one); outliers by robust z only"
    )


def robust_z(values: pd.Series, stats: Stats) -> pd.Series:
    """Modified z-scores (see the module docstring for the MAD = 0 fallback); NaN stays NaN."""
    deviation = values.astype(float) - stats.median
    if stats.mad > 0:
        return MAD_SCALE * deviation / stats.mad
    mean_ad = float(deviation.abs().mean()) if stats.n else 0.0
    if mean_ad > 0:
        return deviation / (MEANAD_SCALE * mean_ad)
    return deviation * 0.0


def flag_outliers(values: pd.Series) -> tuple[Stats, pd.DataFrame]:
    """The rule of the module docstring: columns robust_z, beyond_control_limits, outlier."""
    import pandas as pd

    stats = control_stats(values)
    v = values.astype(float)
    z = robust_z(v, stats)
    beyond = pd.Series(False, index=v.index)
    if stats.n >= MIN_CONTROL_POINTS and stats.sigma > 0:
        beyond = (v > stats.ucl) | (v < stats.lcl)
    outlier = beyond | (z.abs() > ROBUST_Z_LIMIT)
    frame = pd.DataFrame({"robust_z": z, "beyond_control_limits": beyond.astype(bool), "outlier": outlier.astype(bool)})
    return stats, frame


# ---- reading the store ------------------------------------------------------------------------
def _matches(m: Measurement, name: str, device: str | None, channel: str | None) -> bool:
    if name not in (m.requirement, m.name):
        return False
    return (device is None or m.device == device) and (channel is None or m.channel == channel)


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def load_points(store: Store, name: str, *, device: str | None = None, channel: str | None = None) -> pd.DataFrame:
    """One row per (run, device, channel) in time order (see the module docstring).

    The store has no cross-run query, so every run's measurements are read once: fine for the
    thousands of runs a lab collects, and it works the same on both backends."""
    import pandas as pd

    found: list[tuple[Any, list[Measurement]]] = []
    known: set[str] = set()
    for run in store.runs():
        picked = []
        for _, m in store.measurements(run.run_id):
            known.update(x for x in (m.requirement, m.name) if x)
            if _matches(m, name, device, channel):
                picked.append(m)
        if picked:
            found.append((run, picked))
    if not found:
        filters = "".join(f" {k} {v!r}" for k, v in (("on device", device), ("channel", channel)) if v is not None)
        close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"no measurement named or with requirement {name!r}{filters} in {store.path}{hint}")

    unit = found[-1][1][-1].unit  # the latest record's unit is the one to read the trend in
    rows = []
    for run, records in found:
        status, _ = store.run_status(run.run_id)
        by_key: dict[tuple[str, str], list[Measurement]] = {}
        for m in records:
            by_key.setdefault((m.device, m.channel), []).append(m)
        for (dev, chan), ms in by_key.items():
            rows.append(_point(run, status, dev, chan, ms, unit))
    return pd.DataFrame(rows, columns=list(POINT_COLUMNS))


def _point(run: Any, status: str, device: str, channel: str, ms: Sequence[Measurement], unit: str) -> dict[str, Any]:
    from rackval.harness.units import convert

    def c(x: float | None, m: Measurement) -> float | None:
        if x is None:
            return None
        try:
            return convert(float(x), m.unit, unit)
        except ConfigError as exc:
            raise ConfigError(f"{m.name!r} in run {run.run_id}: {exc}; pick one with --device/--channel") from exc

    values = [c(m.value, m) for m in ms]
    finite = [v for v in values if v is not None and not math.isnan(v)]
    last = ms[-1]
    worst = max(ms, key=lambda m: _SEVERITY[m.outcome])
    return {
        "time_utc": _utc(run.started_at),
        "run_id": run.run_id,
        "rack_serial": run.rack_serial,
        "design_revision": run.design_revision,
        "station": run.station,
        "device": device,
        "channel": channel,
        "name": last.name,
        "requirement": last.requirement,
        "value": sum(finite) / len(finite) if finite else math.nan,
        "unit": unit,
        "low": c(last.low, last),
        "high": c(last.high, last),
        "records": len(ms),
        "outcome": Outcome.FAIL.value if not finite else worst.outcome.value,
        "run_status": status,
        "started_at": run.started_at,
    }


def analyse(
    points: pd.DataFrame, name: str, by: str = "serial", *, device: str | None = None, channel: str | None = None
) -> Trend:
    """Control limits, outliers and the per-group summary of ``load_points``' frame."""
    if by not in GROUP_COLUMNS:
        raise ConfigError(f"--by must be one of {', '.join(GROUP_COLUMNS)}, not {by!r}")
    points = points.sort_values(["started_at", "device", "channel"], kind="stable").reset_index(drop=True)
    stats, flags = flag_outliers(points["value"])
    points = points.assign(group=points[GROUP_COLUMNS[by]].replace("", "(none)"), **flags)
    groups = (
        points.groupby("group", sort=False)
        .agg(
            n=("value", "count"),
            mean=("value", "mean"),
            std=("value", "std"),
            min=("value", "min"),
            max=("value", "max"),
            outliers=("outlier", "sum"),
        )
        .reset_index()
    )
    lows, highs = points["low"].dropna(), points["high"].dropna()
    return Trend(
        name=name,
        by=by,
        device=device,
        channel=channel,
        unit=str(points["unit"].iloc[-1]),
        points=points,
        stats=stats,
        spec_low=float(lows.iloc[-1]) if len(lows) else None,
        spec_high=float(highs.iloc[-1]) if len(highs) else None,
        groups=groups,
    )


def trend(
    store: Store, name: str, by: str = "serial", *, device: str | None = None, channel: str | None = None
) -> Trend:
    return analyse(load_points(store, name, device=device, channel=channel), name, by, device=device, channel=channel)


# ---- output -----------------------------------------------------------------------------------
def _csv_safe(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (=, +, -, @ first) gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(result: Trend, path: Path) -> Path:
    from pandas.api.types import is_numeric_dtype

    frame = result.points[list(CSV_COLUMNS)].copy()
    for column in frame.columns:
        if not is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(_csv_safe)
    return write_atomic(path, frame.to_csv(index=False, float_format="%.10g", lineterminator="\n"))


def plot_svg(result: Trend) -> str:
    """Points coloured by group against run start time; mean, control and spec limits as lines."""
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from rackval.harness.report.plots import LIMIT_COLOUR, figure_to_svg, label_text, set_title

    pts = result.points
    when = [datetime.fromtimestamp(t, tz=UTC).replace(tzinfo=None) for t in pts["started_at"]]
    fig = Figure(figsize=(9, 3.8))
    fig.subplots_adjust(left=0.09, right=0.74, bottom=0.2, top=0.9)
    ax = fig.add_subplot()
    handles, labels = [], []
    for index, group in enumerate(dict.fromkeys(pts["group"])):
        mask = (pts["group"] == group).to_numpy()
        colour = COLOURS[index % len(COLOURS)]
        ax.plot(
            [w for w, k in zip(when, mask, strict=True) if k],
            pts.loc[mask, "value"],
            linestyle="none",
            marker="o",
            markersize=5,
            color=colour,
        )
        if index < MAX_LEGEND_GROUPS:
            handles.append(Line2D([], [], color=colour, marker="o", linestyle="none"))
            labels.append(label_text(str(group), 24))
    flagged = pts["outlier"].to_numpy()
    if flagged.any():
        ax.plot(
            [w for w, k in zip(when, flagged, strict=True) if k],
            pts.loc[flagged, "value"],
            linestyle="none",
            marker="o",
            markersize=11,
            markerfacecolor="none",
            markeredgecolor=LIMIT_COLOUR,
            markeredgewidth=1.5,
        )
        handles.append(
            Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor=LIMIT_COLOUR, linestyle="none")
        )
        labels.append("outlier")
    s = result.stats
    if not math.isnan(s.mean):
        ax.axhline(s.mean, color="#555555", linewidth=1.0)
        handles.append(Line2D([], [], color="#555555"))
        labels.append("mean")
    if not math.isnan(s.lcl) and not math.isnan(s.ucl):
        for y in (s.lcl, s.ucl):
            ax.axhline(y, color="#e69500", linewidth=1.0, linestyle="-.")
        handles.append(Line2D([], [], color="#e69500", linestyle="-."))
        labels.append("mean ± 3 sigma")
    spec = sorted(set(pts["low"].dropna()) | set(pts["high"].dropna()))[:6]
    for y in spec:
        ax.axhline(y, color=LIMIT_COLOUR, linewidth=1.2, linestyle="--")
    if spec:
        handles.append(Line2D([], [], color=LIMIT_COLOUR, linestyle="--"))
        labels.append("spec limit")
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    set_title(ax, label_text(f"{result.name}: {result.where}", 100))
    ax.set_xlabel("run start (UTC)")
    ax.set_ylabel(label_text(result.unit, 16) or "value")
    ax.grid(True, alpha=0.3)
    ax.legend(
        handles,
        labels,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        title=f"by {result.by}",
        title_fontsize=8,
    )
    return figure_to_svg(fig, "trend", f"trend of {result.name} by {result.by}")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts with None for NaN, so the template's filters see Python values."""
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return out


def render_html(result: Trend) -> str:
    from markupsafe import Markup

    s = result.stats
    stats = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in s.__dict__.items()}
    return (
        environment()
        .get_template("trend.html.j2")
        .render(
            result=result,
            stats=stats,
            points=_records(result.points),
            outliers=_records(result.outliers),
            groups=_records(result.groups),
            svg=Markup(plot_svg(result)) if s.n else None,  # drawn by matplotlib, store text escaped there
            refusal=control_limits_refusal(s.n),
            rule_z=ROBUST_Z_LIMIT,
            serials=result.points["rack_serial"].replace("", "(none)").nunique(),
            runs=result.points["run_id"].nunique(),
        )
    )


def summary_lines(result: Trend) -> list[str]:
    """What the command prints: the population, the limits, then one line per outlier naming its serial."""
    from rackval.harness.report.html import format_number as num

    pts, s, unit = result.points, result.stats, result.unit
    lines = [
        f"rackval trend: {result.name} ({result.where}): {len(pts)} points from {pts['run_id'].nunique()} runs on"
        f" {pts['rack_serial'].nunique()} serials, {pts['time_utc'].iloc[0]} .. {pts['time_utc'].iloc[-1]}",
    ]
    refusal = control_limits_refusal(s.n)
    if not refusal:
        lines.append(
            f"  mean {num(s.mean)} {unit}, sigma {num(s.sigma)} {unit};"
            f" control limits {num(s.lcl)} .. {num(s.ucl)} {unit} (mean ± 3 sigma)"
        )
    else:
        lines.append(f"  mean {num(s.mean)} {unit}, sigma {num(s.sigma)} {unit}; {refusal}")
    lines.append(f"  spec limits {result.spec_text}")
    for row in _records(result.outliers):
        why = []
        if row["beyond_control_limits"]:
            why.append("beyond the control limits")
        if row["robust_z"] is not None and abs(row["robust_z"]) > ROBUST_Z_LIMIT:
            why.append(f"robust z {row['robust_z']:+.3g} (|z| > {ROBUST_Z_LIMIT:g})")
        place = "/".join(p for p in (row["device"], row["channel"]) if p)
        lines.append(
            f"  OUTLIER serial {row['rack_serial'] or '(none)'}: {num(row['value'])} {unit}"
            f" (run {row['run_id']}, revision {row['design_revision'] or '-'}, station {row['station'] or '-'}"
            f"{', ' + place if place else ''}): {' and '.join(why)}"
        )
    if result.outliers.empty:
        lines.append("  no outliers")
    return lines


def write_outputs(result: Trend, out_dir: Path) -> list[Path]:
    return [write_atomic(out_dir / "trend.html", render_html(result)), write_csv(result, out_dir / "trend.csv")]


# ---- command line -----------------------------------------------------------------------------
def _cmd_trend(args: argparse.Namespace) -> int:
    store = open_results(args.results)
    try:
        result = trend(store, args.measurement, args.by, device=args.device, channel=args.channel)
    finally:
        store.close()
    out = Path(args.out) if args.out else default_out_dir(args.results, f"trend-{safe_path_part(args.measurement)}")
    paths = write_outputs(result, out)
    for line in summary_lines(result):
        print(printable(line))  # store text (devices, revisions): terminal-safe
    for path in paths:
        print(path)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``rackval trend`` (handler in ``func``; exit 0, or 2 via ConfigError)."""
    p = subparsers.add_parser(
        "trend",
        help="one measurement across runs and units: control limits, outliers, plot and CSV",
        description=(
            "One measurement (name or requirement id) across runs and units in time order: control limits"
            " (mean +- 3 sigma), spec limits, outliers (beyond the control limits or robust z-score > 3.5),"
            " trend.html with a plot and trend.csv. Prints the outlier serials."
        ),
    )
    p.add_argument("measurement", help="measurement name or requirement id")
    p.add_argument(
        "--by", choices=tuple(GROUP_COLUMNS), default="serial", help="colour and summarise by (default serial)"
    )
    p.add_argument("--device", help="only this device")
    p.add_argument("--channel", help="only this channel")
    add_results_option(p)
    p.add_argument("--out", help="output directory (default: beside the store, trend-<measurement>)")
    p.set_defaults(func=_cmd_trend)
