"""Plain records the store writes and reads back; the report and the comparisons use these."""

from __future__ import annotations

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
