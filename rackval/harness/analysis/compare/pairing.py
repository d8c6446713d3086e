"""How ``rackval compare`` judges one key: its deciding record on each side, and the pair's class.

Pairing: measurements are keyed by ``Measurement.key``: (requirement, or the name when there is
none; device; channel id). Free text ("mean of the last 449 s") is the record's ``detail`` and
never part of the key, so a reworded description still pairs with its baseline.
Within a side, a key measured several times (time series, several units) is represented by its
**worst** record, the one with the least margin (a failing or unreadable one first), because
acceptance is decided by the worst unit; the report also shows the mean and which serial was
worst. Keys without limits are represented by their mean value.

Classification, in report order (``CLASS_ORDER``):

* regression: a new failure (candidate fails, baseline did not), a new marginal (candidate
  marginal, baseline passed), or the margin shrank by more than ``--threshold`` percent of the
  limit reference (the span of two-sided limits, the magnitude of a one-sided limit: the same
  reference the marginal band uses); new failures first, then new marginals, then the largest
  margin loss;
* improvement: a failure or marginal cleared, or the margin grew by more than the threshold;
* unchanged: neither;
* no limits: one or both sides recorded no limits, so there is nothing to judge;
* only in baseline / only in candidate.

Values of the candidate are converted to the baseline's unit when they differ (W vs kW).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rackval.core.errors import ConfigError
from rackval.harness.analysis.compare.selection import Selection
from rackval.harness.measure import Measurement, Outcome
from rackval.harness.store.records import RunInfo

if TYPE_CHECKING:
    from rackval.harness.store import Store

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
NO_LIMITS = "no limits"
ONLY_BASELINE = "only in baseline"
ONLY_CANDIDATE = "only in candidate"
CLASS_ORDER = (REGRESSION, IMPROVEMENT, UNCHANGED, NO_LIMITS, ONLY_BASELINE, ONLY_CANDIDATE)

NEW_FAILURE = "new failure"
NEW_MARGINAL = "new marginal"
DEFAULT_THRESHOLD_PCT = 2.0

_SEVERITY = {Outcome.FAIL: 3, Outcome.MARGINAL: 2, Outcome.PASS: 1, Outcome.INFO: 0}

Key = tuple[str, str, str]


def _value(m: Measurement) -> float:
    """Stored NaN comes back as None; keep it a float so arithmetic and sorting stay simple."""
    return math.nan if m.value is None else float(m.value)


def _reference(low: float | None, high: float | None) -> float | None:
    if low is not None and high is not None:
        return high - low
    if high is not None:
        return abs(high)
    if low is not None:
        return abs(low)
    return None


def _margin(m: Measurement) -> float | None:
    """The stored margin, or the distance to the nearest limit for a record stored without one."""
    if m.margin is not None:
        return float(m.margin)
    value = _value(m)
    distances = []
    if m.high is not None:
        distances.append(m.high - value)
    if m.low is not None:
        distances.append(value - m.low)
    if not distances or math.isnan(value):
        return None
    return min(distances)


def _has_limits(m: Measurement) -> bool:
    return m.low is not None or m.high is not None


@dataclass(frozen=True)
class Side:
    """A key on one side, reduced to its deciding (worst) record; see the module docstring."""

    name: str
    unit: str
    value: float
    margin: float | None
    outcome: Outcome
    low: float | None
    high: float | None
    mean: float
    n_units: int
    n_records: int
    worst_serial: str
    worst_run: str
    detail: str = ""  # the deciding record's free text ("mean of the last 449 s"): shown, never joined on

    @property
    def reference(self) -> float | None:
        return _reference(self.low, self.high)

    def in_unit(self, unit: str) -> Side:
        """The same side in ``unit`` (ConfigError when the units measure different things)."""
        if unit == self.unit:
            return self
        from rackval.harness.units import convert

        def c(x: float | None) -> float | None:
            return None if x is None else convert(x, self.unit, unit)

        return replace(
            self,
            unit=unit,
            value=convert(self.value, self.unit, unit),
            margin=c(self.margin),
            low=c(self.low),
            high=c(self.high),
            mean=convert(self.mean, self.unit, unit),
        )


def _worst_first(item: tuple[RunInfo, Measurement]) -> tuple[int, float]:
    m = item[1]
    margin = _margin(m)
    reference = _reference(m.low, m.high)
    if margin is None:
        relative = -math.inf  # unreadable against a limit: the worst there is
    elif reference:
        relative = margin / reference
    else:
        relative = margin
    return (-_SEVERITY[m.outcome], relative)


def _in(unit: str, m: Measurement) -> float:
    """A record's value in ``unit``; NaN when it cannot be converted (then it is left out of the mean)."""
    from rackval.harness.units import convert

    try:
        return convert(_value(m), m.unit, unit)
    except ConfigError:
        return math.nan


def reduce_side(records: Sequence[tuple[RunInfo, Measurement]]) -> Side:
    """The deciding record of a key: the worst judged one, or the mean of an unjudged key."""
    judged = [item for item in records if _has_limits(item[1])]
    run, worst = min(judged, key=_worst_first) if judged else records[-1]
    finite = [v for v in (_in(worst.unit, m) for _, m in records) if not math.isnan(v)]
    mean = statistics.fmean(finite) if finite else math.nan
    units = {r.run_id for r, _ in records}
    if judged:
        return Side(
            name=worst.name,
            unit=worst.unit,
            value=_value(worst),
            margin=_margin(worst),
            outcome=Outcome.FAIL if math.isnan(_value(worst)) else worst.outcome,
            low=worst.low,
            high=worst.high,
            mean=mean,
            n_units=len(units),
            n_records=len(records),
            worst_serial=run.rack_serial,
            worst_run=run.run_id,
            detail=worst.detail,
        )
    return Side(
        name=worst.name,
        unit=worst.unit,
        value=mean,
        margin=None,
        outcome=Outcome.INFO,
        low=None,
        high=None,
        mean=mean,
        n_units=len(units),
        n_records=len(records),
        worst_serial="",
        worst_run="",
    )


def collect(store: Store, selection: Selection) -> dict[Key, Side]:
    """Every key measured on a side, each reduced to one ``Side``."""
    records: dict[Key, list[tuple[RunInfo, Measurement]]] = {}
    for used in selection.runs:
        for _, m in store.measurements(used.run.run_id):
            records.setdefault(m.key, []).append((used.run, m))
    return {key: reduce_side(items) for key, items in records.items()}


@dataclass(frozen=True)
class Row:
    key: Key
    baseline: Side | None
    candidate: Side | None  # in the baseline's unit when both exist and the units are compatible
    classification: str
    reasons: tuple[str, ...]
    delta: float | None = None
    margin_delta: float | None = None
    margin_delta_pct: float | None = None

    @property
    def requirement(self) -> str:
        return self.key[0]

    @property
    def device(self) -> str:
        return self.key[1]

    @property
    def channel(self) -> str:
        return self.key[2]

    @property
    def unit(self) -> str:
        side = self.baseline or self.candidate
        return side.unit if side else ""

    @property
    def new_failure(self) -> bool:
        if self.classification == ONLY_CANDIDATE:
            return self.candidate is not None and self.candidate.outcome == Outcome.FAIL
        return NEW_FAILURE in self.reasons

    @property
    def outcome_change(self) -> str:
        before = self.baseline.outcome.value if self.baseline else "—"
        after = self.candidate.outcome.value if self.candidate else "—"
        return after if before == after else f"{before} → {after}"


def _limits_text(side: Side) -> str:
    from rackval.harness.report.html import format_number

    if side.low is not None and side.high is not None:
        return f"{format_number(side.low)} .. {format_number(side.high)}"
    if side.high is not None:
        return f"<= {format_number(side.high)}"
    if side.low is not None:
        return f">= {format_number(side.low)}"
    return "none"


def classify(
    key: Key, baseline: Side | None, candidate: Side | None, threshold_pct: float, *, tolerance: float = 0.0
) -> Row:
    """One paired key: its class, the reasons in words, and the deltas (candidate minus baseline).

    ``tolerance`` is the measurement's stated accuracy in the baseline's unit: a margin change no
    larger is noise ("unchanged"), whatever its % of the limit. An outcome that changes (a new
    failure, a new marginal, a fixed failure) counts whatever the size of the change: acceptance
    is decided by outcomes, and CI gates on new failures."""
    if baseline is None and candidate is not None:
        reasons = ("fails; not measured in the baseline",) if candidate.outcome == Outcome.FAIL else ()
        return Row(key, None, candidate, ONLY_CANDIDATE, reasons)
    if candidate is None:
        assert baseline is not None
        return Row(key, baseline, None, ONLY_BASELINE, ())
    assert baseline is not None
    try:
        candidate = candidate.in_unit(baseline.unit)
    except ConfigError:
        note = f"unit changed from {baseline.unit} to {candidate.unit}: values cannot be compared"
        return Row(key, baseline, candidate, REGRESSION, (note,))

    notes: list[str] = []
    delta = candidate.value - baseline.value
    margin_delta = margin_pct = None
    if baseline.margin is not None and candidate.margin is not None:
        margin_delta = candidate.margin - baseline.margin
        reference = baseline.reference or candidate.reference
        if reference:
            margin_pct = 100.0 * margin_delta / reference
    if (baseline.low, baseline.high) != (candidate.low, candidate.high) and _has_side_limits(baseline, candidate):
        notes.append(f"limits changed: {_limits_text(baseline)} → {_limits_text(candidate)} {baseline.unit}")
    counted = margin_pct  # the margin change that counts: none within the stated accuracy
    if margin_pct is not None and margin_delta is not None and abs(margin_delta) <= tolerance:
        counted = None
        if abs(margin_pct) > threshold_pct:
            notes.append(f"within the stated accuracy (±{tolerance:g} {baseline.unit})")

    worse: list[str] = []
    if candidate.outcome == Outcome.FAIL and baseline.outcome != Outcome.FAIL:
        worse.append(NEW_FAILURE)
    elif candidate.outcome == Outcome.MARGINAL and baseline.outcome in (Outcome.PASS, Outcome.INFO):
        worse.append(NEW_MARGINAL)
    if counted is not None and counted < -threshold_pct:
        worse.append(f"margin shrank by {-counted:.3g} % of the limit reference")
    better: list[str] = []
    if baseline.outcome == Outcome.FAIL and candidate.outcome in (Outcome.PASS, Outcome.MARGINAL):
        better.append("failure fixed")
    elif baseline.outcome == Outcome.MARGINAL and candidate.outcome == Outcome.PASS:
        better.append("marginal cleared")
    if counted is not None and counted > threshold_pct:
        better.append(f"margin grew by {counted:.3g} % of the limit reference")

    if worse:
        cls, reasons = REGRESSION, worse
    elif better:
        cls, reasons = IMPROVEMENT, better
    elif Outcome.INFO in (baseline.outcome, candidate.outcome):
        missing = [s for s, side in (("baseline", baseline), ("candidate", candidate)) if side.outcome == Outcome.INFO]
        cls, reasons = NO_LIMITS, [f"no limits recorded in the {' and '.join(missing)}"]
    else:
        cls, reasons = UNCHANGED, ["still failing"] if candidate.outcome == Outcome.FAIL else []
    return Row(key, baseline, candidate, cls, tuple(reasons + notes), delta, margin_delta, margin_pct)


def _has_side_limits(*sides: Side) -> bool:
    return all(s.low is not None or s.high is not None for s in sides)


def _sort_key(row: Row) -> tuple[object, ...]:
    rank = CLASS_ORDER.index(row.classification)
    if row.classification == REGRESSION:
        within = (
            0 if NEW_FAILURE in row.reasons else 1 if NEW_MARGINAL in row.reasons else 2,
            row.margin_delta_pct if row.margin_delta_pct is not None else 0.0,
        )
    elif row.classification == IMPROVEMENT:
        within = (0, -(row.margin_delta_pct or 0.0))
    elif row.classification == ONLY_CANDIDATE:
        within = (0 if row.new_failure else 1, 0.0)
    else:
        within = (0, 0.0)
    return (rank, *within, row.key)


def pair(
    baseline: dict[Key, Side],
    candidate: dict[Key, Side],
    threshold_pct: float,
    tolerances: Mapping[str, tuple[float, str]] | None = None,
) -> list[Row]:
    """Every key of either side, classified and in report order (regressions first);
    ``tolerances``: {requirement: (stated accuracy, its unit)} from the spec."""
    keys = list(baseline) + [k for k in candidate if k not in baseline]
    rows = [
        classify(k, baseline.get(k), candidate.get(k), threshold_pct,
                 tolerance=_tolerance_in(tolerances, k[0], baseline.get(k)))
        for k in keys
    ]  # fmt: skip
    return sorted(rows, key=_sort_key)


def _tolerance_in(tolerances: Mapping[str, tuple[float, str]] | None, requirement: str, side: Side | None) -> float:
    """A requirement's stated accuracy in ``side``'s unit (0 when it states none or units differ)."""
    found = (tolerances or {}).get(requirement)
    if found is None or side is None:
        return 0.0
    from rackval.harness.units import convert

    try:
        return convert(found[0], found[1], side.unit)
    except ConfigError:
        return 0.0


def worst_side(sides: Sequence[Side]) -> Side | None:
    """The deciding side among several keys of one requirement: failing first, then least margin
    relative to the limit reference (as a key's worst record is chosen)."""
    if not sides:
        return None

    def rank(s: Side) -> tuple[int, float]:
        if s.margin is None or math.isnan(s.margin):
            return (-_SEVERITY[s.outcome], -math.inf if s.outcome != Outcome.INFO else math.inf)
        reference = s.reference
        return (-_SEVERITY[s.outcome], s.margin / reference if reference else s.margin)

    return min(sides, key=rank)
