"""One pytest session's rack run, from the first test that needs a rack to the report at the end.

With ``--rack`` the plans run against that rack; without it a simulated rack is started on
127.0.0.1 (in its own process) and its generated rack file is used. Nothing starts until a test
needs a rack: the project's own unit tests load the plugin too and must not pay for it.

Every measurement goes to the results store the moment it is recorded; at the end of the session
the run is closed (the safety gate's undo first) and ``<report-dir>/<run-id>/`` gets report.html
and junit.xml, with ``<report-dir>/latest`` pointing at it.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import ConfigError, DeviceError
from rackval.drivers.capabilities import Identity
from rackval.harness.clock import Clock, RealClock, SimulatorClock
from rackval.harness.inventory import RUN_SIM_PARAMS, Inventory, load_inventory
from rackval.harness.measure import Measurement
from rackval.harness.plan_keys import RUN_REQUIREMENT_PLANS, plan_files, requirement_plans
from rackval.harness.plugin.causes import RootCauses
from rackval.harness.rack import Rack
from rackval.harness.report.exports import check_formats as check_export_formats
from rackval.harness.safety import SafetyGate, SimFeedSwitcher
from rackval.harness.spec import (
    RUN_SPEC_REQUIREMENTS,
    RUN_SPEC_REVISION,
    Spec,
    load_spec,
    revision_mismatch,
)
from rackval.harness.store import ActionRecord, DeviceRecord, RunInfo, Store, open_store
from rackval.harness.verdict import UNDO_FLAGGED, Verdict, findings, run_verdict
from rackval.sim.control import ControlClient

DEFAULT_SIM_SPEC = Path("specs") / "sim-reference.yaml"
# Run-level measurements (no limit, outcome "info") that say how fast a simulated run went.
RUN_VIRTUAL_TIME = "run virtual time"
RUN_WALL_TIME = "run wall time"
RUN_TIME_RATIO = "run virtual/wall time ratio"


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
        export = str(config.getoption("export") or "")
        self.export_formats = check_export_formats(export.split(",")) if export.strip() else ()
        self._inventory: Inventory | None = None
        self._spec: Spec | None = None
        self._rack: Rack | None = None
        self._store: Store | None = None
        self._sim: Any = None
        self._sim_error: ConfigError | None = None
        self._control: ControlClient | None = None
        self.run_started = False
        self.outcome = "running"
        self._safety: SafetyGate | None = None
        self.current_nodeid: str | None = None
        # What the run proved, decided in finish() by rackval.harness.verdict (None until then),
        # the failed and marginal measurements worst first, and every action whose undo failed or
        # never ran (inside a test's scope or at the end): what the terminal summary shows.
        self.verdict: Verdict | None = None
        self.findings: list[Measurement] = []
        self.spec_units: dict[str, str] = {}  # each requirement's unit: the terminal shows findings in it
        self.left_changed: list[ActionRecord] = []
        self.warnings: list[str] = []
        self.collected_files: list[Path] = []  # test modules of the session (requirement coverage)
        self.tests: dict[str, TestTrack] = {}
        self.report_path: Path | None = None
        self.junit_path: Path | None = None
        self.wall_started = time.monotonic()  # the session's start: collection and simulator start-up count
        self.virtual_started: float | None = None  # simulator clock at first contact
        self.clock_figure: RunClockFigure | None = None
        self.clock_figure_error = ""
        self.root_causes = RootCauses(self)  # the DeviceHealth the rack goes through, failures by cause
        rack_opt = config.getoption("rack")
        spec_opt = config.getoption("spec")
        # Validate files given on the command line now, before any device is touched.
        if rack_opt:
            refuse_sim_options(config, rack_opt)
            self._inventory = load_inventory(rack_opt)
        if spec_opt:
            self._spec = load_spec(spec_opt)
        elif rack_opt and not self._inventory.meta.simulated:  # type: ignore[union-attr]
            raise ConfigError("--spec is required with a real rack: the limits come from the design's spec")
        if not rack_opt:
            check_sim_files(config)

    # ---- lazily built pieces -----------------------------------------------------------------
    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            if self._sim_error is not None:  # a simulator that would not start is not started again
                raise self._sim_error
            from rackval.harness.simproc import SimProcess

            try:
                self._sim = SimProcess(
                    self.run_dir / "sim",
                    nodes=self.config.getoption("sim_nodes"),
                    params=self.config.getoption("sim_params"),
                    faults=self.config.getoption("sim_faults"),
                )
            except ConfigError as exc:
                self._sim_error = exc
                raise
            self._inventory = load_inventory(self._sim.rack_file)
        return self._inventory

    @property
    def spec(self) -> Spec:
        if self._spec is None:
            path = default_sim_spec(self.config.rootpath, self.config.getoption("sim_params"))
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
            self._rack = Rack(self.inventory, on_identity=self._record_identity, health=self.root_causes.health())
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

    def clock_now(self) -> float | None:
        """The run clock's reading (the simulator's virtual time, or monotonic wall time on a real
        rack), the time base telemetry samples use, so a measurement's ``clock_s`` lines up with
        them; None when the simulator's clock cannot be read (the measurement is kept all the same)."""
        try:
            return self.clock().now()
        except DeviceError:
            return None

    def ensure_started(self) -> None:
        """Open the run in the store (once): from here on, everything recorded is durable."""
        if self.run_started:
            return
        inv, spec = self.inventory, self.spec
        spec.check_rack(inv)  # every node's class is one of the spec's: before anything is recorded
        mismatch = revision_mismatch(spec.design_revision, inv.meta.design_revision)
        if mismatch:
            self.warnings.append(f"{mismatch} (spec {spec.path}, rack file {inv.path})")
        sim_params: dict[str, dict[str, str]] = {}
        if inv.meta.simulator is not None and inv.meta.simulator.params is not None:
            record, problem = inv.meta.simulator.params.run_record()
            sim_params[RUN_SIM_PARAMS] = record
            if problem:
                self.warnings.append(problem)
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
                metadata={
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    **({RUN_SPEC_REVISION: spec.design_revision} if spec.design_revision else {}),
                    RUN_SPEC_REQUIREMENTS: spec.run_record(),
                    RUN_REQUIREMENT_PLANS: requirement_plans(
                        plan_files(self.collected_files), spec.data.requirements, self.config.rootpath
                    ),
                    **sim_params,
                },
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
                # before the report is rendered, so it shows each undo's outcome (every undo's
                # outcome, inside a test's scope or here, is in the store).
                self._safety.close()
            if self.run_started:
                for track in self.tests.values():
                    if not track.finished:  # interrupted mid-test
                        track.outcome = "error"
                        self.store.finish_test(track.test_id, "error", time.time() - track.started, "did not finish")
                self.record_clock_figure()
                self.decide_verdict(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
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

    def decide_verdict(self, *, interrupted: bool) -> None:
        """The run's verdict from what the store holds (``rackval.harness.verdict``, as the report
        and JUnit decide it), its failed and marginal findings, and what the rack may be left with."""
        measured = self.store.measurements(self.run_id)
        actions = self.store.actions(self.run_id)
        tests = self.store.tests(self.run_id)
        self.verdict = run_verdict("interrupted" if interrupted else "", tests, measured, actions)
        self.outcome = self.verdict.stored
        self.findings = findings(m for _, m in measured)
        if self._spec is not None:
            self.spec_units = {key: req.unit for key, req in self._spec.data.requirements.items()}
        self.left_changed = [a for a in actions if a.undo_outcome in UNDO_FLAGGED]

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
        if self.export_formats:
            export_run(self.store, self.run_id, self.run_dir, formats=self.export_formats, record_artifacts=True)
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
            store.finish_run(info.run_id, Verdict.INCOMPLETE.stored)
            marked.append(info.run_id)
    return marked


def default_sim_spec(root: Path, sim_params: str | Path | None) -> Path:
    """The spec that judges a simulated rack when no --spec is given: the design's own spec named
    after its params file (``racks/sim-liquid-params.yaml`` -> ``specs/sim-liquid.yaml``) when
    the repository has one, else the reference spec (``specs/sim-reference.yaml``)."""
    if sim_params:
        stem = Path(sim_params).name.removesuffix(".yaml").removesuffix(".yml").removesuffix("-params")
        own = root / "specs" / f"{stem}.yaml"
        if own.exists():
            return own
    return root / DEFAULT_SIM_SPEC


SIM_OPTIONS = (("--sim-nodes", "sim_nodes"), ("--sim-params", "sim_params"), ("--sim-faults", "sim_faults"))
"""Options that shape the simulator rackval starts when no ``--rack`` is given."""


def refuse_sim_options(config: pytest.Config, rack: str) -> None:
    """With ``--rack``, rackval starts no simulator: a simulator option would be silently ignored
    (a fault file that is never injected makes a rehearsal pass for the wrong reason)."""
    given = [flag for flag, dest in SIM_OPTIONS if config.getoption(dest) is not None]
    if given:
        raise ConfigError(
            f"{' and '.join(given)} shape{'s' if len(given) == 1 else ''} the simulated rack rackval starts without"
            f" --rack; with --rack {rack} nothing would use {'it' if len(given) == 1 else 'them'} (for a simulator of"
            " your own, give them to `rackval sim`: --nodes, --params, --faults)"
        )


def check_sim_files(config: pytest.Config) -> None:
    """``--sim-params`` and ``--sim-faults``, checked before collection against a ``RackModel`` of
    the rack the simulator would build (same size and parameters; in-process, no server started):
    a bad file is one ConfigError naming file, line and field, and the simulator never starts."""
    faults, params = config.getoption("sim_faults"), config.getoption("sim_params")
    nodes = config.getoption("sim_nodes")
    if not faults and not params and nodes is None:
        return
    from rackval.sim.fault_file import load_faults
    from rackval.sim.model import RackModel
    from rackval.sim.reference import sim_design

    design = sim_design(params, nodes=nodes)
    if faults:
        load_faults(faults, rack=RackModel(design.size, params=design.params))


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


RUN_KEY = pytest.StashKey[RackvalRun]()
"""Where ``pytest_configure`` keeps the session's RackvalRun on ``config.stash``."""


def run_of(config: pytest.Config) -> RackvalRun:
    """The session's RackvalRun."""
    return config.stash[RUN_KEY]
