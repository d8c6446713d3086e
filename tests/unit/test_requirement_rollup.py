"""Requirement rollup and coverage (``rackval.harness.analysis.rollup``), in the report and in compare.

One row per spec requirement: the worst device in the spec's unit (W measured, kW in the spec),
failures first, every requirement listed, "not covered" ones with the plans that name their key,
coverage as covered / total. In a comparison a change within the spec's tolerance (per
requirement: the measurement's stated accuracy; spec-wide: a % of the limit) is "unchanged": a
fan moving by its noise is not a regression.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rackval.core.errors import ConfigError
from rackval.harness.analysis import compare as cmp
from rackval.harness.analysis.rollup import NOT_COVERED, coverage, rollup_run, spec_record
from rackval.harness.measure import Measurement, Outcome
from rackval.harness.plan_keys import RUN_REQUIREMENT_PLANS, plan_files, requirement_plans
from rackval.harness.report.html import render_report
from rackval.harness.spec import RUN_SPEC_REQUIREMENTS, load_spec
from rackval.harness.store import RunInfo, open_store

T0 = 1_765_000_000.0
SPEC = """\
spec: {name: rollup-test, version: "1", design_revision: rev-A}
defaults: {marginal: 0.05, tolerance_pct: 2}
requirements:
  full_load_rack_power: {description: Rack power at full load., max: 225, unit: kW}
  fan_speed: {description: Every fan's speed., min: 2000, max: 16500, unit: rpm, tolerance: 300}
  leak_detect_time: {description: Time to report a coolant leak., max: 5, unit: s}
  orphan_key: {description: Nothing measures this., max: 1, unit: count}
"""
PLAN = """\
def test_power(measure, spec):
    measure("rack power", 1, "W", limit="full_load_rack_power")
def test_leak(measure):
    judge("leak_detect_time")  # a key passed to a helper counts too
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


def _metadata(spec_file: Path, plans_dir: Path) -> dict[str, object]:
    spec = load_spec(spec_file)
    (plans_dir / "test_plan.py").write_text(PLAN)
    (plans_dir / "test_broken.py").write_text("def (:\n")  # unparsable: skipped, pytest reports it
    files = plan_files([plans_dir / "test_plan.py"])
    return {RUN_SPEC_REQUIREMENTS: spec.run_record(),
            RUN_REQUIREMENT_PLANS: requirement_plans(files, spec.data.requirements, plans_dir.parent)}  # fmt: skip


def _measurements(spec_file: Path, rack_w: float, fans: dict[str, float]) -> list[Measurement]:
    spec = load_spec(spec_file)
    out = [Measurement.judged("full-load rack steady power", rack_w, "W", spec.limit("full_load_rack_power"),
                              device="analyzer-a+analyzer-b", detail="mean of the last 450 s")]  # fmt: skip
    out += [Measurement.judged("fan speed", rpm, "rpm", spec.limit("fan_speed"), device="bmc-node01", channel=fan)
            for fan, rpm in fans.items()]  # fmt: skip
    return out


def test_plan_scan_finds_keys_named_as_literals(tmp_path: Path) -> None:
    plans = tmp_path / "test_plans"
    plans.mkdir()
    (plans / "test_plan.py").write_text(PLAN)
    (plans / "test_broken.py").write_text("def (:\n")
    found = requirement_plans(plan_files([plans / "test_plan.py"]), ["full_load_rack_power", "leak_detect_time",
                                                                     "orphan_key"], tmp_path)  # fmt: skip
    plan = ["test_plans/test_plan.py"]
    assert found == {"full_load_rack_power": plan, "leak_detect_time": plan}


def test_run_rollup_in_the_spec_unit_worst_first_with_coverage(spec_file: Path, tmp_path: Path) -> None:
    plans = tmp_path / "test_plans"
    plans.mkdir()
    run = RunInfo("r1", T0, metadata=_metadata(spec_file, plans))
    fans = {"fan1": 9000.0, "fan2": 2050.0, "fan3": 9100.0}  # fan2 within 5 % of the 2000 rpm minimum
    rollups = rollup_run(_measurements(spec_file, 202_379.0, fans), spec_record(run))
    assert [(r.key, r.status) for r in rollups] == [
        ("fan_speed", "marginal"), ("full_load_rack_power", "pass"),
        ("leak_detect_time", NOT_COVERED), ("orphan_key", NOT_COVERED),
    ]  # fmt: skip
    power = rollups[1].worst
    assert (power.value, power.unit) == (pytest.approx(202.379), "kW")  # the spec's unit, not W
    assert power.margin == pytest.approx(22.621) and power.margin_pct == pytest.approx(100 * 22.621 / 225)
    assert power.detail == "mean of the last 450 s"
    fan = rollups[0]
    assert (fan.n_devices, fan.worst.channel, dict(fan.counts)) == (1, "fan2", {"marginal": 1, "pass": 2})
    assert [f.channel for f in fan.figures] == ["fan2", "fan1", "fan3"]
    assert rollups[2].info.plans == ("test_plans/test_plan.py",) and rollups[3].info.plans == ()
    assert coverage(rollups) == (2, 4)


def test_report_leads_with_requirements_and_coverage(spec_file: Path, tmp_path: Path) -> None:
    plans = tmp_path / "test_plans"
    plans.mkdir()
    with open_store(f"sqlite:///{tmp_path / 'results.sqlite'}") as store:
        store.start_run(RunInfo("r1", T0, rack_name="sim", metadata=_metadata(spec_file, plans)))
        tid = store.start_test("r1", "test_plans/test_plan.py::test_power")
        for m in _measurements(spec_file, 202_379.0, {"fan1": 1500.0}):
            store.record_measurement("r1", tid, m)
        store.finish_test(tid, "failed", 1.0)
        store.finish_run("r1", "failed", T0 + 10)
        html = render_report(store, "r1", tmp_path / "report").read_text()
    start = html.index('<section class="report-section" id="requirements">\n<h2>Requirements</h2>')
    assert start == html.index('<section class="report-section"')  # the first section
    assert start < html.index("<h2", start + 60) <= html.index('id="measurements"')
    assert "<strong>Coverage: 2/4 requirements measured</strong> (50 %)" in html
    rollup = html[start : html.index("<h2", start + 60)]
    assert rollup.index("<code>fan_speed</code>") < rollup.index("<code>full_load_rack_power</code>")  # fail first
    assert "202.4 kW" in rollup and "+22.62 kW (+10.1 %)" in rollup
    assert "not measured in this run; plans naming its key: test_plans/test_plan.py" in rollup
    assert "not measured in this run; no plan names this key" in rollup


def test_compare_rolls_up_and_fan_noise_within_tolerance_is_unchanged(spec_file: Path, tmp_path: Path) -> None:
    plans = tmp_path / "test_plans"
    plans.mkdir()
    metadata = _metadata(spec_file, plans)
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    runs = (("a", "rev-A", 202_300.0, {"fan1": 9000.0, "fan2": 8800.0}),
            ("b", "rev-B", 215_200.0, {"fan1": 8800.0, "fan2": 9050.0}))  # fmt: skip
    with open_store(url) as store:
        for i, (run_id, rev, watts, fans) in enumerate(runs):
            store.start_run(RunInfo(run_id, T0 + i, rack_serial=f"S{i}", design_revision=rev, metadata=metadata))
            tid = store.start_test(run_id, "t")
            for m in _measurements(spec_file, watts, fans):
                store.record_measurement(run_id, tid, m)
            store.finish_test(tid, "passed", 1.0)
            store.finish_run(run_id, "passed", T0 + i + 1)
        result = cmp.compare(store, "rev-A", "rev-B", plots=False)
    assert result.threshold_pct == 2.0  # the spec's defaults.tolerance_pct
    by_key = {c.key: c for c in result.requirements}
    assert result.requirements[0].key == "full_load_rack_power"  # the regression leads
    power = by_key["full_load_rack_power"]
    assert power.classification == cmp.REGRESSION and power.row.outcome_change == "pass → marginal"
    assert (power.row.baseline.unit, power.row.candidate.value) == ("kW", pytest.approx(215.2))
    assert power.row.margin_delta_pct == pytest.approx(-100 * 12.9 / 225)
    # fan1 lost 200 rpm of margin: 1.4 % of the 14,500 rpm span, and within the 300 rpm stated accuracy
    fans = by_key["fan_speed"]
    assert fans.classification == cmp.UNCHANGED and all(r.classification == cmp.UNCHANGED for r in fans.device_rows)
    assert (by_key["leak_detect_time"].classification, by_key["orphan_key"].classification) == (NOT_COVERED,) * 2
    assert result.coverage == (2, 4)


def test_a_margin_change_within_the_stated_accuracy_is_noise() -> None:
    def side(value: float) -> cmp.Side:
        return cmp.Side("fan", "rpm", value, value - 2000, Outcome.PASS if value > 2725 else Outcome.MARGINAL,
                        2000.0, 16500.0, value, 1, 1, "S", "r")  # fmt: skip

    # 400 rpm is 2.8 % of the span: a regression by the % rule, noise for a 500 rpm accuracy
    assert cmp.classify(("fan_speed", "b", "f"), side(9000), side(8600), 2.0).classification == cmp.REGRESSION
    row = cmp.classify(("fan_speed", "b", "f"), side(9000), side(8600), 2.0, tolerance=500.0)
    assert row.classification == cmp.UNCHANGED and row.reasons == ("within the stated accuracy (±500 rpm)",)
    # an outcome that changes counts whatever the size of the change
    assert cmp.classify(("fan_speed", "b", "f"), side(2800), side(2700), 2.0, tolerance=500.0).reasons[0] == (
        cmp.NEW_MARGINAL
    )


def test_spec_tolerance_must_be_a_non_negative_number(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("tolerance: 300", "tolerance: -3"))
    with pytest.raises(ConfigError, match=r"bad.yaml:5: requirements.fan_speed.tolerance: "):
        load_spec(bad)


def test_compare_markdown_stays_a_pr_comment_however_much_regressed(tmp_path: Path) -> None:
    """30 requirements newly failing and 30 newly marginal on 10 devices each: still <= 60 lines,
    the rest is pointed at in compare.html."""
    from rackval.harness.analysis.compare.render import MD_LINE_BUDGET, render_markdown
    from rackval.harness.measure import Limit

    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    with open_store(url) as store:
        for i, (run_id, rev) in enumerate((("a", "rev-A"), ("b", "rev-B"))):
            store.start_run(RunInfo(run_id, T0 + i, rack_serial=f"S{i}", design_revision=rev))
            for r in range(60):
                limit = Limit(high=100.0, unit="W", requirement=f"req-{r:02d}")
                value = 50.0 if rev == "rev-A" else (120.0 if r < 30 else 97.0)  # fail, or marginal
                for d in range(10):
                    store.record_measurement(run_id, None, Measurement.judged("p", value, "W", limit, device=f"d{d}"))
            store.finish_run(run_id, "failed" if rev == "rev-B" else "passed", T0 + i + 1)
        result = cmp.compare(store, "rev-A", "rev-B", plots=False)
    md = render_markdown(result)
    assert len(md.splitlines()) <= MD_LINE_BUDGET == 60
    assert "**New failures: 30**" in md and "- ... and 24 more (compare.html)" in md
    assert "`req-00` on d0 and 9 more: 50 W → 120 W (pass → fail)" in md
    assert "**Top regressions** (10 of 60:" in md


def test_a_requirement_lists_its_worst_device_rows_and_points_to_the_rest(spec_file: Path, tmp_path: Path) -> None:
    """192 fan rows are not printed twice: the disclosure has the worst ten, Measurements every one."""
    from rackval.harness.report.requirements import DEVICE_ROWS

    fans = {f"fan{i:02d}": 5000.0 + 100 * i for i in range(25)}
    fans["fan17"] = 1500.0  # the one that fails
    with open_store(f"sqlite:///{tmp_path / 'results.sqlite'}") as store:
        store.start_run(RunInfo("r1", T0, rack_name="sim", metadata=_metadata(spec_file, tmp_path)))
        tid = store.start_test("r1", "test_plans/test_plan.py::test_fans")
        for m in _measurements(spec_file, 202_379.0, fans):
            store.record_measurement("r1", tid, m)
        store.finish_test(tid, "failed", 1.0)
        store.finish_run("r1", "failed", T0 + 10)
        html = render_report(store, "r1", tmp_path / "report").read_text()
    start = html.index('id="requirement-rollup"')
    rollup = html[start : html.index("</table>\n</section>", start)]
    fan_row = rollup[rollup.index("<code>fan_speed</code>") : rollup.index("</details>", rollup.index("fan_speed"))]
    listed = re.findall(r"<td>bmc-node01/(fan\d\d)</td>", fan_row)
    assert len(listed) == DEVICE_ROWS == 10 and listed[0] == "fan17"  # the failing one first
    assert listed[1:] == [f"fan{i:02d}" for i in range(DEVICE_ROWS - 1)]  # then the least margin
    assert f'The {DEVICE_ROWS} worst of 25 rows; every one is in <a href="#all-measurements">' in fan_row
    measured = html[html.index('id="all-measurements"') :]
    assert len(re.findall(r"<td>fan\d\d</td>", measured)) == 25
