"""Shared checks for the compare and trend tests: a store URL per backend holding the known data,
the command-line round trip, and what "self-contained" and "a Markdown table" mean."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from rackval.harness.store import open_store
from tests.support.analysis_data import build


def built_store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """For a fixture parametrised with "sqlite"/"postgresql": a fresh store holding ``analysis_data``.

    The PostgreSQL side needs a module-scoped ``pg_server`` fixture (tests/support/store_pg.py) in the
    calling module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('analysis') / 'results.sqlite'}"
    else:
        url = request.getfixturevalue("pg_server").create_database()
    store = open_store(url)
    try:
        build(store)
    finally:
        store.close()
    return url


def run_command(add_parser: Callable[[argparse._SubParsersAction], None], argv: list[str]) -> int:  # type: ignore[type-arg]
    """Parse ``argv`` with a parser holding only the subcommand under test and call its handler,
    as ``rackval`` will once the integrator wires ``add_parser`` in."""
    parser = argparse.ArgumentParser(prog="rackval")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def external_references(text: str) -> list[str]:
    """Everything that would make a browser fetch something; SVG namespace declarations aside
    (the same rule as the acceptance report's test)."""
    stripped = re.sub(r'\sxmlns(?::[A-Za-z][\w.-]*)?="http://www\.w3\.org/[^"]*"', "", text)
    found = re.findall(r"https?://[^\s\"'<>)]*", stripped, flags=re.IGNORECASE)
    found += re.findall(r"""(?:src|href|action|data)\s*=\s*["']?\s*//[^\s"'>]*""", stripped, flags=re.IGNORECASE)
    found += re.findall(r"""url\(\s*["']?(?!#)[^)]*\)""", stripped, flags=re.IGNORECASE)
    found += re.findall(r"@import", stripped, flags=re.IGNORECASE)
    found += re.findall(r"""\b(?:src|href)\s*=\s*["'](?!#)[^"']*["']""", stripped, flags=re.IGNORECASE)
    found += re.findall(r"<(?:script|link|iframe|object|embed)\b", stripped, flags=re.IGNORECASE)
    return found


def markdown_table(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the first Markdown table in ``text``, split on unescaped pipes
    (cells are returned as written, escapes included)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(lines) >= 2 and set(lines[1].replace("|", "")) == {"-"}, text

    def cells(line: str) -> list[str]:
        return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]

    header = cells(lines[0])
    body = [cells(line) for line in lines[2:]]
    assert all(len(row) == len(header) for row in body), body
    return header, body


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
