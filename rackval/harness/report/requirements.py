"""The report's "Requirements" section: the run's requirement rollup and coverage, first on the page.

The rules (worst per requirement in the spec's unit, ranking, coverage) are
``rackval.harness.analysis.rollup``'s, shared with ``rackval compare``; this module only turns
them into what ``templates/section_requirements.html.j2`` shows.
"""

from __future__ import annotations

from typing import Any

from rackval.harness.analysis.rollup import coverage, rollup_run, significant
from rackval.harness.report.run_data import RunData

DEVICE_ROWS = 10
"""Device rows a requirement's disclosure lists (its worst first); the Measurements section has
every row, so a 32-node rack's 192 fan rows are not printed twice (the section was 450 KB of the
reference run's 2.4 MB report)."""


def requirements_section(data: RunData) -> dict[str, Any] | None:
    """One row per requirement of the run's spec (measured or not) and per other judged measurement,
    failures and marginals first, with coverage as covered / total; None when there is neither."""
    spec = data.spec
    rollups = rollup_run(data.measurements, spec)
    if not rollups:
        return None
    covered, total = coverage(rollups)
    return {
        "rollups": rollups,
        "covered": covered,
        "total": total,
        "coverage_pct": 100.0 * covered / total if total else None,
        "spec_known": spec.known,
        "spec_source": spec.source,
        "device_rows": DEVICE_ROWS,
        "sig": significant,  # figures with 4 significant digits and no exponent (10480 rpm, 202.4 kW)
    }
