"""The run's root causes in the pytest session: the DeviceHealth the rack's drivers go through,
the cause each failed test is grouped under, and those groups for the terminal summary.

``RootCauses`` belongs to one ``RackvalRun`` (``run.root_causes``). It builds the run's
``DeviceHealth`` (``rackval.harness.health``) with the run's clock, the running test and a
hook that records every cause in the store as it is found (durable even if the run is killed).
When a test ends failed, the first cause behind it (found in it, or failed fast on) is stored
with the test (``store.record_test_cause``); ``groups`` gives the terminal summary
(``rackval.harness.plugin.summary``) one group per cause that failed tests share.
"""

from __future__ import annotations

from typing import Any, Protocol

from rackval.core.errors import DeviceDown
from rackval.harness.health import DeviceHealth, DownCause
from rackval.harness.rack import FanOutError
from rackval.harness.report.causes import CauseGroup, group_failures, ungrouped
from rackval.harness.store.records import CauseRecord


class _Run(Protocol):
    """What RootCauses reads of its ``RackvalRun`` (which owns it: no import back)."""

    config: Any
    run_id: str
    run_started: bool
    current_nodeid: str | None

    @property
    def inventory(self) -> Any: ...
    @property
    def rack(self) -> Any: ...
    @property
    def store(self) -> Any: ...
    @property
    def control(self) -> Any: ...


class _Track(Protocol):
    test_id: int
    outcome: str


FAILED = frozenset({"failed", "error"})


def cause_record(cause: DownCause, devices: list[str] | tuple[str, ...]) -> CauseRecord:
    return CauseRecord(cause.key, cause.summary, tuple(devices), cause.test, cause.found_at, cause.clock_s)


class RootCauses:
    """The root-cause bookkeeping of one run (see the module docstring)."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.failed: dict[str, str] = {}  # nodeid of a failed test -> its cause key ('' : none known)
        self._health: DeviceHealth | None = None

    def health(self) -> DeviceHealth:
        """The run's DeviceHealth (made once, when the rack is)."""
        if self._health is None:
            run = self.run
            self._health = DeviceHealth(
                recheck_s=float(run.config.getoption("down_recheck_s")),
                addresses={name: cfg.address for name, cfg in run.inventory.configs.items()},
                recheck=lambda name: run.rack.recheck(name),
                clock=self._clock_s,
                current_test=lambda: run.current_nodeid,
                on_cause=self._record,
            )
        return self._health

    def _clock_s(self) -> float | None:
        control = self.run.control
        return control.now() if control is not None else None

    def _record(self, cause: DownCause, devices: list[str]) -> None:
        if self.run.run_started:
            self.run.store.record_cause(self.run.run_id, cause_record(cause, devices))

    def failed_with(self, nodeid: str, exc: BaseException) -> None:
        """A test (or its setup) raised ``exc``: the DeviceDown errors in it, also one a shared
        fixture raised earlier and the test re-raises, count for the test."""
        if self._health is None:
            return
        for cause in _down_causes(exc):
            self._health.hit(nodeid, cause)

    def test_finished(self, nodeid: str, track: _Track) -> None:
        """A test's teardown is over: a failed one is grouped under its first cause."""
        if track.outcome not in FAILED:
            return
        found = self._health.causes_of_test(nodeid) if self._health is not None else []
        key = found[0].key if found else ""
        self.failed[nodeid] = key
        if key:
            self.run.store.record_test_cause(track.test_id, key)

    def groups(self) -> tuple[list[CauseGroup], list[str]]:
        """The causes that failed tests share, each with its failed tests (nodeids), and the
        failed tests that name no known cause: what the terminal summary groups."""
        if self._health is None:
            return [], []
        causes = [cause_record(c, devs) for c, devs in self._health.causes()]
        groups = [g for g in group_failures(causes, self.failed.items()) if g.tests]
        return groups, (ungrouped(self.failed.items(), causes) if groups else [])


def _down_causes(exc: BaseException) -> list[DownCause]:
    """The causes of every DeviceDown in ``exc``: itself, its chain, a fan-out's failures."""
    found: list[DownCause] = []
    todo: list[BaseException] = [exc]
    seen: list[BaseException] = []
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        seen.append(e)
        if isinstance(e, DeviceDown) and isinstance(e.cause, DownCause) and e.cause not in found:
            found.append(e.cause)
        if isinstance(e, FanOutError):
            todo += [r.error for r in e.failures if r.error is not None]
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]
    return found
