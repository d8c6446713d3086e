"""The report at a glance: table of contents, what failed first, values in the spec's unit with
readable digits, margins in % of the limit, and telemetry drawn one kind (one unit) per figure
with bit masks left out, gaps kept and the channels that matter named."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rackval.harness.measure import Limit, Measurement
from rackval.harness.report import sections
from rackval.harness.report.display import readable, shown
from rackval.harness.report.html import render_report
from rackval.harness.report.plots import broken_at_gaps
from rackval.harness.report.telemetry_figures import channel_kind, is_discrete, quantity_of
from rackval.harness.spec import RUN_SPEC_REQUIREMENTS, load_spec
from rackval.harness.store import DeviceRecord, RunInfo, SqliteStore, open_store

T0 = 1_767_225_600.0
KW = Limit(high=225.0, unit="kW", requirement="full_load_rack_peak_power")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = open_store(tmp_path / "r.sqlite")
    yield s
    s.close()


def _section(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i : text.index(end, i)]


def test_readable_numbers() -> None:
    assert readable(202379.0) == "202379" and readable(17723.4, sign=True) == "+17723"
    assert readable(202.379) == "202.38" and readable(0.0019717409) == "0.0019717"
    assert readable(67.0) == "67" and readable(-3.3785) == "-3.3785" and readable(0.0) == "0"
    assert readable(math.nan) == "NaN" and readable(None) == "" and readable(2.5e12) == "2.5e+12"
    assert "e" not in readable(1.77e4, sign=True)  # never "+1.77e+04"


def test_shown_in_the_spec_unit_with_margin_in_percent() -> None:
    m = Measurement.judged("rack peak power", 202379.0, "W", KW)
    v = shown(m, {"full_load_rack_peak_power": "kW"})
    assert (v.value, v.unit, v.limits, v.margin, v.margin_pct) == ("202.38", "kW", "≤ 225", "+22.621", "+10.1 %")
    # without a spec unit, 10 kW and more still read as kW; small powers stay in W
    assert shown(m, {}).unit == "kW"
    small = Measurement.judged("node power", 1132.0, "W", Limit(high=1500.0, unit="W", requirement="idle_node_power"))
    assert (shown(small, {}).value, shown(small, {}).unit) == ("1132", "W")
    # a spec unit that does not convert is ignored, not applied
    assert shown(small, {"idle_node_power": "degC"}).unit == "W"
    two_sided = Measurement.judged("v", 240.0, "V", Limit(low=200.0, high=250.0, unit="V"))
    assert shown(two_sided, {}).limits == "200 .. 250" and shown(two_sided, {}).margin_pct == "+20 %"


def _run(store: SqliteStore, run_id: str = "r", **meta: object) -> None:
    store.start_run(RunInfo(run_id=run_id, started_at=T0, rack_name="rack-7", metadata=dict(meta)))
    t_ok = store.start_test(run_id, "test_plans/test_a.py::test_ok", T0 + 1)
    t_marg = store.start_test(run_id, "test_plans/test_a.py::test_marginal", T0 + 2)
    t_bad = store.start_test(run_id, "test_plans/test_a.py::test_bad", T0 + 3)
    store.record_measurement(run_id, t_ok, Measurement.judged("rack peak power", 202379.0, "W", KW))
    store.record_measurement(run_id, t_ok, Measurement.judged("fw", 3.0, "count"))
    none_allowed = Limit(high=0.0, unit="count", requirement="sel_critical_entries")  # no room by design
    store.record_measurement(run_id, t_ok, Measurement.judged("sel", 0.0, "count", none_allowed, device="bmc-1"))
    amps = Limit(high=32.0, unit="A", requirement="feed_current")
    store.record_measurement(run_id, t_marg, Measurement.judged("i", 31.9, "A", amps, device="pdu-a"))
    hot = Limit(high=85.0, unit="degC", requirement="gpu_temperature")
    store.record_measurement(run_id, t_bad, Measurement.judged("gpu", 90.0, "degC", hot, device="node-1"))
    for tid, outcome in ((t_ok, "passed"), (t_marg, "passed"), (t_bad, "failed")):
        store.finish_test(tid, outcome, 1.0, "boom" if outcome == "failed" else "")
    store.finish_run(run_id, "fail", T0 + 10)


def _spec_file(tmp_path: Path, requirements: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(f"spec: {{name: s, version: '1'}}\nrequirements:\n{requirements}")
    return path


def test_rack_power_in_kw_when_the_spec_says_so(store: SqliteStore, tmp_path: Path) -> None:
    """The units come from the spec as the run recorded it (the plugin's ``Spec.run_record``), not
    from a spec file: this run names none."""
    spec = load_spec(_spec_file(tmp_path, "  full_load_rack_peak_power: {max: 225, unit: kW}\n"))
    _run(store, **{RUN_SPEC_REQUIREMENTS: spec.run_record()})
    (tmp_path / "spec.yaml").unlink()
    text = render_report(store, "r", tmp_path).read_text(encoding="utf-8")
    rows = _section(text, 'id="measurements-passed"', "</table>")
    row = next(r for r in rows.split("<tr") if "full_load_rack_peak_power" in r)
    assert ">202.38</td><td>kW</td>" in row and ">≤ 225<" in row and ">+22.621<" in row and ">+10.1 %<" in row
    assert "202379" not in row and "e+0" not in text
    assert RUN_SPEC_REQUIREMENTS not in _section(text, 'id="run"', "</table>")  # used, not listed as metadata


def test_spec_units_from_the_spec_file_of_an_older_run(store: SqliteStore, tmp_path: Path) -> None:
    """A run recorded before units were kept: its spec file, if still there, gives them."""
    spec = _spec_file(tmp_path, "  feed_current: {max: 32000, unit: mA}\n")
    store.start_run(RunInfo(run_id="old", started_at=T0, spec_file=str(spec)))
    amps = Limit(high=32.0, unit="A", requirement="feed_current")
    store.record_measurement("old", None, Measurement.judged("i", 20.0, "A", amps))
    store.finish_run("old", "pass", T0 + 1)
    text = render_report(store, "old", tmp_path / "out").read_text(encoding="utf-8")
    assert ">20000</td><td>mA</td>" in text


@pytest.mark.parametrize(
    "record",
    [
        "feed_current: mA",  # not a dict
        ["feed_current"],
        {"requirements": ["feed_current"]},
        {"requirements": {"feed_current": "mA"}},
        {"requirements": {"feed_current": {"max": 32000, "unit": 5}}},  # unit not a string
        {"requirements": {"feed_current": {"max": 32000, "unit": None}}},
        {"requirements": {"feed_current": {"max": 32000, "unit": ["mA"]}}},
    ],
    ids=["text", "list", "requirements-list", "requirement-text", "unit-number", "unit-null", "unit-list"],
)
def test_a_malformed_spec_record_falls_back(store: SqliteStore, tmp_path: Path, record: object) -> None:
    """A run whose recorded spec is damaged (hand-edited, another tool's) still renders: with its
    spec file's units and requirements while that file is there, as measured once it is gone."""
    spec = _spec_file(tmp_path, "  feed_current: {max: 32000, unit: mA}\n")
    amps = Limit(high=32.0, unit="A", requirement="feed_current")
    for run_id, spec_file in (("with-file", spec), ("file-gone", tmp_path / "moved.yaml")):
        store.start_run(RunInfo(run_id=run_id, started_at=T0, spec_file=str(spec_file),
                                metadata={RUN_SPEC_REQUIREMENTS: record}))  # fmt: skip
        store.record_measurement(run_id, None, Measurement.judged("i", 20.0, "A", amps))
        store.finish_run(run_id, "pass", T0 + 1)
    text = render_report(store, "with-file", tmp_path / "a").read_text(encoding="utf-8")
    assert ">20000</td><td>mA</td>" in text
    coverage = _section(text, 'id="coverage"', "</p>")
    assert "Coverage: 1/1" in coverage and "read now; the run&#39;s record of it is malformed" in coverage
    text = render_report(store, "file-gone", tmp_path / "b").read_text(encoding="utf-8")
    assert ">20</td><td>A</td>" in text and "mA" not in text
    assert "Coverage unknown" in _section(text, 'id="coverage"', "</p>")


def test_failures_first_passes_collapsed_and_a_table_of_contents(store: SqliteStore, tmp_path: Path) -> None:
    _run(store)
    text = render_report(store, "r", tmp_path).read_text(encoding="utf-8")
    attention = _section(text, 'id="measurements"', "</table>")
    outcomes = re.findall(r'<tr class="row-(\w+)">', attention)
    assert outcomes == ["fail", "marginal"]  # failed, then marginal; nothing else above the fold
    passed = _section(text, '<details class="more" id="passed-measurements">', "</details>")  # collapsed
    assert re.findall(r'<tr class="row-(\w+)">', passed) == ["pass", "pass", "info"]
    # the pass nearest its limit first; a count that must be 0 (no room by design) after it
    assert passed.index("full_load_rack_peak_power") < passed.index("sel_critical_entries")
    tests = _section(text, 'id="tests"', "</section>\n\n")
    order = re.findall(r'<details class="test test-(\w+)" id="(test-\d+)"( open)?>', tests)
    assert [(o, bool(opened)) for o, _, opened in order] == [("failed", True), ("passed", True), ("passed", False)]
    # the table of contents lists every section shown, in page order, and every link has a target
    toc = _section(text, '<nav id="toc"', "</nav>")
    links = re.findall(r'href="#([^"]+)">([^<]+)<', toc)
    shown_titles = [s.title for s in sections.REPORT_SECTIONS if f'id="{s.link_id}"' in text]
    assert [title for _, title in links] == shown_titles and "Root causes" not in toc
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    assert all(anchor in ids for anchor, _ in links)
    assert text.index('<nav id="toc"') < text.index('id="summary"') < text.index('id="run"')


def test_a_new_section_row_joins_the_table_of_contents(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A section added to REPORT_SECTIONS (the requirement rollup, say) is picked up by the table of
    contents at its place, with no anchor of its own needed."""
    _run(store)
    extra = sections.ReportSection("summary", "Requirements", "", lambda data: {})
    monkeypatch.setattr(sections, "REPORT_SECTIONS", (extra, *sections.REPORT_SECTIONS[1:]))
    monkeypatch.setattr("rackval.harness.report.html.REPORT_SECTIONS", (extra, *sections.REPORT_SECTIONS[1:]))
    text = render_report(store, "r", tmp_path).read_text(encoding="utf-8")
    toc = _section(text, '<nav id="toc"', "</nav>")
    assert re.findall(r'href="#([^"]+)">([^<]+)<', toc)[0] == ("summary", "Requirements")


def test_channel_kinds_and_discrete_channels() -> None:
    kinds = {"node07": "node", "analyzer-a": "analyzer"}
    assert channel_kind("node07/gpu3/power_w", "node07", kinds) == "node/gpu#/power_w"
    assert channel_kind("analyzer-a/power_w", "analyzer-a", kinds) == "analyzer/power_w"
    assert channel_kind("rack/total", "", kinds) == "rack/total"
    assert quantity_of("node/gpu#/temperature_c") == "temperature" and quantity_of("analyzer/power_factor") == (
        "power factor"
    )
    assert is_discrete("node/gpu#/event_reasons", "") and is_discrete("x/state", "enum")
    assert not is_discrete("analyzer/power_factor", "") and not is_discrete("node/gpu#/power_w", "W")


def test_gaps_break_lines() -> None:
    t = np.array([0.0, 1.0, 2.0, 10.0, 11.0])
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    t2, v2 = broken_at_gaps(t, v, gap=2.0)
    assert t2.tolist()[:4] == [0.0, 1.0, 2.0, 6.0] and math.isnan(v2[3]) and v2[4] == 4.0 and len(t2) == 6
    assert [a.tolist() for a in broken_at_gaps(t[:3], v[:3], gap=2.0)] == [t[:3].tolist(), v[:3].tolist()]
    # no gap given: GAP_FACTOR times the median interval (1 s here), as the cooling and shelf figures use it
    t3, v3 = broken_at_gaps(t, v)
    assert t3.tolist() == t2.tolist() and math.isnan(v3[3]) and len(v3) == 6


def test_telemetry_one_kind_per_figure_bitmasks_left_out(store: SqliteStore, tmp_path: Path) -> None:
    store.start_run(RunInfo(run_id="t", started_at=T0))
    store.record_device("t", DeviceRecord("analyzer-a", "analyzer", "x", "127.0.0.1:1"))
    for n in range(1, 9):
        store.record_device("t", DeviceRecord(f"node{n:02d}", "node", "x", "127.0.0.1:1"))
    rows = []
    for i in range(200):
        t = float(i) if i < 100 else float(i + 100)  # a 100 s hole in the middle of the run
        rows.append(("analyzer-a/power_w", "analyzer-a", t, 202000.0 + i, "W"))
        rows.append(("analyzer-a/power_factor", "analyzer-a", t, 0.95, ""))
        for n in range(1, 9):
            hot = 30.0 if n == 5 else 0.0  # node05 runs hot: an outlier among eight
            rows.append((f"node{n:02d}/gpu0/temperature_c", f"node{n:02d}", t, 60.0 + hot + (i % 3) * 0.1, "degC"))
            rows.append((f"node{n:02d}/gpu0/event_reasons", f"node{n:02d}", t, float(i % 4), ""))
    store.record_samples("t", rows)
    store.finish_run("t", "pass", T0 + 300)
    text = render_report(store, "t", tmp_path).read_text(encoding="utf-8")
    tel = _section(text, 'id="telemetry"', "</section>")
    labels = re.findall(r'<svg class="plot" role="img" aria-label="([^"]+)"', tel)
    assert sorted(labels) == ["analyzer/power_factor: 1 channel", "analyzer/power_w: 1 channel",
                              "node/gpu#/temperature_c: 8 channels"]  # fmt: skip
    assert "event_reasons" not in " ".join(labels)  # bit masks are not line-plotted ...
    assert "8 bit mask or state channels" in tel  # ... but counted and in the table
    assert tel.count("no (bit mask or state)") == 8
    assert "of kind analyzer/power_w in kW" in tel  # rack-level power reads in kW
    assert "node05/gpu0/temperature_c (outlier" in tel  # the channel that stands out is named
    assert "Lines break where samples are more than" in tel


def test_passed_measurements_stay_collapsed_when_nothing_failed(store: SqliteStore, tmp_path: Path) -> None:
    store.start_run(RunInfo(run_id="ok", started_at=T0))
    store.record_measurement("ok", None, Measurement.judged("rack peak power", 150000.0, "W", KW))
    store.finish_run("ok", "pass", T0 + 1)
    text = render_report(store, "ok", tmp_path).read_text(encoding="utf-8")
    assert 'id="attention">No failed or marginal measurement.' in text
    assert '<details class="more" id="passed-measurements">' in text  # not open


def test_telemetry_borrows_the_limit_of_a_measurement_naming_its_component() -> None:
    """full_load_gpu_temperature on node01 channel 'GPU0' (<= 83 degC) is the limit of telemetry
    channel node01/gpu0/temperature_c; never of its power (W) or its unitless bit mask."""
    from rackval.harness.report.telemetry_figures import _channel_limits, _limits_by_channel

    gpu = Measurement.judged("GPU temperature", 67.0, "degC",
                             Limit(high=83.0, unit="degC", requirement="full_load_gpu_temperature"),
                             device="node01", channel="GPU0")  # fmt: skip
    limited = _limits_by_channel([gpu])
    assert _channel_limits(("node01/gpu0/temperature_c", "node01", "degC"), limited) == (
        [],
        [83.0],
        {"full_load_gpu_temperature"},
    )
    assert _channel_limits(("node01/gpu0/power_w", "node01", "W"), limited) == ([], [], set())
    assert _channel_limits(("node01/gpu0/event_reasons", "node01", ""), limited) == ([], [], set())
    assert _channel_limits(("node02/gpu0/temperature_c", "node02", "degC"), limited) == ([], [], set())
    assert _channel_limits(("node01/gpu1/temperature_c", "node01", "degC"), limited) == ([], [], set())
