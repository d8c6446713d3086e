"""``rackval compare``: a baseline against a candidate, requirement by requirement.

A side is a single run (by run id) or a design revision. Selectors: ``run:ID`` and ``rev:NAME``
say which is meant; a bare word is a run id when a run has that id, else a design revision.

How a revision becomes one side: the **latest complete run of each rack serial** of that revision,
then aggregated across those units per requirement. Why: validation engineers compare "rev-A vs
rev-B" across several units, so every unit must count, and count once. Taking every run instead
would let a unit that was re-run five times (after a cabling fix, a flaky fixture) outvote the
others, and would mix in runs that were killed half-way (which prove nothing and often stop at the
interesting part). The runs left out are listed in the report with the reason. A run without a
serial counts as its own unit. A side given by run id is used as is, even unfinished (then marked
INCOMPLETE), because the engineer asked for exactly that run.

Pairing: measurements are keyed by (requirement, or the name when there is none; device; channel).
Within a side, a key measured several times (time series, several units) is represented by its
**worst** record, the one with the least margin (a failing or unreadable one first), because
acceptance is decided by the worst unit; the report also shows the mean and which serial was
worst. Keys without limits are represented by their mean value.

Classification, in report order (``CLASS_ORDER``):

* regression: a new failure (candidate fails, baseline did not), a new marginal (candidate
  marginal, baseline passed), or the margin shrank by more than ``--threshold`` percent of the
  limit reference (the span of two-sided limits, the magnitude of a one-sided limit: the same
  reference the marginal band uses); new failures first, then new marginals, then the largest
  margin loss;
* improvement: a failure or marginal cleared, or the margin grew by more than the threshold;
* unchanged: neither;
* no limits: one or both sides recorded no limits, so there is nothing to judge;
* only in baseline / only in candidate.

Values of the candidate are converted to the baseline's unit when they differ (W vs kW).

Exit status: 0, or 1 when the candidate has new failures: a regression that is a new failure, or
a failing measurement the baseline never had (only in candidate). CI gates on that; regressions
that still pass (shrunk margins, new marginals) are for the design review to judge, not a gate.
Bad selectors or an unreachable store raise ConfigError (``rackval`` exits 2).
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rackval.core.errors import ConfigError
from rackval.harness.analysis import add_results_option, environment, safe_path_part, write_atomic
from rackval.harness.cliutil import default_out_dir
from rackval.harness.measure import Measurement, Outcome
from rackval.harness.store.records import RunInfo

if TYPE_CHECKING:
    from rackval.harness.store import Store

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
NO_LIMITS = "no limits"
ONLY_BASELINE = "only in baseline"
ONLY_CANDIDATE = "only in candidate"
CLASS_ORDER = (REGRESSION, IMPROVEMENT, UNCHANGED, NO_LIMITS, ONLY_BASELINE, ONLY_CANDIDATE)

NEW_FAILURE = "new failure"
NEW_MARGINAL = "new marginal"
DEFAULT_THRESHOLD_PCT = 2.0
FORMATS = ("html", "md")
MAX_OVERLAYS = 12
"""Sampled channels drawn as overlay plots; the rest are listed by name (each plot costs time)."""
MAX_POINTS_PER_CURVE = 2000

_SEVERITY = {Outcome.FAIL: 3, Outcome.MARGINAL: 2, Outcome.PASS: 1, Outcome.INFO: 0}

Key = tuple[str, str, str]


# ---- selecting runs -----------------------------------------------------------------------------
@dataclass(frozen=True)
class UsedRun:
    run: RunInfo
    complete: bool


@dataclass(frozen=True)
class Selection:
    """One side of the comparison: what was asked for and which runs answer it."""

    role: str
    selector: str
    kind: str  # "run" or "revision"
    name: str  # the run id or the revision
    runs: tuple[UsedRun, ...]
    excluded: tuple[tuple[RunInfo, str], ...] = ()

    @property
    def label(self) -> str:
        if self.kind == "run":
            serial = self.runs[0].run.rack_serial
            return f"run {self.name}" + (f" (serial {serial})" if serial else "")
        serials = ", ".join(_unit_of(u.run) for u in self.runs)
        return f"revision {self.name} ({len(self.runs)} unit{'s' if len(self.runs) != 1 else ''}: {serials})"


def _unit_of(run: RunInfo) -> str:
    return run.rack_serial or f"(no serial: run {run.run_id})"


def _is_complete(store: Store, run_id: str) -> bool:
    """Finished by the stored status, by the acceptance report's own definition of unfinished."""
    from rackval.harness.report.run_data import INCOMPLETE, run_verdict

    outcome, ended_at = store.run_status(run_id)
    return ended_at is not None and run_verdict(outcome, [], []) != INCOMPLETE


def resolve(store: Store, selector: str, role: str) -> Selection:
    """Turn ``--baseline``/``--candidate`` into runs (see the module docstring for the rule)."""
    runs = store.runs()
    want_run = not selector.startswith("rev:")
    want_rev = not selector.startswith("run:")
    name = selector.split(":", 1)[1] if selector.startswith(("run:", "rev:")) else selector
    if want_run:
        for run in runs:
            if run.run_id == name:
                return Selection(role, selector, "run", name, (UsedRun(run, _is_complete(store, run.run_id)),))
    if want_rev:
        of_revision = [r for r in runs if r.design_revision == name]
        if of_revision:
            return _revision_selection(store, selector, role, name, of_revision)
    revisions = sorted({r.design_revision for r in runs if r.design_revision})
    known = ", ".join(revisions[:20]) or "none recorded"
    what = "run with that id" if not want_rev else "design revision" if not want_run else "run id or design revision"
    raise ConfigError(f"--{role} {selector!r}: no {what} {name!r} in {store.path} (design revisions: {known})")


def _revision_selection(store: Store, selector: str, role: str, name: str, runs: list[RunInfo]) -> Selection:
    by_unit: dict[str, list[RunInfo]] = {}
    for run in runs:  # store.runs() is ordered by start time
        by_unit.setdefault(run.rack_serial or f"run:{run.run_id}", []).append(run)
    used: list[UsedRun] = []
    excluded: list[tuple[RunInfo, str]] = []
    for unit_runs in by_unit.values():
        complete = [r for r in unit_runs if _is_complete(store, r.run_id)]
        latest = complete[-1] if complete else None
        if latest is not None:
            used.append(UsedRun(latest, True))
        for r in unit_runs:
            if r is latest:
                continue
            if latest is None:
                excluded.append((r, "did not finish, and this serial has no complete run"))
            elif r in complete:
                excluded.append((r, f"superseded by the later complete run {latest.run_id} of the same serial"))
            else:
                excluded.append((r, "did not finish"))
    if not used:
        raise ConfigError(
            f"--{role} {selector!r}: design revision {name!r} has {len(runs)} run(s) in {store.path}"
            " but none finished; name a run id to compare an unfinished run"
        )
    used.sort(key=lambda u: u.run.started_at)
    excluded.sort(key=lambda item: item[0].started_at)
    return Selection(role, selector, "revision", name, tuple(used), tuple(excluded))


# ---- one key on one side ------------------------------------------------------------------------
def _value(m: Measurement) -> float:
    """Stored NaN comes back as None; keep it a float so arithmetic and sorting stay simple."""
    return math.nan if m.value is None else float(m.value)


def _reference(low: float | None, high: float | None) -> float | None:
    if low is not None and high is not None:
        return high - low
    if high is not None:
        return abs(high)
    if low is not None:
        return abs(low)
    return None


def _margin(m: Measurement) -> float | None:
    """The stored margin, or the distance to the nearest limit for a record stored without one."""
    if m.margin is not None:
        return float(m.margin)
    value = _value(m)
    distances = []
    if m.high is not None:
        distances.append(m.high - value)
    if m.low is not None:
        distances.append(value - m.low)
    if not distances or math.isnan(value):
        return None
    return min(distances)


def _has_limits(m: Measurement) -> bool:
    return m.low is not None or m.high is not None


@dataclass(frozen=True)
class Side:
    """A key on one side, reduced to its deciding (worst) record; see the module docstring."""

    name: str
    unit: str
    value: float
    margin: float | None
    outcome: Outcome
    low: float | None
    high: float | None
    mean: float
    n_units: int
    n_records: int
    worst_serial: str
    worst_run: str

    @property
    def reference(self) -> float | None:
        return _reference(self.low, self.high)

    def in_unit(self, unit: str) -> Side:
        """The same side in ``unit`` (ConfigError when the units measure different things)."""
        if unit == self.unit:
            return self
        from rackval.harness.units import convert

        def c(x: float | None) -> float | None:
            return None if x is None else convert(x, self.unit, unit)

        return replace(
            self,
            unit=unit,
            value=convert(self.value, self.unit, unit),
            margin=c(self.margin),
            low=c(self.low),
            high=c(self.high),
            mean=convert(self.mean, self.unit, unit),
        )


def _worst_first(item: tuple[RunInfo, Measurement]) -> tuple[int, float]:
    m = item[1]
    margin = _margin(m)
    reference = _reference(m.low, m.high)
    if margin is None:
        relative = -math.inf  # unreadable against a limit: the worst there is
    elif reference:
        relative = margin / reference
    else:
        relative = margin
    return (-_SEVERITY[m.outcome], relative)


def _in(unit: str, m: Measurement) -> float:
    """A record's value in ``unit``; NaN when it cannot be converted (then it is left out of the mean)."""
    from rackval.harness.units import convert

    try:
        return convert(_value(m), m.unit, unit)
    except ConfigError:
        return math.nan


def reduce_side(records: Sequence[tuple[RunInfo, Measurement]]) -> Side:
    """The deciding record of a key: the worst judged one, or the mean of an unjudged key."""
    judged = [item for item in records if _has_limits(item[1])]
    run, worst = min(judged, key=_worst_first) if judged else records[-1]
    finite = [v for v in (_in(worst.unit, m) for _, m in records) if not math.isnan(v)]
    mean = statistics.fmean(finite) if finite else math.nan
    units = {r.run_id for r, _ in records}
    if judged:
        return Side(
            name=worst.name,
            unit=worst.unit,
            value=_value(worst),
            margin=_margin(worst),
            outcome=Outcome.FAIL if math.isnan(_value(worst)) else worst.outcome,
            low=worst.low,
            high=worst.high,
            mean=mean,
            n_units=len(units),
            n_records=len(records),
            worst_serial=run.rack_serial,
            worst_run=run.run_id,
        )
    return Side(
        name=worst.name,
        unit=worst.unit,
        value=mean,
        margin=None,
        outcome=Outcome.INFO,
        low=None,
        high=None,
        mean=mean,
        n_units=len(units),
        n_records=len(records),
        worst_serial="",
        worst_run="",
    )


def key_of(m: Measurement) -> Key:
    return (m.requirement or m.name, m.device, m.channel)


def collect(store: Store, selection: Selection) -> dict[Key, Side]:
    """Every key measured on a side, each reduced to one ``Side``."""
    records: dict[Key, list[tuple[RunInfo, Measurement]]] = {}
    for used in selection.runs:
        for _, m in store.measurements(used.run.run_id):
            records.setdefault(key_of(m), []).append((used.run, m))
    return {key: reduce_side(items) for key, items in records.items()}


# ---- pairing and classification -----------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    key: Key
    baseline: Side | None
    candidate: Side | None  # in the baseline's unit when both exist and the units are compatible
    classification: str
    reasons: tuple[str, ...]
    delta: float | None = None
    margin_delta: float | None = None
    margin_delta_pct: float | None = None

    @property
    def requirement(self) -> str:
        return self.key[0]

    @property
    def device(self) -> str:
        return self.key[1]

    @property
    def channel(self) -> str:
        return self.key[2]

    @property
    def unit(self) -> str:
        side = self.baseline or self.candidate
        return side.unit if side else ""

    @property
    def new_failure(self) -> bool:
        if self.classification == ONLY_CANDIDATE:
            return self.candidate is not None and self.candidate.outcome == Outcome.FAIL
        return NEW_FAILURE in self.reasons

    @property
    def outcome_change(self) -> str:
        before = self.baseline.outcome.value if self.baseline else "—"
        after = self.candidate.outcome.value if self.candidate else "—"
        return after if before == after else f"{before} → {after}"


def _limits_text(side: Side) -> str:
    from rackval.harness.report.html import format_number

    if side.low is not None and side.high is not None:
        return f"{format_number(side.low)} .. {format_number(side.high)}"
    if side.high is not None:
        return f"<= {format_number(side.high)}"
    if side.low is not None:
        return f">= {format_number(side.low)}"
    return "none"


def classify(key: Key, baseline: Side | None, candidate: Side | None, threshold_pct: float) -> Row:
    """One paired key: its class, the reasons in words, and the deltas (candidate minus baseline)."""
    if baseline is None and candidate is not None:
        reasons = ("fails; not measured in the baseline",) if candidate.outcome == Outcome.FAIL else ()
        return Row(key, None, candidate, ONLY_CANDIDATE, reasons)
    if candidate is None:
        assert baseline is not None
        return Row(key, baseline, None, ONLY_BASELINE, ())
    assert baseline is not None
    try:
        candidate = candidate.in_unit(baseline.unit)
    except ConfigError:
        note = f"unit changed from {baseline.unit} to {candidate.unit}: values cannot be compared"
        return Row(key, baseline, candidate, REGRESSION, (note,))

    notes: list[str] = []
    delta = candidate.value - baseline.value
    margin_delta = margin_pct = None
    if baseline.margin is not None and candidate.margin is not None:
        margin_delta = candidate.margin - baseline.margin
        reference = baseline.reference or candidate.reference
        if reference:
            margin_pct = 100.0 * margin_delta / reference
    if (baseline.low, baseline.high) != (candidate.low, candidate.high) and _has_side_limits(baseline, candidate):
        notes.append(f"limits changed: {_limits_text(baseline)} → {_limits_text(candidate)} {baseline.unit}")

    worse: list[str] = []
    if candidate.outcome == Outcome.FAIL and baseline.outcome != Outcome.FAIL:
        worse.append(NEW_FAILURE)
    elif candidate.outcome == Outcome.MARGINAL and baseline.outcome in (Outcome.PASS, Outcome.INFO):
        worse.append(NEW_MARGINAL)
    if margin_pct is not None and margin_pct < -threshold_pct:
        worse.append(f"margin shrank by {-margin_pct:.3g} % of the limit reference")
    better: list[str] = []
    if baseline.outcome == Outcome.FAIL and candidate.outcome in (Outcome.PASS, Outcome.MARGINAL):
        better.append("failure fixed")
    elif baseline.outcome == Outcome.MARGINAL and candidate.outcome == Outcome.PASS:
        better.append("marginal cleared")
    if margin_pct is not None and margin_pct > threshold_pct:
        better.append(f"margin grew by {margin_pct:.3g} % of the limit reference")

    if worse:
        cls, reasons = REGRESSION, worse
    elif better:
        cls, reasons = IMPROVEMENT, better
    elif Outcome.INFO in (baseline.outcome, candidate.outcome):
        missing = [s for s, side in (("baseline", baseline), ("candidate", candidate)) if side.outcome == Outcome.INFO]
        cls, reasons = NO_LIMITS, [f"no limits recorded in the {' and '.join(missing)}"]
    else:
        cls, reasons = UNCHANGED, ["still failing"] if candidate.outcome == Outcome.FAIL else []
    return Row(key, baseline, candidate, cls, tuple(reasons + notes), delta, margin_delta, margin_pct)


def _has_side_limits(*sides: Side) -> bool:
    return all(s.low is not None or s.high is not None for s in sides)


def _sort_key(row: Row) -> tuple[object, ...]:
    rank = CLASS_ORDER.index(row.classification)
    if row.classification == REGRESSION:
        within = (
            0 if NEW_FAILURE in row.reasons else 1 if NEW_MARGINAL in row.reasons else 2,
            row.margin_delta_pct if row.margin_delta_pct is not None else 0.0,
        )
    elif row.classification == IMPROVEMENT:
        within = (0, -(row.margin_delta_pct or 0.0))
    elif row.classification == ONLY_CANDIDATE:
        within = (0 if row.new_failure else 1, 0.0)
    else:
        within = (0, 0.0)
    return (rank, *within, row.key)


def pair(baseline: dict[Key, Side], candidate: dict[Key, Side], threshold_pct: float) -> list[Row]:
    """Every key of either side, classified and in report order (regressions first)."""
    keys = list(baseline) + [k for k in candidate if k not in baseline]
    rows = [classify(k, baseline.get(k), candidate.get(k), threshold_pct) for k in keys]
    return sorted(rows, key=_sort_key)


# ---- the whole comparison -----------------------------------------------------------------------
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


# ---- Markdown -----------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def md_cell(text: object) -> str:
    """Text made safe for one Markdown table cell: one line, pipes and emphasis escaped, and HTML
    written as entities (Markdown renderers pass raw HTML through)."""
    plain = "".join(ch if ch.isprintable() else " " for ch in str(text)).strip()
    plain = plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", plain)


def _fmt(value: float | None, spec: str = ".6g") -> str:
    from rackval.harness.report.html import format_number

    return format_number(value, spec)


def _value_text(side: Side | None) -> str:
    if side is None:
        return "—"
    return f"{_fmt(side.value)} {side.unit}".strip()


MD_HEADER = (
    "Class",
    "Requirement",
    "Device",
    "Channel",
    "Baseline",
    "Candidate",
    "Δ value",
    "Baseline margin",
    "Candidate margin",
    "Δ margin",
    "Δ margin % ref",
    "Outcome",
    "Notes",
)


def markdown_rows(result: Comparison) -> list[list[str]]:
    """The table cells (unescaped), one list per row, in report order."""
    out = []
    for r in result.rows:
        out.append(
            [
                r.classification,
                r.requirement,
                r.device,
                r.channel,
                _value_text(r.baseline),
                _value_text(r.candidate),
                _fmt(r.delta, "+.6g"),
                _fmt(r.baseline.margin if r.baseline else None, "+.4g"),
                _fmt(r.candidate.margin if r.candidate else None, "+.4g"),
                _fmt(r.margin_delta, "+.4g"),
                _fmt(r.margin_delta_pct, "+.3g"),
                r.outcome_change,
                "; ".join(r.reasons),
            ]
        )
    return out


def render_markdown(result: Comparison) -> str:
    """A heading, one summary line and the table: pasteable into a design review as is."""
    counts = ", ".join(f"{n} {c}" for c, n in result.counts() if n)
    lines = [
        f"## rackval compare: {md_cell(result.candidate.label)} vs {md_cell(result.baseline.label)}",
        "",
        f"Baseline: {md_cell(result.baseline.label)}. Candidate: {md_cell(result.candidate.label)}.",
        f"Rows: {md_cell(counts) or 'none'}. New failures: {len(result.new_failures)}."
        f" Margin threshold: {result.threshold_pct:g} % of the limit reference."
        " Revision values are the worst unit's (least margin).",
        "",
        "| " + " | ".join(MD_HEADER) + " |",
        "|" + "|".join("---" for _ in MD_HEADER) + "|",
    ]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in markdown_rows(result)]
    return "\n".join(lines) + "\n"


# ---- HTML ---------------------------------------------------------------------------------------
def render_html(result: Comparison) -> str:
    from markupsafe import Markup

    context = {
        "result": result,
        "counts": result.counts(),
        "new_failures": result.new_failures,
        "sides": [result.baseline, result.candidate],
        "overlays": [(o, Markup(o.svg)) for o in result.overlays],  # SVG drawn by plots, store text escaped there
        "class_order": CLASS_ORDER,
        "slug": {c: c.replace(" ", "-") for c in CLASS_ORDER},
    }
    return environment().get_template("compare.html.j2").render(**context)


def write_outputs(result: Comparison, out_dir: Path, formats: Iterable[str] = FORMATS) -> list[Path]:
    written = []
    for fmt in formats:
        if fmt == "html":
            written.append(write_atomic(out_dir / "compare.html", render_html(result)))
        elif fmt == "md":
            written.append(write_atomic(out_dir / "compare.md", render_markdown(result)))
        else:
            raise ConfigError(f"--format: unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    return written


# ---- command line -------------------------------------------------------------------------------
def _formats(text: str) -> list[str]:
    chosen = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(FORMATS)} (comma-separated), not {text!r}")
    return list(dict.fromkeys(chosen))


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"a percentage of the limit reference, 0 or more, not {text!r}")
    return value


def _cmd_compare(args: argparse.Namespace) -> int:
    from rackval.harness.store import open_store

    store = open_store(args.results)
    try:
        result = compare(
            store, args.baseline, args.candidate, threshold_pct=args.threshold, plots="html" in args.format
        )
    finally:
        store.close()
    leaf = f"compare-{safe_path_part(args.baseline, 40)}-vs-{safe_path_part(args.candidate, 40)}"
    out = Path(args.out) if args.out else default_out_dir(args.results, leaf)
    paths = write_outputs(result, out, args.format)
    print(f"rackval compare: baseline {result.baseline.label}; candidate {result.candidate.label}")
    print("  " + ", ".join(f"{n} {c}" for c, n in result.counts()))
    for row in result.rows:
        if row.classification == REGRESSION or row.new_failure:
            where = "/".join(p for p in (row.device, row.channel) if p)
            print(
                f"  {row.classification.upper()}: {row.requirement}{' on ' + where if where else ''}:"
                f" {row.outcome_change}; {'; '.join(row.reasons)}"
            )
    for path in paths:
        print(path)
    if result.exit_status:
        print(f"rackval compare: the candidate has {len(result.new_failures)} new failure(s): exit status 1")
    return result.exit_status


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``rackval compare`` (handler in ``func``; exit 1 on new failures)."""
    p = subparsers.add_parser(
        "compare",
        help="compare a baseline with a candidate (run ids or design revisions), requirement by requirement",
        description=(
            "Compare a baseline with a candidate requirement by requirement and write compare.html and"
            " compare.md. A revision means the latest complete run of each of its rack serials. Exit status"
            " 0, or 1 when the candidate has new failures (CI gates on it); 2 for a bad selector or store."
        ),
    )
    p.add_argument("--baseline", required=True, help="run id or design revision (force with run:ID or rev:NAME)")
    p.add_argument("--candidate", required=True, help="run id or design revision (force with run:ID or rev:NAME)")
    add_results_option(p)
    p.add_argument("--out", help="output directory (default: beside the store, compare-<baseline>-vs-<candidate>)")
    p.add_argument("--format", type=_formats, default=list(FORMATS), help="html,md (default both)")
    p.add_argument(
        "--threshold",
        type=_threshold,
        default=DEFAULT_THRESHOLD_PCT,
        help=f"margin change, in %% of the limit reference, that counts (default {DEFAULT_THRESHOLD_PCT:g})",
    )
    p.set_defaults(func=_cmd_compare)
