"""Small pieces the ``rackval`` subcommands share: the ``--results`` option, picking a stored run,
and where output goes. Every subcommand module imports them from here (this module imports nothing
of rackval), so the commands spell their common options one way and feel like one tool."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_RESULTS = "reports/results.sqlite"


def add_results_option(parser: argparse.ArgumentParser) -> None:
    """``--results``, the results store every subcommand that reads runs takes."""
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="results store: SQLite file or postgresql:// URL")


def resolve_run(store: Any, selector: str) -> str | None:
    """The run id ``selector`` names (a run id, or ``latest``), or None when the store has no such run."""
    runs = [r.run_id for r in store.runs()]
    run_id = (runs[-1] if runs else "") if selector == "latest" else selector
    return run_id if run_id in runs else None


def default_out_dir(results: str | Path, leaf: str) -> Path:
    """Beside a SQLite store, as ``rackval report`` does; under ``reports/`` for a server URL, so a
    directory is never named after a URL (it may hold a password)."""
    text = str(results)
    if "://" in text and not text.startswith("sqlite:"):
        return Path("reports") / leaf
    return Path(text.removeprefix("sqlite:///")).parent / leaf
