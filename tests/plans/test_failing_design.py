"""A design that fails: the run ends in bounded time, and its failures name their one root cause.

The design is the reference rack with the GPUs' maximum power raised from 700 W to 800 W (a copy
of racks/sim-model-params.yaml), on a 4-node rack: each node then draws more than the two PSUs of
one feed can carry, so dropping feed A trips every node (its BMC stays up on feed B and logs the
overload). Before device health, every later test on those nodes waited out its own SSH
timeouts, one after the other. Now the feed plan marks the tripped nodes down under the feed
event, and every later test that needs them fails at once with ``DeviceDown`` naming it; the
terminal summary and the report put them all under that one cause.

The run is bounded by a generous subprocess timeout, not a timed assertion (figures live in
``bench/bench_failing_design.py``).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.support import plan_runs
from tests.support.plan_runs import failed_tests, failure_text, spec_variant

PLANS = (
    "test_plans/test_feed_redundancy.py",  # first: it trips the nodes
    "test_plans/test_identity.py",
    "test_plans/test_inventory_firmware.py",
    "test_plans/test_load_soak.py",
    "test_plans/test_power_capping.py",
    "test_plans/test_power_map.py",
)
NODES = ("node01", "node02", "node03", "node04")
CAUSE = "feed A dropped under full load"


def params_800w(path: Path) -> Path:
    """The reference design with 800 W GPUs (a copy of racks/sim-model-params.yaml)."""
    doc = yaml.safe_load((plan_runs.REPO / "racks" / "sim-model-params.yaml").read_text())
    assert doc["params"]["power"]["gpu_max_w"] == 700.0
    doc["params"]["power"]["gpu_max_w"] = 800.0
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    base = tmp_path_factory.mktemp("failing-design")
    params = params_800w(base / "params-800w.yaml")
    spec = spec_variant(base / "ci-spec.yaml")
    # generous: the healthy run of these plans takes ~15 s; timeouts one by one took minutes
    result = plan_runs.run_plans(
        base / "reports", "--sim-nodes", "4", "--sim-params", str(params), "--spec", str(spec), plans=PLANS,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout, base / "reports"


def test_later_tests_on_tripped_nodes_fail_at_once_naming_the_feed_drop(failing_run: tuple[str, Path]) -> None:
    out, _ = failing_run
    per_node = [
        "test_device_answers_with_expected_identity", "test_device_firmware_matches_baseline",
        "test_node_firmware_consistent_across_nodes", "test_power_cap_is_met_in_time",
        "test_psu_outlets_match_rack_file",
    ]  # fmt: skip
    later = {f"{t}[{n}]" for t in per_node for n in NODES} | {"test_full_load_power_and_thermal_soak"}
    assert failed_tests(out) == later | {"test_rack_rides_through_feed_loss"}, out
    for test in sorted(later):
        text = failure_text(out, test)
        assert "DeviceDown: " in text and f"down since {CAUSE}" in text, (test, text)
        assert "not retried" in text and "test_feed_redundancy.py::test_rack_rides_through_feed_loss" in text, text
    assert "DeviceTimeout" not in out and "timed out" not in out and "no answer within" not in out, out
    # the BMCs stayed up: their tests pass, and the feed plan says what the BMC logged
    assert "test_device_answers_with_expected_identity[bmc-node01]" not in failed_tests(out)
    feed = failure_text(out, "test_rack_rides_through_feed_loss")
    assert "feed_loss_node_outages: node down (feed A lost) on node01 [feed A lost] (host PowerState Off" in feed, feed


def test_terminal_summary_groups_every_failure_under_the_one_cause(failing_run: tuple[str, Path]) -> None:
    out, _ = failing_run
    block = out[out.rindex("= rackval =") :]  # the block pytest's terminal output ends with
    headings = [line.removeprefix("root cause: ") for line in block.splitlines() if line.startswith("root cause: ")]
    assert len(headings) == 1 and headings[0].startswith(f"{CAUSE}: the rack drew "), block
    assert "exceeds the 6600 W of the working PSUs" in headings[0], headings  # what the BMC logged
    assert "devices down (4): node01, node02, node03, node04" in block, block
    assert "failed tests (22): test_rack_rides_through_feed_loss, " in block, block
    assert "share no known cause" not in block, block


def test_store_and_report_keep_the_cause_with_each_failed_test(failing_run: tuple[str, Path]) -> None:
    _, reports = failing_run
    with sqlite3.connect(reports / "results.sqlite") as db:
        causes = db.execute("SELECT cause_key, summary, devices, test FROM causes").fetchall()
        tests = db.execute("SELECT nodeid, outcome, cause FROM tests").fetchall()
        undos = db.execute("SELECT device, operation, undo_outcome FROM actions").fetchall()
    ((key, summary, devices, found_in),) = causes
    assert summary.startswith(CAUSE) and yaml.safe_load(devices) == list(NODES)
    assert found_in.endswith("test_rack_rides_through_feed_loss")
    assert {c for _, o, c in tests if o == "failed"} == {key}
    assert all(c == "" for _, o, c in tests if o != "failed")
    # actions refused because the node was known down sent nothing: their undo is skipped, not failed
    skipped = [(d, op) for d, op, u in undos if u == "skipped"]
    assert skipped and all(op.startswith("start GPU load") for _, op in skipped), undos
    report = (reports / "latest" / "report.html").read_text()
    top = report[report.index('id="causes"') : report.index("<h2>Run</h2>")]
    assert re.search(rf"<h3>{CAUSE}: the rack drew [\d.]+ kW before the drop", top), top
    assert "Failed tests (22):" in top
