"""What a report knows about one run: the store's records of it, each read once, and its verdict.

Data first: everything here reads the store, so a finished run, a run that is still going and a
run whose process was killed all give the same kind of data; the last two get the verdict
INCOMPLETE (the verdict itself is decided by ``rackval.harness.verdict``). Every report section
(``rackval.harness.report.sections``) is built from one ``RunData``, so a section reads what it
needs without reading the store twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Protocol

import numpy as np

from rackval.harness.analysis.rollup import SpecRecord, spec_record
from rackval.harness.measure import Measurement
from rackval.harness.safety.undo_messages import UndoMessages, short_undo_messages
from rackval.harness.store.records import (
    ActionRecord,
    ArtifactRecord,
    CauseRecord,
    DeviceRecord,
    FirmwareRecord,
    RunInfo,
    SampleChannel,
    TestRecord,
)
from rackval.harness.verdict import Verdict, findings, run_verdict


class ResultsStore(Protocol):
    """The part of the store API the report reads (SqliteStore satisfies it)."""

    def run(self, run_id: str) -> RunInfo: ...
    def run_status(self, run_id: str) -> tuple[str, float | None]: ...
    def tests(self, run_id: str) -> list[TestRecord]: ...
    def measurements(self, run_id: str) -> list[tuple[int | None, Measurement]]: ...
    def devices(self, run_id: str) -> list[DeviceRecord]: ...
    def firmware(self, run_id: str) -> list[FirmwareRecord]: ...
    def actions(self, run_id: str) -> list[ActionRecord]: ...
    def artifacts(self, run_id: str) -> list[ArtifactRecord]: ...
    def causes(self, run_id: str) -> list[CauseRecord]: ...
    def sample_channels(self, run_id: str) -> list[SampleChannel]: ...
    def sample_values(self, run_id: str) -> Iterator[tuple[tuple[str, str, str], np.ndarray]]: ...
    def sample_series(
        self, run_id: str, unreadable: Callable[[tuple[str, str, str], str], None] | None = None
    ) -> Iterator[tuple[tuple[str, str, str], np.ndarray, np.ndarray]]: ...
    def sample_arrays(
        self,
        run_id: str,
        channel: str,
        *,
        device: str | None = None,
        unit: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...


class RunData:
    """The records of run ``run_id`` in ``store``, each read on first use and then kept."""

    def __init__(self, store: ResultsStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    @cached_property
    def run(self) -> RunInfo:
        return self.store.run(self.run_id)

    @cached_property
    def _status(self) -> tuple[str, float | None]:
        return self.store.run_status(self.run_id)

    @property
    def stored_outcome(self) -> str:
        return self._status[0]

    @property
    def ended_at(self) -> float | None:
        return self._status[1]

    @cached_property
    def tests(self) -> list[TestRecord]:
        return self.store.tests(self.run_id)

    @cached_property
    def measured(self) -> list[tuple[int | None, Measurement]]:
        """Every measurement with the id of the test that recorded it (None: the session)."""
        return self.store.measurements(self.run_id)

    @cached_property
    def measurements(self) -> list[Measurement]:
        return [m for _, m in self.measured]

    @cached_property
    def by_test(self) -> dict[int | None, list[Measurement]]:
        out: dict[int | None, list[Measurement]] = {}
        for tid, m in self.measured:
            out.setdefault(tid, []).append(m)
        return out

    @cached_property
    def devices(self) -> list[DeviceRecord]:
        return self.store.devices(self.run_id)

    @cached_property
    def firmware(self) -> list[FirmwareRecord]:
        return self.store.firmware(self.run_id)

    @cached_property
    def actions(self) -> list[ActionRecord]:
        return self.store.actions(self.run_id)

    @cached_property
    def undo_messages(self) -> UndoMessages:
        """The actions' undo messages with each quoted script shown once (aligned with ``actions``)."""
        return short_undo_messages(self.actions)

    @cached_property
    def artifacts(self) -> list[ArtifactRecord]:
        return self.store.artifacts(self.run_id)

    @cached_property
    def causes(self) -> list[CauseRecord]:
        """Root causes found in the run (devices down, feed events), in the order found."""
        return self.store.causes(self.run_id)

    @cached_property
    def spec(self) -> SpecRecord:
        """The requirements the run was judged by (``rackval.harness.analysis.rollup.spec_record``):
        as the run recorded them, else from its spec file if that is still there (runs recorded
        before, or whose record is malformed), else none known."""
        return spec_record(self.run)

    @cached_property
    def spec_units(self) -> dict[str, str]:
        """Each requirement's unit in the run's spec, by key (none for a requirement without one)."""
        return {key: req.unit for key, req in self.spec.requirements.items() if req.unit}

    @cached_property
    def verdict(self) -> Verdict:
        return run_verdict(self.stored_outcome, self.tests, self.measured, self.actions)

    @cached_property
    def findings(self) -> list[Measurement]:
        """Failed, then marginal measurements, worst first (``rackval.harness.verdict.findings``)."""
        return findings(self.measurements)

    @cached_property
    def test_labels(self) -> dict[int, str]:
        """Each test's own name (file path dropped: it repeats on every row of a table)."""
        return {t.test_id: t.nodeid.rsplit("::", 1)[-1] for t in self.tests}

    @cached_property
    def last_record(self) -> float | None:
        """When the last thing was recorded (a measurement, a test's start or end)."""
        times = [m.recorded_at for m in self.measurements]
        times += [t.ended_at if t.ended_at is not None else t.started_at for t in self.tests]
        return max(times) if times else None

    @property
    def finished(self) -> bool:
        """The run reached its end (and says when)."""
        return self.verdict != Verdict.INCOMPLETE and self.ended_at is not None
