"""The rackval pytest plugin: options, fixtures and the run's lifecycle.

With ``--rack`` the plans run against that rack; without it a simulated rack is started on
127.0.0.1 (in its own process) and its generated rack file is used. Nothing starts until a test
needs a rack: the project's own unit tests load this plugin too and must not pay for it.

Every measurement goes to the results store the moment it is recorded; at the end of the session
the run is closed and ``<report-dir>/<run-id>/`` gets report.html and junit.xml, with
``<report-dir>/latest`` pointing at it.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import ConfigError, DeviceError
from rackval.drivers.capabilities import Identity
from rackval.drivers.kinds import ANY_DEVICE_PARAM, DEVICE_KINDS, RACK_NODES, DeviceKind
from rackval.harness.clock import Clock, RealClock, SimulatorClock
from rackval.harness.inventory import Inventory, load_inventory
from rackval.harness.measure import Limit, Measurement, Outcome
from rackval.harness.rack import Rack
from rackval.harness.safety import SafetyGate, SimFeedSwitcher, UndoResult
from rackval.harness.spec import Spec, load_spec
from rackval.harness.store import DeviceRecord, RunInfo, Store, open_store
from rackval.sim.control import ControlClient

RACKVAL_FIXTURES = frozenset({"rack", "spec", "measure", "clock", "inventory", "sim_faults", "safety", "telemetry"})
# A test argument named like this is parametrised with every device of that kind (None: any kind).
DEVICE_PARAMS: dict[str, DeviceKind | None] = {ANY_DEVICE_PARAM: None, **{k.param: k for k in DEVICE_KINDS.values()}}
DEFAULT_SIM_SPEC = Path("specs") / "sim-reference.yaml"
MESSAGE_LIMIT = 4000
# Run-level measurements (no limit, outcome "info") that say how fast a simulated run went.
RUN_VIRTUAL_TIME = "run virtual time"
RUN_WALL_TIME = "run wall time"
RUN_TIME_RATIO = "run virtual/wall time ratio"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rackval", "rack validation")
    group.addoption("--rack", help="rack file (YAML); default: start the simulated rack on 127.0.0.1")
    group.addoption("--spec", help="design spec (YAML); default for the simulated rack: specs/sim-reference.yaml")
    group.addoption("--report-dir", default="reports", help="where run reports go (default: reports)")
    group.addoption(
        "--results", help="results store: SQLite file or postgresql:// URL (default: <report-dir>/results.sqlite)"
    )
    group.addoption(
        "--sim-nodes", type=int, default=None, help="nodes in the simulated rack (default: the 32-node reference rack)"
    )
    group.addoption("--sim-faults", help="fault list (YAML) to inject into the simulated rack at start")
    group.addoption(
        "--sim-params",
        help="the simulated rack's size, topology and physics (YAML, a copy of racks/sim-model-params.yaml)"
        " to rehearse plans on another design; --sim-nodes still overrides the node count",
    )
    group.addoption(
        "--allow-destructive",
        action="store_true",
        default=False,
        help="allow outlet switching, host resets, power caps, feed drops and GPU load even if the rack file"
        " does not (rack.allow_destructive); each action is logged and undone at the end of the run",
    )
    group.addoption("--station", default=os.environ.get("RACKVAL_STATION", ""), help="test station name")
    group.addoption("--operator", default=os.environ.get("RACKVAL_OPERATOR", ""), help="who runs the tests")


@dataclass(frozen=True)
class RunClockFigure:
    """How much simulator (virtual) time a run covered in how much wall time.

    ``virtual_s`` is the simulator clock's advance from the run's first contact with the control
    channel to the end of the tests (undo included); ``wall_s`` is wall time from the start of
    the pytest session (collection and simulator start-up included) to the same point, so the
    ratio never flatters the run.
    """

    virtual_s: float
    wall_s: float

    @property
    def ratio(self) -> float:
        return self.virtual_s / self.wall_s if self.wall_s > 0 else math.inf

    def line(self) -> str:
        return (
            f"simulator clock: {self.virtual_s:.0f} virtual s in {self.wall_s:.1f} wall s:"
            f" virtual/wall = {self.ratio:.1f}"
        )


@dataclass
class TestTrack:
    test_id: int
    started: float
    outcome: str = "passed"
    message: str = ""
    finished: bool = False
    soft_failures: list[Measurement] = field(default_factory=list)


class RackvalRun:
    """Everything one pytest session knows about the rack, the spec and the run being recorded."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.report_root = Path(config.getoption("report_dir"))
        self.run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        self.run_dir = self.report_root / self.run_id
        self._inventory: Inventory | None = None
        self._spec: Spec | None = None
        self._rack: Rack | None = None
        self._store: Store | None = None
        self._sim: Any = None
        self._control: ControlClient | None = None
        self.run_started = False
        self.outcome = "running"
        self._safety: SafetyGate | None = None
        self.current_nodeid: str | None = None
        self.undo_failures: tuple[UndoResult, ...] = ()
        self.tests: dict[str, TestTrack] = {}
        self.report_path: Path | None = None
        self.junit_path: Path | None = None
        self.wall_started = time.monotonic()  # the session's start: collection and simulator start-up count
        self.virtual_started: float | None = None  # simulator clock at first contact
        self.clock_figure: RunClockFigure | None = None
        self.clock_figure_error = ""
        rack_opt = config.getoption("rack")
        spec_opt = config.getoption("spec")
        # Validate files given on the command line now, before any device is touched.
        if rack_opt:
            self._inventory = load_inventory(rack_opt)
        if spec_opt:
            self._spec = load_spec(spec_opt)
        elif rack_opt and not self._inventory.meta.simulated:  # type: ignore[union-attr]
            raise ConfigError("--spec is required with a real rack: the limits come from the design's spec")

    # ---- lazily built pieces -----------------------------------------------------------------
    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            from rackval.harness.simproc import SimProcess

            self._sim = SimProcess(
                self.run_dir / "sim",
                nodes=self.config.getoption("sim_nodes"),
                params=self.config.getoption("sim_params"),
                faults=self.config.getoption("sim_faults"),
            )
            self._inventory = load_inventory(self._sim.rack_file)
        return self._inventory

    @property
    def spec(self) -> Spec:
        if self._spec is None:
            path = self.config.rootpath / DEFAULT_SIM_SPEC
            if not path.exists():
                raise ConfigError(f"no --spec given and the default {path} does not exist")
            self._spec = load_spec(path)
        return self._spec

    @property
    def results_path(self) -> str:
        return str(self.config.getoption("results") or self.report_root / "results.sqlite")

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.results_path)
        return self._store

    @property
    def rack(self) -> Rack:
        if self._rack is None:
            self._rack = Rack(self.inventory, on_identity=self._record_identity)
        return self._rack

    @property
    def control(self) -> ControlClient | None:
        """The simulated rack's control channel, or None for a real rack."""
        sim = self.inventory.meta.simulator
        if sim is None or self.inventory.simulator_token is None:
            return None
        if self._control is None:
            self._control = ControlClient(sim.control, self.inventory.simulator_token.reveal())
            try:
                self.virtual_started = self._control.now()
            except DeviceError as exc:  # the plans will meet the same error; the figure is lost
                self.clock_figure_error = str(exc)
        return self._control

    @property
    def safety(self) -> SafetyGate:
        """The run's safety gate (built on first use; its undo runs first thing in ``finish``)."""
        if self._safety is None:
            self.ensure_started()
            inv, control = self.inventory, self.control
            self._safety = SafetyGate(
                self.rack,
                inv,
                self.store,
                self.run_id,
                allow_destructive=inv.meta.allow_destructive or bool(self.config.getoption("allow_destructive")),
                test_id_of=self._current_test_id,
                feed_switcher=SimFeedSwitcher(control) if control is not None else None,
            )
            self._safety.register_atexit()  # last resort if finish() is never reached
        return self._safety

    def _current_test_id(self) -> int | None:
        track = self.tests.get(self.current_nodeid) if self.current_nodeid else None
        return track.test_id if track is not None else None

    def clock(self) -> Clock:
        control = self.control
        return SimulatorClock(control) if control is not None else RealClock()

    def ensure_started(self) -> None:
        """Open the run in the store (once): from here on, everything recorded is durable."""
        if self.run_started:
            return
        inv, spec = self.inventory, self.spec
        self.store.start_run(
            RunInfo(
                run_id=self.run_id,
                started_at=time.time(),
                rack_name=inv.meta.name,
                rack_serial=inv.meta.serial,
                design_revision=inv.meta.design_revision,
                spec_name=spec.name,
                spec_version=spec.version,
                station=self.config.getoption("station"),
                operator=self.config.getoption("operator"),
                git_sha=_git_sha(self.config.rootpath),
                rack_file=str(inv.path),
                spec_file=str(spec.path),
                simulated=inv.meta.simulated,
                metadata={"host": socket.gethostname(), "pid": os.getpid()},
            )
        )
        self.run_started = True
        _ = self.control  # a simulated rack: read its clock now, the start of the run's virtual time
        mark_dead_runs_incomplete(self.store, exclude=self.run_id)
        for name, cfg in inv.configs.items():
            self.store.record_device(self.run_id, DeviceRecord(name, cfg.kind, cfg.driver, cfg.address))

    def _record_identity(self, name: str, identity: Identity) -> None:
        cfg = self.inventory.configs[name]
        record = DeviceRecord(
            name, cfg.kind, cfg.driver, cfg.address, identity.vendor, identity.model, identity.serial, identity.firmware
        )
        self.store.record_device(self.run_id, record)
        if identity.firmware:
            self.store.record_firmware(self.run_id, name, "firmware", identity.firmware)

    # ---- tests and measurements --------------------------------------------------------------
    def start_test(self, nodeid: str) -> None:
        self.ensure_started()
        if nodeid not in self.tests:
            self.tests[nodeid] = TestTrack(self.store.start_test(self.run_id, nodeid), time.time())

    def record(self, nodeid: str, m: Measurement) -> None:
        track = self.tests.get(nodeid)
        self.store.record_measurement(self.run_id, track.test_id if track else None, m)

    def finish(self, exitstatus: int | pytest.ExitCode) -> None:
        """Close the run: outcome, report, JUnit, 'latest' link; then release devices."""
        try:
            if self._safety is not None:
                # First: put the rack back while drivers, store and simulator are still up, and
                # before the report is rendered, so it shows each undo's outcome.
                self.undo_failures = self._safety.close().failed
            if self.run_started:
                for track in self.tests.values():
                    if not track.finished:  # interrupted mid-test
                        track.outcome = "error"
                        self.store.finish_test(track.test_id, "error", time.time() - track.started, "did not finish")
                self.record_clock_figure()
                interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
                failed = any(t.outcome in ("failed", "error") for t in self.tests.values())
                failed = failed or any(m.outcome == Outcome.FAIL for _, m in self.store.measurements(self.run_id))
                failed = failed or bool(self.undo_failures)  # a rack left changed is not a passed run
                self.outcome = "incomplete" if interrupted else ("fail" if failed else "pass")
                self.store.finish_run(self.run_id, self.outcome)
                self.write_outputs()
        finally:
            if self._rack is not None:
                self._rack.close()
            if self._control is not None:
                self._control.close()
            if self._sim is not None:
                self._sim.stop()
            if self._store is not None:
                self._store.close()

    def record_clock_figure(self) -> None:
        """On a simulated rack: virtual s, wall s and their ratio, as run-level measurements without
        limits (outcome info), so every run keeps its own speed figure next to its results."""
        if self._control is None or self.virtual_started is None:
            return
        try:
            virtual_now = self._control.now()
        except DeviceError as exc:
            self.clock_figure_error = str(exc)
            return
        figure = RunClockFigure(virtual_now - self.virtual_started, time.monotonic() - self.wall_started)
        self.clock_figure = figure
        device = self.inventory.meta.name
        channel = "simulator clock"
        for m in (
            Measurement.judged(RUN_VIRTUAL_TIME, figure.virtual_s, "s", device=device, channel=channel),
            Measurement.judged(RUN_WALL_TIME, figure.wall_s, "s", device=device, channel="wall clock"),
            Measurement.judged(RUN_TIME_RATIO, figure.ratio, "", device=device, channel="virtual s per wall s"),
        ):
            self.store.record_measurement(self.run_id, None, m)

    def write_outputs(self) -> None:
        from rackval.harness.junit import write_junit
        from rackval.harness.report.exports import export_run
        from rackval.harness.report.html import render_report

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.junit_path = write_junit(self.store, self.run_id, self.run_dir / "junit.xml")
        self.store.record_artifact(self.run_id, "junit.xml", str(self.junit_path), "junit")
        export_run(self.store, self.run_id, self.run_dir, formats=("csv", "parquet"), record_artifacts=True)
        # recorded before rendering, so the report lists itself among the run's artifacts
        self.store.record_artifact(self.run_id, "report.html", str(self.run_dir / "report.html"), "report")
        self.report_path = render_report(self.store, self.run_id, self.run_dir)
        latest = self.report_root / "latest"
        if latest.is_symlink() or latest.is_file():
            latest.unlink()
        elif latest.is_dir():
            shutil.rmtree(latest)
        try:
            latest.symlink_to(self.run_id, target_is_directory=True)
        except OSError:  # file systems without symlinks: a copy still points people at the newest run
            shutil.copytree(self.run_dir, latest)


def mark_dead_runs_incomplete(store: Store, exclude: str = "") -> list[str]:
    """Runs still 'running' whose process on this host is gone were killed: mark them incomplete.

    A SIGKILLed run cannot close itself; the next run on the same station does it, so the store
    and every report tell the truth. Runs of other hosts are left alone (their pid means nothing
    here); their reports read 'running' as incomplete anyway.
    """
    host = socket.gethostname()
    marked = []
    for info in store.runs():
        if info.run_id == exclude or info.metadata.get("host") != host:
            continue
        outcome, _ = store.run_status(info.run_id)
        pid = info.metadata.get("pid")
        if outcome == "running" and isinstance(pid, int) and not _pid_alive(pid):
            store.finish_run(info.run_id, "incomplete")
            marked.append(info.run_id)
    return marked


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _git_sha(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


_RUN_KEY = pytest.StashKey[RackvalRun]()


def _run(config: pytest.Config) -> RackvalRun:
    return config.stash[_RUN_KEY]


# ---- hooks ----------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        run = RackvalRun(config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_RUN_KEY] = run
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
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None

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
            track.finished = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
        self.run.finish(exitstatus)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        run = self.run
        if not run.run_started:
            return
        terminalreporter.section("rackval")
        terminalreporter.write_line(f"run {run.run_id} on rack {run.inventory.meta.name} -> {run.outcome}")
        if run.report_path is not None:
            terminalreporter.write_line(f"report:  {run.report_path}")
            terminalreporter.write_line(f"junit:   {run.junit_path}")
        terminalreporter.write_line(f"results: {run.results_path}")
        if run.clock_figure is not None:
            terminalreporter.write_line(run.clock_figure.line() + " (to the end of the tests)")
            # The report and exports are written after the figure was stored: say what they cost.
            session = RunClockFigure(run.clock_figure.virtual_s, time.monotonic() - run.wall_started)
            terminalreporter.write_line(
                f"  with report and exports: {session.wall_s:.1f} wall s: virtual/wall = {session.ratio:.1f}"
            )
        elif run.clock_figure_error:
            terminalreporter.write_line(f"simulator clock: no figure ({run.clock_figure_error})")
        if run.undo_failures:
            terminalreporter.write_line(
                f"UNDO FAILED for {len(run.undo_failures)} action(s): the rack may be left changed", red=True, bold=True
            )
            for r in run.undo_failures:
                terminalreporter.write_line(f"  action {r.action_id} on {r.device}: {r.undo}: {r.message}", red=True)


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
    for name in RACKVAL_FIXTURES & set(info.names_closure):
        defs = info.name2fixturedefs.get(name)
        if defs and getattr(defs[-1].func, "__module__", "") == __name__:
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


# ---- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def inventory(request: pytest.FixtureRequest) -> Inventory:
    """The validated rack file of the rack under test."""
    return _run(request.config).inventory


@pytest.fixture(scope="session")
def rack(request: pytest.FixtureRequest) -> Rack:
    """The rack under test: drivers for every device, built on first use."""
    return _run(request.config).rack


@pytest.fixture(scope="session")
def spec(request: pytest.FixtureRequest) -> Spec:
    """The design spec: ``spec.limit(key)`` gives a requirement's limits."""
    return _run(request.config).spec


@pytest.fixture(scope="session")
def safety(request: pytest.FixtureRequest) -> SafetyGate:
    """The only way a plan switches outlets, resets hosts, caps power, drops feeds or loads GPUs:
    refused unless the rack allows it, logged, and undone at the end of the run (or of a
    ``with safety.scoped():`` block)."""
    return _run(request.config).safety


@pytest.fixture
def telemetry(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``telemetry(channels=None, rate_hz=1.0, kinds=...)`` -> a Sampler writing into this run.

    On the simulator, ``sampler.run(seconds)`` advances virtual time tick by tick; on a real rack
    it samples in real time (or ``start()``/``stop()`` around an action)."""
    from rackval.harness.telemetry import sampler_factory

    run = _run(request.config)
    run.ensure_started()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    nodeid = request.node.nodeid

    def show(progress: Any) -> None:
        """Long soaks show they are alive: one line every few seconds, past output capture."""
        if reporter is None:
            return
        if capture is None:
            reporter.write_line(f"[telemetry] {nodeid}: {progress.line()}")
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[telemetry] {nodeid}: {progress.line()}")

    make = sampler_factory(run.rack, run.clock(), run.store, run.run_id)

    def make_with_progress(*args: Any, **options: Any) -> Any:
        options.setdefault("progress", show)
        return make(*args, **options)

    yield make_with_progress
    make.close_all()


@pytest.fixture(scope="session")
def clock(request: pytest.FixtureRequest) -> Clock:
    """Wait with ``clock.sleep()``: on a simulated rack it jumps virtual time instead of waiting."""
    return _run(request.config).clock()


class SimFaults:
    """Inject faults into the simulated rack for one test; every fault is cleared at teardown."""

    def __init__(self, control: ControlClient) -> None:
        self._control = control
        self._ids: list[str] = []

    def inject(self, kind: str, device: str, component: str | None = None, **params: Any) -> str:
        fault_id = self._control.inject(kind, device, component, **params)
        self._ids.append(fault_id)
        return fault_id

    def clear(self, fault_id: str) -> None:
        self._control.clear(fault_id)
        self._ids.remove(fault_id)

    def clear_all(self) -> None:
        while self._ids:
            self._control.clear(self._ids.pop())


@pytest.fixture
def sim_faults(request: pytest.FixtureRequest) -> Iterator[SimFaults]:
    """Fault injection on the simulated rack (``sim_faults.inject("feed_loss", "A")``)."""
    control = _run(request.config).control
    if control is None:
        pytest.fail("sim_faults needs a simulated rack: this rack file has no 'simulator' section")
    faults = SimFaults(control)
    yield faults
    faults.clear_all()


class MeasureRecorder:
    """``measure(name, value, unit, limit=..., device=...)`` records, judges and asserts.

    ``limit`` is a spec requirement key or a ``Limit``. A failing measurement fails the test at
    once, with device, value and limits in the message; ``soft=True`` records it and fails the
    test after the test body has recorded everything else.
    """

    def __init__(self, run: RackvalRun, nodeid: str) -> None:
        self._run = run
        self._nodeid = nodeid

    def __call__(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        limit: Limit | str | None = None,
        device: str = "",
        channel: str = "",
        soft: bool = False,
    ) -> Measurement:
        if isinstance(limit, str):
            limit = self._run.spec.limit(limit)
        m = Measurement.judged(name, value, unit, limit, device=device, channel=channel)
        self._run.record(self._nodeid, m)
        if m.outcome == Outcome.FAIL:
            if soft:
                self._run.tests[self._nodeid].soft_failures.append(m)
            else:
                raise AssertionError(m.describe())
        return m


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> MeasureRecorder:
    """Record a measurement with its limits into the results store (see MeasureRecorder)."""
    return MeasureRecorder(_run(request.config), request.node.nodeid)
