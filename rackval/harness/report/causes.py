"""Failures grouped by root cause: one group per cause, with the devices it took down and the
failed tests that trace back to it.

When a feed drop trips 32 nodes, or one BMC dies, dozens of tests fail; listed one by one they
hide that they share one cause. The run records each cause (``CauseRecord``: a device that
stopped answering, a feed event a plan established) and, for each failed test, the cause it
failed on (``TestRecord.cause``). ``group_failures`` turns those into what the report's root-cause
section and the terminal summary show: causes in the order they were found (an earlier cause is
usually the root of a later one), each with its failed tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rackval.harness.health import found_when
from rackval.harness.store.records import CauseRecord


@dataclass(frozen=True)
class CauseGroup:
    """One root cause and the failed tests (nodeids, in run order) grouped under it."""

    cause: CauseRecord
    tests: tuple[str, ...]

    def when(self) -> str:
        """When the cause was found: run clock on the simulator, else UTC wall time."""
        return found_when(self.cause.found_at, self.cause.clock_s)


def group_failures(causes: Iterable[CauseRecord], failed: Iterable[tuple[str, str]]) -> list[CauseGroup]:
    """Groups for ``causes`` from ``failed`` (nodeid, cause key) pairs; a cause no failed test
    names still gets its (empty) group: a device was down, and the reader should know."""
    by_key: dict[str, list[str]] = {}
    for nodeid, key in failed:
        if key:
            by_key.setdefault(key, []).append(nodeid)
    return [CauseGroup(c, tuple(by_key.get(c.key, ()))) for c in causes]


def ungrouped(failed: Iterable[tuple[str, str]], causes: Iterable[CauseRecord]) -> list[str]:
    """Failed tests that name no known cause (their own findings are the story)."""
    known = {c.key for c in causes}
    return [nodeid for nodeid, key in failed if key not in known]


def short_name(nodeid: str) -> str:
    """A test's own name with its parameters (the file path repeats on every line)."""
    return nodeid.rsplit("::", 1)[-1]
