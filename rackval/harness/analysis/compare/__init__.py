"""``rackval compare``: a baseline against a candidate, requirement by requirement.

A side is a single run (by run id) or a design revision; how a selector becomes runs, and why a
revision counts each rack serial once, is ``selection``'s. Measurements are paired by key, each
key reduced to its worst record per side and classified (regression, improvement, unchanged, no
limits, only on one side): ``pairing``. ``comparison`` puts both together with the sample overlay
plots, ``render`` writes compare.html and compare.md, ``command`` is the command line.

Exit status: 0, or 1 when the candidate has new failures: a regression that is a new failure, or
a failing measurement the baseline never had (only in candidate). CI gates on that; regressions
that still pass (shrunk margins, new marginals) are for the design review to judge, not a gate.
Bad selectors or an unreachable store raise ConfigError (``rackval`` exits 2).

This package's namespace is its public API (what ``rackval.harness.cli`` and the tests use).
"""

from __future__ import annotations

from rackval.harness.analysis.compare.command import add_parser
from rackval.harness.analysis.compare.comparison import Comparison, compare
from rackval.harness.analysis.compare.pairing import (
    CLASS_ORDER,
    IMPROVEMENT,
    NEW_FAILURE,
    NEW_MARGINAL,
    NO_LIMITS,
    ONLY_BASELINE,
    ONLY_CANDIDATE,
    REGRESSION,
    UNCHANGED,
    Side,
    classify,
    pair,
)
from rackval.harness.analysis.compare.render import md_cell, render_html

__all__ = [
    "CLASS_ORDER",
    "IMPROVEMENT",
    "NEW_FAILURE",
    "NEW_MARGINAL",
    "NO_LIMITS",
    "ONLY_BASELINE",
    "ONLY_CANDIDATE",
    "REGRESSION",
    "UNCHANGED",
    "Comparison",
    "Side",
    "add_parser",
    "classify",
    "compare",
    "md_cell",
    "pair",
    "render_html",
]
