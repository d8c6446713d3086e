"""The simulator's control channel, and plans driving the virtual clock and faults through it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from rackval.core.errors import DeviceError
from rackval.harness.simproc import SimProcess
from rackval.sim.clock import SimClock
from rackval.sim.control import ControlClient, ControlServer
from rackval.sim.model import RackModel
from rackval.sim.reference import REFERENCE_PARAMS, RackSize

REPO = Path(__file__).resolve().parents[2]


def run_plan_file(plan: Path, sim: SimProcess, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run one plan file with pytest, as an engineer would, against an already running simulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(plan), "-q", "-p", "no:cacheprovider", "--rack", str(sim.rack_file),
         "--spec", str(REPO / "specs" / "sim-reference.yaml"), "--report-dir", str(tmp_path / "reports")],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env, check=False,
    )  # fmt: skip


@pytest.fixture
def control() -> Iterator[tuple[RackModel, ControlServer]]:
    model = RackModel(RackSize(nodes=2, psus_per_node=4), SimClock(0.0), REFERENCE_PARAMS)
    server = ControlServer(model, "tok-123")
    try:
        yield model, server
    finally:
        server.stop()


def test_token_is_required(control: tuple[RackModel, ControlServer]) -> None:
    _, server = control
    assert httpx.get(f"{server.url}/clock", trust_env=False).status_code == 401
    wrong = ControlClient(server.url, "not-the-token")
    with pytest.raises(DeviceError, match="HTTP 401"):
        wrong.now()
    wrong.close()


def test_clock_refuses_non_finite_advances(control: tuple[RackModel, ControlServer]) -> None:
    """NaN compares false with everything: accepted, it froze the virtual clock for the rest of the run."""
    model, server = control
    t0 = model.clock.now()
    for text in ("NaN", "Infinity", "-Infinity", "-5"):
        reply = httpx.post(
            f"{server.url}/clock/advance", content=f'{{"seconds": {text}}}', trust_env=False,
            headers={"Authorization": "Bearer tok-123", "Content-Type": "application/json"},
        )  # fmt: skip
        assert reply.status_code == 400, (text, reply.text)
        assert "a finite number >= 0" in reply.json()["error"]
    client = ControlClient(server.url, "tok-123")
    assert client.advance(10) == pytest.approx(t0 + 10)  # the clock still moves
    client.close()


def test_clock_advances_and_faults_reach_the_model(control: tuple[RackModel, ControlServer]) -> None:
    model, server = control
    client = ControlClient(server.url, "tok-123")
    t0 = client.now()
    assert client.advance(1800) == pytest.approx(t0 + 1800)
    assert model.clock.now() == pytest.approx(t0 + 1800)

    before_b = model.feed_power_w("B")
    fault_id = client.inject("feed_loss", "A")
    assert not model.feed_up("A")
    assert model.feed_power_w("B") > 1.8 * before_b  # feed B now carries the whole rack
    listed = client.faults()
    assert [(f["id"], f["kind"], f["active"]) for f in listed] == [(fault_id, "feed_loss", True)]
    client.clear(fault_id)
    assert model.feed_up("A")

    with pytest.raises(DeviceError, match=r"HTTP 400: .*unknown fault kind 'toaster_fire'"):
        client.inject("toaster_fire", "node01")
    with pytest.raises(DeviceError, match="HTTP 404"):
        client.clear("no-such-fault")
    client.close()


PLAN = textwrap.dedent(
    """
    def test_feed_a_loss_moves_power_to_feed_b(rack, clock, sim_faults, measure):
        a, b = rack.driver("analyzer-a"), rack.driver("analyzer-b")
        before_a, before_b = a.power_watts(), b.power_watts()
        t0 = clock.now()
        sim_faults.inject("feed_loss", "A")
        clock.sleep(1800)  # half an hour on feed B alone, in virtual time
        assert clock.now() - t0 >= 1800
        after_b = b.power_watts()
        measure("feed B share", after_b / (before_a + before_b), "ratio")
        assert a.power_watts() < 1.0
        # Feed B carries the whole rack; the total drops a little because the surviving PSUs run
        # at twice the load, higher on their efficiency curve.
        assert 0.90 < after_b / (before_a + before_b) < 1.0
    """
)


def test_plan_uses_virtual_clock_and_fault_fixture(tmp_path: Path) -> None:
    sim = SimProcess(tmp_path / "sim", nodes=4)
    try:
        plan = tmp_path / "test_feed_plan.py"
        plan.write_text(PLAN)
        result = run_plan_file(plan, sim, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1 passed" in result.stdout
    finally:
        sim.stop()


SAFETY_PLAN = textwrap.dedent(
    """
    def test_outlet_off_through_the_gate(rack, safety):
        safety.outlet("pdu-a", 1, False)
        assert not {o.outlet: o.on for o in rack.driver("pdu-a").outlets()}[1]

    def test_run_ends_with_a_failure(rack):
        assert False, "a failing test must not stop the undo"
    """
)


def test_destructive_actions_are_undone_at_the_end_of_the_run(tmp_path: Path) -> None:
    import sqlite3

    from rackval.harness.inventory import load_inventory
    from rackval.harness.rack import Rack

    sim = SimProcess(tmp_path / "sim", nodes=2)
    try:
        plan = tmp_path / "test_safety_plan.py"
        plan.write_text(SAFETY_PLAN)
        result = run_plan_file(plan, sim, tmp_path)
        assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr
        rack = Rack(load_inventory(sim.rack_file))
        assert {o.outlet: o.on for o in rack.driver("pdu-a").outlets()}[1]  # switched back on
        rack.close()
        db = sqlite3.connect(tmp_path / "reports" / "results.sqlite")
        rows = db.execute("SELECT device, operation, undo_outcome FROM actions").fetchall()
        assert len(rows) == 1 and rows[0][0] == "pdu-a" and rows[0][2] == "done", rows
    finally:
        sim.stop()


TELEMETRY_PLAN = textwrap.dedent(
    """
    from rackval.harness.telemetry import analyzer_channels

    def test_short_soak_reports_progress(rack, telemetry, clock, measure):
        sampler = telemetry(analyzer_channels(rack, "analyzer-a"), progress_every_s=0.0)
        t0 = clock.now()
        stats = sampler.run(5)
        assert stats.ticks == 5 and stats.missed_ticks == 0
        assert clock.now() - t0 >= 5
        measure("feed A power max", sampler.summary("analyzer-a/power_w").max, "W")
    """
)


def test_telemetry_fixture_samples_in_virtual_time_and_shows_progress(tmp_path: Path) -> None:
    import sqlite3

    sim = SimProcess(tmp_path / "sim", nodes=2)
    try:
        plan = tmp_path / "test_soak_plan.py"
        plan.write_text(TELEMETRY_PLAN)
        result = run_plan_file(plan, sim, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[telemetry]" in result.stdout and "test_short_soak_reports_progress" in result.stdout
        db = sqlite3.connect(tmp_path / "reports" / "results.sqlite")
        (count,) = db.execute(
            "SELECT SUM(n_samples) FROM sample_segments g JOIN sample_series s ON s.series_id = g.series_id"
            " WHERE channel = 'analyzer-a/power_w'"
        ).fetchone()
        assert count == 5
    finally:
        sim.stop()


def test_plans_rehearse_on_a_rack_described_in_a_params_file(tmp_path: Path) -> None:
    """An engineer copies racks/sim-model-params.yaml, changes the design, and runs the plans on it."""
    doc = yaml.safe_load((REPO / "racks" / "sim-model-params.yaml").read_text())
    doc["size"].update({"nodes": 3, "gpus_per_node": 4, "pdu_vendor_b": "servertech", "snmp_switches": 0})
    params = tmp_path / "my-design.yaml"
    params.write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "test_plans/test_identity.py", "-q", "-p", "no:cacheprovider",
         "--sim-params", str(params), "--report-dir", str(tmp_path / "reports")],
        cwd=REPO, capture_output=True, text=True, timeout=180, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rack = yaml.safe_load((tmp_path / "reports" / "latest" / "sim" / "rack.yaml").read_text())
    assert len(rack["nodes"]) == 3
    drivers = {d["driver"] for d in rack["devices"].values() if d["kind"] in ("pdu", "switch")}
    assert "servertech-sentry4" in drivers and "snmp-switch" not in drivers

    bad = tmp_path / "bad.yaml"
    bad.write_text("size:\n  nodes: 3\n  gpu_per_node: 4\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "test_plans/test_identity.py", "-q", "-p", "no:cacheprovider",
         "--sim-params", str(bad), "--report-dir", str(tmp_path / "reports-bad")],
        cwd=REPO, capture_output=True, text=True, timeout=180, env=env, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "bad.yaml" in result.stdout + result.stderr and "gpu_per_node" in result.stdout + result.stderr
