"""Plain records the store writes and reads back; the report and the comparisons use these."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunInfo:
    """What identifies a run for the design loop: which rack, which design, which spec, where."""

    run_id: str
    started_at: float
    rack_name: str = ""
    rack_serial: str = ""
    design_revision: str = ""
    spec_name: str = ""
    spec_version: str = ""
    station: str = ""
    operator: str = ""
    git_sha: str = ""
    rack_file: str = ""
    spec_file: str = ""
    simulated: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TestRecord:
    test_id: int
    run_id: str
    nodeid: str
    started_at: float
    ended_at: float | None
    outcome: str
    duration_s: float | None
    message: str
    cause: str = ""  # key of the CauseRecord the failure is grouped under ('' : none known)


@dataclass(frozen=True)
class CauseRecord:
    """A root cause found in a run: why devices went down (a feed dropped under load, a device
    that stopped answering). Failed tests name it by ``key`` (``TestRecord.cause``), so the report
    groups them under one heading. ``found_at`` is wall time, ``clock_s`` the run clock (virtual
    on the simulator), ``test`` the test it was found in ('' : outside any)."""

    key: str
    summary: str
    devices: tuple[str, ...] = ()
    test: str = ""
    found_at: float = 0.0
    clock_s: float | None = None


@dataclass(frozen=True)
class DeviceRecord:
    """A device as seen in one run: where it was and what it said it was."""

    name: str
    kind: str
    driver: str
    address: str
    vendor: str = ""
    model: str = ""
    serial: str = ""
    firmware: str = ""


@dataclass(frozen=True)
class FirmwareRecord:
    """One component's firmware version as found on a device in one run (the design loop's baseline)."""

    device: str
    component: str
    version: str
    recorded_at: float


@dataclass(frozen=True)
class Sample:
    """One telemetry point. ``t`` is seconds on the run's clock (virtual on the simulator), so
    samples line up with measurements' ``clock_s`` rather than with wall time."""

    channel: str
    device: str
    t: float
    value: float | None
    unit: str = ""


@dataclass(frozen=True)
class SampleChannel:
    """Summary of one telemetry channel in a run: what a report lists before it reads samples.
    ``count`` includes the ``missing`` samples (no value); the statistics are over the values."""

    channel: str
    device: str
    unit: str
    count: int
    t_first: float
    t_last: float
    missing: int = 0
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None


UNDO_PENDING = "pending"  # the action has an undo that has not run (yet): the rack may be left changed
UNDO_NONE = "none"  # nothing to undo
UNDO_OUTCOMES = frozenset({"done", "failed", "skipped"})  # what ``record_undo`` may say


@dataclass(frozen=True)
class ActionRecord:
    """Something done *to* the rack (outlet off, fan override, link down) and its undo.

    Recorded before or as the action happens, so a killed run still shows what it changed and
    that the undo never ran (``undo_outcome == "pending"``). ``operation`` and ``undo`` are words
    a validation engineer reads ("switch outlet 3 off"); ``detail`` holds machine-readable
    parameters. ``action_id`` and the ``undo_*`` fields are filled in by the store on reading.
    """

    device: str
    operation: str
    undo: str = ""
    performed_at: float = field(default_factory=time.time)
    test_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    action_id: int | None = None
    undo_outcome: str = UNDO_PENDING
    undone_at: float | None = None
    undo_message: str = ""

    @property
    def undo_pending(self) -> bool:
        return self.undo_outcome == UNDO_PENDING


@dataclass(frozen=True)
class ArtifactRecord:
    """A file a run produced (report, JUnit, samples export, captured log), by name within the run."""

    name: str
    path: str
    kind: str
    recorded_at: float
