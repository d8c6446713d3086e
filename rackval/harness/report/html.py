"""The self-contained HTML acceptance report of one run, rendered from the results store.

Data first: everything here reads the store, so a finished run, a run that is still going and a
run whose process was killed all render the same way; the last two are marked INCOMPLETE and
show what was recorded. The output is a single file (inline CSS, inline SVG plots, no scripts,
no external references) so it can be attached to a ticket or opened on an air-gapped bench PC.

Every string that came from a device, a test or the operator is escaped by Jinja2's autoescape;
only the SVG that ``rackval.harness.report.plots`` draws itself is passed through as markup.
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

from rackval.core.errors import ConfigError
from rackval.harness.measure import Measurement, Outcome
from rackval.harness.report import plots, telemetry
from rackval.harness.store.records import (
    UNDO_PENDING,
    ActionRecord,
    ArtifactRecord,
    DeviceRecord,
    FirmwareRecord,
    RunInfo,
    Sample,
    SampleChannel,
    TestRecord,
)
from rackval.harness.units import convert

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
    def firmware(self, run_id: str) -> list[FirmwareRecord]: ...
    def actions(self, run_id: str) -> list[ActionRecord]: ...
    def artifacts(self, run_id: str) -> list[ArtifactRecord]: ...
    def sample_channels(self, run_id: str) -> list[SampleChannel]: ...
    def samples(
        self,
        run_id: str,
        channel: str | None = None,
        *,
        device: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> list[Sample]: ...


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


MAX_DIAGNOSTIC_MEASUREMENTS = 50
"""Failing measurements listed per failed test; the requirement table has every one."""
UNDO_FLAGGED = frozenset({UNDO_PENDING, "failed"})
"""Undo outcomes that may have left the rack changed: shouted about at the top of the report."""


@dataclass(frozen=True)
class DeviceIdentity:
    """What the run knows about a device named by a failing measurement."""

    name: str
    record: DeviceRecord | None
    firmware: list[FirmwareRecord]


@dataclass(frozen=True)
class FailureDiagnostic:
    """One failed test (or the session) with what is needed to start debugging it."""

    title: str
    anchor: str
    outcome: str
    message: str
    failing: list[Measurement]
    more: int
    devices: list[DeviceIdentity]
    actions: list[ActionRecord]


@dataclass(frozen=True)
class ChannelRow:
    """One telemetry channel in the channel table: statistics, limits and whether it is plotted."""

    stats: telemetry.ChannelStats
    low: float | None
    high: float | None
    beyond: bool
    plotted: bool


def _limits_by_channel(measurements: list[Measurement]) -> dict[tuple[str, str], list[Measurement]]:
    """Limited measurements keyed by (channel, device): a telemetry channel borrows their limits."""
    out: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        if m.channel and (m.low is not None or m.high is not None):
            out.setdefault((m.channel, m.device), []).append(m)
    return out


def _channel_limits(
    key: telemetry.ChannelKey, limited: dict[tuple[str, str], list[Measurement]]
) -> tuple[list[float], list[float]]:
    """Lows and highs of measurements on the same channel (and device, or no device named),
    converted to the channel's unit; limits in an incompatible unit are not borrowed."""
    channel, device, unit = key
    lows: set[float] = set()
    highs: set[float] = set()
    for m in limited.get((channel, device), []) + (limited.get((channel, ""), []) if device else []):
        for value, bucket in ((m.low, lows), (m.high, highs)):
            if value is None or math.isnan(value):
                continue
            try:
                bucket.add(convert(value, m.unit, unit) if unit and m.unit else value)
            except ConfigError:
                continue
    return sorted(lows), sorted(highs)


def _telemetry(
    store: ResultsStore, run_id: str, measurements: list[Measurement]
) -> tuple[list[Plot], list[ChannelRow], int]:
    """Telemetry figures (one per unit, capped) and the table of every channel.

    Channels are chosen for a figure by interest: beyond a borrowed limit first, then limited,
    then the highest peaks; the cap keeps a 3,000-channel run's report small and fast.
    Returns (plots, rows, total sample count)."""
    stats = telemetry.channel_stats(store, run_id)
    if not stats:
        return [], [], 0
    limited = _limits_by_channel(measurements)
    info: dict[telemetry.ChannelKey, tuple[float | None, float | None, bool, list[float]]] = {}
    for c in stats:
        lows, highs = _channel_limits(c.key, limited)
        low = max(lows) if lows else None
        high = min(highs) if highs else None
        beyond = (low is not None and c.minimum is not None and c.minimum < low) or (
            high is not None and c.maximum is not None and c.maximum > high
        )
        info[c.key] = (low, high, beyond, lows + highs)

    def interest(c: telemetry.ChannelStats) -> tuple[int, float, telemetry.ChannelKey]:
        low, high, beyond, _ = info[c.key]
        rank = 0 if beyond else 1 if (low is not None or high is not None) else 2
        return (rank, -(c.maximum if c.maximum is not None else -math.inf), c.key)

    groups: dict[str, list[telemetry.ChannelStats]] = {}
    for c in stats:
        groups.setdefault(c.unit, []).append(c)
    ordered_units = sorted(groups, key=lambda u: (min(interest(c)[0] for c in groups[u]), -len(groups[u]), u))
    plotted: set[telemetry.ChannelKey] = set()
    figures: list[Plot] = []
    for index, unit in enumerate(ordered_units[: plots.MAX_TELEMETRY_PLOTS]):
        members = sorted(groups[unit], key=interest)
        chosen = [c for c in members if c.maximum is not None][: plots.MAX_TELEMETRY_CHANNELS_PER_PLOT]
        if not chosen:
            continue
        span = telemetry.time_span(store, run_id, [c.key for c in chosen])
        if span is None:
            continue
        series = []
        limit_lines: set[float] = set()
        for c in chosen:
            env = telemetry.envelope(store, run_id, c.key, span[0], span[1], plots.TELEMETRY_BUCKETS)
            label = c.channel if not c.device or c.channel.startswith(c.device) else f"{c.device}/{c.channel}"
            series.append(plots.EnvelopeSeries(label, env.t.tolist(), env.low.tolist(), env.high.tolist()))
            limit_lines.update(info[c.key][3])
            plotted.add(c.key)
        unit_text = unit or "(no unit)"
        svg = plots.telemetry_chart(f"Telemetry in {unit_text}", unit, series, sorted(limit_lines), f"tm{index}")
        total = len(groups[unit])
        figures.append(
            Plot(
                title=f"Telemetry: {unit_text}",
                caption=(
                    f"{len(chosen)} of {total} channel{'s' if total != 1 else ''} in {unit_text}, each drawn as its"
                    f" minimum-maximum band per {plots.TELEMETRY_BUCKETS}th of the run clock, so no spike is lost."
                    + (" Dashed lines are limits of measurements on these channels." if limit_lines else "")
                    + (" Channels beyond a limit are drawn first; every channel is in the table below." if
                       total > len(chosen) else "")
                ),
                svg=Markup(svg),
            )
        )  # fmt: skip
    rows = [
        ChannelRow(stats=c, low=info[c.key][0], high=info[c.key][1], beyond=info[c.key][2], plotted=c.key in plotted)
        for c in stats
    ]
    rows.sort(key=lambda r: (not r.beyond, r.stats.unit, r.stats.key))
    return figures, rows, sum(c.count for c in stats)


def _diagnostics(
    tests: list[TestRecord],
    measured: list[tuple[int | None, Measurement]],
    devices: list[DeviceRecord],
    firmware: list[FirmwareRecord],
    actions: list[ActionRecord],
) -> list[FailureDiagnostic]:
    """For each failed test, and for failing measurements outside one: message, failing values
    with their limits, and the identity of every device they name."""
    by_name = {d.name: d for d in devices}
    fw_by_device: dict[str, list[FirmwareRecord]] = {}
    for f in firmware:
        fw_by_device.setdefault(f.device, []).append(f)
    failing: dict[int | None, list[Measurement]] = {}
    for tid, m in measured:
        if m.outcome == Outcome.FAIL:
            failing.setdefault(tid, []).append(m)
    known = {t.test_id for t in tests}

    def entry(title: str, anchor: str, outcome: str, message: str, ms: list[Measurement], tid: int | None) -> None:
        names = sorted({m.device for m in ms if m.device})
        out.append(
            FailureDiagnostic(
                title=title, anchor=anchor, outcome=outcome, message=message,
                failing=ms[:MAX_DIAGNOSTIC_MEASUREMENTS], more=max(0, len(ms) - MAX_DIAGNOSTIC_MEASUREMENTS),
                devices=[DeviceIdentity(n, by_name.get(n), fw_by_device.get(n, [])) for n in names],
                actions=[a for a in actions if tid is not None and a.test_id == tid],
            )
        )  # fmt: skip

    out: list[FailureDiagnostic] = []
    for t in tests:
        if t.outcome in _FAILED_TEST_OUTCOMES or t.test_id in failing:
            entry(t.nodeid, _test_anchor(t.test_id), t.outcome, t.message, failing.get(t.test_id, []), t.test_id)
    orphans = [m for tid, ms in failing.items() if tid is None or tid not in known for m in ms]
    if orphans:
        entry("Recorded outside any test", "session", "fail", "", orphans, None)
    return out


def build_context(store: ResultsStore, run_id: str) -> dict[str, Any]:
    """Everything the template shows, read from the store. Separate from rendering so the CLI
    or an export can reuse the verdict and counts without producing HTML."""
    run = store.run(run_id)
    stored_outcome, ended_at = store.run_status(run_id)
    tests = store.tests(run_id)
    measured = store.measurements(run_id)
    devices = store.devices(run_id)
    verdict = run_verdict(stored_outcome, tests, measured)

    # Tables show the test's own name (file path dropped: it repeats on every row); the link
    # leads to the test's section, which shows the full node id.
    labels = {t.test_id: t.nodeid.rsplit("::", 1)[-1] for t in tests}
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
    firmware = store.firmware(run_id)
    actions = store.actions(run_id)
    telemetry_plots, channel_rows, n_samples = _telemetry(store, run_id, [m for _, m in measured])

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
        "firmware": firmware,
        "artifacts": store.artifacts(run_id),
        "actions": actions,
        "flagged_actions": [a for a in actions if a.undo_outcome in UNDO_FLAGGED],
        "test_labels": labels,
        "diagnostics": _diagnostics(tests, measured, devices, firmware, actions),
        "telemetry_plots": telemetry_plots,
        "channel_rows": channel_rows,
        "n_channels": len(channel_rows),
        "n_samples": n_samples,
        "n_plotted_channels": sum(1 for r in channel_rows if r.plotted),
        "n_beyond_channels": sum(1 for r in channel_rows if r.beyond),
    }


def _plain(value: Any) -> str:
    """Metadata values as text (nested values stay readable without trusting them as markup)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def html_environment(template_dir: Path = TEMPLATE_DIR) -> Environment:
    """A fresh environment per render for every HTML rackval writes (report, compare, trend): no
    module-level state, autoescape on for .html/.j2 templates (and for strings: every store
    string may be hostile), StrictUndefined so a template typo fails loudly instead of printing
    an empty cell, and the number/margin/time filters the documents share."""
    env = Environment(
        loader=FileSystemLoader(str(template_dir)),
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
    env.filters["plain"] = _plain
    return env


def render_report(store: ResultsStore, run_id: str, out_dir: Path) -> Path:
    """Render the acceptance report of ``run_id`` to ``out_dir/report.html`` and return its path.

    Raises KeyError (from the store) when the run does not exist. The file is written to a
    temporary name and renamed, so a viewer never sees half a report.
    """
    context = build_context(store, run_id)
    html = html_environment().get_template(TEMPLATE_NAME).render(**context)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    tmp = out_dir / ".report.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
