"""Which runs answer one side of ``rackval compare``: a selector turned into runs.

A side is a single run (by run id) or a design revision. Selectors: ``run:ID`` and ``rev:NAME``
say which is meant; a bare word is a run id when a run has that id, else a design revision.

How a revision becomes one side: the **latest complete run of each rack serial** of that revision,
then aggregated across those units per requirement. Why: validation engineers compare "rev-A vs
rev-B" across several units, so every unit must count, and count once. Taking every run instead
would let a unit that was re-run five times (after a cabling fix, a flaky fixture) outvote the
others, and would mix in runs that were killed half-way (which prove nothing and often stop at the
interesting part). The runs left out are listed in the report with the reason. A run without a
serial counts as its own unit. A side given by run id is used as is, even unfinished (then marked
INCOMPLETE), because the engineer asked for exactly that run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rackval.core.errors import ConfigError
from rackval.harness.store.records import RunInfo
from rackval.harness.verdict import Verdict, run_verdict

if TYPE_CHECKING:
    from rackval.harness.store import Store


@dataclass(frozen=True)
class UsedRun:
    """A run that answers a side, whether it finished, and its verdict (``rackval.harness.verdict``)."""

    run: RunInfo
    complete: bool
    verdict: Verdict


@dataclass(frozen=True)
class Selection:
    """One side of the comparison: what was asked for and which runs answer it."""

    role: str
    selector: str
    kind: str  # "run" or "revision"
    name: str  # the run id or the revision
    runs: tuple[UsedRun, ...]
    excluded: tuple[tuple[RunInfo, str], ...] = ()

    @property
    def label(self) -> str:
        if self.kind == "run":
            serial = self.runs[0].run.rack_serial
            return f"run {self.name}" + (f" (serial {serial})" if serial else "")
        serials = ", ".join(_unit_of(u.run) for u in self.runs)
        return f"revision {self.name} ({len(self.runs)} unit{'s' if len(self.runs) != 1 else ''}: {serials})"


def _unit_of(run: RunInfo) -> str:
    return run.rack_serial or f"(no serial: run {run.run_id})"


def _is_complete(store: Store, run_id: str) -> bool:
    """Finished by the stored status, by the acceptance report's own definition of unfinished."""
    outcome, ended_at = store.run_status(run_id)
    return ended_at is not None and run_verdict(outcome, [], []) != Verdict.INCOMPLETE


def _used(store: Store, run: RunInfo, complete: bool) -> UsedRun:
    """``run`` with its verdict, as its acceptance report gives it."""
    run_id = run.run_id
    verdict = run_verdict(store.run_status(run_id)[0], store.tests(run_id), store.measurements(run_id),
                          store.actions(run_id))  # fmt: skip
    return UsedRun(run, complete, verdict)


def resolve(store: Store, selector: str, role: str) -> Selection:
    """Turn ``--baseline``/``--candidate`` into runs (see the module docstring for the rule)."""
    runs = store.runs()
    want_run = not selector.startswith("rev:")
    want_rev = not selector.startswith("run:")
    name = selector.split(":", 1)[1] if selector.startswith(("run:", "rev:")) else selector
    if want_run:
        for run in runs:
            if run.run_id == name:
                return Selection(role, selector, "run", name, (_used(store, run, _is_complete(store, run.run_id)),))
    if want_rev:
        of_revision = [r for r in runs if r.design_revision == name]
        if of_revision:
            return _revision_selection(store, selector, role, name, of_revision)
    revisions = sorted({r.design_revision for r in runs if r.design_revision})
    known = ", ".join(revisions[:20]) or "none recorded"
    what = "run with that id" if not want_rev else "design revision" if not want_run else "run id or design revision"
    raise ConfigError(f"--{role} {selector!r}: no {what} {name!r} in {store.path} (design revisions: {known})")


def _revision_selection(store: Store, selector: str, role: str, name: str, runs: list[RunInfo]) -> Selection:
    by_unit: dict[str, list[RunInfo]] = {}
    for run in runs:  # store.runs() is ordered by start time
        by_unit.setdefault(run.rack_serial or f"run:{run.run_id}", []).append(run)
    used: list[UsedRun] = []
    excluded: list[tuple[RunInfo, str]] = []
    for unit_runs in by_unit.values():
        complete = [r for r in unit_runs if _is_complete(store, r.run_id)]
        latest = complete[-1] if complete else None
        if latest is not None:
            used.append(_used(store, latest, True))
        for r in unit_runs:
            if r is latest:
                continue
            if latest is None:
                excluded.append((r, "did not finish, and this serial has no complete run"))
            elif r in complete:
                excluded.append((r, f"superseded by the later complete run {latest.run_id} of the same serial"))
            else:
                excluded.append((r, "did not finish"))
    if not used:
        raise ConfigError(
            f"--{role} {selector!r}: design revision {name!r} has {len(runs)} run(s) in {store.path}"
            " but none finished; name a run id to compare an unfinished run"
        )
    used.sort(key=lambda u: u.run.started_at)
    excluded.sort(key=lambda item: item[0].started_at)
    return Selection(role, selector, "revision", name, tuple(used), tuple(excluded))
