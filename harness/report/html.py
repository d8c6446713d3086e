"""The self-contained HTML acceptance report of one run, rendered from the results store.

Data first: everything here reads the store, so a finished run, a run that is still going and a
run whose process was killed all render the same way; the last two are marked INCOMPLETE and
show what was recorded. The output is a single file (inline CSS, inline SVG plots, no scripts,
no external references) so it can be attached to a ticket or opened on an air-gapped bench PC.

Every string that came from a device, a test or the operator is escaped by Jinja2's autoescape;
only the SVG that ``harness.report.plots`` draws itself is passed through as markup.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from harness.measure import Measurement, Outcome
from harness.report import plots
from harness.store.records import DeviceRecord, RunInfo, TestRecord

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "report.html.j2"

PASS = "PASS"
FAIL = "FAIL"
INCOMPLETE = "INCOMPLETE"

# Stored run outcomes that mean the run did not reach its end ('running' with nobody running it
# is a killed run). Anything else the plugin writes is cross-checked against the data below.
_UNFINISHED_RUN_OUTCOMES = frozenset({"running", "incomplete", "interrupted", "aborted", "killed"})
_FAILED_RUN_OUTCOMES = frozenset({"fail", "failed", "error", "errors"})
_FAILED_TEST_OUTCOMES = frozenset({"failed", "error"})
TEST_OUTCOME_ORDER = ("passed", "failed", "error", "skipped")
MEASUREMENT_OUTCOME_ORDER = (Outcome.PASS, Outcome.MARGINAL, Outcome.FAIL, Outcome.INFO)


class ResultsStore(Protocol):
    """The part of the store API the report reads (SqliteStore satisfies it)."""

    def run(self, run_id: str) -> RunInfo: ...
    def run_status(self, run_id: str) -> tuple[str, float | None]: ...
    def tests(self, run_id: str) -> list[TestRecord]: ...
    def measurements(self, run_id: str) -> list[tuple[int | None, Measurement]]: ...
    def devices(self, run_id: str) -> list[DeviceRecord]: ...


def run_verdict(
    stored_outcome: str,
    tests: list[TestRecord],
    measurements: list[tuple[int | None, Measurement]],
) -> str:
    """PASS, FAIL or INCOMPLETE for the report header.

    INCOMPLETE wins because an unfinished run proves nothing either way. Otherwise the run fails
    if the plugin said so *or* the data says so (a failed/errored test or a failing measurement):
    the verdict must never be greener than the records under it. Marginal values do not fail.
    """
    if stored_outcome.lower() in _UNFINISHED_RUN_OUTCOMES:
        return INCOMPLETE
    if stored_outcome.lower() in _FAILED_RUN_OUTCOMES:
        return FAIL
    if any(t.outcome in _FAILED_TEST_OUTCOMES for t in tests):
        return FAIL
    if any(m.outcome == Outcome.FAIL for _, m in measurements):
        return FAIL
    return PASS


# ---- formatting filters (registered on the per-call environment) -------------------------------
def format_number(value: float | None, spec: str = ".6g") -> str:
    """``%.6g``-style text for a reading; blank for a missing limit, spelled out for NaN/inf."""
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return format(value, spec)


def format_margin(value: float | None) -> str:
    return format_number(value, "+.4g")


def format_utc(ts: float | None) -> str:
    """UTC ISO 8601 with a Z, so reports from stations in different time zones line up."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def format_duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = math.floor(seconds + 0.5)  # half up, not banker's rounding
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    human = f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"
    return f"{seconds:.1f} s ({human})"


# ---- view model -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasurementRow:
    test_label: str
    test_anchor: str
    m: Measurement


@dataclass(frozen=True)
class TestSection:
    record: TestRecord
    anchor: str
    counts: list[tuple[str, int]]
    findings: list[str]


@dataclass(frozen=True)
class Plot:
    title: str
    caption: str
    svg: Markup | None


def _test_anchor(test_id: int | None) -> str:
    return "session" if test_id is None else f"test-{test_id}"


def _counts(values: list[str], order: tuple[str, ...]) -> list[tuple[str, int]]:
    """Counts in a fixed order (zeros included, so the summary always has the same shape), then
    any unexpected outcome the store holds, so nothing is silently dropped."""
    counter = Counter(values)
    out = [(key, counter.get(key, 0)) for key in order]
    out.extend((key, n) for key, n in sorted(counter.items()) if key not in order)
    return out


def _last_record_time(tests: list[TestRecord], measurements: list[tuple[int | None, Measurement]]) -> float | None:
    times = [m.recorded_at for _, m in measurements]
    times += [t.ended_at if t.ended_at is not None else t.started_at for t in tests]
    return max(times) if times else None


def _plots(run: RunInfo, measurements: list[Measurement]) -> tuple[list[Plot], list[str]]:
    """Margin chart plus time-series plots; a plot without data becomes a 'no data' entry."""
    out: list[Plot] = []
    margin_svg = plots.margin_chart(measurements, id_prefix="margin")
    out.append(
        Plot(
            title="Margin to limits",
            caption=(
                "Each measurement with limits: its distance to the nearest limit as a percentage of the"
                " limit reference (the span for two-sided limits, the limit's magnitude for one-sided"
                f" ones). The dashed line is the limit; values beyond ±{plots.CLIP_PERCENT:g} % are drawn"
                " at the edge."
            ),
            svg=None if margin_svg is None else Markup(margin_svg),
        )
    )
    groups = plots.time_series_groups(measurements)
    names = list(groups)
    omitted = names[plots.MAX_TIME_SERIES_PLOTS :]
    if not names:
        out.append(Plot(title="Time series", caption="Measurements recorded repeatedly over time.", svg=None))
    for index, name in enumerate(names[: plots.MAX_TIME_SERIES_PLOTS]):
        ts = plots.time_series_chart(name, groups[name], run.started_at, id_prefix=f"ts{index}")
        more = (
            f" Showing {ts.series_shown} of {ts.series_total} device/channel series."
            if ts.series_shown < ts.series_total
            else ""
        )
        out.append(
            Plot(
                title=f"Time series: {name}",
                caption=f"{len(groups[name])} samples against {ts.x_label}; dashed lines are limits.{more}",
                svg=Markup(ts.svg),
            )
        )
    return out, omitted


def build_context(store: ResultsStore, run_id: str) -> dict[str, Any]:
    """Everything the template shows, read from the store. Separate from rendering so the CLI
    or an export can reuse the verdict and counts without producing HTML."""
    run = store.run(run_id)
    stored_outcome, ended_at = store.run_status(run_id)
    tests = store.tests(run_id)
    measured = store.measurements(run_id)
    devices = store.devices(run_id)
    verdict = run_verdict(stored_outcome, tests, measured)

    labels = {t.test_id: t.nodeid for t in tests}
    rows = [
        MeasurementRow(
            test_label="(session)" if tid is None else labels.get(tid, f"test #{tid}"),
            test_anchor=_test_anchor(tid) if tid is None or tid in labels else "",
            m=m,
        )
        for tid, m in measured
    ]
    by_test: dict[int | None, list[Measurement]] = {}
    for tid, m in measured:
        by_test.setdefault(tid, []).append(m)
    sections = [
        TestSection(
            record=t,
            anchor=_test_anchor(t.test_id),
            counts=[
                (o.value, n)
                for o in MEASUREMENT_OUTCOME_ORDER
                if (n := sum(1 for m in by_test.get(t.test_id, []) if m.outcome == o))
            ],
            findings=[
                m.describe() for m in by_test.get(t.test_id, []) if m.outcome in (Outcome.FAIL, Outcome.MARGINAL)
            ],
        )
        for t in tests
    ]
    session_findings = [m.describe() for m in by_test.get(None, []) if m.outcome in (Outcome.FAIL, Outcome.MARGINAL)]

    last_record = _last_record_time(tests, measured)
    finished = verdict != INCOMPLETE and ended_at is not None
    duration = (ended_at if finished and ended_at is not None else last_record or run.started_at) - run.started_at
    plot_list, omitted = _plots(run, [m for _, m in measured])

    return {
        "run": run,
        "verdict": verdict,
        "stored_outcome": stored_outcome,
        "started": format_utc(run.started_at),
        "ended": format_utc(ended_at) if finished else "",
        "last_record": format_utc(last_record),
        "duration": format_duration(duration),
        "finished": finished,
        "test_counts": _counts([t.outcome for t in tests], TEST_OUTCOME_ORDER),
        "measurement_counts": _counts(
            [m.outcome.value for _, m in measured], tuple(o.value for o in MEASUREMENT_OUTCOME_ORDER)
        ),
        "n_tests": len(tests),
        "n_measurements": len(measured),
        "failed_tests": [t for t in tests if t.outcome in _FAILED_TEST_OUTCOMES],
        "rows": rows,
        "sections": sections,
        "session_findings": session_findings,
        "session_count": len(by_test.get(None, [])),
        "devices": devices,
        "plots": plot_list,
        "omitted_series": omitted,
        "metadata": sorted((str(k), _plain(v)) for k, v in run.metadata.items()),
    }


def _plain(value: Any) -> str:
    """Metadata values as text (nested values stay readable without trusting them as markup)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _environment() -> Environment:
    """A fresh environment per render: no module-level state, autoescape on for .html/.j2
    templates (and for strings), and StrictUndefined so a template typo fails loudly instead of
    printing an empty cell in an acceptance report."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml", "j2"), default_for_string=True, default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    env.filters["margin"] = format_margin
    env.filters["utc"] = format_utc
    env.filters["duration"] = format_duration
    return env


def render_report(store: ResultsStore, run_id: str, out_dir: Path) -> Path:
    """Render the acceptance report of ``run_id`` to ``out_dir/report.html`` and return its path.

    Raises KeyError (from the store) when the run does not exist. The file is written to a
    temporary name and renamed, so a viewer never sees half a report.
    """
    context = build_context(store, run_id)
    html = _environment().get_template(TEMPLATE_NAME).render(**context)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    tmp = out_dir / ".report.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
