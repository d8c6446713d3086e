"""A measurement's identity across runs: (requirement or name, device, channel id), free text beside it.

Issue 13's case: the steady full-load rack power rose 202 → 215 kW, pass → marginal, between
rev-A and rev-B, but the measurement's channel text said "mean of the last 449 s" in one run and
"450 s" in the other, so compare filed it under "only in baseline / only in candidate". With the
words in ``detail`` the key is the same in both runs and compare calls it what it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rackval.harness.analysis import compare as cmp
from rackval.harness.analysis.trend import load_points
from rackval.harness.measure import Limit, Measurement, Outcome
from rackval.harness.store import RunInfo, SqlStore, open_store
from rackval.harness.store.schema import SCHEMA_VERSION

T0 = 1_765_000_000.0
RACK_POWER = Limit(high=225, unit="kW", marginal=0.05, requirement="full_load_rack_power")
OVERSHOOT = Limit(high=2, unit="%", marginal=0.05, requirement="power_cap_overshoot")


def _run(store: SqlStore, run_id: str, revision: str, serial: str, hours: float, watts: float, steady_s: int) -> None:
    started = T0 + hours * 3600
    store.start_run(RunInfo(run_id, started, rack_name="sim-4n", rack_serial=serial, design_revision=revision))
    test_id = store.start_test(run_id, "test_plans/test_load_soak.py::test_full_load_power_and_thermal_soak")
    steady = Measurement.judged("full-load rack steady power", watts, "W", RACK_POWER, device="analyzer-a+analyzer-b",
                                detail=f"mean of the last {steady_s} s")  # fmt: skip
    store.record_measurement(run_id, test_id, steady)
    for i in range(1, 5):  # a per-node figure whose words carry this run's numbers
        settled = 2790.0 + i + (10 if revision == "sim-rev-B" else 0)
        m = Measurement.judged("settled node power above the cap", 100 * (settled - 2800) / 2800, "%", OVERSHOOT,
                               device=f"bmc-node0{i}", channel=f"node0{i}",
                               detail=f"{settled:.0f} W with a 2800 W cap")  # fmt: skip
        store.record_measurement(run_id, test_id, m)
    store.finish_test(test_id, "passed", 1.0)
    store.finish_run(run_id, "passed", started + 600)


@pytest.fixture
def results(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    with open_store(url) as store:
        _run(store, "rev-a-run", "sim-rev-A", "SIM-0001", 0, 202_300.0, 449)
        _run(store, "rev-b-run", "sim-rev-B", "SIM-0002", 1, 215_200.0, 450)
    return url


def test_key_leaves_free_text_out() -> None:
    a = Measurement.judged("x", 1, "W", RACK_POWER, device="an", channel="feed A", detail="mean of the last 449 s")
    b = Measurement.judged("x", 1, "W", RACK_POWER, device="an", channel="feed A", detail="mean of the last 450 s")
    assert a.key == b.key == ("full_load_rack_power", "an", "feed A")
    assert "(mean of the last 449 s)" in a.describe()
    assert Measurement.judged("no limit", 1, "W").key == ("no limit", "", "")


def test_detail_is_stored_beside_the_key(results: str) -> None:
    with open_store(results) as store:
        assert store.schema_version() == SCHEMA_VERSION
        [(_, steady), *_] = store.measurements("rev-a-run")
    assert (steady.channel, steady.detail) == ("", "mean of the last 449 s")


def test_rack_power_rising_202_to_215_kw_pass_to_marginal_is_a_regression(results: str) -> None:
    with open_store(results) as store:
        result = cmp.compare(store, "sim-rev-A", "sim-rev-B", plots=False)
    rows = {r.key: r for r in result.rows}
    row = rows[("full_load_rack_power", "analyzer-a+analyzer-b", "")]
    assert row.classification == cmp.REGRESSION and row.reasons[0] == cmp.NEW_MARGINAL
    assert (row.baseline.outcome, row.candidate.outcome) == (Outcome.PASS, Outcome.MARGINAL)
    assert (row.baseline.detail, row.candidate.detail) == ("mean of the last 449 s", "mean of the last 450 s")
    # nothing was left unpaired because its words changed
    assert not [r for r in result.rows if r.classification in (cmp.ONLY_BASELINE, cmp.ONLY_CANDIDATE)]
    overshoot = [r for r in result.rows if r.requirement == "power_cap_overshoot"]
    assert len(overshoot) == 4 and all(r.baseline and r.candidate for r in overshoot)


def test_trend_joins_on_the_key_not_the_words(results: str) -> None:
    with open_store(results) as store:
        points = load_points(store, "full_load_rack_power")
    assert list(points["channel"]) == ["", ""] and list(points["run_id"]) == ["rev-a-run", "rev-b-run"]


def test_compare_prints_device_text_terminal_safe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.analysis_checks import run_command

    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    evil = "pdu\x1b[2J\rPASS"
    with open_store(url) as store:
        for i, (run_id, rev, watts) in enumerate((("a", "rev-A", 150_000.0), ("b", "rev-B", 220_000.0))):
            store.start_run(RunInfo(run_id, T0 + i, rack_serial=f"S{i}", design_revision=rev))
            store.record_measurement(run_id, None, Measurement.judged("p", watts, "W", RACK_POWER, device=evil))
            store.finish_run(run_id, "passed", T0 + i + 1)
    argv = ["compare", "--baseline", "rev-A", "--candidate", "rev-B", "--results", url, "--out", str(tmp_path / "o")]
    run_command(cmp.add_parser, argv)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "(first: pdu\\x1b[2J\\rPASS)" in out
