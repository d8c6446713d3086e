"""The rackval block at the end of pytest's terminal output: where the results are and what the run proved.

Why a block of its own: the last lines of a run are what an engineer reads. They must give the
verdict in words (PASS WITH MARGINALS is not PASS; ``rackval.harness.verdict`` decides it, as for
the report and JUnit), the requirements that failed or sit in their marginal band (the worst
``MAX_FINDINGS``, with device and value against limit), and anything the rack may be left with:
every action whose undo failed or never ran, whether inside a test's ``safety.scoped()`` block or at
the end of the run. Short enough to read at a glance; the report has the rest.

Everything a device, a rack file or a spec said is escaped for the terminal (``terminal_text``):
a control character in a device string is printed as an escape (``\\x1b``), never sent to the
terminal to act on.

``write_terminal_summary`` writes the block from parts, each a function returning its lines; a new
part (failures grouped by cause, say) is one more function in ``_PARTS``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from rackval.harness.measure import Measurement, Outcome
from rackval.harness.plugin.run import RackvalRun, RunClockFigure
from rackval.harness.report.causes import short_name
from rackval.harness.report.display import shown
from rackval.harness.safety.undo_messages import short_undo_messages
from rackval.harness.verdict import Verdict

MAX_FINDINGS = 10
"""Failed and marginal requirements listed, worst first; the report lists every one."""
MAX_LEFT_CHANGED = 10
"""Actions listed under "rack may be left changed"; all are counted, the report lists every one."""
MAX_MESSAGE_CHARS = 300
MAX_NAMES = 40
"""Tests (or devices) named per root cause; the report lists every one."""

Line = tuple[str, dict[str, bool]]
"""One line of the block and its markup for ``terminalreporter.write_line`` (red=True, bold=True...)."""

VERDICT_MARKUP: dict[Verdict, dict[str, bool]] = {
    Verdict.PASS: {"green": True, "bold": True},
    Verdict.PASS_WITH_MARGINALS: {"yellow": True, "bold": True},
    Verdict.FAIL: {"red": True, "bold": True},
    Verdict.INCOMPLETE: {"purple": True, "bold": True},
}


def terminal_text(text: str, limit: int | None = None) -> str:
    """``text`` safe to print on a terminal: every non-printable character (ESC, CR, newline, DEL,
    C1 controls, bidi overrides...) shown as its escape (``\\x1b``, ``\\r``, ``\\u202e``); cut at
    ``limit`` characters with an ellipsis."""
    safe = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    if limit is not None and len(safe) > limit:
        safe = safe[: limit - 1] + "…"
    return safe


def write_terminal_summary(terminalreporter: Any, run: RackvalRun) -> None:
    """The rackval section of pytest's terminal summary (nothing when no test used the rack)."""
    if not run.run_started:
        return
    terminalreporter.section("rackval")
    for part in _PARTS:
        for text, markup in part(run):
            terminalreporter.write_line(text, **markup)


# ---- the parts, in the order they are written -----------------------------------------------------
def where_lines(run: RackvalRun) -> list[Line]:
    """The run, its rack, where its results went, and (simulated rack) how fast virtual time ran."""
    lines: list[Line] = [(f"run {run.run_id} on rack {terminal_text(run.inventory.meta.name)}", {})]
    if run.report_path is not None:
        lines += [(f"report:  {run.report_path}", {}), (f"junit:   {run.junit_path}", {})]
    lines.append((f"results: {run.results_path}", {}))
    if run.clock_figure is not None:
        lines.append((run.clock_figure.line() + " (to the end of the tests)", {}))
        # The report and exports are written after the figure was stored: say what they cost.
        session = RunClockFigure(run.clock_figure.virtual_s, time.monotonic() - run.wall_started)
        cost = f"  with report and exports: {session.wall_s:.1f} wall s: virtual/wall = {session.ratio:.1f}"
        lines.append((cost, {}))
    elif run.clock_figure_error:
        lines.append((f"simulator clock: no figure ({terminal_text(run.clock_figure_error)})", {}))
    return lines


def warning_lines(run: RackvalRun) -> list[Line]:
    """Warnings about the run's inputs (a spec written for another design revision)."""
    return [(f"WARNING: {terminal_text(w)}", {"yellow": True}) for w in run.warnings]


def cause_lines(run: RackvalRun) -> list[Line]:
    """Failed tests grouped by the root cause they share (a device down, a feed event): one block
    per cause with when and where it was found, the devices it took down and the failed tests."""
    groups, rest = run.root_causes.groups()
    lines: list[Line] = []
    for group in groups:
        c = group.cause
        lines.append((f"root cause: {terminal_text(c.summary)}", {"red": True, "bold": True}))
        where = f" in {terminal_text(c.test)}" if c.test else ""
        lines.append((f"  found at {group.when()}{where}", {}))
        if c.devices:
            lines.append((f"  devices down ({len(c.devices)}): {_names(list(c.devices))}", {}))
        lines.append((f"  failed tests ({len(group.tests)}): {_names([short_name(t) for t in group.tests])}", {}))
    if rest:
        lines.append((f"{len(rest)} other failed test(s) share no known cause: {_names([short_name(t) for t in rest])}",
                      {}))  # fmt: skip
    return lines


def _names(names: list[str]) -> str:
    shown = ", ".join(terminal_text(n) for n in names[:MAX_NAMES])
    return shown + (f" ... and {len(names) - MAX_NAMES} more in the report" if len(names) > MAX_NAMES else "")


def finding_lines(run: RackvalRun) -> list[Line]:
    """The failed, then marginal requirements, worst first, with device and value against limit."""
    found = run.findings
    if not found:
        return []
    failed = {_requirement(m) for m in found if m.outcome == Outcome.FAIL}
    marginal = {_requirement(m) for m in found if m.outcome == Outcome.MARGINAL} - failed
    counted = ((len(failed), "failed"), (len(marginal), "marginal"))
    counts = ", ".join(f"{n} {what} requirement{'s' if n != 1 else ''}" for n, what in counted if n)
    lines: list[Line] = [(f"{counts}; worst first:", {"bold": True})]
    for m in found[:MAX_FINDINGS]:
        markup = {"red": True} if m.outcome == Outcome.FAIL else {"yellow": True}
        lines.append((f"  {m.outcome.value.upper():<8} {describe_finding(m, run.spec_units)}", markup))
    if len(found) > MAX_FINDINGS:
        lines.append((f"  ... and {len(found) - MAX_FINDINGS} more in the report", {}))
    return lines


def left_changed_lines(run: RackvalRun) -> list[Line]:
    """Every action whose undo failed or never ran: the rack may be left changed. Scripts quoted
    by the undo messages are named once (``rackval.harness.safety.undo_messages``)."""
    actions = run.left_changed
    if not actions:
        return []
    n = len(actions)
    alarm = {"red": True, "bold": True}
    lines: list[Line] = [
        (f"RACK MAY BE LEFT CHANGED: {n} action{'s' if n != 1 else ''} whose undo failed or never ran;"
         " restore by hand:", alarm)
    ]  # fmt: skip
    undo = short_undo_messages(actions)
    for a, message in list(zip(actions, undo.messages, strict=True))[:MAX_LEFT_CHANGED]:
        what = "NEVER RAN" if a.undo_outcome == "pending" else "FAILED"
        detail = f": {terminal_text(message, MAX_MESSAGE_CHARS)}" if message else ""
        lines.append((
            f"  action {a.action_id} on {terminal_text(a.device)}: {terminal_text(a.operation)};"
            f" undo '{terminal_text(a.undo or '(none given)')}' {what}{detail}", {"red": True},
        ))  # fmt: skip
    if n > MAX_LEFT_CHANGED:
        lines.append((f"  ... and {n - MAX_LEFT_CHANGED} more in the report's action log", {"red": True}))
    for s in undo.scripts:
        lines.append((
            f"  <{s.label}>: {terminal_text(s.first_line, 80)} ... ({s.lines} lines; quoted by"
            f" {len(s.actions)} undo message{'s' if len(s.actions) != 1 else ''}; whole text in the report)", {},
        ))  # fmt: skip
    return lines


def verdict_lines(run: RackvalRun) -> list[Line]:
    """The last line: the verdict in words."""
    if run.verdict is None:
        return [("verdict: not decided (the run was not closed)", VERDICT_MARKUP[Verdict.INCOMPLETE])]
    return [(f"verdict: {run.verdict}", VERDICT_MARKUP[run.verdict])]


_PARTS: tuple[Callable[[RackvalRun], list[Line]], ...] = (
    where_lines,
    warning_lines,
    cause_lines,
    finding_lines,
    left_changed_lines,
    verdict_lines,
)


# ---- one finding in words -------------------------------------------------------------------------
def _requirement(m: Measurement) -> str:
    return m.requirement or m.name


def describe_finding(m: Measurement, spec_units: dict[str, str]) -> str:
    """``requirement: name on device [channel] = value unit vs limit unit (margin ..., ... %)``, in
    the requirement's spec unit with readable digits (as the report shows it)."""
    s = shown(m, spec_units)
    unit = f" {terminal_text(s.unit)}" if s.unit else ""
    where = f" on {terminal_text(m.device)}" if m.device else ""
    channel = f" [{terminal_text(m.channel)}]" if m.channel else ""
    requirement = f"{terminal_text(m.requirement)}: " if m.requirement and m.requirement != m.name else ""
    margin = "" if m.margin is None or math.isnan(m.margin) else f"margin {s.margin}{unit}"
    if margin and s.margin_pct:
        margin += f", {s.margin_pct}"
    tail = f" ({margin})" if margin else ""
    limits = s.bounds("<=", ">=")
    return f"{requirement}{terminal_text(m.name)}{where}{channel} = {s.value}{unit} vs {limits}{unit}{tail}"
