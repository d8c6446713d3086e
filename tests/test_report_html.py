"""The HTML acceptance report: verdict, content, escaping, self-containment and plots."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.measure import Limit, Measurement, Outcome
from harness.report.html import FAIL, INCOMPLETE, PASS, render_report, run_verdict
from harness.report.plots import normalised_margin
from harness.store import DeviceRecord, RunInfo, SqliteStore, open_store
from harness.store import TestRecord as StoredTest  # aliased so pytest does not try to collect it

T0 = 1_700_000_000.0
HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_MODEL = "<img src=x onerror=alert(1)>"
# A time-series name: its `$` would break matplotlib's mathtext if passed raw, and it ends up in
# the plot's title, legend and aria-label as well as in the tables.
MATH_NAME = r'cost $\frac{$ "<b>" per kW'

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = open_store(tmp_path / "r.sqlite")
    yield s
    s.close()


def _measure(store: SqliteStore, run_id: str, test_id: int | None, m: Measurement, at: float) -> Measurement:
    m = Measurement(**{**m.__dict__, "recorded_at": at})
    store.record_measurement(run_id, test_id, m)
    return m


def _run_info(run_id: str) -> RunInfo:
    return RunInfo(
        run_id=run_id,
        started_at=T0,
        rack_name="rack-A7",
        rack_serial="SN-0042",
        design_revision="rev-C",
        spec_name="gb200-acceptance",
        spec_version="1.3",
        station="bench-2",
        operator="j.doe",
        git_sha="0123abcd",
        simulated=True,
        metadata={"ticket": "VAL-7"},
    )


def _write_failing_run(store: SqliteStore, run_id: str = "run-fail", *, finish: bool = True) -> list[Measurement]:
    """A run with every measurement outcome, a failed test with a hostile message and a device."""
    store.start_run(_run_info(run_id))
    store.record_device(
        run_id,
        DeviceRecord(
            name="pdu-a",
            kind="pdu",
            driver="snmp_pdu",
            address="127.0.0.1:16100",
            vendor="APC",
            model=HOSTILE_MODEL,
            serial="ZA1234",
            firmware="7.0.4",
        ),
    )
    t_pass = store.start_test(run_id, "test_plans/test_power.py::test_outlets", T0 + 1)
    t_fail = store.start_test(run_id, "test_plans/test_thermal.py::test_inlet", T0 + 2)
    t_skip = store.start_test(run_id, "test_plans/test_net.py::test_lldp", T0 + 3)
    watts = Limit(low=0.0, high=1000.0, unit="W", requirement="PWR-1")
    judged = Measurement.judged
    plan = [
        (t_pass, judged("outlet_power", 512.25, "W", watts, device="pdu-a", channel="3"), 1.1),
        (t_pass, judged("feed_current", 31.5, "A", Limit(high=32.0, unit="A")), 1.2),
        (t_fail, judged("inlet_temp", 41.75, "degC", Limit(high=35.0, unit="degC")), 2.1),
        (t_fail, judged(HOSTILE_NAME, 5.0, "W", Limit(high=10.0, unit="W")), 2.2),
        (None, judged("firmware_age_days", 123.0, "d"), 2.3),
    ]
    recorded = [_measure(store, run_id, tid, m, T0 + dt) for tid, m, dt in plan]
    for i, value in enumerate((20.0, 22.5, 24.0)):  # a time series with the hostile-math name
        m = Measurement.judged(MATH_NAME, value, "%", Limit(high=30.0, unit="%"), device="bmc-1", clock_s=float(i * 60))
        recorded.append(_measure(store, run_id, t_pass, m, T0 + 3 + i))
    store.finish_test(t_pass, "passed", 1.5)
    store.finish_test(t_fail, "failed", 2.0, "AssertionError: inlet <b>too hot</b> & rising\n  at line 3")
    store.finish_test(t_skip, "skipped", 0.0, "no LLDP on this rack")
    if finish:
        store.finish_run(run_id, "failed", T0 + 754.5)
    return recorded


def _external_references(text: str) -> list[str]:
    """Every reference that would make the browser fetch something, SVG/XML namespace names aside.

    Namespace declarations (xmlns="http://www.w3.org/2000/svg", xmlns:xlink=...) are identifiers,
    never fetched, so exactly those attributes are removed before looking.
    """
    stripped = re.sub(r'\sxmlns(?::[A-Za-z][\w.-]*)?="http://www\.w3\.org/[^"]*"', "", text)
    found = re.findall(r"https?://[^\s\"'<>)]*", stripped, flags=re.IGNORECASE)
    found += re.findall(r"""(?:src|href|action|data)\s*=\s*["']?\s*//[^\s"'>]*""", stripped, flags=re.IGNORECASE)
    found += re.findall(r"""url\(\s*["']?(?!#)[^)]*\)""", stripped, flags=re.IGNORECASE)
    found += re.findall(r"@import", stripped, flags=re.IGNORECASE)
    found += re.findall(r"""\b(?:src|href)\s*=\s*["'](?!#)[^"']*["']""", stripped, flags=re.IGNORECASE)
    return found


class _Balance(HTMLParser):
    """Checks that every non-void element is closed in order (tables, sections, inline SVG)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> while open: {self.stack[-3:]}")
            return
        self.stack.pop()


def _parse(text: str) -> _Balance:
    parser = _Balance()
    parser.feed(text)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


def _verdict(text: str) -> str:
    match = re.search(r'id="verdict">([A-Z]+)<', text)
    assert match is not None
    return match.group(1)


def test_failing_run_report_content(store: SqliteStore, tmp_path: Path) -> None:
    recorded = _write_failing_run(store)
    path = render_report(store, "run-fail", tmp_path / "out")
    assert path == tmp_path / "out" / "report.html"
    assert path.is_file()
    text = path.read_text(encoding="utf-8")

    assert _verdict(text) == FAIL
    assert "incomplete-banner" not in text
    for field in ("rack-A7", "SN-0042", "rev-C", "gb200-acceptance", "1.3", "bench-2", "j.doe", "0123abcd", "VAL-7"):
        assert field in text
    assert "2023-11-14T22:13:20Z" in text  # started_at in UTC ISO
    assert "2023-11-14T22:25:54Z" in text  # ended_at
    assert "754.5 s (12 min 35 s)" in text
    assert "yes (simulated" in text

    for m in recorded:
        assert html.escape(m.name, quote=True) in text
        assert f">{m.value:.6g}<" in text
        for limit in (m.low, m.high):
            if limit is not None:
                assert f">{limit:.6g}<" in text
    assert ">-6.75<" in text  # margin of inlet_temp: 35 - 41.75, %+.4g
    assert '<span class="badge badge-marginal">marginal</span>' in text  # 31.5 A against 32 A
    assert '<span class="badge badge-info">info</span>' in text

    # Summary counts: 3 tests (passed, failed, skipped); measurements 6 pass, 1 marginal, 1 fail, 1 info.
    assert re.search(r'badge-failed">failed</span></td><td class="num">1<', text)
    assert re.search(r'badge-skipped">skipped</span></td><td class="num">1<', text)
    assert re.search(r'badge-error">error</span></td><td class="num">0<', text)
    assert re.search(r'badge-pass">pass</span></td><td class="num">5<', text)
    assert re.search(r'badge-marginal">marginal</span></td><td class="num">1<', text)
    assert re.search(r'badge-fail">fail</span></td><td class="num">1<', text)
    assert re.search(r'badge-info">info</span></td><td class="num">1<', text)

    # The failure message, pre-formatted and escaped, in the failed test's section.
    assert "<pre>AssertionError: inlet &lt;b&gt;too hot&lt;/b&gt; &amp; rising\n  at line 3</pre>" in text
    assert 'id="test-2"' in text
    assert "FAIL: inlet_temp = 41.75 degC" in text

    # Devices table.
    for field in ("pdu-a", "snmp_pdu", "127.0.0.1:16100", "APC", "ZA1234", "7.0.4"):
        assert f">{field}<" in text

    parsed = _parse(text)
    assert parsed.counts.get("svg", 0) >= 2  # margin chart + the time series
    assert parsed.counts["table"] >= 4


def test_hostile_strings_are_escaped(store: SqliteStore, tmp_path: Path) -> None:
    _write_failing_run(store)
    text = render_report(store, "run-fail", tmp_path).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<script" not in text.lower()  # the report has no scripts, so any would come from data
    assert "<img" not in text.lower()
    assert "<b>" not in text  # the time-series name, including the SVG aria-label
    assert 'aria-label="time series of cost $\\frac{$ &quot;&lt;b&gt;&quot; per kW"' in text
    assert "onerror=alert" not in text.replace("&lt;img src=x onerror=alert(1)&gt;", "")


def test_report_is_self_contained(store: SqliteStore, tmp_path: Path) -> None:
    _write_failing_run(store)
    text = render_report(store, "run-fail", tmp_path).read_text(encoding="utf-8")
    assert 'xmlns="http://www.w3.org/2000/svg"' in text  # the inline SVG keeps its namespace ...
    assert _external_references(text) == []  # ... and nothing else points outside the file
    assert "<link" not in text.lower()
    assert "<?xml" not in text and "<!DOCTYPE svg" not in text


def test_external_reference_check_is_not_vacuous() -> None:
    assert _external_references('<img src="https://example.com/x.png">')
    assert _external_references('<script src="//cdn.example.com/x.js"></script>')
    assert _external_references('<a href="http://www.w3.org/2000/svg">x</a>')  # not an xmlns
    assert _external_references("<style>body { background: url(img.png) }</style>")
    assert not _external_references('<svg xmlns="http://www.w3.org/2000/svg"><use xlink:href="#p-1"/></svg>')


def test_passing_run_is_pass(store: SqliteStore, tmp_path: Path) -> None:
    store.start_run(_run_info("run-ok"))
    tid = store.start_test("run-ok", "test_plans/test_power.py::test_outlets", T0 + 1)
    store.record_measurement("run-ok", tid, Measurement.judged("v", 230.0, "V", Limit(low=207.0, high=253.0, unit="V")))
    store.record_measurement("run-ok", tid, Measurement.judged("i", 31.9, "A", Limit(high=32.0, unit="A")))
    store.finish_test(tid, "passed", 0.5)
    store.finish_run("run-ok", "passed", T0 + 10)
    text = render_report(store, "run-ok", tmp_path).read_text(encoding="utf-8")
    assert _verdict(text) == PASS  # a marginal value is flagged, not failed
    assert "incomplete-banner" not in text
    assert "<svg" in text
    _parse(text)


def test_run_left_running_is_incomplete(store: SqliteStore, tmp_path: Path) -> None:
    _write_failing_run(store, "run-killed", finish=False)
    text = render_report(store, "run-killed", tmp_path).read_text(encoding="utf-8")
    assert _verdict(text) == INCOMPLETE
    assert 'id="incomplete-banner"' in text
    assert "this run did not finish" in text
    assert re.search(r"did not finish \(last record \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)", text)
    assert "inlet_temp" in text  # what was recorded is still shown
    _parse(text)


def test_no_limits_means_no_plot_data(store: SqliteStore, tmp_path: Path) -> None:
    store.start_run(_run_info("run-info"))
    store.record_measurement("run-info", None, Measurement.judged("fw_build", 42.0, ""))
    store.finish_run("run-info", "passed", T0 + 1)
    text = render_report(store, "run-info", tmp_path).read_text(encoding="utf-8")
    assert "<svg" not in text
    assert text.count("No data:") == 4  # margin chart, time series, tests, devices
    assert "No data: no test was recorded." in text
    assert _verdict(text) == PASS
    _parse(text)


def test_two_thousand_measurements_render(store: SqliteStore, tmp_path: Path) -> None:
    store.start_run(_run_info("run-big"))
    tid = store.start_test("run-big", "test_plans/test_soak.py::test_soak", T0)
    limit = Limit(low=10.0, high=90.0, unit="degC")
    for i in range(2000):
        value = 50.0 + 45.0 * math.sin(i / 7.0)
        m = Measurement.judged(f"gpu_temp_{i % 25}", value, "degC", limit, device=f"node-{i % 4}", clock_s=i * 2.0)
        store.record_measurement("run-big", tid, m)
    store.finish_test(tid, "failed", 600.0, "soak exceeded limits")
    store.finish_run("run-big", "failed", T0 + 600)
    path = render_report(store, "run-big", tmp_path)
    text = path.read_text(encoding="utf-8")
    assert text.count('<tr class="row-') == 2000
    assert _verdict(text) == FAIL
    assert "Further time series not plotted" in text  # 25 series names, plots capped
    assert _external_references(text) == []
    parsed = _parse(text)
    assert 2 <= parsed.counts["svg"] <= 1 + 12
    assert len(set(re.findall(r'\bid="([^"]+)"', text))) == len(re.findall(r'\bid="([^"]+)"', text))


def test_render_is_deterministic(store: SqliteStore, tmp_path: Path) -> None:
    _write_failing_run(store)
    first = render_report(store, "run-fail", tmp_path / "a").read_bytes()
    second = render_report(store, "run-fail", tmp_path / "b").read_bytes()
    assert first == second


def test_unknown_run_raises(store: SqliteStore, tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        render_report(store, "no-such-run", tmp_path)
    assert not (tmp_path / "report.html").exists()


def _test(outcome: str) -> StoredTest:
    return StoredTest(1, "r", "t.py::t", T0, T0 + 1, outcome, 1.0, "")


def test_run_verdict_never_greener_than_the_data() -> None:
    ok = Measurement.judged("a", 1.0, "V", Limit(high=2.0, unit="V"))
    bad = Measurement.judged("a", 3.0, "V", Limit(high=2.0, unit="V"))
    assert run_verdict("passed", [_test("passed")], [(1, ok)]) == PASS
    assert run_verdict("passed", [_test("passed")], [(1, bad)]) == FAIL
    assert run_verdict("passed", [_test("error")], [(1, ok)]) == FAIL
    assert run_verdict("failed", [_test("passed")], [(1, ok)]) == FAIL
    assert run_verdict("running", [_test("passed")], [(1, bad)]) == INCOMPLETE
    assert run_verdict("passed", [_test("skipped")], []) == PASS


def test_normalised_margin() -> None:
    two_sided = Measurement.judged("v", 230.0, "V", Limit(low=200.0, high=260.0, unit="V"))
    assert normalised_margin(two_sided) == pytest.approx(50.0)
    one_sided = Measurement.judged("t", 30.0, "degC", Limit(high=40.0, unit="degC"))
    assert normalised_margin(one_sided) == pytest.approx(25.0)
    way_out = Measurement.judged("t", 400.0, "degC", Limit(high=40.0, unit="degC"))
    assert normalised_margin(way_out) == -100.0
    nan = Measurement.judged("t", math.nan, "degC", Limit(high=40.0, unit="degC"))
    assert nan.outcome == Outcome.FAIL and normalised_margin(nan) == -100.0
    assert normalised_margin(Measurement.judged("x", 1.0, "")) is None
