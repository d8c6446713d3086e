"""``rackval runs``: the runs a results store holds, filtered by rack, serial, design revision,
station, outcome and date, as a table for people or JSON for scripts.

Why a command of its own: every other read command takes a run id or a design revision, and
before this the only way to find one was to open the SQLite file. It reads the runs table only
(the stored outcome is the verdict the run decided at its end; a run still marked ``running``
is live or was killed), so listing a store of a thousand runs costs one query.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from rackval.core.errors import ConfigError
from rackval.core.printable import printable
from rackval.harness.cliutil import add_results_option, open_results
from rackval.harness.store.records import RunInfo

COLUMNS = ("run_id", "started", "rack", "serial", "revision", "station", "operator", "outcome")


@dataclass(frozen=True)
class RunFilter:
    """What ``rackval runs`` keeps: each given field must match exactly (outcome case-insensitively,
    ``-`` or ``_`` for a space); ``since``/``until`` are UTC dates, both inclusive."""

    rack: str | None = None
    serial: str | None = None
    revision: str | None = None
    station: str | None = None
    outcome: str | None = None
    since: date | None = None
    until: date | None = None

    def keeps(self, run: RunInfo, outcome: str) -> bool:
        day = datetime.fromtimestamp(run.started_at, tz=UTC).date()
        return (
            all(want is None or want == have for want, have in (
                (self.rack, run.rack_name), (self.serial, run.rack_serial), (self.revision, run.design_revision),
                (self.station, run.station)))
            and (self.outcome is None or _outcome_word(self.outcome) == _outcome_word(outcome))
            and (self.since is None or day >= self.since)
            and (self.until is None or day <= self.until)
        )  # fmt: skip


def _outcome_word(text: str) -> str:
    return text.strip().lower().replace("-", " ").replace("_", " ")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a date as YYYY-MM-DD (UTC), not {text!r}") from None


def list_runs(store: Any, keep: RunFilter) -> list[dict[str, str]]:
    """The runs ``keep`` keeps, oldest first, as rows of ``COLUMNS`` (times in UTC ISO 8601)."""
    rows = []
    for run in store.runs():
        outcome = store.run_status(run.run_id)[0] or ""
        if keep.keeps(run, outcome):
            started = datetime.fromtimestamp(run.started_at, tz=UTC).isoformat(timespec="seconds")
            rows.append(dict(zip(COLUMNS, (
                run.run_id, started.replace("+00:00", "Z"), run.rack_name, run.rack_serial, run.design_revision,
                run.station, run.operator, outcome), strict=True)))  # fmt: skip
    return rows


def format_table(rows: list[dict[str, str]]) -> list[str]:
    """Aligned text columns; device and operator strings are made terminal-safe."""
    cells = [[printable(str(r[c])) for c in COLUMNS] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return lines


def _cmd_runs(args: argparse.Namespace) -> int:
    keep = RunFilter(args.rack, args.serial, args.revision, args.station, args.outcome, args.since, args.until)
    if keep.since and keep.until and keep.since > keep.until:
        raise ConfigError(f"runs: --since {keep.since} is after --until {keep.until}")
    store = open_results(args.results)
    try:
        rows = list_runs(store, keep)
    finally:
        store.close()
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    elif rows:
        print("\n".join(format_table(rows)))
    else:
        print("no run matches" if any(vars(keep).values()) else "the store holds no run", file=sys.stderr)
    return 0 if rows else 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rackval runs`` (exit 0 with rows, 1 when none matches, 2 via ConfigError)."""
    p = subparsers.add_parser(
        "runs", help="list stored runs, filtered by rack, serial, revision, station, outcome and date"
    )
    p.add_argument("--rack", help="rack name")
    p.add_argument("--serial", help="rack serial")
    p.add_argument("--revision", help="design revision")
    p.add_argument("--station", help="test station")
    p.add_argument("--outcome", help="stored outcome: pass, 'pass with marginals', fail, incomplete, running")
    p.add_argument("--since", type=_date, help="started on or after this UTC date (YYYY-MM-DD)")
    p.add_argument("--until", type=_date, help="started on or before this UTC date (YYYY-MM-DD)")
    p.add_argument("--json", action="store_true", help="a JSON list of objects instead of a table")
    add_results_option(p)
    p.set_defaults(func=_cmd_runs)
    return p
