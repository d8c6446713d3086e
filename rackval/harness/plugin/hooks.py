"""The hooks that follow a session's tests into the store: the run is made at configure time,
device test arguments are parametrised from the rack file (``rackval.drivers.kinds``), and each
test's outcome, failure message and soft failures are recorded as it goes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import ConfigError, DeviceError
from rackval.drivers.kinds import ANY_DEVICE_PARAM, DEVICE_KINDS, RACK_NODES, DeviceKind
from rackval.harness.inventory import Inventory
from rackval.harness.plugin import fixtures
from rackval.harness.plugin.run import RUN_KEY, RackvalRun
from rackval.harness.plugin.summary import write_terminal_summary

# A test argument named like this is parametrised with every device of that kind (None: any kind).
DEVICE_PARAMS: dict[str, DeviceKind | None] = {ANY_DEVICE_PARAM: None, **{k.param: k for k in DEVICE_KINDS.values()}}
MESSAGE_LIMIT = 4000


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        run = RackvalRun(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(RunHooks(run), "rackval-run")


class RunHooks:
    """The hooks that follow one session's tests into the store (registered per session)."""

    def __init__(self, run: RackvalRun) -> None:
        self.run = run

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        try:
            inventory = None
            for argname, kind in DEVICE_PARAMS.items():
                if argname in metafunc.fixturenames:
                    inventory = inventory or self.run.inventory
                    names = _param_values(inventory, kind)
                    metafunc.parametrize(argname, names, ids=names)
        except ConfigError as exc:  # the rack is unusable (a simulator that would not start): stop, once
            pytest.exit(f"rackval: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # the plans this session collected: the run records which requirement each would measure
        self.run.collected_files = sorted({Path(str(item.path)) for item in session.items})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.run.current_nodeid = item.nodeid
        if _uses_rackval_fixtures(item):
            self.run.start_test(item.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        result = yield
        track = self.run.tests.get(item.nodeid)
        if track is not None and track.soft_failures:
            raise AssertionError("\n".join(m.describe() for m in track.soft_failures))
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
        report = yield
        if call.excinfo is not None:
            self.run.root_causes.failed_with(item.nodeid, call.excinfo.value)
        # A device that failed is the finding, not the stack below it: show its message alone
        # (it names device, address and operation) instead of a traceback through httpx or pysnmp.
        if call.excinfo is not None and call.excinfo.errisinstance((DeviceError, ConfigError)):
            exc = call.excinfo.value
            in_test = [e for e in call.excinfo.traceback if Path(str(e.path)) == Path(str(item.path))]
            line = in_test[-1].lineno + 1 if in_test else (item.location[1] or 0) + 1
            location = f"{item.location[0]}:{line}"
            report.longrepr = f"{location}: {type(exc).__name__}: {exc}"
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        track = self.run.tests.get(report.nodeid)
        if track is None:
            return
        if report.failed:
            track.outcome = "failed" if report.when == "call" else "error"
            track.message = _failure_message(report)
        elif report.skipped and track.outcome == "passed":
            track.outcome = "skipped"
            track.message = _failure_message(report)
        if report.when == "teardown":
            self.run.current_nodeid = None
            self.run.store.finish_test(track.test_id, track.outcome, time.time() - track.started, track.message)
            self.run.root_causes.test_finished(report.nodeid, track)
            track.finished = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
        self.run.finish(exitstatus)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Iterator[None]:
        # outermost wrapper: written after pytest's own summary (failures, short test summary), so
        # the rackval block, ending with the verdict, is what the terminal ends with
        result = yield
        write_terminal_summary(terminalreporter, self.run)
        return result


def _param_values(inventory: Inventory, kind: DeviceKind | None) -> list[str]:
    """The names a device test argument takes: every device, every device of the kind, or every
    compute node of the rack file (``DeviceKind.params_over``)."""
    if kind is None:
        return list(inventory.configs)
    if kind.params_over == RACK_NODES:
        return list(inventory.data.nodes)
    return inventory.devices_of_kind(kind.name)


def _uses_rackval_fixtures(item: pytest.Item) -> bool:
    """True when the test uses this plugin's fixtures (not a same-named fixture of its own, e.g. a
    unit test's ``clock``): only those tests belong to a rack run."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for name in fixtures.RACKVAL_FIXTURES & set(info.names_closure):
        defs = info.name2fixturedefs.get(name)
        if defs and getattr(defs[-1].func, "__module__", "") == fixtures.__name__:
            return True
    return False


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if isinstance(report.longrepr, str):
        text = report.longrepr
    elif crash is not None:
        text = crash.message
    elif isinstance(report.longrepr, tuple):  # skips: (path, line, reason)
        text = str(report.longrepr[2])
    else:
        text = str(report.longrepr or "")
    return text[:MESSAGE_LIMIT]
