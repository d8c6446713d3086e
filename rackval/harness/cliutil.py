"""Small pieces the ``rackval`` subcommands share: picking a stored run, and where output goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
