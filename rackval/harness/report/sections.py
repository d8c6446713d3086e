"""The sections of the HTML report, as units: each is a context builder and a template partial,
listed once in ``REPORT_SECTIONS`` (in page order, with its heading and link anchor).

A builder takes the run's ``RunData`` and returns the names its partial
(``templates/section_<name>.html.j2``) shows, or None when the run has nothing for that section
(it is then left out). Adding a section is one builder, one partial and one row of the table;
``rackval.harness.report.html.build_context`` assembles the page from it. Values are formatted by
the templates' filters (``num``, ``utc``, ``duration``...), so a builder returns plain data.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from rackval.core.errors import ConfigError
from rackval.harness.measure import Measurement, Outcome
from rackval.harness.report import plots, telemetry
from rackval.harness.report.causes import group_failures, short_name
from rackval.harness.report.equipment import cooling_section, shelves_section
from rackval.harness.report.run_data import ResultsStore, RunData
from rackval.harness.spec import RUN_SPEC_REVISION, revision_mismatch
from rackval.harness.store.records import (
    ActionRecord,
    DeviceRecord,
    FirmwareRecord,
    RunInfo,
    TestRecord,
)
from rackval.harness.units import convert
from rackval.harness.verdict import FAILED_TEST_OUTCOMES, UNDO_FLAGGED

TEST_OUTCOME_ORDER = ("passed", "failed", "error", "skipped")
MEASUREMENT_OUTCOME_ORDER = (Outcome.PASS, Outcome.MARGINAL, Outcome.FAIL, Outcome.INFO)
MAX_DIAGNOSTIC_MEASUREMENTS = 50
"""Failing measurements listed per failed test; the requirement table has every one."""
MAX_SUMMARY_FINDINGS = 10
"""Failed and marginal requirements listed in the summary, worst first; the requirement table has every one."""


@dataclass(frozen=True)
class ReportSection:
    """One section of the report: its heading, the id of its heading (a link target; empty:
    none), and ``build(run data) -> the names its partial shows`` (None: left out)."""

    name: str
    title: str
    anchor: str
    build: Callable[[RunData], dict[str, Any] | None]

    @property
    def template(self) -> str:
        return f"section_{self.name}.html.j2"


def frame(data: RunData) -> dict[str, Any]:
    """What the page around the sections shows: title, verdict and the banners at the top."""
    messages = data.undo_messages.messages
    return {
        "run": data.run,
        "verdict": data.verdict,
        "stored_outcome": data.stored_outcome,
        "last_record": data.last_record,
        # (action, its undo message with scripts shown once in the action log)
        "flagged_actions": [(a, msg) for a, msg in zip(data.actions, messages, strict=True)
                            if a.undo_outcome in UNDO_FLAGGED],
    }  # fmt: skip


# ---- run and summary ---------------------------------------------------------------------------------
def run_section(data: RunData) -> dict[str, Any]:
    """Who, what and when: the run's identity, its time span and its metadata."""
    run = data.run
    end = data.ended_at if data.finished and data.ended_at is not None else data.last_record or run.started_at
    return {
        "finished": data.finished,
        "ended_at": data.ended_at if data.finished else None,
        "duration": end - run.started_at,
        "metadata": sorted(((str(k), v) for k, v in run.metadata.items()), key=lambda kv: kv[0]),
    }


def _counts(values: list[str], order: tuple[str, ...]) -> list[tuple[str, int]]:
    """Counts in a fixed order (zeros included, so the summary always has the same shape), then
    any unexpected outcome the store holds, so nothing is silently dropped."""
    counter = Counter(values)
    out = [(key, counter.get(key, 0)) for key in order]
    out.extend((key, n) for key, n in sorted(counter.items()) if key not in order)
    return out


def summary_section(data: RunData) -> dict[str, Any]:
    """Tests and measurements counted by outcome, and the failed tests."""
    return {
        "test_counts": _counts([t.outcome for t in data.tests], TEST_OUTCOME_ORDER),
        "measurement_counts": _counts(
            [m.outcome.value for m in data.measurements], tuple(o.value for o in MEASUREMENT_OUTCOME_ORDER)
        ),
        "n_tests": len(data.tests),
        "n_measurements": len(data.measured),
        "failed_tests": [t for t in data.tests if t.outcome in FAILED_TEST_OUTCOMES],
        "findings": data.findings[:MAX_SUMMARY_FINDINGS],
        "n_findings": len(data.findings),
    }


# ---- root causes ---------------------------------------------------------------------------------------
def causes_section(data: RunData) -> dict[str, Any] | None:
    """Failed tests grouped by the root cause they trace back to (a device down, a feed event),
    each with the devices it took down; left out when the run found no cause."""
    if not data.causes:
        return None
    failed = [t for t in data.tests if t.outcome in FAILED_TEST_OUTCOMES]
    groups = group_failures(data.causes, [(t.nodeid, t.cause) for t in failed])
    keys = {c.key for c in data.causes}
    links = {t.nodeid: (short_name(t.nodeid), _test_anchor(t.test_id)) for t in failed}
    return {"groups": groups, "links": links, "other": [links[t.nodeid] for t in failed if t.cause not in keys]}


# ---- failure diagnostics ---------------------------------------------------------------------------
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


def _test_anchor(test_id: int | None) -> str:
    """The id of a test's section (``session``: what was recorded outside any test)."""
    return "session" if test_id is None else f"test-{test_id}"


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
        if t.outcome in FAILED_TEST_OUTCOMES or t.test_id in failing:
            entry(t.nodeid, _test_anchor(t.test_id), t.outcome, t.message, failing.get(t.test_id, []), t.test_id)
    orphans = [m for tid, ms in failing.items() if tid is None or tid not in known for m in ms]
    if orphans:
        entry("Recorded outside any test", "session", "fail", "", orphans, None)
    return out


def diagnostics_section(data: RunData) -> dict[str, Any] | None:
    """Each failure with what is needed to start debugging it; left out when nothing failed."""
    found = _diagnostics(data.tests, data.measured, data.devices, data.firmware, data.actions)
    return {"diagnostics": found} if found else None


# ---- plots -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plot:
    """One figure; ``svg`` None: no data (the caption says what would be shown)."""

    title: str
    caption: str
    svg: Markup | None


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


def plots_section(data: RunData) -> dict[str, Any]:
    """The margin chart and the time series of repeated measurements."""
    plot_list, omitted = _plots(data.run, data.measurements)
    return {"plots": plot_list, "omitted_series": omitted}


# ---- telemetry ---------------------------------------------------------------------------------------
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


def telemetry_section(data: RunData) -> dict[str, Any]:
    """Telemetry figures and the table of every channel sampled."""
    figures, rows, n_samples = _telemetry(data.store, data.run_id, data.measurements)
    return {
        "telemetry_plots": figures,
        "channel_rows": rows,
        "n_channels": len(rows),
        "n_samples": n_samples,
        "n_plotted_channels": sum(1 for r in rows if r.plotted),
        "n_beyond_channels": sum(1 for r in rows if r.beyond),
    }


# ---- measurements and tests -----------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasurementRow:
    """One row of the requirement table, linked to its test's section."""

    test_label: str
    test_anchor: str
    m: Measurement


@dataclass(frozen=True)
class TestSection:
    """One test's block: its record, measurement counts by outcome and its findings."""

    record: TestRecord
    anchor: str
    counts: list[tuple[str, int]]
    findings: list[str]


def measurements_section(data: RunData) -> dict[str, Any]:
    """Every measurement with its requirement, limits, margin and outcome, linked to its test."""
    labels = data.test_labels
    rows = [
        MeasurementRow(
            test_label="(session)" if tid is None else labels.get(tid, f"test #{tid}"),
            test_anchor=_test_anchor(tid) if tid is None or tid in labels else "",
            m=m,
        )
        for tid, m in data.measured
    ]
    return {"rows": rows}


def _findings(measurements: list[Measurement]) -> list[str]:
    return [m.describe() for m in measurements if m.outcome in (Outcome.FAIL, Outcome.MARGINAL)]


def tests_section(data: RunData) -> dict[str, Any]:
    """One block per test: outcome, duration, measurement counts, findings and message."""
    by_test = data.by_test
    test_sections = [
        TestSection(
            record=t,
            anchor=_test_anchor(t.test_id),
            counts=[
                (o.value, n)
                for o in MEASUREMENT_OUTCOME_ORDER
                if (n := sum(1 for m in by_test.get(t.test_id, []) if m.outcome == o))
            ],
            findings=_findings(by_test.get(t.test_id, [])),
        )
        for t in data.tests
    ]
    session = by_test.get(None, [])
    return {"test_sections": test_sections, "session_findings": _findings(session), "session_count": len(session)}


# ---- devices, actions, traceability ------------------------------------------------------------------
def devices_section(data: RunData) -> dict[str, Any]:
    """Every device of the run with its identity."""
    return {"devices": data.devices}


def actions_section(data: RunData) -> dict[str, Any]:
    """Everything the run did to the rack, with its undo; each script quoted by undo messages once."""
    undo = data.undo_messages
    return {
        "actions": list(zip(data.actions, undo.messages, strict=True)),
        "undo_scripts": undo.scripts,
        "test_labels": data.test_labels,
    }


def traceability_section(data: RunData) -> dict[str, Any]:
    """The firmware snapshot and the run's artifacts (the run's sources are in the frame's ``run``),
    and a warning when the spec was written for another design revision than the rack's."""
    spec_revision = str(data.run.metadata.get(RUN_SPEC_REVISION, ""))
    return {
        "firmware": data.firmware,
        "artifacts": data.artifacts,
        "spec_revision": spec_revision,
        "revision_warning": revision_mismatch(spec_revision, data.run.design_revision),
    }


REPORT_SECTIONS: tuple[ReportSection, ...] = (
    ReportSection("causes", "Root causes", "causes", causes_section),
    ReportSection("run", "Run", "", run_section),
    ReportSection("summary", "Summary", "", summary_section),
    ReportSection("diagnostics", "Failure diagnostics", "diagnostics", diagnostics_section),
    ReportSection("plots", "Plots", "", plots_section),
    ReportSection("telemetry", "Telemetry", "telemetry", telemetry_section),
    ReportSection("cooling", "Cooling loop", "cooling", cooling_section),
    ReportSection("shelves", "Power shelves", "shelves", shelves_section),
    ReportSection("measurements", "Requirements and measurements", "", measurements_section),
    ReportSection("tests", "Tests", "", tests_section),
    ReportSection("devices", "Devices", "", devices_section),
    ReportSection("actions", "Action log", "actions", actions_section),
    ReportSection("traceability", "Traceability", "traceability", traceability_section),
)
"""The report's sections in page order."""
