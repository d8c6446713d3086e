"""A comparison written down: ``compare.md`` (a table pasteable into a design review as is) and
``compare.html`` (the report template, with the overlay plots), each written atomically."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from rackval.core.errors import ConfigError
from rackval.harness.analysis import environment, write_atomic
from rackval.harness.analysis.compare.comparison import Comparison
from rackval.harness.analysis.compare.pairing import CLASS_ORDER, Side

FORMATS = ("html", "md")


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
