"""The run verdict (four states, one function), what the engineer reads first, and undo messages for people.

Checked without a rack: ``run_verdict`` against every rule of ``rackval.harness.verdict``, the
ranking of findings, the terminal summary's parts (escaping, the verdict word, every undo that
failed or never ran), the undo-script shortening, the JUnit verdict property and the design
revision warning.
"""

from __future__ import annotations

import math
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rackval.drivers.node.linux import STOP_SCRIPT
from rackval.harness.junit import write_junit
from rackval.harness.measure import Limit, Measurement, Outcome
from rackval.harness.plugin import summary
from rackval.harness.safety.undo_messages import short_undo_messages
from rackval.harness.spec import revision_mismatch
from rackval.harness.store import ActionRecord, RunInfo, open_store
from rackval.harness.store import TestRecord as StoredTest  # aliased so pytest does not try to collect it
from rackval.harness.verdict import Verdict, findings, relative_margin, run_verdict

T0 = 1_700_000_000.0
VOLTS = Limit(high=2.0, unit="V", requirement="v_max")
OK = Measurement.judged("a", 1.0, "V", VOLTS)
MARGINAL = Measurement.judged("a", 1.95, "V", VOLTS)
BAD = Measurement.judged("a", 3.0, "V", VOLTS)
INFO = Measurement.judged("fw", 42.0, "")


def _test(outcome: str) -> StoredTest:
    return StoredTest(1, "r", "t.py::t", T0, T0 + 1, outcome, 1.0, "")


def _action(undo_outcome: str, message: str = "", device: str = "node01", action_id: int = 1) -> ActionRecord:
    return ActionRecord(device, "start GPU load at 100%", "stop GPU load", action_id=action_id,
                        undo_outcome=undo_outcome, undo_message=message)  # fmt: skip


# ---- the verdict ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stored", "tests", "measured", "actions", "expected"),
    [
        ("", ["passed"], [OK, INFO], [], Verdict.PASS),
        ("", ["passed"], [OK, MARGINAL], [], Verdict.PASS_WITH_MARGINALS),
        ("pass", ["passed"], [MARGINAL], [], Verdict.PASS_WITH_MARGINALS),  # the data says more than the store
        ("", ["passed"], [MARGINAL, BAD], [], Verdict.FAIL),
        ("", ["passed", "error"], [OK], [], Verdict.FAIL),
        ("failed", ["passed"], [OK], [], Verdict.FAIL),  # the run said so
        ("", ["passed"], [OK], [_action("failed")], Verdict.FAIL),  # a rack left changed is not a pass
        ("", ["passed"], [OK], [_action("pending")], Verdict.FAIL),
        ("", ["passed"], [MARGINAL], [_action("done")], Verdict.PASS_WITH_MARGINALS),
        ("running", ["passed"], [BAD], [_action("failed")], Verdict.INCOMPLETE),  # unfinished proves nothing
        ("interrupted", [], [], [], Verdict.INCOMPLETE),
        ("incomplete", ["passed"], [OK], [], Verdict.INCOMPLETE),
        ("", ["skipped"], [], [], Verdict.PASS),
    ],
)
def test_run_verdict_rules(
    stored: str, tests: list[str], measured: list[Measurement], actions: list[ActionRecord], expected: Verdict
) -> None:
    assert run_verdict(stored, [_test(t) for t in tests], [(1, m) for m in measured], actions) is expected


def test_verdict_words_stored_outcomes_and_slugs() -> None:
    assert [str(v) for v in Verdict] == ["PASS", "PASS WITH MARGINALS", "FAIL", "INCOMPLETE"]
    assert [v.stored for v in Verdict] == ["pass", "pass with marginals", "fail", "incomplete"]
    assert Verdict.PASS_WITH_MARGINALS.slug == "PASS-WITH-MARGINALS"
    # what the plugin stores reads back as the same verdict, and never as unfinished
    for v in (Verdict.PASS, Verdict.PASS_WITH_MARGINALS):
        assert run_verdict(v.stored, [_test("passed")], [(1, MARGINAL if v != Verdict.PASS else OK)]) is v
    assert run_verdict(Verdict.INCOMPLETE.stored, [], []) is Verdict.INCOMPLETE


def test_findings_are_failures_then_marginals_worst_first_once_each() -> None:
    watts = Limit(high=1000.0, unit="W", requirement="outlet_power")
    temp = Limit(low=10.0, high=90.0, unit="degC", requirement="inlet")
    ms = [
        Measurement.judged("outlet power", 990.0, "W", watts, device="pdu-a"),  # marginal, 1 %
        Measurement.judged("outlet power", 960.0, "W", watts, device="pdu-b"),  # marginal, 4 %
        Measurement.judged("outlet power", 999.0, "W", watts, device="pdu-a"),  # same key, worse: kept
        Measurement.judged("inlet", 95.0, "degC", temp, device="node01"),  # fail, -6.25 %
        Measurement.judged("inlet", 130.0, "degC", temp, device="node02"),  # fail, -50 %
        Measurement.judged("inlet", math.nan, "degC", temp, device="node03"),  # lost reading: worst
        Measurement.judged("outlet power", 500.0, "W", watts, device="pdu-c"),  # pass: not a finding
        INFO,
    ]
    ranked = findings(ms)
    assert [(m.outcome, m.device, m.value if not math.isnan(m.value) else "nan") for m in ranked] == [
        (Outcome.FAIL, "node03", "nan"),
        (Outcome.FAIL, "node02", 130.0),
        (Outcome.FAIL, "node01", 95.0),
        (Outcome.MARGINAL, "pdu-a", 999.0),
        (Outcome.MARGINAL, "pdu-b", 960.0),
    ]
    assert relative_margin(ranked[2]) == pytest.approx(-5.0 / 80.0)
    assert relative_margin(INFO) == math.inf


# ---- the terminal summary's parts -----------------------------------------------------------------------
def _run(**fields: Any) -> Any:
    base = {"findings": [], "left_changed": [], "warnings": [], "verdict": None, "spec_units": {}}
    return SimpleNamespace(**{**base, **fields})


def test_terminal_text_shows_control_characters_as_escapes() -> None:
    hostile = "pdu-\x1b[2J\x1b]0;owned\x07a\r\nb\x7f\u202e\x9b"
    text = summary.terminal_text(hostile)
    assert text == "pdu-\\x1b[2J\\x1b]0;owned\\x07a\\r\\nb\\x7f\\u202e\\x9b"
    assert text.isprintable()
    assert summary.terminal_text("a" * 50, 10) == "a" * 9 + "…"


def test_findings_block_names_device_value_and_limit_worst_first_capped() -> None:
    amps = Limit(high=32.0, unit="A", requirement="feed_current")
    many = [Measurement.judged("feed current", 30.5 + i / 100, "A", amps, device=f"pdu-{i:02d}") for i in range(12)]
    hostile = Measurement.judged("inlet temp", 41.0, "degC", Limit(high=35.0, unit="degC"), device="node\x1b[31m7")
    lines = summary.finding_lines(_run(findings=findings([*many, hostile])))
    texts = [t for t, _ in lines]
    assert texts[0] == "1 failed requirement, 1 marginal requirement; worst first:"
    assert texts[1] == "  FAIL     inlet temp on node\\x1b[31m7 = 41 degC vs <= 35 degC (margin -6 degC, -17.1 %)"
    assert texts[2] == (
        "  MARGINAL feed_current: feed current on pdu-11 = 30.61 A vs <= 32 A (margin +1.39 A, +4.34 %)"
    )
    assert len(texts) == 1 + summary.MAX_FINDINGS + 1 and texts[-1] == "  ... and 3 more in the report"
    assert lines[1][1] == {"red": True} and lines[2][1] == {"yellow": True}
    assert all("\x1b" not in t for t in texts)


def test_findings_read_in_the_specs_unit_with_readable_digits() -> None:
    """An analyzer answers in W, the spec states kW: the terminal says kW, never 1.043e+04."""
    kw = Limit(high=220_000.0, unit="W", requirement="full_load_rack_power", marginal=0.05)
    rack = Measurement.judged("full-load rack steady power", 215_252.0, "W", kw, device="analyzer-a+analyzer-b")
    feed = Measurement.judged("remaining feed power", 219_574.0, "W", Limit(high=230_000.0, unit="W",
                              requirement="single_feed_power", marginal=0.05), device="analyzer-b")  # fmt: skip
    run = _run(findings=findings([rack, feed]), spec_units={"full_load_rack_power": "kW"})
    texts = [t for t, _ in summary.finding_lines(run)]
    assert "  MARGINAL full_load_rack_power: full-load rack steady power on analyzer-a+analyzer-b = 215.25 kW vs" \
           " <= 220 kW (margin +4.748 kW, +2.16 %)" in texts[1:]  # fmt: skip
    # no spec unit recorded: large watts still read as kW, and no exponent anywhere
    assert "  MARGINAL single_feed_power: remaining feed power on analyzer-b = 219.57 kW vs <= 230 kW (margin" \
           " +10.426 kW, +4.53 %)" in texts[1:]  # fmt: skip
    assert not any("e+" in t for t in texts)


def test_verdict_line_is_the_word_in_its_own_colour() -> None:
    marginal = summary.verdict_lines(_run(verdict=Verdict.PASS_WITH_MARGINALS))
    assert marginal == [("verdict: PASS WITH MARGINALS", {"yellow": True, "bold": True})]
    assert summary.verdict_lines(_run(verdict=Verdict.PASS))[0][1] == {"green": True, "bold": True}
    markups = [tuple(sorted(m.items())) for m in summary.VERDICT_MARKUP.values()]
    assert len(set(markups)) == len(Verdict)
    assert summary.verdict_lines(_run())[0][0].startswith("verdict: not decided")


# ---- undo messages: a quoted script is shown once -----------------------------------------------------
def _ssh_timeout(node: str, port: int) -> str:
    """The undo message a GPU node's load stop leaves when the node stops answering (as the SSH
    transport words it: the command it ran, quoted with repr)."""
    cmd = shlex.join(["sh", "-c", STOP_SCRIPT, "rackval-load-stop", "/tmp/rackval-load.pid", "gpu_burn", "5"])
    return f"DeviceTimeout: {node} (127.0.0.1:{port}): SSH command {cmd!r}: no exit status within 6.5 s"


def test_a_script_quoted_by_many_undo_messages_is_named_once() -> None:
    actions = [_action("failed", _ssh_timeout(f"node{i:02d}", 2200 + i), f"node{i:02d}", i) for i in range(1, 65)]
    quoting = "DeviceError: pdu-a (10.0.0.5): set outlet 3: rack file says 'x' it's"
    actions.append(_action("failed", quoting, "pdu-a", 99))
    actions.append(_action("done", "", "pdu-b", 100))
    short = short_undo_messages(actions)
    assert len(short.scripts) == 1
    script = short.scripts[0]
    assert script.number == 1 and script.lines == STOP_SCRIPT.count("\n") + 1
    assert script.text.startswith("sh -c 'pidfile=$1; name=$2; grace=$3\n") and "survived SIGKILL" in script.text
    assert [a.device for a in script.actions] == [f"node{i:02d}" for i in range(1, 65)]
    assert short.messages[0] == (
        "DeviceTimeout: node01 (127.0.0.1:2201): SSH command <script 1>: no exit status within 6.5 s"
    )
    assert short.messages[64] == actions[64].undo_message  # short quotes are left as they are
    assert short.messages[65] == ""


def test_undo_lines_count_every_action_left_changed_and_name_the_script_once() -> None:
    left = [_action("failed", _ssh_timeout(f"node{i:02d}", 2200 + i), f"node{i:02d}", i) for i in range(1, 13)]
    left.append(_action("pending", "", "pdu-\x1b[2Ja", 13))
    lines = summary.left_changed_lines(_run(left_changed=left))
    texts = [t for t, _ in lines]
    assert texts[0].startswith("RACK MAY BE LEFT CHANGED: 13 actions whose undo failed or never ran")
    assert texts[1] == (
        "  action 1 on node01: start GPU load at 100%; undo 'stop GPU load' FAILED: DeviceTimeout: node01"
        " (127.0.0.1:2201): SSH command <script 1>: no exit status within 6.5 s"
    )
    assert texts[1 + summary.MAX_LEFT_CHANGED] == "  ... and 3 more in the report's action log"
    assert sum("pidfile=$1" in t for t in texts) == 1  # the script: once, its first line only
    assert texts[-1].startswith("  <script 1>: sh -c 'pidfile=$1; name=$2; grace=$3 ... (")
    assert "quoted by 12 undo messages" in texts[-1]
    assert all("\x1b" not in t for t in texts)


# ---- JUnit and the design revision ---------------------------------------------------------------------
def test_junit_carries_the_verdict(tmp_path: Path) -> None:
    store = open_store(tmp_path / "r.sqlite")
    try:
        store.start_run(RunInfo("r", T0, rack_name="rack-a"))
        tid = store.start_test("r", "test_plans/test_p.py::test_ok")
        store.record_measurement("r", tid, MARGINAL)
        store.finish_test(tid, "passed", 0.5)
        store.finish_run("r", Verdict.PASS_WITH_MARGINALS.stored)
        suite = ET.parse(write_junit(store, "r", tmp_path / "junit.xml")).getroot()
        assert suite.find("properties/property[@name='verdict']").get("value") == "PASS WITH MARGINALS"
        assert suite.get("failures") == "0"  # no test failed: the verdict is where CI sees the marginal
    finally:
        store.close()


def test_revision_mismatch_only_when_both_are_set_and_differ() -> None:
    assert revision_mismatch("rev-B", "rev-B") == ""
    assert revision_mismatch("", "rev-B") == "" and revision_mismatch("rev-B", "") == ""
    assert revision_mismatch(" rev-B ", "rev-B") == ""
    warning = revision_mismatch("rev-A", "rev-B\x1b")
    assert warning.startswith("design revision mismatch: the spec is for design revision 'rev-A'")
    assert "'rev-B\\x1b'" in warning  # quoted as repr: a control character cannot act on a terminal
