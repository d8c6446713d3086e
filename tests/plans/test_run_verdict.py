"""What the end of a real run says: the verdict in words, the worst findings, what the rack may be left with.

Run as an engineer runs it (pytest in a subprocess against a 2-node simulated rack):

- a spec whose limits put healthy idle readings inside their marginal band, written for another
  design revision than the simulated rack's: the run passes, but the terminal, the stored run
  outcome, JUnit and the report all say PASS WITH MARGINALS, list the marginal requirements with
  device and value against limit, and warn about the revision;
- a plan whose undos fail, one at the end of a ``safety.scoped()`` block inside a test and one at
  the session's close: both are counted under "rack may be left changed", in the terminal and in
  the report (before, only the close's were).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rackval.harness.simproc import SimProcess
from tests.support.plan_runs import run_plans, spec_variant

REPO = Path(__file__).resolve().parents[2]


def test_marginal_run_says_pass_with_marginals_and_warns_about_the_revision(tmp_path: Path) -> None:
    # healthy 2-node idle: ~1150 W per node, ~2.33 kW for the rack; both inside 5 % of these limits
    spec = spec_variant(tmp_path / "tight.yaml", idle_node_power={"max": 1200}, idle_rack_power={"max": 2.4})
    doc = yaml.safe_load(spec.read_text())
    doc["spec"]["design_revision"] = "sim-rev-B"  # the simulated rack is sim-rev-A
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    reports = tmp_path / "reports"
    result = run_plans(reports, "--sim-nodes", "2", "--spec", str(spec), plans=("test_plans/test_idle_power.py",))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr  # marginal is not failed ...
    block = out[out.index("= rackval =") :]
    lines = block.splitlines()
    # ... and not hidden under PASS: the rackval block ends with the verdict in words
    assert lines[-2] == "verdict: PASS WITH MARGINALS", block
    assert "2 marginal requirements; worst first:" in block, block
    findings = [line for line in lines if line.startswith("  MARGINAL ")]
    assert len(findings) == 3, block  # two nodes and the rack
    for device in ("bmc-node01", "bmc-node02"):
        assert any(re.fullmatch(
            rf"  MARGINAL idle_node_power: node idle power on {device} = 11\d\d(\.\d+)? W vs <= 1200 W"
            r" \(margin \+\d+(\.\d+)? W, \+\d(\.\d+)? %\)", line) for line in findings), findings  # fmt: skip
    assert any("idle_rack_power: idle rack power on analyzer-a+analyzer-b" in line for line in findings), findings
    assert "WARNING: design revision mismatch: the spec is for design revision 'sim-rev-B', the rack file says" \
           " 'sim-rev-A'" in block  # fmt: skip
    assert "FAIL" not in block and "RACK MAY BE LEFT CHANGED" not in block

    with sqlite3.connect(reports / "results.sqlite") as db:
        (outcome,) = db.execute("SELECT outcome FROM runs").fetchone()
    assert outcome == "pass with marginals"
    latest = reports / "latest"
    suite = ET.parse(latest / "junit.xml").getroot()
    assert suite.find("properties/property[@name='verdict']").get("value") == "PASS WITH MARGINALS"
    report = (latest / "report.html").read_text()
    assert 'class="verdict verdict-PASS-WITH-MARGINALS" id="verdict">PASS WITH MARGINALS<' in report
    assert 'id="revision-warning"' in report and "&#39;sim-rev-B&#39;" in report
    table = report[report.index('id="findings"') : report.index("</table>", report.index('id="findings"'))]
    assert table.count("<td>idle_node_power</td>") == 2 and table.count("badge-marginal") == 3


# Two undos that fail: one at the end of a scope inside a test, one at the session's close.
UNDO_PLAN = """
from rackval.harness.plugin.run import run_of


def test_scoped_undo_fails_inside_the_test(safety, sim_faults):
    with safety.scoped():
        safety.outlet("pdu-b", 2, False)
        sim_faults.inject("device_silent", "pdu-b")  # cleared at teardown, after the scope's undo failed


def test_undo_left_for_the_close_fails(request, safety):
    safety.outlet("pdu-a", 1, False)
    run_of(request.config).control.inject("device_silent", "pdu-a")  # still silent at the session's close
"""


@pytest.fixture
def quick_rack(tmp_path: Path) -> Iterator[Path]:
    """A 2-node simulated rack whose PDUs give up after 0.3 s without retrying (a silent PDU
    then fails an undo at once), stopped by PID at the end."""
    sim = SimProcess(tmp_path / "sim", nodes=2)
    try:
        doc = yaml.safe_load(sim.rack_file.read_text())
        for pdu in ("pdu-a", "pdu-b"):
            doc["devices"][pdu].update(timeout_s=0.3, options={"retries": 0})
        rack = sim.rack_file.with_name("quick.yaml")
        rack.write_text(yaml.safe_dump(doc, sort_keys=False))
        yield rack
    finally:
        sim.stop()
        assert sim.proc.returncode is not None


def test_every_failed_undo_is_counted_inside_tests_and_at_the_close(tmp_path: Path, quick_rack: Path) -> None:
    plan = tmp_path / "test_undo_plan.py"
    plan.write_text(UNDO_PLAN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(plan), "-q", "-p", "no:cacheprovider", "--rack", str(quick_rack),
         "--spec", str(REPO / "specs" / "sim-reference.yaml"), "--report-dir", str(tmp_path / "reports")],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env, check=False,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 1, out + result.stderr  # the scope's UndoError fails its test
    block = out[out.index("= rackval =") :]
    assert "RACK MAY BE LEFT CHANGED: 2 actions whose undo failed or never ran" in block, block
    undo_lines = [line for line in block.splitlines() if line.startswith("  action ")]
    assert len(undo_lines) == 2, block
    assert any("on pdu-b: switch outlet 2 off;" in line and "FAILED" in line for line in undo_lines), undo_lines
    assert any("on pdu-a: switch outlet 1 off;" in line and "FAILED" in line for line in undo_lines), undo_lines
    assert block.splitlines()[-2] == "verdict: FAIL", block

    report = (tmp_path / "reports" / "latest" / "report.html").read_text()
    banner = report[report.index('id="undo-banner"') : report.index("</div>", report.index('id="undo-banner"'))]
    assert "2 actions" in banner and "switch outlet 2 off" in banner and "switch outlet 1 off" in banner
