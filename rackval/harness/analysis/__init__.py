"""The design-iteration loop over the results store: ``rackval compare`` and ``rackval trend``.

``rackval.harness.analysis.compare`` answers "did rev-B make things better or worse than rev-A?" and
``rackval.harness.analysis.trend`` answers "is this unit, station or revision out of family?". Both read
only the results store (SQLite file or PostgreSQL URL), so they work on any station's data after
the fact. Each exposes ``add_parser(subparsers)`` for ``rackval.harness.cli`` to register.

This package holds only what both commands share: the report environment (the same rules as the
acceptance report: autoescape, StrictUndefined, a fresh ``Environment`` per render), atomic file
writes and safe path parts (the ``--results`` option and the default output directory are every
subcommand's: ``rackval.harness.cliutil``). Heavy imports (jinja2, matplotlib) happen on first use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATE_DIR = Path(__file__).parent / "templates"

_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def environment() -> Environment:
    """The report's Jinja2 environment (autoescaped, StrictUndefined, shared number/time filters)
        over this package's templates, plus ``signed`` for deltas in a design review and ``num4``/``pct``
    for the requirement rollup."""
    from rackval.harness.report.html import format_number, html_environment

    env = html_environment(TEMPLATE_DIR)
    env.filters["signed"] = lambda value: format_number(value, "+.6g")
    from rackval.harness.analysis.rollup import significant

    env.filters["num4"] = significant  # a rollup's figures: 4 significant digits, no exponent
    env.filters["pct"] = lambda value: significant(value, 3, signed=True)
    return env


def write_atomic(path: Path, text: str) -> Path:
    """Write through a temporary name and rename, so a viewer or CI never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def safe_path_part(text: str, limit: int = 60) -> str:
    """A store string (revision, run id, measurement name) made into one harmless path component."""
    cleaned = _UNSAFE_PATH_CHARS.sub("_", text).strip("._")[:limit]
    return cleaned or "unnamed"
