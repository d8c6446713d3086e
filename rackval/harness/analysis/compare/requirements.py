"""``rackval compare`` per requirement: the per-key rows grouped by requirement, each requirement's
worst side on either side classified, ranked by margin lost; what compare.md and compare.html lead
with. The rules (worst, spec unit, coverage, tolerance) are ``rackval.harness.analysis.rollup``'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rackval.core.errors import ConfigError
from rackval.harness.analysis.compare.pairing import (
    CLASS_ORDER,
    IMPROVEMENT,
    NEW_FAILURE,
    NEW_MARGINAL,
    REGRESSION,
    Row,
    Side,
    classify,
    worst_side,
)
from rackval.harness.analysis.rollup import NOT_COVERED, RequirementInfo, SpecRecord
from rackval.harness.measure import Outcome
from rackval.harness.units import convert


@dataclass(frozen=True)
class RequirementChange:
    """One requirement in a comparison: its worst key on each side (in the spec's unit) classified
    as ``classify`` does, and the per-key rows behind it."""

    key: str
    info: RequirementInfo | None
    row: Row | None  # None: neither side measured it
    device_rows: tuple[Row, ...] = ()
    baseline_counts: tuple[tuple[str, int], ...] = ()
    candidate_counts: tuple[tuple[str, int], ...] = ()

    @property
    def classification(self) -> str:
        return self.row.classification if self.row is not None else NOT_COVERED

    @property
    def new_failure(self) -> bool:
        return any(r.new_failure for r in self.device_rows)

    def devices(self, side: str) -> int:
        return len({r.device for r in self.device_rows if getattr(r, side) is not None})


def tolerances(spec: SpecRecord) -> dict[str, tuple[float, str]]:
    """{requirement: (tolerance, unit)} of the requirements that state one."""
    return {k: (r.tolerance, r.unit) for k, r in spec.requirements.items() if r.tolerance is not None}


def _side_counts(rows: list[Row], side: str) -> tuple[tuple[str, int], ...]:
    counts = Counter(s.outcome.value for r in rows if (s := getattr(r, side)) is not None)
    return tuple((o.value, counts[o.value]) for o in (Outcome.FAIL, Outcome.MARGINAL, Outcome.PASS, Outcome.INFO)
                 if counts[o.value])  # fmt: skip


def _in_spec_unit(side: Side | None, info: RequirementInfo | None) -> Side | None:
    if side is None or info is None or not info.unit or side.unit == info.unit:
        return side
    try:
        return side.in_unit(info.unit)
    except ConfigError:
        return side


def rollup_comparison(rows: Iterable[Row], spec: SpecRecord, threshold_pct: float) -> list[RequirementChange]:
    """Per-key rows grouped by requirement, each requirement's worst sides classified; ranked (see
    the module docstring); requirements of the spec that neither side measured come last."""
    by_req: dict[str, list[Row]] = {}
    for row in rows:
        by_req.setdefault(row.requirement, []).append(row)
    tol = tolerances(spec)
    changes = []
    for key in dict.fromkeys([*spec.requirements, *by_req]):
        info = spec.requirements.get(key)
        keyed = by_req.get(key, [])
        if not keyed:
            changes.append(RequirementChange(key, info, None))
            continue
        base = _in_spec_unit(worst_side([r.baseline for r in keyed if r.baseline is not None]), info)
        cand = _in_spec_unit(worst_side([r.candidate for r in keyed if r.candidate is not None]), info)
        tolerance = tol.get(key)
        unit = (base or cand).unit  # type: ignore[union-attr]
        try:
            absolute = convert(tolerance[0], tolerance[1], unit) if tolerance else 0.0
        except ConfigError:
            absolute = 0.0
        summary = classify((key, "", ""), base, cand, threshold_pct, tolerance=absolute or 0.0)
        changes.append(RequirementChange(key, info, summary, tuple(keyed), _side_counts(keyed, "baseline"),
                                         _side_counts(keyed, "candidate")))  # fmt: skip
    return sorted(changes, key=_change_rank)


def _change_rank(c: RequirementChange) -> tuple[Any, ...]:
    if c.row is None:
        return (len(CLASS_ORDER) + 1, 0, 0.0, c.key)
    cls = c.row.classification
    lost = c.row.margin_delta_pct if c.row.margin_delta_pct is not None else 0.0
    if cls == REGRESSION:
        within = 0 if NEW_FAILURE in c.row.reasons else 1 if NEW_MARGINAL in c.row.reasons else 2
        return (CLASS_ORDER.index(cls), within, lost, c.key)
    if cls == IMPROVEMENT:
        return (CLASS_ORDER.index(cls), 0, -lost, c.key)
    return (CLASS_ORDER.index(cls), 0, 0.0, c.key)


def covered_count(changes: Iterable[RequirementChange], spec_keys: Mapping[str, Any]) -> tuple[int, int]:
    """(requirements of the spec measured on at least one side, requirements of the spec)."""
    measured = {c.key for c in changes if c.row is not None}
    return len(measured & set(spec_keys)), len(spec_keys)
