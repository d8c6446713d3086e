"""End to end: `pytest test_plans/` as a user runs it, in a subprocess, against the simulated rack.

These are the README's main job and its failure modes: a healthy simulated rack passes and
leaves a report, JUnit and stored measurements; a wrong identity or an unreachable device fails
only the tests that need it, naming device, address and operation; a broken rack file stops the
run before any device is touched.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rackval.harness.simproc import SimProcess

REPO = Path(__file__).resolve().parents[2]


EXAMPLE_SITE_SECRETS = ("RACK7_PDU_AUTH_KEY", "RACK7_PDU_PRIV_KEY", "RACK7_BMC_PASSWORD", "RACK7_SWITCH_PASSWORD")


def run_plans(
    tmp_path: Path, *args: str, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "test_plans/", "-p", "no:cacheprovider", "-q",
         "--report-dir", str(tmp_path / "reports"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sim_rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    sim = SimProcess(tmp_path_factory.mktemp("sim"), nodes=4)
    try:
        yield sim
    finally:
        sim.stop()
        assert sim.proc.returncode is not None  # stopped by PID, not left running


def test_main_job_passes_on_simulated_rack_and_writes_report(tmp_path: Path) -> None:
    # The README's main job exactly (32 nodes, the 30-minute virtual soak): ~165 s here.
    result = run_plans(tmp_path, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    reports = tmp_path / "reports"
    latest = reports / "latest"
    assert latest.is_symlink()
    report = (latest / "report.html").read_text()
    assert f"report:  {reports}" in out
    assert "virtual/wall = " in out  # the run states its own speed on the simulator clock
    assert "PASS" in report
    assert "idle rack power" in report and "LLDP mismatches" in report

    suite = ET.parse(latest / "junit.xml").getroot()
    assert int(suite.get("failures")) == 0 and int(suite.get("tests")) >= 70  # 32 nodes: per-device tests
    props = [p.get("name") for p in suite.iter("property")]
    assert any(name.startswith("idle rack power") for name in props)

    db = sqlite3.connect(reports / "results.sqlite")
    (outcome,) = db.execute("SELECT outcome FROM runs").fetchone()
    assert outcome == "pass"
    rows = db.execute("SELECT name, value, unit, high, outcome FROM measurements WHERE name = 'idle rack power'")
    _, value, unit, high, m_outcome = rows.fetchone()
    assert unit == "W" and high == 42000.0 and 30000 < value < 42000 and m_outcome in ("pass", "marginal")
    # every measurement a test recorded carries the run clock, the time base of the telemetry samples
    no_clock_sql = "SELECT COUNT(*) FROM measurements WHERE test_id IS NOT NULL AND clock_s IS NULL"
    (no_clock,) = db.execute(no_clock_sql).fetchone()
    assert no_clock == 0
    (ratio,) = db.execute("SELECT value FROM measurements WHERE name = 'run virtual/wall time ratio'").fetchone()
    assert ratio > 1  # the 30-minute soak ran on virtual time, not in half an hour
    devices = dict(db.execute("SELECT name, serial FROM devices"))
    assert all(devices.values()), devices  # every device identified itself
    # the simulator's generated secrets do not outlive the run, and never reach the report
    assert not (latest / "sim" / "secrets").exists()
    sim_rack = yaml.safe_load((latest / "sim" / "rack.yaml").read_text())
    assert "password" in sim_rack["credentials"]["bmc"]
    assert "file" in sim_rack["credentials"]["bmc"]["password"]


def test_wrong_identity_and_unreachable_bmc_fail_only_their_tests(tmp_path: Path, sim_rack: SimProcess) -> None:
    rack = yaml.safe_load(sim_rack.rack_file.read_text())
    rack["devices"]["pdu-a"]["expect"]["serial"] = "NOT-THE-SERIAL"
    # a port nothing listens on: bind and close to get one that is free right now
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    rack["devices"]["bmc-node02"]["port"] = dead_port
    rack["devices"]["bmc-node02"]["timeout_s"] = 2
    rack_file = sim_rack.rack_file.parent / "broken.yaml"
    rack_file.write_text(yaml.safe_dump(rack))

    result = run_plans(tmp_path, "--rack", str(rack_file), "-rf")
    out = result.stdout
    assert result.returncode == 1, out
    failed = {line.split()[1].split("::")[-1] for line in out.splitlines() if line.startswith("FAILED")}
    assert {
        "test_device_answers_with_expected_identity[pdu-a]",
        "test_device_answers_with_expected_identity[bmc-node02]",
        "test_bmcs_agree_with_analyzer",
        "test_node_idle_power_and_outlets_agree[node02]",
    } <= failed, out
    # Only what needs the broken BMC or the wrong serial fails, and each failure says which.
    suite = ET.parse(tmp_path / "reports" / "latest" / "junit.xml").getroot()
    failures = {case.get("name"): case.find("failure") for case in suite.iter("testcase")}
    for name, failure in failures.items():
        if failure is not None:
            message = failure.get("message", "") + (failure.text or "")
            assert "bmc-node02" in message or "NOT-THE-SERIAL" in message, (name, message)
    assert sum(f is None for f in failures.values()) > len(failed)  # most of the suite still passed
    assert "serial: rack file says 'NOT-THE-SERIAL'" in out
    assert f"bmc-node02 (127.0.0.1:{dead_port})" in out
    db = sqlite3.connect(tmp_path / "reports" / "results.sqlite")
    (outcome,) = db.execute("SELECT outcome FROM runs").fetchone()
    assert outcome == "fail"
    # what was measured before and around the failures is kept
    assert db.execute("SELECT COUNT(*) FROM measurements WHERE name = 'idle rack power'").fetchone()[0] == 1
    report = (tmp_path / "reports" / "latest" / "report.html").read_text()
    assert "NOT-THE-SERIAL" in report and "FAIL" in report


def test_bad_rack_file_stops_before_any_device(tmp_path: Path, sim_rack: SimProcess) -> None:
    text = sim_rack.rack_file.read_text().replace("kind: analyzer", "kind: analyser")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "kind: analyser" in t)
    result = run_plans(tmp_path, "--rack", str(bad))
    assert result.returncode == 4, result.stdout + result.stderr  # usage error: nothing ran
    assert f"{bad}:{line}: devices.analyzer-a.kind" in result.stderr
    assert not (tmp_path / "reports" / "results.sqlite").exists()


def test_real_rack_without_spec_is_refused(tmp_path: Path) -> None:
    secrets = {name: "x" for name in EXAMPLE_SITE_SECRETS}
    result = run_plans(tmp_path, "--rack", str(REPO / "racks" / "example-site.yaml"), env=secrets)
    assert result.returncode == 4
    assert "--spec is required with a real rack" in result.stderr


def test_simulator_options_with_a_rack_file_are_refused_not_ignored(tmp_path: Path) -> None:
    """A fault file given with --rack would never be injected (rackval starts no simulator then):
    the run is refused before anything is read from a device."""
    faults = tmp_path / "faults.yaml"
    faults.write_text("- {fault: feed_loss, target: A}\n")
    secrets = {name: "x" for name in EXAMPLE_SITE_SECRETS}
    rack = str(REPO / "racks" / "example-site.yaml")
    result = run_plans(tmp_path, "--rack", rack, "--sim-faults", str(faults), env=secrets)
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"--sim-faults shapes the simulated rack rackval starts without --rack; with --rack {rack}" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_plans(tmp_path, "--rack", rack, "--sim-nodes", "4", "--sim-params", str(faults), env=secrets)
    assert result.returncode == 4 and "--sim-nodes and --sim-params shape the simulated rack" in result.stderr
    assert not (tmp_path / "reports" / "results.sqlite").exists()


def test_a_node_count_below_one_is_one_usage_line(tmp_path: Path) -> None:
    result = run_plans(tmp_path, "--sim-nodes", "0")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "simulated rack: the node count must be at least 1, not 0" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr and "ERROR collecting" not in result.stdout
