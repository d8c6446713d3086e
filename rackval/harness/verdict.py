"""A run's verdict, decided in one place: PASS, PASS WITH MARGINALS, FAIL or INCOMPLETE.

Why one function: the terminal summary, the HTML report, JUnit, ``rackval compare`` and the run
outcome kept in the results store all say what a run proved, and they must never disagree. The
rules (``run_verdict``), in order:

1. **INCOMPLETE** when the run did not reach its end (still running, interrupted, killed): an
   unfinished run proves nothing either way.
2. **FAIL** when the run said so, or the data says so: a failed or errored test, a failing
   measurement, or an undo that failed or never ran (a rack left changed is not a passed run).
   The verdict is never greener than the records under it.
3. **PASS WITH MARGINALS** when everything passed but some value sits inside the marginal band
   of its limit: it passes on this unit and may fail on the next, so it must not hide under PASS.
4. **PASS** otherwise.

``findings`` ranks what the engineer should look at first: failed, then marginal measurements,
closest to (or furthest beyond) their limit first, one per requirement, device and channel.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import StrEnum

from rackval.harness.measure import Measurement, Outcome, limit_reference, measurement_margin
from rackval.harness.store.records import UNDO_PENDING, ActionRecord, TestRecord


class Verdict(StrEnum):
    """What a run proved; the value is the word shown to people (badge, terminal, JUnit)."""

    PASS = "PASS"
    PASS_WITH_MARGINALS = "PASS WITH MARGINALS"
    FAIL = "FAIL"
    INCOMPLETE = "INCOMPLETE"

    @property
    def stored(self) -> str:
        """The run outcome the store keeps for this verdict ("pass with marginals")."""
        return self.value.lower()

    @property
    def slug(self) -> str:
        """The verdict as one word, for a CSS class or an identifier ("PASS-WITH-MARGINALS")."""
        return self.value.replace(" ", "-")


# Stored run outcomes that mean the run did not reach its end ('running' with nobody running it
# is a killed run). Anything else is cross-checked against the records.
UNFINISHED_RUN_OUTCOMES = frozenset({"running", "incomplete", "interrupted", "aborted", "killed"})
FAILED_RUN_OUTCOMES = frozenset({"fail", "failed", "error", "errors"})
FAILED_TEST_OUTCOMES = frozenset({"failed", "error"})
UNDO_FLAGGED = frozenset({UNDO_PENDING, "failed"})
"""Undo outcomes that may have left the rack changed."""


def run_verdict(
    stored_outcome: str,
    tests: Iterable[TestRecord],
    measurements: Iterable[tuple[int | None, Measurement]],
    actions: Iterable[ActionRecord] = (),
) -> Verdict:
    """The run's verdict by the rules of the module docstring.

    ``stored_outcome`` is the run outcome the store holds; the run itself, deciding at its end,
    passes "" (ended, judge by the records) or "interrupted". ``measurements`` are (test id,
    measurement) pairs as the store returns them; ``actions`` the run's safety-gate actions.
    """
    outcome = stored_outcome.lower()
    if outcome in UNFINISHED_RUN_OUTCOMES:
        return Verdict.INCOMPLETE
    marginal = False
    failed = outcome in FAILED_RUN_OUTCOMES
    failed = failed or any(t.outcome in FAILED_TEST_OUTCOMES for t in tests)
    failed = failed or any(a.undo_outcome in UNDO_FLAGGED for a in actions)
    if not failed:
        for _, m in measurements:
            if m.outcome == Outcome.FAIL:
                failed = True
                break
            marginal = marginal or m.outcome == Outcome.MARGINAL
    if failed:
        return Verdict.FAIL
    return Verdict.PASS_WITH_MARGINALS if marginal else Verdict.PASS


def relative_margin(m: Measurement) -> float:
    """Margin as a fraction of the limit reference (negative: outside); -inf when it cannot be
    told (a lost reading, a zero reference outside the limit), +inf without limits."""
    margin, reference = measurement_margin(m), limit_reference(m)
    if margin is None or reference is None:
        return math.inf
    if math.isnan(margin) or math.isnan(reference):
        return -math.inf
    if reference <= 0:
        return 0.0 if margin == 0 else math.copysign(math.inf, margin)
    return margin / reference


def findings(measurements: Iterable[Measurement]) -> list[Measurement]:
    """Failed, then marginal measurements, worst first (by ``relative_margin``), keeping only the
    worst record of each (requirement or name, device, channel): a soak that records the same
    marginal temperature 600 times is one finding."""
    worst: dict[tuple[str, str, str], Measurement] = {}
    for m in measurements:
        if m.outcome not in (Outcome.FAIL, Outcome.MARGINAL):
            continue
        key = (m.requirement or m.name, m.device, m.channel)
        kept = worst.get(key)
        if kept is None or _rank(m) < _rank(kept):
            worst[key] = m
    return sorted(worst.values(), key=_rank)


def _rank(m: Measurement) -> tuple[int, float]:
    return (0 if m.outcome == Outcome.FAIL else 1, relative_margin(m))
