"""``rackval compare`` on the command line: options, the summary printed, and the exit status
(0, or 1 when the candidate has new failures, so CI can gate on it; 2 via ConfigError)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rackval.core.printable import printable
from rackval.harness.analysis import safe_path_part
from rackval.harness.analysis.compare.comparison import compare
from rackval.harness.analysis.compare.pairing import DEFAULT_THRESHOLD_PCT
from rackval.harness.analysis.compare.render import FORMATS, regression_lines, requirement_counts, write_outputs
from rackval.harness.cliutil import add_results_option, default_out_dir, open_results


def _formats(text: str) -> list[str]:
    chosen = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(FORMATS)} (comma-separated), not {text!r}")
    return list(dict.fromkeys(chosen))


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"a percentage of the limit reference, 0 or more, not {text!r}")
    return value


def _cmd_compare(args: argparse.Namespace) -> int:
    store = open_results(args.results)
    try:
        result = compare(
            store, args.baseline, args.candidate, threshold_pct=args.threshold, plots="html" in args.format
        )
    finally:
        store.close()
    leaf = f"compare-{safe_path_part(args.baseline, 40)}-vs-{safe_path_part(args.candidate, 40)}"
    out = Path(args.out) if args.out else default_out_dir(args.results, leaf)
    paths = write_outputs(result, out, args.format)
    print(printable(f"rackval compare: baseline {result.baseline.label}; candidate {result.candidate.label}"))
    print("  requirements: " + ", ".join(f"{n} {c}" for c, n in requirement_counts(result)))
    print("  measurements: " + ", ".join(f"{n} {c}" for c, n in result.counts()))
    for line in regression_lines(result):
        print(printable(f"  {line}"))  # store text (device names, channels): terminal-safe
    for path in paths:
        print(path)
    if result.exit_status:
        print(f"rackval compare: the candidate has {len(result.new_failures)} new failure(s): exit status 1")
    return result.exit_status


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``rackval compare`` (handler in ``func``; exit 1 on new failures)."""
    p = subparsers.add_parser(
        "compare",
        help="compare a baseline with a candidate (run ids or design revisions), requirement by requirement",
        description=(
            "Compare a baseline with a candidate requirement by requirement and write compare.html and"
            " compare.md. A revision means the latest complete run of each of its rack serials. Exit status"
            " 0, or 1 when the candidate has new failures (CI gates on it); 2 for a bad selector or store."
        ),
    )
    p.add_argument("--baseline", required=True, help="run id or design revision (force with run:ID or rev:NAME)")
    p.add_argument("--candidate", required=True, help="run id or design revision (force with run:ID or rev:NAME)")
    add_results_option(p)
    p.add_argument("--out", help="output directory (default: beside the store, compare-<baseline>-vs-<candidate>)")
    p.add_argument("--format", type=_formats, default=list(FORMATS), help="html,md (default both)")
    p.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        help="margin change, in %% of the limit reference, that counts (default: the spec's defaults.tolerance_pct,"
        f" else {DEFAULT_THRESHOLD_PCT:g}); a requirement's stated tolerance applies as well",
    )
    p.set_defaults(func=_cmd_compare)
