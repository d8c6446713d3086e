"""A comparison written down: ``compare.md`` (at most ``MD_LINE_BUDGET`` lines: a pull-request
comment with the verdicts, new failures, new marginals and top regressions per requirement) and
``compare.html`` (the requirement rollup first, every device's row behind a disclosure, the overlay
plots with limit lines), each written atomically."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from rackval.core.errors import ConfigError
from rackval.harness.analysis import environment, write_atomic
from rackval.harness.analysis.compare.comparison import Comparison
from rackval.harness.analysis.compare.pairing import CLASS_ORDER, NEW_FAILURE, NEW_MARGINAL, REGRESSION, Row, Side
from rackval.harness.analysis.compare.requirements import RequirementChange
from rackval.harness.analysis.compare.selection import Selection
from rackval.harness.analysis.rollup import NOT_COVERED, significant

FORMATS = ("html", "md")


_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def md_cell(text: object) -> str:
    """Text made safe for one Markdown table cell: one line, pipes and emphasis escaped, and HTML
    written as entities (Markdown renderers pass raw HTML through)."""
    plain = "".join(ch if ch.isprintable() else " " for ch in str(text)).strip()
    plain = plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", plain)


def _value_text(side: Side | None) -> str:
    if side is None:
        return "—"
    return f"{significant(side.value)} {side.unit}".strip()


def _in_unit(side: Side | None, unit: str) -> Side | None:
    """``side`` in the spec's ``unit`` when it converts (a plan measuring W against a spec in kW)."""
    if side is None or not unit or side.unit == unit:
        return side
    try:
        return side.in_unit(unit)
    except ConfigError:
        return side


def _margin_text(side: Side | None) -> str:
    if side is None or side.margin is None:
        return "—"
    reference = side.reference
    pct = f" ({significant(100.0 * side.margin / reference, 3, signed=True)} %)" if reference else ""
    return f"{significant(side.margin, signed=True)} {side.unit}{pct}".strip()


def _where(row: Row) -> str:
    return "/".join(p for p in (row.device, row.channel) if p) or "(rack)"


MD_LINE_BUDGET = 60
"""compare.md is a pull-request comment: at most this many lines; the rest is in compare.html."""
MD_LIST = 6  # requirements listed per group (new failures, new marginals)
MD_TOP = 10  # regressions in the table


def requirement_counts(result: Comparison) -> list[tuple[str, int]]:
    """How many requirements fall in each class (and how many no side measured), in report order."""
    counts: dict[str, int] = {}
    for change in result.requirements:
        counts[change.classification] = counts.get(change.classification, 0) + 1
    return [(c, counts[c]) for c in (*CLASS_ORDER, NOT_COVERED) if counts.get(c)]


def _first_new(change: RequirementChange, reason: str) -> Row:
    return next(r for r in change.device_rows if reason in r.reasons or (reason == NEW_FAILURE and r.new_failure))


def regression_lines(result: Comparison, limit: int = MD_TOP) -> list[str]:
    """One line per regressed requirement (new failures first, then new marginals, then the most
    margin lost), naming the worst device and the margin then and now: what the terminal prints."""
    lines = []
    regressed = [c for c in result.requirements if c.classification == REGRESSION or c.new_failure]
    for change in regressed[:limit]:
        row = change.row
        assert row is not None
        worse = [r for r in change.device_rows if r.classification == REGRESSION or r.new_failure]
        where = _where(worse[0]) if worse else "-"
        lines.append(
            f"REGRESSION: {change.key}: {row.outcome_change}, worst {_value_text(row.baseline)} → "
            f"{_value_text(row.candidate)}, margin {_margin_text(row.baseline)} → {_margin_text(row.candidate)};"
            f" {len(worse)} of {len(change.device_rows)} device rows regressed (first: {where})"
        )
    if len(regressed) > limit:
        lines.append(f"... and {len(regressed) - limit} more regressed requirements (compare.html)")
    return lines


def _verdicts(side: Selection) -> str:
    return ", ".join(
        f"{u.verdict if u.complete else 'INCOMPLETE'} ({u.run.rack_serial or u.run.run_id})" for u in side.runs
    )


def _listed(result: Comparison, reason: str, title: str) -> list[str]:
    picked = [c for c in result.requirements if any(reason in r.reasons or (reason == NEW_FAILURE and r.new_failure)
                                                    for r in c.device_rows)]  # fmt: skip
    if not picked:
        return [f"**{title}:** none.", ""]
    lines = [f"**{title}: {len(picked)}**", ""]
    for change in picked[:MD_LIST]:
        first = _first_new(change, reason)
        unit = change.info.unit if change.info else ""
        n = sum(1 for r in change.device_rows if reason in r.reasons or (reason == NEW_FAILURE and r.new_failure))
        lines.append(
            f"- `{md_cell(change.key)}` on {md_cell(_where(first))}{f' and {n - 1} more' if n > 1 else ''}:"
            f" {md_cell(_value_text(_in_unit(first.baseline, unit)))} →"
            f" {md_cell(_value_text(_in_unit(first.candidate, unit)))}"
            f" ({md_cell(first.outcome_change)})"
        )
    if len(picked) > MD_LIST:
        lines.append(f"- ... and {len(picked) - MD_LIST} more (compare.html)")
    return [*lines, ""]


MD_HEADER = ("Requirement", "Outcome", "Worst then", "Worst now", "Margin then", "Margin now", "Δ margin % of limit")


def render_markdown(result: Comparison, html_name: str = "compare.html") -> str:
    """At most ``MD_LINE_BUDGET`` lines: both sides' verdicts, new failures, new marginals, the top
    regressions per requirement with margin then and now, and where the rest is."""
    covered, total = result.coverage
    counts = ", ".join(f"{n} {c}" for c, n in requirement_counts(result)) or "none"
    lines = [
        f"## rackval compare: {md_cell(result.candidate.label)} vs {md_cell(result.baseline.label)}",
        "",
        f"- Baseline {md_cell(result.baseline.name)}: {md_cell(_verdicts(result.baseline))}",
        f"- Candidate {md_cell(result.candidate.name)}: {md_cell(_verdicts(result.candidate))}",
        f"- Requirements: {md_cell(counts)}"
        + (f"; coverage {covered}/{total}" if total else "")
        + f". Changes within {result.threshold_pct:g} % of the limit or a requirement's stated accuracy are unchanged.",
        "",
        *_listed(result, NEW_FAILURE, "New failures"),
        *_listed(result, NEW_MARGINAL, "New marginals"),
    ]
    regressed = [c for c in result.requirements if c.classification == REGRESSION and c.row is not None]
    if regressed:
        shown = min(len(regressed), MD_TOP)
        order = "new failures, new marginals, then most margin lost"
        lines += [f"**Top regressions** ({shown} of {len(regressed)}: {order}):",
                  "", "| " + " | ".join(MD_HEADER) + " |", "|" + "|".join("---" for _ in MD_HEADER) + "|"]  # fmt: skip
        for change in regressed[:MD_TOP]:
            row = change.row
            assert row is not None
            cells = (
                change.key, row.outcome_change, _value_text(row.baseline), _value_text(row.candidate),
                _margin_text(row.baseline), _margin_text(row.candidate), significant(row.margin_delta_pct, 3, True),
            )  # fmt: skip
            lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
        lines.append("")
    lines.append(
        f"Every requirement, each device's row and the overlay plots: `{html_name}` beside this file"
        f" ({len(result.rows)} measurement keys compared)."
    )
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
        "slug": {c: c.replace(" ", "-") for c in (*CLASS_ORDER, NOT_COVERED)},
        "requirement_counts": requirement_counts(result),
        "coverage": result.coverage,
        "regression_lines": regression_lines(result, limit=5),
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
