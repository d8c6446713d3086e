"""Small pieces the ``rackval`` subcommands share: the ``--results`` option, opening the store a
read command reads, picking a stored run, and where output goes. Every subcommand module imports
them from here, so the commands spell their common options one way and feel like one tool.

Read commands (report, export, compare, trend, runs) open the store with ``open_results``: a
missing SQLite file is a one-line error naming the path, never a new empty store (a typo in
``--results`` used to create one and then say "no run"). Only a run (the pytest plugin) creates a store.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rackval.core.errors import ConfigError

DEFAULT_RESULTS = "reports/results.sqlite"


def add_results_option(parser: argparse.ArgumentParser) -> None:
    """``--results``, the results store every subcommand that reads runs takes."""
    parser.add_argument("--results", default=DEFAULT_RESULTS, help="results store: SQLite file or postgresql:// URL")


def sqlite_path(results: str | Path) -> Path | None:
    """The file a SQLite store URL names (a path or ``sqlite:///path``); None for a server URL."""
    text = str(results)
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///") :])
    if "://" in text:
        return None
    return Path(text)


def open_results(results: str | Path) -> Any:
    """Open an existing results store for reading; ConfigError (one line naming the path) when a
    SQLite store does not exist or is not a file. A server URL is opened as it is (the server
    says whether the database exists)."""
    from rackval.harness.store import open_store

    path = sqlite_path(results)
    if path is not None and not path.is_file():
        what = "is a directory, not a results store" if path.is_dir() else "does not exist"
        raise ConfigError(f"results store {path} {what} (check --results; a run creates it)")
    return open_store(results)


def resolve_run(store: Any, selector: str) -> str | None:
    """The run id ``selector`` names (a run id, or ``latest``), or None when the store has no such run."""
    runs = [r.run_id for r in store.runs()]
    run_id = (runs[-1] if runs else "") if selector == "latest" else selector
    return run_id if run_id in runs else None


def default_out_dir(results: str | Path, leaf: str) -> Path:
    """Beside a SQLite store, as ``rackval report`` does; under ``reports/`` for a server URL, so a
    directory is never named after a URL (it may hold a password)."""
    path = sqlite_path(results)
    if path is None:
        return Path("reports") / leaf
    return path.parent / leaf
