"""Requirement rollup and coverage: one row per spec requirement, for a run and for a comparison.

A run records thousands of measurements (one per fan, outlet, GPU...), but a design review asks
per requirement: is ``fan_speed`` met, by how much, on how many devices, and did revision B lose
margin on it? This module answers that for the acceptance report ("Requirements", the first
section) and, through ``rackval.harness.analysis.compare.requirements``, for ``rackval compare``
(its leading table), from the same rules:

* **Rows**: every requirement of the spec the run was judged by (``RUN_SPEC_REQUIREMENTS`` in the
  run's metadata; for runs recorded before that, the spec file if it is still there), plus any
  judged measurement whose limits did not come from the spec (a device's own threshold).
* **Worst**: per requirement, each measurement key (``Measurement.key``: requirement, device,
  channel) is reduced to its worst record (least margin; failing or unreadable first), and the
  requirement's figure is its worst key; values and margins are converted to the spec's unit
  (a plan measuring W against a spec in kW shows kW), margins also in % of the limit reference
  (the span of a two-sided limit, the magnitude of a one-sided one).
* **Ranking**: failures, then marginals, then by margin in % (least first); "not covered" last.
  In a comparison: new failures, new marginals, then the largest margin lost first.
* **Coverage**: a requirement no plan measured in the run is "not covered", with the plans that
  name its key (``rackval.harness.plan_keys``: they would measure it had the rack the devices, or
  had they been selected); coverage is covered / total requirements of the spec.
* **Tolerance** (comparisons): a margin change smaller than the spec's ``defaults.tolerance_pct``
  of the limit reference (or ``--threshold``), or than the requirement's ``tolerance`` (the
  measurement's stated accuracy, in its unit), is "unchanged"; see ``compare.pairing.classify``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rackval.core.errors import ConfigError
from rackval.harness.measure import Measurement, Outcome, measurement_margin, reference_of
from rackval.harness.plan_keys import RUN_REQUIREMENT_PLANS
from rackval.harness.spec import DEFAULT_TOLERANCE_PCT, RUN_SPEC_REQUIREMENTS
from rackval.harness.store.records import RunInfo
from rackval.harness.units import convert, convert_optional

NOT_COVERED = "not covered"
_SEVERITY = {Outcome.FAIL: 3, Outcome.MARGINAL: 2, Outcome.PASS: 1, Outcome.INFO: 0}


@dataclass(frozen=True)
class RequirementInfo:
    """What the spec says of one requirement, and the plans that name its key."""

    key: str
    unit: str
    low: float | None = None
    high: float | None = None
    description: str = ""
    tolerance: float | None = None
    plans: tuple[str, ...] = ()

    @property
    def reference(self) -> float | None:
        return reference_of(self.low, self.high)

    @property
    def limit_text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g} .. {self.high:g} {self.unit}"
        if self.high is not None:
            return f"≤ {self.high:g} {self.unit}"
        return f"≥ {self.low:g} {self.unit}"


@dataclass(frozen=True)
class SpecRecord:
    """The requirements a run was judged by; ``known`` is False when the run recorded none and its
    spec file is gone (then coverage cannot be stated)."""

    requirements: dict[str, RequirementInfo] = field(default_factory=dict)
    tolerance_pct: float = DEFAULT_TOLERANCE_PCT
    known: bool = False
    source: str = ""


def spec_record(run: RunInfo) -> SpecRecord:
    """The spec record of ``run``: from its metadata, else from its spec file if still readable.
    A recorded value of the wrong shape (``_well_formed``) counts as none recorded, so a damaged or
    hand-edited run still renders, with the spec file's requirements or none."""
    record = run.metadata.get(RUN_SPEC_REQUIREMENTS)
    source = "recorded with the run"
    if not _well_formed(record):
        damaged = record is not None
        record = None
        if run.spec_file and Path(run.spec_file).is_file():
            from rackval.harness.spec import load_spec

            try:
                record = load_spec(run.spec_file).run_record()
            except (ConfigError, OSError):
                record = None
            source = f"spec file {run.spec_file} (read now" + ("; the run's record of it is malformed)" if damaged
                                                                else ")")  # fmt: skip
    if not isinstance(record, dict):
        return SpecRecord()
    plans = run.metadata.get(RUN_REQUIREMENT_PLANS)
    plans = plans if isinstance(plans, dict) else {}
    reqs = {}
    for key, r in record["requirements"].items():
        named = plans.get(key)
        reqs[key] = RequirementInfo(
            key, r.get("unit", ""), _num(r.get("min")), _num(r.get("max")), str(r.get("description") or ""),
            _num(r.get("tolerance")), tuple(str(p) for p in named) if isinstance(named, list | tuple) else (),
        )  # fmt: skip
    pct = _num(record.get("tolerance_pct"))
    return SpecRecord(reqs, DEFAULT_TOLERANCE_PCT if pct is None else pct, True, source)


def _well_formed(record: Any) -> bool:
    """``record`` has the shape ``Spec.run_record`` writes: {"requirements": {key: {..., "unit": str}}}."""
    if not isinstance(record, dict) or not isinstance(record.get("requirements"), dict):
        return False
    return all(isinstance(key, str) and isinstance(r, dict) and isinstance(r.get("unit", ""), str)
               for key, r in record["requirements"].items())  # fmt: skip


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# ---- one run ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceFigure:
    """One measurement key of a requirement in a run, reduced to its worst record, in the spec's unit."""

    device: str
    channel: str
    detail: str
    name: str
    value: float
    unit: str
    margin: float | None
    margin_pct: float | None
    outcome: Outcome
    records: int


@dataclass(frozen=True)
class RequirementRollup:
    """One requirement in one run: its worst key first, every key, and record counts by outcome."""

    key: str
    info: RequirementInfo | None
    figures: tuple[DeviceFigure, ...] = ()
    counts: tuple[tuple[str, int], ...] = ()

    @property
    def worst(self) -> DeviceFigure | None:
        return self.figures[0] if self.figures else None

    @property
    def covered(self) -> bool:
        return bool(self.figures)

    @property
    def status(self) -> str:
        return self.figures[0].outcome.value if self.figures else NOT_COVERED

    @property
    def n_devices(self) -> int:
        return len({f.device for f in self.figures})


def _relative(margin: float | None, reference: float | None) -> float:
    if margin is None or math.isnan(margin):
        return -math.inf
    return margin / reference if reference else margin


def _figure(records: list[Measurement], info: RequirementInfo | None) -> DeviceFigure:
    def rank(m: Measurement) -> tuple[int, float]:
        return (-_SEVERITY[m.outcome], _relative(measurement_margin(m), reference_of(m.low, m.high)))

    worst = min(records, key=rank)
    value = math.nan if worst.value is None else float(worst.value)
    unit, low, high, margin = worst.unit, worst.low, worst.high, measurement_margin(worst)
    if info is not None and info.unit and info.unit != unit:
        try:
            value, margin = convert(value, unit, info.unit), convert_optional(margin, unit, info.unit)
            low, high = convert_optional(low, worst.unit, info.unit), convert_optional(high, worst.unit, info.unit)
            unit = info.unit
        except ConfigError:
            pass  # a quantity the spec's unit cannot express: shown as measured
    reference = reference_of(low, high)
    pct = 100.0 * margin / reference if margin is not None and reference else None
    outcome = Outcome.FAIL if math.isnan(value) and worst.outcome != Outcome.INFO else worst.outcome
    return DeviceFigure(worst.device, worst.channel, worst.detail, worst.name, value, unit, margin, pct, outcome,
                        len(records))  # fmt: skip


def _rank(r: RequirementRollup) -> tuple[Any, ...]:
    worst = r.worst
    if worst is None:
        return (1, 0, 0.0, r.key)
    pct = worst.margin_pct if worst.margin_pct is not None else -math.inf
    return (0, -_SEVERITY[worst.outcome], pct, r.key)


def rollup_run(measurements: Iterable[Measurement], spec: SpecRecord) -> list[RequirementRollup]:
    """Every requirement of ``spec`` (measured or not) and every other judged measurement, ranked."""
    by_req: dict[str, dict[tuple[str, str], list[Measurement]]] = {}
    for m in measurements:
        if m.low is None and m.high is None and m.requirement not in spec.requirements:
            continue  # recorded without limits: information, not a requirement
        key = m.key
        by_req.setdefault(key[0], {}).setdefault(key[1:], []).append(m)
    rows = []
    for key in dict.fromkeys([*spec.requirements, *by_req]):
        info = spec.requirements.get(key)
        keyed = by_req.get(key, {})
        figures = sorted(
            (_figure(records, info) for records in keyed.values()),
            key=lambda f: (-_SEVERITY[f.outcome], f.margin_pct if f.margin_pct is not None else -math.inf,
                           f.device, f.channel),
        )  # fmt: skip
        counts = Counter(m.outcome.value for records in keyed.values() for m in records)
        order = [o.value for o in (Outcome.FAIL, Outcome.MARGINAL, Outcome.PASS, Outcome.INFO)]
        rows.append(RequirementRollup(key, info, tuple(figures), tuple((o, counts[o]) for o in order if counts[o])))
    return sorted(rows, key=_rank)


def coverage(rollups: Iterable[RequirementRollup]) -> tuple[int, int]:
    """(covered, total) over the spec's requirements (rows not in the spec do not count)."""
    spec_rows = [r for r in rollups if r.info is not None]
    return sum(1 for r in spec_rows if r.covered), len(spec_rows)


def significant(value: float | None, digits: int = 4, signed: bool = False) -> str:
    """A figure with at most ``digits`` significant digits and no exponent for everyday magnitudes
    (10480 rpm, 202.4 kW, 0.491 %), trailing zeros dropped: what a rollup shows. Blank for None;
    NaN and infinities spelled out."""
    if value is None:
        return ""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
    sign = "+" if signed else ""
    if value == 0:
        return f"{0:{sign}.0f}"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 9 or magnitude < -4:
        return f"{value:{sign}.{digits}g}"
    text = f"{value:{sign}.{max(0, digits - 1 - magnitude)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text  # 0.5000 V reads 0.5 V
