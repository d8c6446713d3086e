"""``rackval compare`` on both store backends: run selection, classification and its order, the
exit status CI gates on, the Markdown table, and an HTML file that is escaped and self-contained.

The data (tests/support/analysis_data.py) plants one change of each kind between rev-A and rev-B.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rackval.core.errors import ConfigError
from rackval.harness.analysis import compare as cmp
from rackval.harness.measure import Outcome
from rackval.harness.store import open_store
from tests.support.analysis_checks import built_store_url, external_references, markdown_table, read, run_command
from tests.support.analysis_data import HOSTILE_CHANNEL, HOSTILE_DEVICE, HOSTILE_REQ, HOSTILE_SAMPLE_CHANNEL


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def results_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return built_store_url(request, tmp_path_factory)


EXPECTED_ORDER = [
    ("regression", "FAN-1"),  # new failure first
    ("regression", "V-1"),  # then new marginal
    ("regression", "PWR-1"),  # then margin loss
    ("improvement", "TMP-1"),
    ("unchanged", HOSTILE_REQ),
    ("unchanged", "IDLE-1"),
    ("unchanged", "LNK-1"),
    ("no limits", "bmc boot time"),
    ("only in baseline", "OLD-1"),
    ("only in candidate", "NEW-1"),
]


def test_revisions_use_the_latest_complete_run_per_serial_and_classify(results_url: str) -> None:
    with open_store(results_url) as store:
        result = cmp.compare(store, "rev-A", "rev-B", plots=False)
    base, cand = result.baseline, result.candidate
    assert (base.kind, cand.kind) == ("revision", "revision")
    assert [u.run.run_id for u in base.runs] == ["a1", "a2", "a3"]  # a1-old superseded (its fan failed)
    assert [u.run.run_id for u in cand.runs] == ["b1", "b2", "b3"]  # b3-killed never finished (inlet 80 degC)
    assert all(u.complete for u in base.runs + cand.runs)
    # each unit's own verdict, as its acceptance report gives it: b2's 239.5 V sits in V-1's marginal band
    assert [str(u.verdict) for u in base.runs + cand.runs] == ["PASS"] * 3 + ["FAIL", "PASS WITH MARGINALS", "PASS"]
    assert [(r.run_id, why) for r, why in base.excluded] == [
        ("a1-old", "superseded by the later complete run a1 of the same serial")
    ]
    assert [(r.run_id, why) for r, why in cand.excluded] == [("b3-killed", "did not finish")]
    assert base.label == "revision rev-A (3 units: S-101, S-102, S-103)"

    assert [(r.classification, r.requirement) for r in result.rows] == EXPECTED_ORDER
    rows = {r.requirement: r for r in result.rows}
    fan = rows["FAN-1"]
    assert fan.reasons[0] == cmp.NEW_FAILURE and fan.new_failure
    assert (fan.baseline.value, fan.baseline.worst_serial) == (5800, "S-103")  # worst unit of rev-A
    assert (fan.candidate.value, fan.candidate.outcome, fan.candidate.worst_serial) == (2500, Outcome.FAIL, "S-201")
    assert fan.margin_delta == pytest.approx(-3300) and fan.margin_delta_pct == pytest.approx(-55)
    assert rows["V-1"].reasons[0] == cmp.NEW_MARGINAL and not rows["V-1"].new_failure
    pwr = rows["PWR-1"]
    assert (pwr.baseline.value, pwr.candidate.value, pwr.delta) == (4010, 4610, 600)
    assert pwr.margin_delta_pct == pytest.approx(-12.0)
    assert pwr.reasons == ("margin shrank by 12 % of the limit reference",)
    tmp = rows["TMP-1"]
    assert tmp.candidate.value == 25.5 and tmp.margin_delta_pct == pytest.approx(100 * 5.5 / 35)
    assert tmp.baseline.mean == pytest.approx(30.5) and tmp.baseline.n_units == 3
    assert rows["IDLE-1"].margin_delta_pct == pytest.approx(-1.4)  # under the 2 % threshold: unchanged
    assert rows["NEW-1"].baseline is None and not rows["NEW-1"].new_failure
    assert rows["OLD-1"].candidate is None
    assert [r.requirement for r in result.new_failures] == ["FAN-1"]
    assert result.exit_status == 1
    assert dict(result.counts()) == {
        "regression": 3, "improvement": 1, "unchanged": 3, "no limits": 1, "only in baseline": 1,
        "only in candidate": 1,
    }  # fmt: skip

    # a tighter threshold turns the 1.4 % idle-power loss into a regression, ordered after PWR-1 (-12 %)
    with open_store(results_url) as store:
        tight = cmp.compare(store, "rev-A", "rev-B", threshold_pct=1.0, plots=False)
    assert [r.requirement for r in tight.rows if r.classification == "regression"] == [
        "FAN-1", "V-1", "PWR-1", "IDLE-1",
    ]  # fmt: skip


def test_command_writes_markdown_and_html_and_exits_1_on_new_failures(
    results_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", "--baseline", "rev-A", "--candidate", "rev-B", "--results", results_url, "--out", str(out)]
    assert run_command(cmp.add_parser, argv) == 1
    printed = capsys.readouterr().out
    assert (
        "REGRESSION: FAN-1: pass → fail, worst 5800 rpm → 2500 rpm, margin +2800 rpm (+46.7 %) → -500 rpm (-8.33 %);"
        " 1 of 1 device rows regressed (first: node-1/fan 2)" in printed
    ), printed
    assert "new failure(s): exit status 1" in printed
    assert sorted(p.name for p in out.iterdir()) == ["compare.html", "compare.md"]

    # compare.md: a pull-request comment (<= 60 lines): verdicts, new failures and marginals, top regressions
    md = read(out / "compare.md")
    assert len(md.splitlines()) <= 60
    assert "- Baseline rev-A: PASS (S-101), PASS (S-102), PASS (S-103)" in md
    assert "- Candidate rev-B: FAIL (S-201), PASS WITH MARGINALS (S-202), PASS (S-203)" in md
    assert "**New failures: 1**\n\n- `FAN-1` on node-1/fan 2: 5800 rpm → 2500 rpm (pass → fail)" in md
    assert "**New marginals: 1**\n\n- `V-1` on pdu-a/outlet 3: 231.5 V → 239.5 V (pass → marginal)" in md
    header, body = markdown_table(md)
    assert header == ["Requirement", "Outcome", "Worst then", "Worst now", "Margin then", "Margin now",
                      "Δ margin % of limit"]  # fmt: skip
    assert body == [
        ["FAN-1", "pass → fail", "5800 rpm", "2500 rpm", "+2800 rpm (+46.7 %)", "-500 rpm (-8.33 %)", "-55"],
        ["V-1", "pass → marginal", "231.5 V", "239.5 V", "+8.5 V (+42.5 %)", "+0.5 V (+2.5 %)", "-40"],
        ["PWR-1", "pass", "4010 W", "4610 W", "+990 W (+19.8 %)", "+390 W (+7.8 %)", "-12"],
    ]
    assert md.rstrip().endswith("`compare.html` beside this file (10 measurement keys compared).")
    assert "<" not in md.replace("&lt;", "")  # nothing a renderer would take for HTML

    html = read(out / "compare.html")
    assert 'id="verdict"' in html and "NEW FAILURES: 1." in html
    # the rollup leads: one row per requirement, in the order of the classification
    rollup = html[html.index('id="requirement-rollup"') : html.index('id="runs-baseline"')]
    rows = re.findall(r'<tr class="row-([a-z-]+)"><td><span class="badge', rollup)
    assert rows == [c.replace(" ", "-") for c, _ in EXPECTED_ORDER]
    # each requirement's device rows behind a disclosure, with the worst unit of a revision
    assert "<details><summary>1 → 1 devices, 1 fail" in rollup and "; worst unit S-201" in rollup
    assert "5800 rpm" in rollup and "+46.7 %" in rollup  # figures without exponents, margins in % of the limit
    assert "superseded by the later complete run a1 of the same serial" in html
    runs_b = html[html.index('id="runs-candidate"') : html.index("</table>", html.index('id="runs-candidate"'))]
    assert "<th>Verdict</th>" in runs_b and "<td>PASS WITH MARGINALS</td>" in runs_b and "<td>FAIL</td>" in runs_b
    # escaping: every hostile string is shown, none is live
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert HOSTILE_CHANNEL in html  # no markup in it: shown as is in the HTML
    assert "&lt;b&gt;inlet&lt;/b&gt; &amp; $x$" in html and "<b>inlet" not in html
    # self-contained: inline SVG overlays for the two channels sampled on both sides only
    assert external_references(html) == []
    assert html.count("<svg") == 2
    assert 'aria-label="rack.power on an1: baseline and candidate samples over time"' in html
    assert "baseline.only" not in html
    assert HOSTILE_DEVICE not in html and HOSTILE_REQ not in html and HOSTILE_SAMPLE_CHANNEL not in html


def test_swapped_sides_show_improvements_and_exit_0(
    results_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", "--baseline", "rev:rev-B", "--candidate", "rev:rev-A", "--results", results_url,
            "--out", str(tmp_path), "--format", "md"]  # fmt: skip
    assert run_command(cmp.add_parser, argv) == 0
    assert "exit status 1" not in capsys.readouterr().out
    assert not (tmp_path / "compare.html").exists()
    md = read(tmp_path / "compare.md")
    assert "**New failures:** none." in md and "**New marginals:** none." in md
    _, body = markdown_table(md)
    assert [row[0] for row in body] == ["TMP-1"]  # the only regression: inlet 25.5 -> 31 degC
    assert "3 improvement" in md and "1 only in baseline, 1 only in candidate" in md


def test_run_ids_unfinished_runs_and_bad_selectors(results_url: str, tmp_path: Path) -> None:
    with open_store(results_url) as store:
        result = cmp.compare(store, "a1-old", "run:b3-killed", plots=False)
        assert (result.baseline.kind, result.candidate.kind) == ("run", "run")
        assert result.baseline.label == "run a1-old (serial S-101)"
        assert [u.complete for u in result.candidate.runs] == [False]
        rows = {r.requirement: r for r in result.rows}
        assert rows["TMP-1"].reasons[0] == cmp.NEW_FAILURE  # 30 -> 80 degC on the killed run
        assert rows["FAN-1"].classification == "only in baseline"  # it died before measuring the fan
        assert result.exit_status == 1
        html = cmp.render_html(result)
        assert "INCOMPLETE (did not finish)" in html
        assert [u.verdict for u in result.baseline.runs + result.candidate.runs] == ["FAIL", "INCOMPLETE"]

        still = {r.requirement: r for r in cmp.compare(store, "a1-old", "b1", plots=False).rows}
        assert still["FAN-1"].candidate.outcome == Outcome.FAIL  # 2000 -> 2500 rpm: failing both times
        assert still["FAN-1"].classification == "improvement" and not still["FAN-1"].new_failure

        with pytest.raises(
            ConfigError, match=r"--candidate 'rev-Z': no run id or design revision 'rev-Z' .*rev-A, rev-B, rev-C"
        ):
            cmp.compare(store, "rev-A", "rev-Z")
        with pytest.raises(ConfigError, match="--baseline 'rev:a1': no design revision 'a1'"):
            cmp.compare(store, "rev:a1", "rev-B")
        with pytest.raises(ConfigError, match="no run with that id 'rev-B'"):
            cmp.compare(store, "rev-A", "run:rev-B")
        with pytest.raises(ConfigError, match=r"rev-C.* none finished"):
            cmp.compare(store, "rev-C", "rev-B")
    with pytest.raises(SystemExit):
        run_command(cmp.add_parser, ["compare", "--baseline", "a", "--candidate", "b", "--format", "pdf"])


# ---- pure classification rules (no store) -------------------------------------------------------
def _side(
    value: float, margin: float | None, outcome: Outcome, unit: str = "W", high: float | None = 100.0
) -> cmp.Side:
    return cmp.Side("p", unit, value, margin, outcome, None, high, value, 1, 1, "S-1", "r1")


def test_a_failing_measurement_only_in_the_candidate_is_a_new_failure() -> None:
    key = ("NEW", "dev", "")
    row = cmp.classify(key, None, _side(120, -20, Outcome.FAIL), 2.0)
    assert row.classification == cmp.ONLY_CANDIDATE and row.new_failure
    assert row.reasons == ("fails; not measured in the baseline",)
    result = cmp.Comparison(None, None, cmp.pair({}, {key: row.candidate}, 2.0), 2.0)  # type: ignore[arg-type]
    assert result.exit_status == 1


def test_units_are_converted_and_threshold_is_relative_to_the_limit() -> None:
    base = _side(50.0, 50.0, Outcome.PASS)  # 50 W of a 100 W limit
    cand = _side(0.052, 0.048, Outcome.PASS, unit="kW", high=0.1)  # 52 W: 2 % of 100 W worse
    row = cmp.classify(("P", "d", ""), base, cand, 2.0)
    assert row.candidate.unit == "W" and row.candidate.value == pytest.approx(52.0)
    assert row.margin_delta_pct == pytest.approx(-2.0) and row.classification == cmp.UNCHANGED
    assert cmp.classify(("P", "d", ""), base, cand, 1.9).classification == cmp.REGRESSION
    amps = _side(1.0, 1.0, Outcome.PASS, unit="A", high=2.0)
    odd = cmp.classify(("P", "d", ""), base, amps, 2.0)
    assert odd.classification == cmp.REGRESSION and "unit changed from W to A" in odd.reasons[0]
    info = cmp.classify(("P", "d", ""), _side(5, None, Outcome.INFO, high=None), _side(80, 20, Outcome.MARGINAL), 2.0)
    assert info.classification == cmp.REGRESSION and info.reasons == (cmp.NEW_MARGINAL,)
    tighter = cmp.classify(("P", "d", ""), base, _side(50.0, 40.0, Outcome.PASS, high=90.0), 20.0)
    assert tighter.classification == cmp.UNCHANGED and tighter.reasons == ("limits changed: <= 100 → <= 90 W",)


def test_markdown_cells_cannot_break_the_table_or_inject_html() -> None:
    assert cmp.md_cell("a|b\nc") == r"a\|b c"
    assert cmp.md_cell("<b>x</b> & [l](u) `c` *e*") == r"&lt;b&gt;x&lt;/b&gt; &amp; \[l\](u) \`c\` \*e\*"
    assert cmp.md_cell("back\\slash") == "back\\\\slash"


def test_overlays_lead_with_regressed_devices_and_carry_their_limits(results_url: str) -> None:
    from rackval.harness.analysis.compare.comparison import _channel_limits, _limits_by_device
    from rackval.harness.report.plots import LIMIT_COLOUR

    with open_store(results_url) as store:
        result = cmp.compare(store, "rev-A", "rev-B")
    # PWR-1 (<= 5000 W on an1) regressed: an1's sampled rack.power is drawn first, with that limit
    assert (result.overlays[0].channel, result.overlays[0].device) == ("rack.power", "an1")
    limits = _limits_by_device(result.requirements)
    assert _channel_limits(limits["an1"], "W") == [("PWR-1 ≤ 5000 W", 5000.0), ("IDLE-1 ≤ 1500 W", 1500.0)]
    assert _channel_limits(limits["an1"], "kW") == [("PWR-1 ≤ 5000 W", 5.0), ("IDLE-1 ≤ 1500 W", 1.5)]
    assert _channel_limits(limits["an1"], "degC") == []  # no limit of another quantity is drawn
    # limit lines (each with its legend entry): PWR-1 and IDLE-1 on an1's power, TMP-1 (degC) on node-1's channel
    power, inlet = result.overlays[0].svg, result.overlays[1].svg
    assert result.overlays[1].channel == HOSTILE_SAMPLE_CHANNEL
    assert power.count(LIMIT_COLOUR) == 4 and inlet.count(LIMIT_COLOUR) == 2
