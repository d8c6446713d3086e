"""The self-contained HTML acceptance report of one run, rendered from the results store.

Data first: everything in it reads the store (``RunData``), so a finished run, a run that is
still going and a run whose process was killed all render the same way; the last two are marked
INCOMPLETE and show what was recorded. The output is a single file (inline CSS, inline SVG
plots, no scripts, no external references) so it can be attached to a ticket or opened on an
air-gapped bench PC.

The page is a frame (``templates/report.html.j2``: title, verdict, banners) around the sections
of ``rackval.harness.report.sections.REPORT_SECTIONS``, in their order. Every string that came
from a device, a test or the operator is escaped by Jinja2's autoescape; only the SVG that
``rackval.harness.report.plots`` draws itself is passed through as markup. The formatting filters
here are shared by every HTML document rackval writes (report, compare, trend).
"""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    BytecodeCache,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)
from jinja2.bccache import Bucket

from rackval.harness.report.run_data import ResultsStore, RunData
from rackval.harness.report.sections import REPORT_SECTIONS, frame

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "report.html.j2"


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


def build_context(store: ResultsStore, run_id: str) -> dict[str, Any]:
    """Everything the template shows, read from the store: the frame's names, every section's
    names, and ``report_sections`` ((section, shown) in page order). Separate from rendering so
    the CLI or an export can reuse the verdict and counts without producing HTML."""
    data = RunData(store, run_id)
    context = frame(data)
    shown = []
    for section in REPORT_SECTIONS:
        names = section.build(data)
        if names is not None:
            clash = context.keys() & names.keys()
            if clash:
                raise RuntimeError(f"report section {section.name!r} redefines {sorted(clash)}")
            context.update(names)
        shown.append((section, names is not None))
    context["report_sections"] = shown
    return context


def _plain(value: Any) -> str:
    """Metadata values as text (nested values stay readable without trusting them as markup)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


class _QuietBytecodeCache(FileSystemBytecodeCache):
    """Jinja's own per-user cache of compiled templates (in the system temp directory, owner-only,
    checked by jinja), so a render does not compile its 16 templates again (~0.12 s of a report
    of ~2 s). A cache that cannot be written is no cache: never a failed report."""

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> BytecodeCache | None:
    try:
        return _QuietBytecodeCache()
    except (OSError, RuntimeError):  # no safe temp directory of our own: compile every time
        return None


def html_environment(template_dir: Path = TEMPLATE_DIR) -> Environment:
    """A fresh environment per render for every HTML rackval writes (report, compare, trend): no
    module-level state (compiled templates are cached by jinja on disk, keyed by their source),
    autoescape on for .html/.j2 templates (and for strings: every store string may be hostile),
    StrictUndefined so a template typo fails loudly instead of printing an empty cell, and the
    number/margin/time filters the documents share."""
    env = Environment(
        loader=FileSystemLoader(str(template_dir)),
        bytecode_cache=_bytecode_cache(),
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
