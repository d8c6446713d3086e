"""Which acceptance plan asks for which spec requirement: what requirement coverage is built on.

A requirement no plan measured in a run is "not covered"; to be useful the report must say which
plan *would* measure it (had the rack the devices, had the plan been selected). Plans name the
requirements they judge by key, as string literals (``measure(..., limit="idle_rack_power")``,
``spec.limit("fan_speed")``, a key passed to a helper): so the plans' source is read (parsed,
never imported or run) and every string constant that is a key of the spec counts. Why a
static scan rather than a declared table: it cannot drift from the plans, and a plan author
has nothing to add. What it misses: a key assembled at run time (from a node class's
``expect`` list, an f-string); such a requirement reads "no plan names this key".

The run records the answer (``RUN_REQUIREMENT_PLANS``), so a report rendered later from the
store shows it without the plans at hand.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

RUN_REQUIREMENT_PLANS = "requirement_plans"
"""runs.metadata key: {requirement key: [plan files that name it]}."""


def plan_files(collected: Iterable[Path]) -> list[Path]:
    """The plan modules to scan: every ``test_*.py`` beside a collected plan, so a plan left out of
    this run (``-k``, a single file on the command line) still counts as one that would measure."""
    folders = {Path(p).parent for p in collected}
    return sorted({f for folder in folders for f in folder.glob("test_*.py")})


def requirement_plans(files: Iterable[Path], keys: Iterable[str], root: Path | None = None) -> dict[str, list[str]]:
    """{key: [files naming it]} for each of ``keys`` named by at least one file (as a string
    constant). Files are shown relative to ``root`` when under it; unreadable or unparsable files
    are skipped (pytest reports those itself)."""
    wanted = set(keys)
    found: dict[str, set[str]] = {}
    for path in files:
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        shown = _shown(Path(path), root)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in wanted:
                found.setdefault(node.value, set()).add(shown)
    return {key: sorted(files) for key, files in sorted(found.items())}


def _shown(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)
