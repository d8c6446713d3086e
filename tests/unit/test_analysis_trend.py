"""``rackval trend`` on both store backends: points in time order, control limits computed
independently here, the planted outlier unit flagged by serial, grouping, CSV and a
self-contained, escaped HTML file."""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest

from rackval.core.errors import ConfigError
from rackval.harness.analysis import trend as tr
from rackval.harness.measure import Limit, Measurement
from rackval.harness.store import RunInfo, open_store
from tests.support.analysis_checks import built_store_url, external_references, read, run_command
from tests.support.analysis_data import HOSTILE_DEVICE, HOSTILE_REQ, OUTLIER_SERIAL

# IDLE-1 in time order: a1-old, a1, a2, a3, b1, b2, b3 (b3-killed never measured it)
IDLE_RUNS = ["a1-old", "a1", "a2", "a3", "b1", "b2", "b3"]
IDLE_SERIALS = ["S-101", "S-101", "S-102", "S-103", "S-201", "S-202", "S-203"]
IDLE_VALUES = [1001.0, 1000.0, 1004.0, 998.0, 1002.0, 996.0, 1025.0]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def results_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return built_store_url(request, tmp_path_factory)


def test_control_limits_and_the_outlier_unit(results_url: str) -> None:
    with open_store(results_url) as store:
        result = tr.trend(store, "IDLE-1")
    pts = result.points
    assert list(pts["run_id"]) == IDLE_RUNS and list(pts["rack_serial"]) == IDLE_SERIALS
    assert list(pts["value"]) == IDLE_VALUES
    assert list(pts["started_at"]) == sorted(pts["started_at"])

    mean, sigma = statistics.mean(IDLE_VALUES), statistics.stdev(IDLE_VALUES)
    s = result.stats
    assert (s.n, s.mean, s.sigma) == (7, pytest.approx(mean), pytest.approx(sigma))
    # 7 points: under MIN_CONTROL_POINTS (11), no mean +- 3 sigma (no point could ever leave it)
    assert tr.MIN_CONTROL_POINTS == 11 and math.isnan(s.lcl) and math.isnan(s.ucl)
    assert s.mean == pytest.approx(1003.714286, abs=1e-6)
    assert (s.median, s.mad) == (1001.0, 3.0)
    assert (result.spec_low, result.spec_high, result.unit, result.spec_text) == (None, 1500.0, "W", "<= 1500 W")

    # 1025 W is inside mean +- 3 sigma (7 points: no single point can leave it) but its robust z is 5.4
    assert list(result.outliers["rack_serial"]) == [OUTLIER_SERIAL]
    row = result.outliers.iloc[0]
    assert row["robust_z"] == pytest.approx(0.6745 * 24 / 3) and not row["beyond_control_limits"]
    assert pts.loc[pts["rack_serial"] != OUTLIER_SERIAL, "robust_z"].abs().max() < 3.5

    groups = result.groups.set_index("group")
    assert list(groups.index) == ["S-101", "S-102", "S-103", "S-201", "S-202", "S-203"]
    assert groups.loc["S-101", "n"] == 2 and groups.loc["S-101", "mean"] == pytest.approx(1000.5)
    assert groups.loc[OUTLIER_SERIAL, "outliers"] == 1 and groups["outliers"].sum() == 1


def test_command_prints_outlier_serial_and_writes_csv_and_html(
    results_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["trend", "idle power", "--by", "station", "--device", "an1", "--results", results_url,
            "--out", str(tmp_path)]  # fmt: skip
    assert run_command(tr.add_parser, argv) == 0
    lines = capsys.readouterr().out.splitlines()
    # the banner names the requirement and the device
    assert lines[0].startswith("rackval trend: idle power (requirement IDLE-1; device an1): 7 points from 7 runs on 6")
    assert "7 value(s): no control limits below 11 points (with 7, no point can lie more than 2.27 sigma" in lines[1]
    outlier_lines = [line for line in lines if "OUTLIER" in line]
    assert outlier_lines == [
        "  OUTLIER serial S-203: 1025 W (run b3, revision rev-B, station bench-2, an1): robust z +5.4 (|z| > 3.5)"
    ]

    rows = list(csv.DictReader(io.StringIO(read(tmp_path / "trend.csv"))))
    assert [r["run_id"] for r in rows] == IDLE_RUNS
    assert [float(r["value"]) for r in rows] == IDLE_VALUES
    assert [r["rack_serial"] for r in rows if r["outlier"] == "True"] == [OUTLIER_SERIAL]
    assert {r["group"] for r in rows} == {"bench-1", "bench-2"}
    assert rows[0]["time_utc"].endswith("Z") and rows[0]["high"] == "1500" and rows[0]["low"] == ""

    html = read(tmp_path / "trend.html")
    assert '<td class="num" id="lcl"></td>' in html and 'id="control-limits-refused">7 value(s): no control' in html
    assert "<strong>requirement IDLE-1; device an1</strong>" in html
    assert "serial <strong>S-203</strong>" in html
    assert html.count("<svg") == 1 and 'aria-label="trend of idle power by station"' in html
    assert external_references(html) == []
    groups = html[html.index('id="groups"') :]
    assert '<td>bench-1</td><td class="num">4</td>' in groups and '<td>bench-2</td><td class="num">3</td>' in groups


def test_hostile_names_are_escaped_and_lookups_explain_themselves(results_url: str, tmp_path: Path) -> None:
    with open_store(results_url) as store:
        hostile = tr.trend(store, HOSTILE_REQ, "revision")
        assert list(hostile.points["device"].unique()) == [HOSTILE_DEVICE]
        assert list(hostile.groups["group"]) == ["rev-A", "rev-B"] and hostile.outliers.empty
        assert (hostile.stats.sigma, hostile.stats.mad) == (0.0, 0.0)  # all equal: no limits to leave
        tr.write_outputs(hostile, tmp_path)
        assert tr.summary_lines(hostile)[-1] == "  no outliers"

        with pytest.raises(ConfigError, match=r"'IDLE-2'.*did you mean 'IDLE-1'"):
            tr.trend(store, "IDLE-2")
        with pytest.raises(ConfigError, match="on device 'pdu-a'"):
            tr.trend(store, "IDLE-1", device="pdu-a")
        with pytest.raises(ConfigError, match="--by must be one of"):
            tr.trend(store, "IDLE-1", "rack")
    html = read(tmp_path / "trend.html")
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert external_references(html) == []
    rows = list(csv.DictReader(io.StringIO(read(tmp_path / "trend.csv"))))
    assert {r["device"] for r in rows} == {HOSTILE_DEVICE}  # CSV keeps the text as recorded


# ---- rules on plain data ------------------------------------------------------------------------
def test_a_point_beyond_three_sigma_is_flagged_with_enough_points() -> None:
    values = pd.Series([100.0 + (i % 5 - 2) * 0.5 for i in range(29)] + [110.0])
    stats, flags = tr.flag_outliers(values)
    assert stats.ucl == pytest.approx(statistics.mean(values) + 3 * statistics.stdev(values))
    assert list(flags.index[flags["beyond_control_limits"]]) == [29]
    assert list(flags.index[flags["outlier"]]) == [29]


def test_mad_of_zero_falls_back_to_the_mean_absolute_deviation() -> None:
    values = pd.Series([5.0] * 6 + [5.5, 9.0, math.nan])
    stats, flags = tr.flag_outliers(values)
    assert stats.mad == 0.0 and stats.n == 8
    assert flags["robust_z"].iloc[7] == pytest.approx(4.0 / (1.253314 * 4.5 / 8))
    assert list(flags.index[flags["outlier"]]) == [7]
    assert math.isnan(flags["robust_z"].iloc[8]) and not flags["outlier"].iloc[8]
    _, same = tr.flag_outliers(pd.Series([2.0, 2.0, 2.0]))
    assert not same["outlier"].any()


def test_units_are_converted_to_the_latest_and_formulas_are_defused(tmp_path: Path) -> None:
    store = open_store(tmp_path / "units.sqlite")
    limit_w, limit_kw = Limit(high=1500, unit="W", requirement="P"), Limit(high=1.5, unit="kW", requirement="P")
    for n, (unit, limit, value, station) in enumerate(
        [("W", limit_w, 1000.0, "=HYPERLINK(1)"), ("kW", limit_kw, 1.01, "bench"), ("kW", limit_kw, 0.99, "@x")]
    ):
        store.start_run(RunInfo(f"r{n}", 1000.0 + n, rack_serial=f"S-{n}", station=station))
        store.record_measurement(f"r{n}", None, Measurement.judged("p", value, unit, limit, device="an1"))
        store.record_measurement(f"r{n}", None, Measurement.judged("p", value, unit, limit, device="an1"))
    result = tr.trend(store, "P", "station")
    assert result.unit == "kW" and list(result.points["value"]) == pytest.approx([1.0, 1.01, 0.99])
    assert list(result.points["records"]) == [2, 2, 2] and result.spec_high == pytest.approx(1.5)
    tr.write_csv(result, tmp_path / "t.csv")
    stations = [r["station"] for r in csv.DictReader(io.StringIO(read(tmp_path / "t.csv")))]
    assert stations == ["'=HYPERLINK(1)", "bench", "'@x"]
    store.start_run(RunInfo("amps", 2000.0))
    store.record_measurement("amps", None, Measurement.judged("p", 3.0, "A", Limit(high=5, unit="A", requirement="P")))
    with pytest.raises(ConfigError, match=r"cannot compare W .*--device"):
        tr.trend(store, "P")
    store.close()
