"""The power-sequencing, load-soak, feed-redundancy and power-capping plans, both ways round.

Each plan must pass on a healthy simulated rack and fail, naming the device and the cause, on a
rack with the matching fault; on a rack that forbids destructive actions each is skipped with
the gate's reason. The plans run as an engineer runs them (pytest in a subprocess against a
4-node simulated rack). To keep CI time down there are three runs:

1. healthy rack, every plan: all pass, and the rack is left as found (every gate action undone);
2. one faulted rack carrying every fault at once (on different nodes or plans, so each failure
   is attributable) and the reference limits: the soak names node02 (SwThermal, temperature)
   and node03 (a stopped fan), the redundancy plan names node01 (its feed-B PSU failed, so
   losing feed A takes it down), capping names only bmc-node04 (power_cap_slow: its capping
   loop is 30x slower than the CorrectionInMs it advertises) and sequencing only bmc-node03
   (bmc_slow_boot: 60 s more than a healthy BMC after power-on);
3. the healthy rack's file with ``allow_destructive: false``: every plan skipped with the reason.

A fast in-process test covers ``RedfishBmc.fans()``, the driver method the soak added.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.drivers.bmc.redfish import RedfishBmc
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.harness.simproc import SimProcess
from rackval.sim.faults import make_fault
from rackval.sim.model import RackModel, RackSize
from rackval.sim.redfish_server import start_bmc_redfish
from tests.support import plan_runs
from tests.support.plan_runs import (
    actions,
    failed_tests,
    failure_text,
    locked_rack,
    measurements,
    spec_variant,
)

FAULTS = """
- {kind: psu_failure, device: node01, component: PSU2}
- {kind: gpu_overheat, device: node02, component: GPU3}
- {kind: fan_failure, device: node03, component: Fan2}
- {kind: power_cap_slow, device: node04}
- {kind: bmc_slow_boot, device: node03, params: {extra_s: 60}}
"""
# Redundancy after soak and capping: it leaves node01 tripped (its restore policy keeps it off),
# which would otherwise stop their GPU load from starting on node01 at all.
FAULTED_ORDER = (
    "test_plans/test_load_soak.py",
    "test_plans/test_power_capping.py",
    "test_plans/test_feed_redundancy.py",
    "test_plans/test_power_sequencing.py",
)
NODES = ("node01", "node02", "node03", "node04")


def run_plans(report_dir, *args, plans=plan_runs.GROUP_B_PLANS, timeout=300):
    """The group's plans by default (see tests/support/plan_runs.py)."""
    return plan_runs.run_plans(report_dir, *args, plans=plans, timeout=timeout)


def test_healthy_rack_passes_and_is_left_as_found(tmp_path: Path) -> None:
    spec = spec_variant(tmp_path / "ci-spec.yaml")  # the reference limits, with CI's shorter soak
    result = run_plans(tmp_path / "reports", "--sim-nodes", "4", "--spec", str(spec))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "SKIPPED" not in out and "7 passed" in out, out
    results = tmp_path / "reports" / "results.sqlite"
    done = actions(results)
    assert done and all(undo == "done" for *_, undo in done), done
    ops = [op for _, op, _ in done]
    assert sum(op.startswith("switch outlet") and op.endswith(" off") for op in ops) == 16, ops
    assert {op for op in ops if op.startswith("drop feed")} == {"drop feed A", "drop feed B"}, ops
    assert sum(op.startswith("set power limit") for op in ops) == 4, ops
    # sequencing timed every node: BMC 40 s, host 45 s, OS ~165 s after its first outlet
    bmc = measurements(results, "time to BMC ready")
    assert len(bmc) == 4 and all(35 <= v <= 60 and o in ("pass", "marginal") for *_, v, o in bmc), bmc
    os_up = measurements(results, "time to OS reachable over SSH")
    assert len(os_up) == 4 and all(160 <= v <= 240 for *_, v, _ in os_up), os_up
    (gap,) = measurements(results, "smallest gap between outlet switch-ons")
    assert gap[2] >= 1.0, gap
    currents = measurements(results, "highest sampled feed current during power-on")
    assert {d for d, *_ in currents} == {"analyzer-a", "analyzer-b"}, currents
    # the soak: per-node GPU figures, fans from the BMCs, rack power from both analyzers
    assert len(measurements(results, "GPU throttled time during soak")) == 4
    assert len(measurements(results, "fan speed under full load")) == 4 * 6
    (steady,) = measurements(results, "full-load rack steady power")
    assert steady[0] == "analyzer-a+analyzer-b" and 20_000 < steady[2] < 30_000, steady
    # capping settled under the cap within a couple of samples on every BMC
    caps = measurements(results, "power cap response time")
    assert len(caps) == 4 and all(v <= 3 for *_, v, _ in caps), caps
    # redundancy: each feed carried the whole rack, nobody went down
    assert {v for *_, v, _ in measurements(results, "node down (feed A lost)")} == {0.0}
    assert {v for *_, v, _ in measurements(results, "node down (feed B lost)")} == {0.0}


@pytest.fixture(scope="module")
def faulted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    base = tmp_path_factory.mktemp("faulted")
    faults = base / "faults.yaml"
    faults.write_text(FAULTS)
    spec = spec_variant(base / "ci-spec.yaml")  # the reference limits: every failure is a fault's
    result = run_plans(
        base / "reports", "--sim-nodes", "4", "--sim-faults", str(faults), "--spec", str(spec), plans=FAULTED_ORDER
    )
    return result.stdout + result.stderr, base / "reports" / "results.sqlite"


def test_faulted_rack_fails_each_plan_naming_device_and_cause(faulted_run: tuple[str, Path]) -> None:
    out, _ = faulted_run
    failed = failed_tests(out)
    expected = {
        "test_full_load_power_and_thermal_soak",
        "test_rack_rides_through_feed_loss",
        "test_staggered_power_on_from_all_off",
        "test_power_cap_is_met_in_time[node04]",  # its BMC's capping loop is slow; the others are not
    }
    assert failed == expected, out

    soak = failure_text(out, "test_full_load_power_and_thermal_soak")
    assert "gpu_throttle_time" in soak and "on node02 [soak] (GPU3: SwThermal)" in soak, soak
    assert "full_load_gpu_temperature" in soak and "on node02 [soak] (hottest: GPU3)" in soak, soak
    assert "fan_speed" in soak and "on bmc-node03 [node03 Fan2] = 0 rpm" in soak, soak
    assert "node01" not in soak and "node04" not in soak, soak  # healthy nodes are not blamed

    feed = failure_text(out, "test_rack_rides_through_feed_loss")
    down = "feed_loss_node_outages: node down (feed A lost) on node01 [feed A lost] (host PowerState Off (bmc-node01))"
    assert down in feed, feed
    assert "(feed A lost) on node03" not in feed and "(feed A lost) on node04" not in feed, feed

    cap = failure_text(out, "test_power_cap_is_met_in_time[node04]")
    assert "bmc-node04" in cap and "power_cap_response_time" in cap, cap

    seq = failure_text(out, "test_staggered_power_on_from_all_off")
    assert "bmc_ready_time: time to BMC ready on bmc-node03" in seq, seq  # 40 s boot + 60 s
    assert not any(f"time to BMC ready on bmc-{n}" in seq for n in NODES if n != "node03"), seq


def test_faulted_run_restores_the_rack(faulted_run: tuple[str, Path]) -> None:
    """Every gate action is undone, except stopping the load of the node that tripped (it has no
    power to run a load, and its SSH does not answer): that failure is recorded, not hidden."""
    _, results = faulted_run
    done = actions(results)
    failed = [(d, op) for d, op, undo in done if undo != "done"]
    assert failed == [("node01", "start GPU load at 100%")], failed
    assert ("feed A", "drop feed A", "done") in done and ("feed B", "drop feed B", "done") in done, done


def test_plans_skip_when_destructive_actions_are_not_allowed(tmp_path: Path) -> None:
    sim = SimProcess(tmp_path / "sim", nodes=4)
    try:
        locked = locked_rack(sim.rack_file)
        result = run_plans(tmp_path / "reports", "--rack", str(locked), timeout=120)
    finally:
        sim.stop()
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "7 skipped" in out and "passed" not in out and "failed" not in out, out
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert any("power sequencing not run" in s for s in skips), skips
    assert any("full-load soak not run" in s for s in skips), skips
    assert any("feed redundancy not run" in s for s in skips), skips
    assert any("power capping of node01 not run" in s for s in skips), skips
    assert all("destructive actions are not allowed for this rack" in s for s in skips), skips
    assert actions(tmp_path / "reports" / "results.sqlite") == []


@pytest.fixture
def sim_bmc() -> Iterator[tuple[RackModel, RedfishBmc]]:
    model = RackModel(RackSize(nodes=1))
    server = start_bmc_redfish(model, "node01", username="admin", password="pw-fans-1234")
    config = DeviceConfig(
        name="bmc-node01", kind="bmc", driver="redfish", host=server.host, port=server.port,
        credentials=Credentials(username="admin", password=Secret("pw-fans-1234")),
        options={"scheme": "http"}, timeout_s=5.0,
    )  # fmt: skip
    bmc = RedfishBmc(config)
    try:
        yield model, bmc
    finally:
        bmc.close()
        server.stop()


def test_redfish_fans_report_rpm_and_a_stopped_fan(sim_bmc: tuple[RackModel, RedfishBmc]) -> None:
    model, bmc = sim_bmc
    fans = bmc.fans()
    assert list(fans) == [f"Fan{i}" for i in range(1, 7)], fans
    assert all(rpm is not None and rpm > 0 for rpm in fans.values()), fans
    model.inject(make_fault("fan_failure", "node01", "Fan2"))
    fans = bmc.fans()
    assert fans["Fan2"] == 0 and fans["Fan1"] == 16000, fans  # the others run at 100 %
