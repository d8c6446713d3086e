"""The safety gate against a real simulated rack: refusals touch nothing, undos restore what was found."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import DeviceDown, DeviceError
from rackval.harness.safety import NOT_ALLOWED, DestructiveActionRefused, UndoError
from rackval.sim.rack import SimulatedRack
from rackval.sim.reference import QUASI_STATIC_PARAMS, RackSize
from tests.support.safety_rack import RUN_ID, Bench, make_bench, rack_changes, restore_baseline, wait_for


def _start_sim(state_dir: Path) -> SimulatedRack:
    return SimulatedRack.start(RackSize(nodes=2), state_dir, params=QUASI_STATIC_PARAMS)


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedRack]:
    rack = _start_sim(tmp_path_factory.mktemp("safety-sim"))
    try:
        yield rack
    finally:
        rack.stop()


@pytest.fixture
def sim(shared_sim: SimulatedRack) -> Iterator[SimulatedRack]:
    """The module's simulated rack; a test must leave it as it found it (the gate's whole job)."""
    yield shared_sim
    left = rack_changes(shared_sim)
    restore_baseline(shared_sim)
    assert not left, f"the test left the rack changed: {left}"


@pytest.fixture
def own_sim(tmp_path: Path) -> Iterator[SimulatedRack]:
    """A rack of the test's own, for tests that stop a device's server."""
    rack = _start_sim(tmp_path / "sim")
    try:
        yield rack
    finally:
        rack.stop()


@pytest.fixture
def bench(sim: SimulatedRack, tmp_path: Path) -> Iterator[Callable[..., Bench]]:
    """``bench(mutate=..., flag=..., sim_feeds=..., on=sim)`` builds a gate; each is closed at teardown."""
    made: list[Bench] = []

    def build(on: SimulatedRack | None = None, **kwargs: Any) -> Bench:
        b = make_bench(on or sim, tmp_path / f"r{len(made)}.sqlite", **kwargs)
        made.append(b)
        return b

    yield build
    for b in made:
        b.close()


def _devices(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["devices"]


def _all_states(b: Bench) -> dict[str, Any]:
    return {
        "pdu-a": b.outlet_states("pdu-a"),
        "pdu-b": b.outlet_states("pdu-b"),
        "host1": b.rack.driver("bmc-node01").power_state(),
        "cap2": b.rack.driver("bmc-node02").power_limit()[0],
        "feedA": b.sim.model.feed_up("A"),
    }


# ---- refusals -----------------------------------------------------------------------------------
def test_not_allowed_refuses_every_action_and_touches_nothing(bench: Callable[..., Bench]) -> None:
    b = bench(mutate=lambda d: d["rack"].update(allow_destructive=False))
    gate = b.gate
    assert not gate.allow_destructive
    attempts: list[Callable[[], object]] = [
        lambda: gate.outlet("pdu-a", 1, False),
        lambda: gate.host_power("bmc-node01", "ForceOff"),
        lambda: gate.power_cap("bmc-node02", 3000),
        lambda: gate.feed("A", False),
        lambda: gate.gpu_load("node02", 1.0),
    ]
    for attempt in attempts:
        with pytest.raises(DestructiveActionRefused) as info:
            attempt()
        assert info.value.reasons[0] == NOT_ALLOWED
        assert "--allow-destructive" in str(info.value) and "nothing was touched" in str(info.value)
    assert b.rack.requested == []  # no driver was even created, let alone called
    assert b.store.actions(RUN_ID) == []
    assert gate.pending() == 0
    assert gate.refusal("pdu-a", 1) == [NOT_ALLOWED]
    states = _all_states(b)
    assert states["pdu-a"] == {1: True, 2: True} and states["pdu-b"] == {1: True, 2: True}
    assert states["host1"] == "On" and states["cap2"] is None and states["feedA"]


def test_cli_flag_allows_what_the_rack_file_does_not(bench: Callable[..., Bench]) -> None:
    b = bench(mutate=lambda d: d["rack"].update(allow_destructive=False), flag=True)
    assert b.gate.allow_destructive and b.gate.refusal("pdu-a", 1) == []
    b.gate.outlet("pdu-a", 1, False)
    assert b.outlet_states("pdu-a")[1] is False
    assert b.gate.undo_all().ok
    assert b.outlet_states("pdu-a")[1] is True


def test_protected_device_is_refused_and_untouched(bench: Callable[..., Bench]) -> None:
    b = bench(mutate=lambda d: _devices(d)["pdu-a"].update(protected=True))
    before = b.sim.model.pdus["pdu-a"].outlets[1].on
    with pytest.raises(DestructiveActionRefused) as info:
        b.gate.outlet("pdu-a", 1, False)
    exc = info.value
    assert exc.device == "pdu-a" and exc.outlet == 1
    assert exc.reasons == ["device pdu-a is protected in the rack file"]
    assert str(exc).startswith("pdu-a (127.0.0.1:") and "switch outlet 1 off" in str(exc)
    assert b.rack.requested == [] and b.store.actions(RUN_ID) == []
    assert b.sim.model.pdus["pdu-a"].outlets[1].on is before is True
    assert b.outlet_states("pdu-a") == {1: True, 2: True}


def test_protected_outlet_is_refused_others_are_not(bench: Callable[..., Bench]) -> None:
    b = bench(mutate=lambda d: _devices(d)["pdu-b"].update(protected_outlets=[2]))
    with pytest.raises(DestructiveActionRefused, match=r"outlet 2 of pdu-b is protected") as info:
        b.gate.outlet("pdu-b", 2, False)
    assert info.value.outlet == 2 and len(info.value.reasons) == 1
    assert b.rack.requested == [] and b.store.actions(RUN_ID) == []
    assert b.outlet_states("pdu-b") == {1: True, 2: True}
    b.gate.outlet("pdu-b", 1, False)  # the unprotected outlet of the same PDU may be switched
    assert b.outlet_states("pdu-b") == {1: False, 2: True}
    b.gate.undo_all()
    assert b.outlet_states("pdu-b") == {1: True, 2: True}


def test_protected_node_refuses_its_bmc_load_and_outlets(bench: Callable[..., Bench]) -> None:
    b = bench(mutate=lambda d: _devices(d)["node01"].update(protected=True))
    with pytest.raises(DestructiveActionRefused, match=r"node01 \(same node node01\) is protected"):
        b.gate.host_power("bmc-node01", "ForceOff")
    with pytest.raises(DestructiveActionRefused, match=r"device node01 is protected"):
        b.gate.gpu_load("node01", 1.0)
    with pytest.raises(
        DestructiveActionRefused, match=r"outlet 1 of pdu-a powers node01 PSU1, and node01 is protected"
    ):
        b.gate.outlet("pdu-a", 1, False)
    assert b.rack.requested == [] and b.store.actions(RUN_ID) == []
    assert b.gate.refusal("bmc-node02") == []  # the other node is fair game
    assert b.rack.driver("bmc-node01").power_state() == "On"


@pytest.mark.parametrize("sim_feeds", [False, True], ids=["outlets", "control-channel"])
def test_feed_with_a_protected_outlet_is_refused_whole(bench: Callable[..., Bench], sim_feeds: bool) -> None:
    b = bench(mutate=lambda d: _devices(d)["pdu-a"].update(protected_outlets=[2]), sim_feeds=sim_feeds)
    with pytest.raises(DestructiveActionRefused) as info:
        b.gate.feed("A", False)
    assert info.value.device == "feed A" and "outlet 2 of pdu-a is protected" in str(info.value)
    assert b.rack.requested == [] and b.store.actions(RUN_ID) == []
    assert b.sim.model.feed_up("A")
    assert b.outlet_states("pdu-a") == {1: True, 2: True}
    assert b.gate.feed_pdus("B") == ["pdu-b"]
    assert b.gate.refusal("pdu-a", 1) == []


# ---- actions and their undo ---------------------------------------------------------------------
def test_outlet_off_is_undone_and_logged(bench: Callable[..., Bench]) -> None:
    b = bench()
    action_id = b.gate.outlet("pdu-a", 1, False)
    assert b.outlet_states("pdu-a") == {1: False, 2: True}
    [pending] = b.store.actions(RUN_ID)
    assert pending.action_id == action_id and pending.undo_pending and pending.test_id == b.test_id
    assert pending.operation == "switch outlet 1 off" and pending.undo == "switch outlet 1 back on (as found)"
    assert pending.detail == {"outlet": 1, "on": False, "found_on": True}
    summary = b.gate.undo_all()
    assert [(r.action_id, r.outcome) for r in summary.results] == [(action_id, "done")]
    assert b.outlet_states("pdu-a") == {1: True, 2: True}
    [record] = b.gate.actions()
    assert record.undo_outcome == "done" and "switched back on" in record.undo_message
    assert b.gate.undo_all().results == ()  # idempotent: nothing left, nothing re-recorded
    assert b.store.actions(RUN_ID)[0].undone_at == record.undone_at


def test_outlet_found_off_stays_off_after_undo(bench: Callable[..., Bench]) -> None:
    b = bench()
    b.rack.driver("pdu-a").set_outlet(2, False)  # the rack as we find it: outlet 2 off
    b.gate.outlet("pdu-a", 2, True)
    assert b.outlet_states("pdu-a")[2] is True
    b.gate.outlet("pdu-a", 2, False)  # already-off target after the first action: stacked too
    b.gate.undo_all()
    assert b.outlet_states("pdu-a") == {1: True, 2: False}
    assert [a.undo_outcome for a in b.store.actions(RUN_ID)] == ["done", "done"]
    b.rack.driver("pdu-a").set_outlet(2, True)


def test_host_force_off_is_undone_by_power_on(bench: Callable[..., Bench]) -> None:
    b = bench()
    bmc = b.rack.driver("bmc-node01")
    assert bmc.power_state() == "On"
    b.gate.host_power("bmc-node01", "ForceOff")
    wait_for(lambda: bmc.power_state() == "Off", 10, "host Off after ForceOff")
    [action] = b.store.actions(RUN_ID)
    assert action.detail == {"reset_type": "ForceOff", "found_power_state": "On"}
    summary = b.gate.undo_all()
    assert summary.ok and "sent ResetType On" in summary.results[0].message
    wait_for(lambda: bmc.power_state() == "On", 10, "host On after undo")
    assert b.store.actions(RUN_ID)[0].undo_outcome == "done"


def test_power_cap_set_then_removed_and_found_cap_restored(bench: Callable[..., Bench]) -> None:
    b = bench()
    bmc = b.rack.driver("bmc-node02")
    assert bmc.power_limit()[0] is None
    b.gate.power_cap("bmc-node02", 3000)
    assert bmc.power_limit()[0] == pytest.approx(3000)
    b.gate.undo_all()
    assert bmc.power_limit()[0] is None

    bmc.set_power_limit(4000)  # found capped: removing the cap is undone by putting it back
    b.gate.power_cap("bmc-node02", None)
    assert bmc.power_limit()[0] is None
    b.gate.undo_all()
    assert bmc.power_limit()[0] == pytest.approx(4000)
    bmc.set_power_limit(None)


def test_driver_without_the_capability_is_an_error_before_anything_is_recorded(
    bench: Callable[..., Bench], monkeypatch: pytest.MonkeyPatch
) -> None:
    b = bench()

    class ReadOnlyBmc:  # a Bmc, but neither HostReset nor PowerLimit
        name = "bmc-node02"

        def power_state(self) -> str:
            return "On"

        def temperatures(self) -> dict[str, float]:
            return {}

    real = b.rack.driver
    monkeypatch.setattr(b.rack, "driver", lambda name: ReadOnlyBmc() if name == "bmc-node02" else real(name))
    with pytest.raises(DeviceError, match="driver ReadOnlyBmc lacks the PowerLimit capability") as info:
        b.gate.power_cap("bmc-node02", 3000)
    assert info.value.device == "bmc-node02" and info.value.operation == "set power limit to 3000 W"
    assert info.value.address == b.inventory.configs["bmc-node02"].address
    with pytest.raises(DeviceError, match="driver ReadOnlyBmc lacks the HostReset capability"):
        b.gate.host_power("bmc-node02", "ForceOff")
    assert b.store.actions(RUN_ID) == [] and b.gate.pending() == 0


def test_gpu_load_is_stopped_by_undo(bench: Callable[..., Bench]) -> None:
    b = bench()
    node = b.rack.driver("node02")
    b.gate.gpu_load("node02", 1.0)
    assert all(g.utilization_pct == pytest.approx(100) for g in node.gpus())
    with pytest.raises(ValueError, match="load level"):
        b.gate.gpu_load("node02", 0.0)
    b.gate.undo_all()
    assert all(g.utilization_pct == pytest.approx(0) for g in node.gpus())


def test_simulated_feed_loss_is_undone(bench: Callable[..., Bench]) -> None:
    b = bench(sim_feeds=True)
    assert b.control is not None
    b.gate.feed("A", False)
    assert not b.sim.model.feed_up("A")
    assert [(f["kind"], f["device"], f["active"]) for f in b.control.faults()] == [("feed_loss", "A", True)]
    assert b.sim.model.pdus["pdu-a"].outlets[1].on  # a feed loss is not an outlet switch (and pdu-a is dark)
    summary = b.gate.undo_all()
    assert summary.ok and "brought back up" in summary.results[0].message
    assert b.sim.model.feed_up("A")
    assert not any(f["active"] for f in b.control.faults())
    assert b.store.actions(RUN_ID)[0].undo_outcome == "done"


def test_feed_on_a_real_rack_switches_its_outlets_and_restores_found_state(bench: Callable[..., Bench]) -> None:
    b = bench()
    b.rack.driver("pdu-a").set_outlet(2, False)
    b.gate.feed("A", False)
    assert b.outlet_states("pdu-a") == {1: False, 2: False}
    assert b.outlet_states("pdu-b") == {1: True, 2: True}  # the other feed is not touched
    b.gate.undo_all()
    assert b.outlet_states("pdu-a") == {1: True, 2: False}  # found off, left off
    b.rack.driver("pdu-a").set_outlet(2, True)


def test_interrupted_action_is_undone_from_what_the_device_says(
    bench: Callable[..., Bench], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C half-way through a feed drop: the first outlet switched, the second never."""
    b = bench()
    pdu = b.rack.driver("pdu-a")
    real = pdu.set_outlet
    calls: list[int] = []

    def interrupted(outlet: int, on: bool) -> None:
        calls.append(outlet)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(outlet, on)

    monkeypatch.setattr(pdu, "set_outlet", interrupted)
    with pytest.raises(KeyboardInterrupt):
        b.gate.feed("A", False)
    monkeypatch.setattr(pdu, "set_outlet", real)
    assert b.outlet_states("pdu-a") == {1: False, 2: True}
    assert b.store.actions(RUN_ID)[0].undo_pending  # logged before acting
    summary = b.gate.undo_all()
    assert summary.ok and summary.results[0].message == "switched back: pdu-a outlet 1 on"
    assert b.outlet_states("pdu-a") == {1: True, 2: True}


def test_an_action_on_a_device_known_down_is_not_sent_and_needs_no_undo(bench: Callable[..., Bench]) -> None:
    b = bench()
    b.rack.health.mark_down("node02", "feed A dropped under full load")
    with pytest.raises(DeviceDown, match=r"node02 \(127.0.0.1:\d+\): start_load: down since feed A dropped"):
        b.gate.gpu_load("node02", 1.0)
    assert b.gate.pending() == 0  # nothing to undo at the end of the run
    (action,) = b.store.actions(RUN_ID)
    assert (action.device, action.undo_outcome) == ("node02", "skipped")
    assert action.undo_message.startswith("not done: node02 (") and "down since feed A dropped" in action.undo_message
    b.rack.health.mark_up("node02")
    assert all(g.utilization_pct == pytest.approx(0) for g in b.rack.driver("node02").gpus())  # never started


def test_failed_undo_is_recorded_and_the_others_still_run(own_sim: SimulatedRack, bench: Callable[..., Bench]) -> None:
    sim = own_sim
    b = bench(on=sim, mutate=lambda d: _devices(d)["pdu-b"].update(timeout_s=0.3, options={"retries": 0}))
    first = b.gate.outlet("pdu-a", 1, False)  # node01 PSU1
    broken = b.gate.outlet("pdu-b", 2, False)  # node02 PSU2: node02 stays up on PSU1 for the cap
    last = b.gate.power_cap("bmc-node02", 3000)
    sim.servers["pdu-b"].stop()  # pdu-b goes dark before teardown
    summary = b.gate.undo_all()
    assert [(r.action_id, r.outcome) for r in summary.results] == [(last, "done"), (broken, "failed"), (first, "done")]
    assert "pdu-b" in summary.failed[0].message
    with pytest.raises(UndoError, match=r"(?s)1 of 3 undos failed.*action \d+ on pdu-b"):
        summary.raise_for_failures()
    assert b.outlet_states("pdu-a") == {1: True, 2: True}
    assert b.rack.driver("bmc-node02").power_limit()[0] is None
    rows = {a.action_id: a for a in b.store.actions(RUN_ID)}
    assert [rows[i].undo_outcome for i in (first, broken, last)] == ["done", "failed", "done"]
    assert "DeviceTimeout" in rows[broken].undo_message or "DeviceError" in rows[broken].undo_message
    assert b.gate.undo_all().results == ()  # idempotent: the failed one is not retried silently


def test_scoped_undoes_only_its_own_actions(bench: Callable[..., Bench]) -> None:
    b = bench()
    outside = b.gate.outlet("pdu-a", 1, False)  # node01 PSU1
    with b.gate.scoped():
        b.gate.outlet("pdu-b", 2, False)
        with pytest.raises(RuntimeError), b.gate.scoped():  # an inner step that fails is still undone
            b.gate.power_cap("bmc-node02", 3000)
            raise RuntimeError("step failed")
        assert b.rack.driver("bmc-node02").power_limit()[0] is None
        assert b.outlet_states("pdu-b") == {1: True, 2: False}
    assert b.outlet_states("pdu-b") == {1: True, 2: True}
    assert b.outlet_states("pdu-a") == {1: False, 2: True}  # made outside the scope: still off
    assert b.gate.pending() == 1
    outcomes = {a.action_id: a.undo_outcome for a in b.gate.actions()}
    assert outcomes[outside] == "pending" and sorted(outcomes.values()) == ["done", "done", "pending"]
    b.gate.undo_all()
    assert b.outlet_states("pdu-a") == {1: True, 2: True}


def test_scope_raises_undo_failures(own_sim: SimulatedRack, bench: Callable[..., Bench]) -> None:
    sim = own_sim
    b = bench(on=sim, mutate=lambda d: _devices(d)["pdu-b"].update(timeout_s=0.3, options={"retries": 0}))
    with pytest.raises(UndoError, match="on pdu-b"), b.gate.scoped():
        b.gate.outlet("pdu-b", 2, False)
        sim.servers["pdu-b"].stop()
    assert b.gate.pending() == 0


def test_unknown_device_or_feed_is_a_config_error(bench: Callable[..., Bench]) -> None:
    b = bench()
    from rackval.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no device named 'pdu-z'"):
        b.gate.outlet("pdu-z", 1, False)
    with pytest.raises(ConfigError, match="is a bmc, not a pdu"):
        b.gate.outlet("bmc-node01", 1, False)
    with pytest.raises(ConfigError, match="no PDU or power shelf lists feed 'C'"):
        b.gate.feed("C", False)
    with pytest.raises(DeviceError, match="reports no outlet 9"):
        b.gate.outlet("pdu-a", 9, False)
    assert b.store.actions(RUN_ID) == []


def test_interrupted_undo_all_resumes_where_it_stopped(
    bench: Callable[..., Bench], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C during teardown: the undos not yet finished stay stacked for the next call."""
    b = bench()
    older = b.gate.outlet("pdu-a", 1, False)
    newer = b.gate.outlet("pdu-b", 2, False)
    pdu_b = b.rack.driver("pdu-b")
    monkeypatch.setattr(pdu_b, "set_outlet", lambda outlet, on: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        b.gate.undo_all()
    assert b.gate.pending() == 2
    assert all(a.undo_pending for a in b.store.actions(RUN_ID))
    monkeypatch.undo()
    summary = b.gate.undo_all()
    assert [(r.action_id, r.outcome) for r in summary.results] == [(newer, "done"), (older, "done")]
    assert b.outlet_states("pdu-a") == {1: True, 2: True} and b.outlet_states("pdu-b") == {1: True, 2: True}


def test_close_undoes_and_atexit_hook_is_removed(bench: Callable[..., Bench], monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from rackval.harness.safety import gate as gate_module

    hooks: list[Callable[[], None]] = []
    # the gate's view of atexit only: a global patch would also catch other libraries' hooks
    # (pyvisa's ResourceManager unregisters its own when collected, mid-test)
    monkeypatch.setattr(gate_module, "atexit", SimpleNamespace(register=hooks.append, unregister=hooks.remove))
    b = bench()
    b.gate.register_atexit()
    b.gate.register_atexit()  # once only
    assert len(hooks) == 1
    b.gate.outlet("pdu-a", 1, False)
    hooks[0]()  # what the interpreter would run at exit if the plugin never got to undo
    assert b.outlet_states("pdu-a") == {1: True, 2: True}
    assert b.store.actions(RUN_ID)[0].undo_outcome == "done"
    b.gate.outlet("pdu-a", 2, False)
    summary = b.gate.close()
    assert summary.ok and len(summary.results) == 1
    assert hooks == []
    assert b.outlet_states("pdu-a") == {1: True, 2: True}
    assert b.gate.close().results == ()
