"""The fixtures plans ask for: ``rack``, ``inventory``, ``spec``, ``safety``, ``telemetry``,
``clock``, ``sim_faults``, ``measure`` and ``progress``, all views of the session's RackvalRun.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rackval.harness.clock import Clock
from rackval.harness.inventory import Inventory
from rackval.harness.measure import Limit, Measurement, Outcome
from rackval.harness.plugin.run import RackvalRun, run_of
from rackval.harness.rack import Rack
from rackval.harness.safety import SafetyGate
from rackval.harness.spec import Spec
from rackval.sim.control import ControlClient

RACKVAL_FIXTURES = frozenset(
    {"rack", "spec", "measure", "clock", "inventory", "sim_faults", "safety", "telemetry", "progress"}
)
"""A test that uses one of these (this module's, not a same-named fixture of its own) belongs to the run."""


@pytest.fixture(scope="session")
def inventory(request: pytest.FixtureRequest) -> Inventory:
    """The validated rack file of the rack under test."""
    return run_of(request.config).inventory


@pytest.fixture(scope="session")
def rack(request: pytest.FixtureRequest) -> Rack:
    """The rack under test: drivers for every device, built on first use."""
    return run_of(request.config).rack


@pytest.fixture(scope="session")
def spec(request: pytest.FixtureRequest) -> Spec:
    """The design spec: ``spec.limit(key)`` gives a requirement's limits."""
    return run_of(request.config).spec


@pytest.fixture(scope="session")
def safety(request: pytest.FixtureRequest) -> SafetyGate:
    """The only way a plan switches outlets, resets hosts, caps power, drops feeds or loads GPUs:
    refused unless the rack allows it, logged, and undone at the end of the run (or of a
    ``with safety.scoped():`` block)."""
    return run_of(request.config).safety


@pytest.fixture
def telemetry(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``telemetry(channels=None, rate_hz=1.0, kinds=...)`` -> a Sampler writing into this run.

    On the simulator, ``sampler.run(seconds)`` advances virtual time tick by tick; on a real rack
    it samples in real time (or ``start()``/``stop()`` around an action)."""
    from rackval.harness.telemetry import sampler_factory

    run = run_of(request.config)
    run.ensure_started()
    nodeid = request.node.nodeid

    def show(progress: Any) -> None:
        """Long soaks show they are alive: one line every few seconds, past output capture."""
        say(request, f"[telemetry] {nodeid}: {progress.line()}")

    make = sampler_factory(run.rack, run.clock(), run.store, run.run_id)

    def make_with_progress(*args: Any, **options: Any) -> Any:
        options.setdefault("progress", show)
        return make(*args, **options)

    yield make_with_progress
    make.close_all()


ANNOUNCE_WAIT_S = 10.0
"""A wait longer than this is announced by ``progress`` (what for, how long at most)."""


def say(request: pytest.FixtureRequest, line: str) -> None:
    """Write ``line`` to the terminal now, past pytest's output capture (nothing without a terminal)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="session")
def progress(request: pytest.FixtureRequest) -> Callable[[str, float], None]:
    """``progress(what, at_most_s)`` before a long wait (BMC boot, OS up, settling, a hold): one line
    past output capture naming the test, what it waits for and for how long at most, so a long
    wait never looks like a hang. Waits of ``ANNOUNCE_WAIT_S`` or less are not announced."""
    run = run_of(request.config)

    def announce(what: str, at_most_s: float) -> None:
        if at_most_s > ANNOUNCE_WAIT_S:
            which = "on the simulator clock" if run.control is not None else "wall"
            say(request, f"[wait] {run.current_nodeid or 'setup'}: {what}: at most {at_most_s:.0f} s ({which})")

    return announce


@pytest.fixture(scope="session")
def clock(request: pytest.FixtureRequest) -> Clock:
    """Wait with ``clock.sleep()``: on a simulated rack it jumps virtual time instead of waiting."""
    return run_of(request.config).clock()


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
    control = run_of(request.config).control
    if control is None:
        pytest.fail("sim_faults needs a simulated rack: this rack file has no 'simulator' section")
    faults = SimFaults(control)
    yield faults
    faults.clear_all()


class MeasureRecorder:
    """``measure(name, value, unit, limit=..., device=...)`` records, judges and asserts.

    ``limit`` is a spec requirement key or a ``Limit``. ``channel`` is an id that is the same in
    every run (a sensor, an outlet, a node: compare and trend join on it); how the value was
    obtained, in words that may vary ("mean of the last 449 s"), goes in ``detail``. A failing
    measurement fails the test at once, with device, value and limits in the message;
    ``soft=True`` records it and fails the test after the test body has recorded everything else.
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
        detail: str = "",
        soft: bool = False,
    ) -> Measurement:
        if isinstance(limit, str):
            limit = self._run.spec.limit(limit)
        m = Measurement.judged(
            name, value, unit, limit, device=device, channel=channel, detail=detail, clock_s=self._run.clock_now()
        )
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
    return MeasureRecorder(run_of(request.config), request.node.nodeid)
