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

from rackval.harness.inventory import RUN_SIM_PARAMS
from rackval.harness.measure import Measurement, Outcome, limit_reference
from rackval.harness.report import plots
from rackval.harness.report.causes import group_failures, short_name
from rackval.harness.report.display import Shown, shown
from rackval.harness.report.equipment import cooling_section, shelves_section
from rackval.harness.report.requirements import requirements_section
from rackval.harness.report.run_data import RunData
from rackval.harness.report.telemetry_figures import Plot, telemetry_figures
from rackval.harness.spec import RUN_SPEC_REQUIREMENTS, RUN_SPEC_REVISION, revision_mismatch
from rackval.harness.store.records import (
    ActionRecord,
    DeviceRecord,
    FirmwareRecord,
    RunInfo,
    TestRecord,
)
from rackval.harness.verdict import FAILED_TEST_OUTCOMES, UNDO_FLAGGED

TEST_OUTCOME_ORDER = ("passed", "failed", "error", "skipped")
MEASUREMENT_OUTCOME_ORDER = (Outcome.PASS, Outcome.MARGINAL, Outcome.FAIL, Outcome.INFO)
HIDDEN_METADATA = frozenset({RUN_SPEC_REQUIREMENTS})
"""Run metadata the run section does not list (it is shown as what it is used for: the spec's
requirements are the requirement rollup, its units the units of every value)."""
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

    @property
    def link_id(self) -> str:
        """The id the section's block carries and the table of contents links to."""
        return self.anchor or self.name


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
        "metadata": sorted(
            ((str(k), v) for k, v in run.metadata.items() if k not in HIDDEN_METADATA), key=lambda kv: kv[0]
        ),
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
        "findings": [(m, shown(m, data.spec_units)) for m in data.findings[:MAX_SUMMARY_FINDINGS]],
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
    failing: list[tuple[Measurement, Shown]]
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
    spec_units: dict[str, str],
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
                failing=[(m, shown(m, spec_units)) for m in ms[:MAX_DIAGNOSTIC_MEASUREMENTS]],
                more=max(0, len(ms) - MAX_DIAGNOSTIC_MEASUREMENTS),
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
    found = _diagnostics(data.tests, data.measured, data.devices, data.firmware, data.actions, data.spec_units)
    return {"diagnostics": found} if found else None


# ---- plots -------------------------------------------------------------------------------------------
def _plots(run: RunInfo, measurements: list[Measurement]) -> tuple[list[Plot], list[str]]:
    """The margin chart, plus a time series per measurement recorded repeatedly on one device and
    channel (none when no measurement was: the telemetry section is the run's time series)."""
    out: list[Plot] = []
    margin_svg = plots.margin_chart(measurements, id_prefix="margin")
    n_rows = len(plots.margin_rows(measurements))
    out.append(
        Plot(
            title="Margin to limits, by requirement",
            caption=(
                "One row per requirement: failed, then marginal, then the passed ones by their worst margin (a limit"
                " with no room by design, such as a count that must be 0, last)"
                + (f" (the {plots.BAR_CHART_MAX} worst of {n_rows})" if n_rows > plots.BAR_CHART_MAX else "")
                + "; the number of measurements in brackets. Each dot is one measurement (a device, a channel):"
                " its distance to the nearest limit as a percentage of the limit reference (the span for"
                " two-sided limits, the limit's magnitude for one-sided ones); the bar reaches the worst."
                f" The dashed line is the limit; values beyond ±{plots.CLIP_PERCENT:g} % are drawn at the edge."
            ),
            svg=None if margin_svg is None else Markup(margin_svg),
        )
    )
    groups = plots.time_series_groups(measurements)
    names = list(groups)
    omitted = names[plots.MAX_TIME_SERIES_PLOTS :]
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
                caption=f"{len(groups[name])} samples against {ts.x_label}; dashed lines are limits;"
                f" lines break at gaps.{more}",
                svg=Markup(ts.svg),
            )
        )
    return out, omitted


def plots_section(data: RunData) -> dict[str, Any]:
    """The margin chart and the time series of repeated measurements."""
    plot_list, omitted = _plots(data.run, data.measurements)
    return {"plots": plot_list, "omitted_series": omitted}


# ---- telemetry ---------------------------------------------------------------------------------------
def telemetry_section(data: RunData) -> dict[str, Any]:
    """Telemetry figures (one per kind of channel) and the table of every channel sampled."""
    figures, rows, n_samples, unreadable = telemetry_figures(
        data.store, data.run_id, data.measurements, data.devices, data.spec_units
    )
    return {
        "telemetry_unreadable": unreadable,
        "telemetry_plots": figures,
        "channel_rows": rows,
        "n_channels": len(rows),
        "n_samples": n_samples,
        "n_plotted_channels": sum(1 for r in rows if r.plotted),
        "n_discrete_channels": sum(1 for r in rows if r.discrete),
        "n_beyond_channels": sum(1 for r in rows if r.beyond),
    }


# ---- measurements and tests -----------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasurementRow:
    """One row of the measurement table, in the spec's unit, linked to its test's section."""

    test_label: str
    test_anchor: str
    m: Measurement
    shown: Shown


@dataclass(frozen=True)
class TestSection:
    """One test's block: its record, measurement counts by outcome, its findings, and whether it
    opens expanded (it failed, did not finish or has a failed or marginal measurement)."""

    record: TestRecord
    anchor: str
    counts: list[tuple[str, int]]
    findings: list[str]

    @property
    def expanded(self) -> bool:
        return self.record.outcome not in ("passed", "skipped") or bool(self.findings)


_ROW_ORDER = {Outcome.FAIL: 0, Outcome.MARGINAL: 1, Outcome.PASS: 2, Outcome.INFO: 3}


def _row_key(m: Measurement) -> tuple[int, bool, float]:
    """Outcome (fail, marginal, pass, info), then a limit with no room by design (a count that
    must be 0) after the others, then the margin in % of the limit, smallest first."""
    pct = plots.normalised_margin(m)
    exact = m.outcome == Outcome.PASS and not limit_reference(m)
    return (_ROW_ORDER.get(m.outcome, 4), exact, math.inf if pct is None or m.outcome == Outcome.INFO else pct)


def measurements_section(data: RunData) -> dict[str, Any]:
    """Every measurement with its requirement, limits, margin (in the unit and in % of the limit)
    and outcome, linked to its test: failed, then marginal ones first (closest to or furthest
    beyond their limit first), then the passed and informational ones (collapsed by the partial)."""
    labels = data.test_labels
    units = data.spec_units
    rows = [
        MeasurementRow(
            test_label="(session)" if tid is None else labels.get(tid, f"test #{tid}"),
            test_anchor=_test_anchor(tid) if tid is None or tid in labels else "",
            m=m,
            shown=shown(m, units),
        )
        for tid, m in data.measured
    ]
    rows.sort(key=lambda r: _row_key(r.m))
    attention = [r for r in rows if r.m.outcome in (Outcome.FAIL, Outcome.MARGINAL)]
    return {"rows": rows, "attention_rows": attention, "other_rows": rows[len(attention) :]}


def _findings(measurements: list[Measurement]) -> list[str]:
    return [m.describe() for m in measurements if m.outcome in (Outcome.FAIL, Outcome.MARGINAL)]


_TEST_ORDER = {"failed": 0, "error": 0, "running": 1}


def tests_section(data: RunData) -> dict[str, Any]:
    """One block per test: outcome, duration, measurement counts, findings and message; failed and
    unfinished tests first, then those with marginal findings, then the rest in run order."""
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
    test_sections.sort(key=lambda s: _TEST_ORDER.get(s.record.outcome, 3 if not s.findings else 2))
    session = by_test.get(None, [])
    return {
        "test_sections": test_sections,
        "n_collapsed": sum(1 for s in test_sections if not s.expanded),
        "session_findings": _findings(session),
        "session_count": len(session),
    }


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
    sim_params = data.run.metadata.get(RUN_SIM_PARAMS)
    return {
        "sim_params": sim_params if isinstance(sim_params, dict) else None,
        "firmware": data.firmware,
        "artifacts": data.artifacts,
        "spec_revision": spec_revision,
        "revision_warning": revision_mismatch(spec_revision, data.run.design_revision),
    }


REPORT_SECTIONS: tuple[ReportSection, ...] = (
    ReportSection("requirements", "Requirements", "requirements", requirements_section),
    ReportSection("causes", "Root causes", "causes", causes_section),
    ReportSection("summary", "Summary", "summary", summary_section),
    ReportSection("run", "Run", "run", run_section),
    ReportSection("diagnostics", "Failure diagnostics", "diagnostics", diagnostics_section),
    ReportSection("plots", "Plots", "plots", plots_section),
    ReportSection("telemetry", "Telemetry", "telemetry", telemetry_section),
    ReportSection("cooling", "Cooling loop", "cooling", cooling_section),
    ReportSection("shelves", "Power shelves", "shelves", shelves_section),
    ReportSection("measurements", "Measurements", "all-measurements", measurements_section),
    ReportSection("tests", "Tests", "tests", tests_section),
    ReportSection("devices", "Devices", "device-list", devices_section),
    ReportSection("actions", "Action log", "actions", actions_section),
    ReportSection("traceability", "Traceability", "traceability", traceability_section),
)
"""The report's sections in page order; the table of contents lists the ones shown, in this order."""
