"""The safety gate's equipment actions on the simulated liquid rack: a CDU pump stopped, a power-shelf
rectifier switched off, the shelves' feeds dropped; each refused when not allowed or protected
(nothing read or switched), recorded before it is done, and undone back to the state found."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import ConfigError
from rackval.harness.safety import DestructiveActionRefused
from rackval.sim.rack import SimulatedRack
from rackval.sim.reference import load_model_params
from tests.support.plan_runs import LIQUID_PARAMS
from tests.support.safety_rack import Bench, make_bench


@pytest.fixture(scope="module")
def liquid_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedRack]:
    size, params = load_model_params(LIQUID_PARAMS)
    rack = SimulatedRack.start(dataclasses.replace(size, nodes=2), tmp_path_factory.mktemp("liquid"), params=params)
    try:
        yield rack
    finally:
        rack.stop()


@pytest.fixture
def bench(liquid_sim: SimulatedRack, tmp_path: Path) -> Iterator[Any]:
    made: list[Bench] = []

    def build(**kwargs: Any) -> Bench:
        b = make_bench(liquid_sim, tmp_path / f"r{len(made)}.sqlite", **kwargs)
        made.append(b)
        return b

    yield build
    for b in made:
        b.gate.undo_all()
        b.close()


def _pump_running(b: Bench, pump: str) -> bool:
    return next(p for p in b.rack.driver("cdu1").pumps() if p.name == pump).running is True


def _rectifier_state(b: Bench, shelf: str, name: str) -> str:
    return next(r.state for r in b.rack.driver(shelf).rectifiers() if r.name == name)


def test_pump_stopped_and_started_again_as_found(bench: Any) -> None:
    b = bench(flag=True)
    with b.gate.scoped():
        b.gate.pump("cdu1", "Pump2", False)
        assert not _pump_running(b, "Pump2") and _pump_running(b, "Pump1")
        assert b.sim.model.cooling.cdu("cdu1").flow_lpm > 0  # the other pump carries the loop
    assert _pump_running(b, "Pump2")
    (action,) = b.gate.actions()
    assert (action.device, action.operation, action.undo_outcome) == ("cdu1", "stop pump Pump2", "done")


def test_pump_found_stopped_stays_stopped(bench: Any) -> None:
    b = bench(flag=True)
    b.sim.model.cooling.set_pump("cdu1", "Pump1", False)
    try:
        with b.gate.scoped():
            b.gate.pump("cdu1", "Pump1", False)
        assert not _pump_running(b, "Pump1")
        assert "as found" in b.gate.actions()[0].undo
    finally:
        b.sim.model.cooling.set_pump("cdu1", "Pump1", True)


def test_rectifier_off_and_back_on(bench: Any) -> None:
    b = bench(flag=True)
    with b.gate.scoped():
        b.gate.rectifier("shelf1", "PSU2", False)
        assert _rectifier_state(b, "shelf1", "PSU2") == "Disabled"
    assert _rectifier_state(b, "shelf1", "PSU2") == "Enabled"
    assert b.gate.actions()[0].undo_outcome == "done"


def test_unknown_pump_and_rectifier_are_one_line(bench: Any) -> None:
    b = bench(flag=True)
    with pytest.raises(Exception, match=r"cdu1 .*no pump 'Pump9'"):
        b.gate.pump("cdu1", "Pump9", False)
    with pytest.raises(Exception, match=r"shelf1 .*no rectifier 'PSU9'"):
        b.gate.rectifier("shelf1", "PSU9", False)
    with pytest.raises(ConfigError, match="shelf1' is a power_shelf, not a cdu"):
        b.gate.pump("shelf1", "Pump1", False)
    assert b.gate.actions() == []


def test_refused_without_permission_or_when_protected(bench: Any) -> None:
    def lock(doc: dict[str, Any]) -> None:
        doc["rack"]["allow_destructive"] = False

    b = bench(mutate=lock)
    with pytest.raises(DestructiveActionRefused, match="not allowed"):
        b.gate.pump("cdu1", "Pump1", False)
    assert b.gate.actions() == [] and "cdu1" not in b.rack.requested

    def protect(doc: dict[str, Any]) -> None:
        doc["devices"]["shelf1"]["protected"] = True

    p = bench(mutate=protect, flag=True)
    with pytest.raises(DestructiveActionRefused, match="shelf1 is protected"):
        p.gate.rectifier("shelf1", "PSU1", False)
    with pytest.raises(DestructiveActionRefused, match="shelf1 is protected"):
        p.gate.feed("A", False)
    assert p.gate.actions() == [] and "shelf1" not in p.rack.requested


def test_shelf_feeds_dropped_and_restored(bench: Any) -> None:
    b = bench(flag=True, sim_feeds=True)
    with b.gate.scoped():
        b.gate.feed("A", False)
        b.gate.feed("B", False)
        assert not b.sim.model.feed_up("A") and not b.sim.model.feed_up("B")
        assert b.sim.model.shelves.busbar_up()  # the BBUs hold the busbar
    assert b.sim.model.feed_up("A") and b.sim.model.feed_up("B")
    assert [a.operation for a in b.gate.actions()] == ["drop feed A", "drop feed B"]


def test_shelf_feed_dropped_at_the_shelves_breakers_without_a_feed_switcher(bench: Any) -> None:
    """A real rack has no simulator control channel: the feed is opened at each shelf's input breaker."""
    b = bench(flag=True)  # no sim_feeds: no feed switcher
    shelves = sorted(b.sim.model.shelves.shelves())
    with b.gate.scoped():
        b.gate.feed("A", False)
        for shelf in shelves:
            ac1 = next(f for f in b.rack.driver(shelf).feeds() if f.name.endswith("1"))
            assert ac1.on is False, (shelf, ac1)
        assert b.sim.model.feed_up("A")  # the utility feed itself stays up
    for shelf in shelves:
        assert all(f.on for f in b.rack.driver(shelf).feeds()), shelf
    done = b.gate.actions()
    assert [a.device for a in done] == shelves and all(a.undo_outcome == "done" for a in done), done
