"""The liquid-cooled, busbar-fed design in CI: the whole suite on it, and each cooling and shelf
fault failing exactly the plan that should catch it, naming the device.

The plans run as an engineer runs them (pytest in a subprocess) against a 4-tray liquid rack
(``racks/sim-liquid-params.yaml`` with ``--sim-nodes 4``: the same CDU, eight shelves and nine
switch trays, fewer compute trays) and the liquid spec with CI's shorter soak. To keep CI time
down the faults share runs where they break different devices and plans:

1. healthy rack, every plan of ``test_plans/``: all pass (the PDU and feed plans skip: the rack
   has no PDUs), and every gated action (pumps, rectifiers, feeds, loads) is undone;
2. one rack with a clogged cold plate (node02), a leak at node03's tray, a drifting CDU supply,
   a failed pump, a failed rectifier (shelf2) and aged BBUs (shelf3): each liquid plan fails
   naming only its device;
3. a degraded pump: only the pump redundancy plan fails, naming the CDU (with four trays the loop
   is over-provisioned, so the pump is degraded hard enough to starve them alone);
4. the air-cooled reference rack: every liquid plan skips with the reason, none fails.
"""

from __future__ import annotations

from pathlib import Path

from rackval.harness.store import open_store
from tests.support import plan_runs
from tests.support.plan_runs import (
    LIQUID_PARAMS,
    LIQUID_PLANS,
    LIQUID_SPEC,
    actions,
    failed_tests,
    failure_text,
    measurements,
    spec_variant,
)

LIQUID = ("--sim-params", str(LIQUID_PARAMS), "--sim-nodes", "4")
FAULTS = """
- {kind: cold_plate_clogged, device: node02}
- {kind: coolant_leak, device: node03, params: {rate_lpm: 0.05}}
- {kind: supply_temperature_drift, device: cdu1, params: {offset_c: 8.0}}
- {kind: pump_failure, device: cdu1, component: Pump2}
- {kind: rectifier_failure, device: shelf2, component: PSU3}
- {kind: bbu_capacity_reduced, device: shelf3}
"""
COOLING = "test_coolant_loop_under_full_load"
LEAKS = "test_leak_detectors_dry"
PUMPS = "test_rack_stays_cooled_with_one_pump_stopped"
RECTIFIERS = "test_shelf_rides_through_one_rectifier_off"
HOLDUP = "test_bbus_hold_up_the_rack_without_feeds"


def _failed_devices(results: Path, names: tuple[str, ...]) -> set[str]:
    """Devices of the failed measurements named ``names``."""
    return {d for n in names for d, _, _, outcome in measurements(results, n) if outcome == "fail"}


def test_liquid_suite_passes_on_the_healthy_rack(tmp_path: Path) -> None:
    spec = spec_variant(tmp_path / "ci-liquid.yaml", base=LIQUID_SPEC)
    result = plan_runs.run_plans(tmp_path / "reports", *LIQUID, "--spec", str(spec), plans=("test_plans/",),
                                 timeout=420)  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert failed_tests(result.stdout) == set(), out
    for test in (COOLING, LEAKS, PUMPS, RECTIFIERS, HOLDUP):
        assert f"{test} SKIPPED" not in out and f"::{test} - " not in out, out
    results = tmp_path / "reports" / "results.sqlite"
    done = actions(results)
    assert done and all(undo == "done" for *_, undo in done), done
    ops = {(device, op) for device, op, _ in done}
    assert {("cdu1", "stop pump Pump1"), ("cdu1", "stop pump Pump2")} <= ops, ops
    assert {("feed A", "drop feed A"), ("feed B", "drop feed B")} <= ops, ops
    assert sum(op.startswith("switch rectifier") for _, op in ops) == 8, ops
    # every compute tray's flow and energy balance judged; the BBUs came back to full
    assert len(measurements(results, "node coolant flow under full load")) == 4
    balance = measurements(results, "heat into the coolant / node electrical power")
    assert len(balance) == 4 and all(70 < v < 95 for *_, v, _ in balance), balance
    recharge = measurements(results, "BBU recharge time (after feeds A+B dropped)")
    assert len(recharge) == 8 and all(o == "pass" for *_, o in recharge), recharge
    # the soak sampled the loop: the CDU's channels are in the store
    assert "cdu1/secondary/supply_temp_c" in _channels(results), sorted(_channels(results))[:20]


def _channels(results: Path) -> set[str]:
    """Every telemetry channel of the store's run (through the store's API, whatever its layout)."""
    store = open_store(results)
    try:
        (run,) = store.runs()
        return {c.channel for c in store.sample_channels(run.run_id)}
    finally:
        store.close()


def test_cooling_and_shelf_faults_fail_exactly_their_plans(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(FAULTS)
    result = plan_runs.run_plans(tmp_path / "reports", *LIQUID, "--sim-faults", str(faults), plans=LIQUID_PLANS,
                                 timeout=300)  # fmt: skip
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert failed_tests(out) == {COOLING, LEAKS, PUMPS, RECTIFIERS, HOLDUP}, out
    results = tmp_path / "reports" / "results.sqlite"

    # the clogged plate: node02's flow, and only node02's; the drift: the CDU's supply
    assert _failed_devices(results, ("node coolant flow under full load",)) == {"bmc-node02"}, out
    supply = "CDU secondary supply temperature under full load"
    assert _failed_devices(results, (supply,)) == {"cdu1", "cdu1-modbus"}, out
    cooling = failure_text(out, COOLING)
    assert "bmc-node02" in cooling and "cdu1" in cooling and "bmc-node01" not in cooling, cooling
    # the leak: node03's tray detector, as its BMC reports it (the CDU's own detectors stay dry)
    wet = "leak detectors wet or without a state"
    assert _failed_devices(results, (wet,)) == {"bmc-node03"}, out
    assert "bmc-node03 [Tray Critical]" in failure_text(out, LEAKS)
    # the failed pump: redundancy already spent, named, and no pump was stopped on top of it
    pumps = failure_text(out, PUMPS)
    assert "on cdu1 [Pump2 not running (Enabled/Critical)]" in pumps, pumps
    assert not [op for _, op, _ in actions(results) if op.startswith("stop pump")]
    # the failed rectifier: shelf2 only, nothing switched; the aged BBUs: shelf3 only
    assert _failed_devices(results, ("rectifiers not on and healthy",)) == {"shelf2"}, out
    assert "PSU3" in failure_text(out, RECTIFIERS)
    assert not [op for _, op, _ in actions(results) if op.startswith("switch rectifier")]
    assert _failed_devices(results, ("BBU state of health",)) == {"shelf3"}, out
    holdup = failure_text(out, HOLDUP)
    assert "shelf3" in holdup and "shelf1" not in holdup, holdup


def test_degraded_pump_fails_only_the_pump_plan(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("- {kind: pump_degraded, device: cdu1, component: Pump1, params: {head_factor: 0.1}}\n")
    result = plan_runs.run_plans(tmp_path / "reports", *LIQUID, "--sim-faults", str(faults),
                                 plans=LIQUID_PLANS[:2], timeout=300)  # fmt: skip
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert failed_tests(out) == {PUMPS}, out
    results = tmp_path / "reports" / "results.sqlite"
    lowest = measurements(results, "lowest node coolant flow (cdu1 Pump2 stopped)")
    starved = {c for d, c, _, o in lowest if o == "fail" and d == "cdu1"}
    assert starved and all(c.startswith("Pump2 stopped") for c in starved), starved
    assert "cdu1" in failure_text(out, PUMPS)
    assert all(undo == "done" for *_, undo in actions(results))  # Pump2 running again


def test_air_cooled_reference_skips_the_liquid_plans(tmp_path: Path) -> None:
    result = plan_runs.run_plans(tmp_path / "reports", "--sim-nodes", "2", plans=LIQUID_PLANS, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "5 skipped" in out, out
    # -rfs folds the two shelf plans' identical skips into one line
    assert out.count("has no coolant distribution unit (no device of kind 'cdu')") == 2, out
    assert "SKIPPED [2] test_plans/test_power_shelves.py" in out, out
    assert "has no power shelf (no device of kind 'power_shelf')" in out, out
    assert "reports leak detectors (no CDU, no liquid-cooled node)" in out, out
