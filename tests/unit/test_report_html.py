"""The HTML acceptance report: verdict, content, escaping, self-containment and plots."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rackval.harness.measure import Limit, Measurement, Outcome
from rackval.harness.report.display import shown
from rackval.harness.report.html import TEMPLATE_DIR, render_report
from rackval.harness.report.plots import normalised_margin
from rackval.harness.store import ActionRecord, CauseRecord, DeviceRecord, RunInfo, SqliteStore, open_store
from rackval.harness.verdict import Verdict

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
    match = re.search(r'id="verdict">([A-Z ]+)<', text)
    assert match is not None
    return match.group(1)


def test_failing_run_report_content(store: SqliteStore, tmp_path: Path) -> None:
    recorded = _write_failing_run(store)
    path = render_report(store, "run-fail", tmp_path / "out")
    assert path == tmp_path / "out" / "report.html"
    assert path.is_file()
    text = path.read_text(encoding="utf-8")

    assert _verdict(text) == Verdict.FAIL
    assert "incomplete-banner" not in text
    for field in ("rack-A7", "SN-0042", "rev-C", "gb200-acceptance", "1.3", "bench-2", "j.doe", "0123abcd", "VAL-7"):
        assert field in text
    assert "2023-11-14T22:13:20Z" in text  # started_at in UTC ISO
    assert "2023-11-14T22:25:54Z" in text  # ended_at
    assert "754.5 s (12 min 35 s)" in text
    assert "yes (simulated" in text

    for m in recorded:
        assert html.escape(m.name, quote=True) in text
        assert f">{m.value:.6g}<" in text  # these values need no more than 5 significant digits
        if m.low is not None or m.high is not None:
            assert f">{html.escape(shown(m, {}).limits)}<" in text
    assert ">0 .. 1000<" in text and ">≤ 35<" in text  # limits as one readable cell
    assert ">-6.75<" in text  # margin of inlet_temp: 35 - 41.75
    assert ">-19.3 %<" in text  # the same margin in % of the limit (6.75 / 35)
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
    store.record_measurement("run-ok", tid, Measurement.judged("i", 20.0, "A", Limit(high=32.0, unit="A")))
    store.finish_test(tid, "passed", 0.5)
    store.finish_run("run-ok", "pass", T0 + 10)
    text = render_report(store, "run-ok", tmp_path).read_text(encoding="utf-8")
    assert _verdict(text) == Verdict.PASS
    assert 'class="verdict verdict-PASS"' in text
    assert "incomplete-banner" not in text and 'id="findings"' not in text
    assert "<svg" in text
    _parse(text)


def test_marginal_value_makes_pass_with_marginals(store: SqliteStore, tmp_path: Path) -> None:
    """A value inside its marginal band passes today and may fail on the next unit: the verdict says
    so in its own words and colour, and the summary lists it with device, value and limit."""
    store.start_run(_run_info("run-marg"))
    tid = store.start_test("run-marg", "test_plans/test_power.py::test_outlets", T0 + 1)
    volts = Limit(low=207.0, high=253.0, unit="V")
    store.record_measurement("run-marg", tid, Measurement.judged("v", 230.0, "V", volts))
    amps = Limit(high=32.0, unit="A", requirement="feed_current")
    for value in (31.0, 31.9, 31.5):  # the same requirement thrice: one finding, the worst
        store.record_measurement("run-marg", tid, Measurement.judged("i", value, "A", amps, device="pdu-<b>a</b>"))
    store.finish_test(tid, "passed", 0.5)
    store.finish_run("run-marg", "pass with marginals", T0 + 10)
    text = render_report(store, "run-marg", tmp_path).read_text(encoding="utf-8")
    assert _verdict(text) == Verdict.PASS_WITH_MARGINALS == "PASS WITH MARGINALS"
    assert 'class="verdict verdict-PASS-WITH-MARGINALS"' in text
    assert re.search(r"\.verdict-PASS-WITH-MARGINALS \{ background: var\(--marginal\)", text)
    assert text.startswith("<!DOCTYPE html>") and "<title>PASS WITH MARGINALS — rack-A7" in text
    findings = _section(text, 'id="findings"', "</table>")
    assert findings.count("<tr>") == 2  # header + one finding (the worst of the three records)
    assert "feed_current" in findings and "pdu-&lt;b&gt;a&lt;/b&gt;" in findings
    assert ">31.9<" in findings and ">≤ 32<" in findings and ">+0.1<" in findings
    assert ">+0.313 %<" in findings  # the margin in % of the 32 A limit
    _parse(text)


def test_each_verdict_has_its_own_badge_colour() -> None:
    css = (TEMPLATE_DIR / "report.html.j2").read_text()
    colours = {v: re.search(rf"\.verdict-{v.slug} {{ background: ([^;]+);", css) for v in Verdict}
    assert all(colours.values()), colours
    assert len({m.group(1) for m in colours.values() if m}) == len(Verdict)


def test_run_left_running_is_incomplete(store: SqliteStore, tmp_path: Path) -> None:
    _write_failing_run(store, "run-killed", finish=False)
    text = render_report(store, "run-killed", tmp_path).read_text(encoding="utf-8")
    assert _verdict(text) == Verdict.INCOMPLETE
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
    assert text.count("No data:") == 3  # margin chart, tests, devices
    assert "Time series" not in text  # no measurement was repeated: no empty time-series section
    assert "No data: no test was recorded." in text
    assert _verdict(text) == Verdict.PASS
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
    rows = 0
    for table in ('id="measurements"', 'id="measurements-passed"'):  # failures first, passes collapsed
        rows += text[text.index(table) : text.index("</table>", text.index(table))].count('<tr class="row-')
    assert rows == 2000
    # the requirement rollup first: 25 names (no spec) x 4 devices behind disclosures
    rollup = text[text.index('id="requirement-rollup"') : text.index('id="measurements"')]
    assert text.index('id="requirement-rollup"') < text.index('id="measurements"')
    assert rollup.count("<details><summary>4 devices; worst node-") == 25
    assert _verdict(text) == Verdict.FAIL
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


# ---- traceability, action log, failure diagnostics, telemetry ----------------------------------
HOSTILE_FW = "2.7<b>beta</b>"


def _tel_values(i: int) -> float | None:
    """node-1.gpu0.temp at t=i: a ramp past the 85 degC limit, one sample the device missed."""
    return None if i == 50 else 60.0 + 0.3 * i


def _write_traced_run(store: Any, run_id: str = "run-tel") -> None:
    """A failed run with firmware, artifacts, actions (one undo pending, one failed) and
    telemetry in two units: one degC channel that crosses its limit, 11 W channels."""
    info = RunInfo(**{**_run_info(run_id).__dict__, "rack_file": "racks/a7.yaml", "spec_file": "specs/gb200.yaml"})
    store.start_run(info)
    store.record_device(run_id, DeviceRecord("node-1", "node", "linux", "10.0.0.21", "Acme", "GX-1", "SN-N1", "1.0"))
    store.record_device(run_id, DeviceRecord("pdu-a", "pdu", "apc", "10.0.0.5", "APC", "AP8941", "ZA1", "6.9"))
    store.record_firmware(run_id, "node-1", "BMC", "1.2.3", recorded_at=T0)
    store.record_firmware(run_id, "node-1", "BIOS", HOSTILE_FW, recorded_at=T0)
    store.record_firmware(run_id, "pdu-a", "rpdu2", "6.9.1", recorded_at=T0)
    t_ok = store.start_test(run_id, "test_plans/test_power.py::test_feed", T0 + 1)
    t_bad = store.start_test(run_id, "test_plans/test_thermal.py::test_gpu_soak", T0 + 2)
    store.record_measurement(run_id, t_ok, Measurement.judged("feed", 30.0, "A", Limit(high=63.0, unit="A")))
    hot = Measurement.judged("gpu_temp", 89.7, "degC", Limit(high=85.0, unit="degC", requirement="THERM-1"),
                             device="node-1", channel="node-1.gpu0.temp", clock_s=99.0)  # fmt: skip
    store.record_measurement(run_id, t_bad, hot)
    store.finish_test(t_ok, "passed", 1.0)
    store.finish_test(t_bad, "failed", 2.0, "AssertionError: GPU <hot> & rising")
    outlet_off = ActionRecord("pdu-a", "switch outlet 3 off", "switch outlet 3 on", performed_at=T0 + 3,
                              test_id=t_ok, detail={"outlet": 3})  # fmt: skip
    done = store.record_action(run_id, outlet_off)
    store.record_undo(done, "done", at=T0 + 4)
    store.record_action(run_id, ActionRecord("node-1", "set fan override 100%", "release fan override",
                                             performed_at=T0 + 5, test_id=t_bad))  # fmt: skip
    failed = store.record_action(run_id, ActionRecord("pdu-a", "<i>link</i> down", "link up", performed_at=T0 + 6))
    store.record_undo(failed, "failed", "BMC answered 503", at=T0 + 7)
    store.record_action(run_id, ActionRecord("node-1", "clear event log", performed_at=T0 + 8))
    store.record_artifact(run_id, "junit", "reports/run-tel/junit.xml", "junit", recorded_at=T0 + 9)
    rows: list[tuple[str, str, float, float | None, str]] = [
        ("node-1.gpu0.temp", "node-1", float(i), _tel_values(i), "degC") for i in range(100)
    ]
    for k in range(11):
        name = HOSTILE_NAME if k == 10 else f"pdu-a.outlet{k}.power"
        rows += [(name, "pdu-a", float(i), 100.0 * k + (i % 7), "W") for i in range(100)]
    store.record_samples(run_id, rows)
    store.finish_run(run_id, "failed", T0 + 100)


class _PublicOnly:
    """The store through its public API only: the report's generic telemetry path."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "dialect":
            raise AttributeError(name)
        return getattr(self._store, name)


@pytest.fixture(params=["sqlite", "generic", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    url = str(tmp_path / "r.sqlite")
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server").create_database()
    s = open_store(url)
    try:
        yield _PublicOnly(s) if request.param == "generic" else s
    finally:
        s.close()


def _section(text: str, start_marker: str, end_marker: str) -> str:
    start = text.index(start_marker)
    return text[start : text.index(end_marker, start)]


def test_traceability_actions_diagnostics_and_telemetry(any_store: Any, tmp_path: Path) -> None:
    _write_traced_run(any_store)
    text = render_report(any_store, "run-tel", tmp_path).read_text(encoding="utf-8")
    assert _verdict(text) == Verdict.FAIL
    parsed = _parse(text)
    assert _external_references(text) == []
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))
    references = re.findall(r'(?:href="#|url\(#)([^")]+)', text)  # glyphs, clip paths of the 4 figures
    assert references and set(references) <= set(ids)

    # The pending and the failed undo are shouted about at the top; the done one is not.
    banner = _section(text, 'id="undo-banner"', "</div>")
    assert text.index('id="undo-banner"') < text.index("<h2>Run</h2>")
    assert "2 actions" in banner
    assert "set fan override 100%" in banner and "NEVER RAN" in banner
    assert "&lt;i&gt;link&lt;/i&gt; down" in banner and "FAILED: BMC answered 503" in banner
    assert "switch outlet 3 off" not in banner and "clear event log" not in banner
    log = _section(text, 'id="action-log"', "</table>")
    assert log.count("<tr") == 5  # header + 4 actions
    assert log.count('class="undo-flagged"') == 2
    assert "PENDING — NEVER RAN" in log and ">done<" in log and ">none<" in log
    assert "{&#34;outlet&#34;: 3}" in log

    # Traceability: git SHA, rack and spec files, firmware snapshot (escaped), artifacts.
    trace = _section(text, 'id="traceability"', "<footer>")
    for field in ("0123abcd", "racks/a7.yaml", "specs/gb200.yaml", "1.2.3", "6.9.1", "reports/run-tel/junit.xml"):
        assert field in trace
    assert html.escape(HOSTILE_FW) in trace and HOSTILE_FW not in text

    # Failure diagnostics: the failed test's message, its failing value with limits, device identity.
    diag = _section(text, 'id="diagnostics"', "<h2>Plots</h2>")
    assert "test_plans/test_thermal.py::test_gpu_soak" in diag
    assert "AssertionError: GPU &lt;hot&gt; &amp; rising" in diag
    assert ">89.7<" in diag and ">≤ 85<" in diag and ">-4.7<" in diag and "THERM-1" in diag
    for field in ("Acme", "GX-1", "SN-N1", "10.0.0.21", "BMC 1.2.3"):
        assert field in diag
    assert "set fan override 100%" in diag  # the action taken during the failed test
    assert "test_feed" not in diag  # a passing test has no diagnostics

    # Telemetry: one figure per kind of channel (device kind + name with numbers folded), each in one
    # unit, with the envelope of all its channels; the limit borrowed from the measurement.
    tel = _section(text, 'id="telemetry"', "<h2>Measurements</h2>")
    assert "1,200 samples on 12 channels" in tel
    assert tel.count("<svg") == 3  # GPU temperature, outlet power, and the oddly named channel on its own
    assert 'aria-label="node/gpu#.temp: 1 channel"' in tel and 'aria-label="pdu/outlet#.power: 10 channels"' in tel
    assert "all 10 channels of kind pdu/outlet#.power in W" in tel
    assert "Dashed lines are limits of measurements on these channels (THERM-1)" in tel
    assert "node-1.gpu0.temp (beyond its limit)" in tel  # the channel that matters, drawn on top
    table = _section(text, 'id="channels"', "</table>")
    assert table.count("<tr") == 13
    beyond = re.findall(r'<tr class="channel-beyond">(.*?)</tr>', table)
    assert len(beyond) == 1 and "node-1.gpu0.temp" in beyond[0]
    values = [_tel_values(i) for i in range(100)]
    recorded = sorted(v for v in values if v is not None)
    cells = re.findall(r'<td class="num">([^<]*)</td>', beyond[0])
    expected = [100, 1, recorded[0], sum(recorded) / len(recorded), recorded[-1], recorded[math.ceil(0.99 * 99) - 1]]
    assert cells[:6] == [str(expected[0]), str(expected[1])] + [format(v, ".6g") for v in expected[2:]]
    assert cells[6:] == ["", "85"]  # borrowed limits: no low, high 85
    assert html.escape(HOSTILE_NAME) in table and "<script" not in text.lower()
    assert parsed.counts["svg"] == 4  # margin chart and 3 telemetry figures (no measurement time series)


def test_telemetry_stats_agree_across_paths(store: SqliteStore) -> None:
    from rackval.harness.report import telemetry

    _write_traced_run(store)
    # a channel whose unit changes at its last sample: the fast path must hand over to the exact one
    store.record_samples("run-tel", [("mixed", "node-1", float(i), float(i), "W" if i < 9 else "") for i in range(10)])
    fast = telemetry.summarise(store, "run-tel", 10)
    assert fast.stats == telemetry.channel_stats(store, "run-tel")
    assert [(c.key, c.count) for c in fast.stats if c.channel == "mixed"] == [
        (("mixed", "node-1", ""), 1), (("mixed", "node-1", "W"), 9)]  # fmt: skip
    # the grid (min/max per time bucket) agrees with bucketing the public samples by hand
    # every channel, sharing a time axis or not, with gaps or not (the summary reuses the bucket
    # boundaries of an axis it has seen; a channel with gaps gets its own)
    for channel, device, unit in (c.key for c in fast.stats):
        grid = fast.grid
        assert grid is not None and (grid.t0, grid.width) == (0.0, 9.9)
        by_bucket: dict[int, list[float]] = {}
        for sample in store.samples("run-tel", channel, device=device):
            if sample.value is not None and sample.unit == unit:
                by_bucket.setdefault(min(int(sample.t / grid.width), 9), []).append(sample.value)
        key = (channel, device, unit)
        for b in range(10):
            found = by_bucket.get(b)
            assert math.isnan(grid.low[key][b]) if not found else grid.low[key][b] == min(found), (key, b)
            assert math.isnan(grid.high[key][b]) if not found else grid.high[key][b] == max(found), (key, b)
    key = ("node-1.gpu0.temp", "node-1", "degC")
    assert grid.low[key][0] == 60.0 and grid.high[key][-1] == pytest.approx(89.7) and grid.interval[key] == 1.0


def test_channels_summarised_together_agree_with_each_summarised_by_hand(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Channels sharing ticks are summarised as one matrix, flushed every ``BLOCK_VALUES``
    samples; each channel's p99, bucket minima and maxima and interval are what numpy gives for
    that channel alone: with missing samples, infinities, a channel of its own ticks, and
    several blocks."""
    from rackval.harness.report import telemetry

    monkeypatch.setattr(telemetry, "BLOCK_VALUES", 700)  # a block every ~3 channels
    rng = np.random.default_rng(11)
    store.start_run(_run_info("blocks"))
    ticks = np.arange(0.0, 250.0, 1.0)
    values: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(10):
        v = np.round(rng.normal(50 + i, 4, ticks.size), 2)
        if i == 3:
            v[[5, 77]] = np.nan  # missing samples: summarised alone
        if i == 4:
            v[9] = np.inf
        values[f"ch{i}"] = (ticks, v)
    values["own"] = (np.arange(0.0, 250.0, 2.5), np.round(rng.normal(10, 1, 100), 1))
    rows = [(ch, "dev", float(t), None if np.isnan(x) else float(x), "W")
            for ch, (ts, vs) in values.items() for t, x in zip(ts, vs, strict=True)]  # fmt: skip
    store.record_samples("blocks", rows)
    summary = telemetry.summarise(store, "blocks", 20)
    assert summary.grid is not None and [c.channel for c in summary.stats] == sorted(values)
    for c in summary.stats:
        t, v = values[c.channel]
        finite = np.sort(v[~np.isnan(v)])
        assert c.p99 == finite[math.ceil(finite.size * 0.99) - 1], c.channel
        slot = np.minimum(((t - summary.grid.t0) / summary.grid.width).astype(int), 19)
        for b in range(20):
            here = v[(slot == b) & ~np.isnan(v)]
            assert summary.grid.low[c.key][b] == here.min() and summary.grid.high[c.key][b] == here.max()
        assert summary.grid.interval[c.key] == (2.5 if c.channel == "own" else 1.0)


def test_a_damaged_segment_costs_its_channel_p99_and_line_not_the_report(store: SqliteStore, tmp_path: Path) -> None:
    """One channel's samples cannot be decoded (a damaged blob, or a newer rackval's codec): the
    report still renders, says which channel in one line, keeps that channel's row with the
    statistics the store kept beside the samples, and draws the others."""
    import sqlite3

    _write_traced_run(store)
    db = sqlite3.connect(store.path, isolation_level=None)
    db.execute(
        "UPDATE sample_segments SET vals = ? WHERE series_id IN"
        " (SELECT series_id FROM sample_series WHERE channel = 'pdu-a.outlet3.power')",
        (b"\x07\x0a\x00\x00\x00from a newer rackval",),
    )
    db.close()
    text = render_report(store, "run-tel", tmp_path).read_text(encoding="utf-8")
    _parse(text)
    warning = _section(text, 'id="telemetry-unreadable"', "</div>")
    assert "1 channel" in warning and "&#39;pdu-a.outlet3.power&#39; of &#39;pdu-a&#39;" in warning
    assert "unknown value encoding 7" in warning
    table = _section(text, 'id="channels"', "</table>")
    row = next(r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", table, flags=re.S) if "pdu-a.outlet3.power" in r)
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    assert cells[:5] == ["100", "0", "300", format(300 + sum(i % 7 for i in range(100)) / 100, ".6g"), "306"]
    assert cells[5] == ""  # no p99 without the samples
    assert table.count("<tr") == 13 and 'aria-label="pdu/outlet#.power: 10 channels"' in text


def test_no_actions_no_banner_and_empty_sections(store: SqliteStore, tmp_path: Path) -> None:
    store.start_run(_run_info("run-plain"))
    aid = store.record_action("run-plain", ActionRecord("pdu-a", "switch outlet 1 off", "switch outlet 1 on"))
    store.record_undo(aid, "done")
    store.finish_run("run-plain", "passed", T0 + 5)
    text = render_report(store, "run-plain", tmp_path).read_text(encoding="utf-8")
    assert "undo-banner" not in text and 'id="diagnostics"' not in text
    assert "Nothing recorded: no telemetry was sampled in this run." in text
    assert "Nothing recorded: no firmware versions were read in this run." in text
    assert "Nothing recorded: no artifact was registered for this run." in text
    _parse(text)


def test_failures_are_grouped_by_root_cause_at_the_top(store: SqliteStore, tmp_path: Path) -> None:
    store.start_run(_run_info("run-causes"))
    feed_test = "test_plans/test_feed_redundancy.py::test_rack_rides_through_feed_loss"
    feed = CauseRecord("cause-1", f"feed A dropped under full load: 231 kW, over the 230 kW rating {HOSTILE_NAME}",
                       ("node01", "node02"), feed_test, T0 + 5, 1234.0)  # fmt: skip
    dead = CauseRecord("cause-2", "bmc-node03 stopped answering (GET /redfish/v1: refused)", ("bmc-node03",), "",
                       T0 + 6, None)  # fmt: skip
    idle = CauseRecord("cause-3", "pdu-b stopped answering (GET sysDescr: no answer)", ("pdu-b",), "", T0 + 7, None)
    for c in (feed, dead, idle):
        store.record_cause("run-causes", c)
    tests = {}
    for name, outcome, cause in (
        (feed_test, "failed", "cause-1"),
        ("test_plans/test_identity.py::test_device_answers_with_expected_identity[node01]", "failed", "cause-1"),
        ("test_plans/test_identity.py::test_device_answers_with_expected_identity[node02]", "failed", "cause-1"),
        ("test_plans/test_identity.py::test_device_answers_with_expected_identity[bmc-node03]", "failed", "cause-2"),
        ("test_plans/test_identity.py::test_device_answers_with_expected_identity[pdu-a]", "failed", ""),
        ("test_plans/test_identity.py::test_device_answers_with_expected_identity[tor1]", "passed", ""),
    ):
        tests[name] = tid = store.start_test("run-causes", name, T0 + 1)
        store.finish_test(tid, outcome, 0.1, "DeviceDown: ..." if cause else "")
        if cause:
            store.record_test_cause(tid, cause)
    store.finish_run("run-causes", "fail", T0 + 10)
    text = render_report(store, "run-causes", tmp_path).read_text(encoding="utf-8")
    # at the top, then the summary (what the run found), then the run's identity
    assert text.index('id="causes"') < text.index("<h2>Summary</h2>") < text.index("<h2>Run</h2>")
    body = _section(text, 'id="causes"', "<h2>Summary</h2>")
    headings = re.findall(r"<h3>(.*?)</h3>", body)
    assert headings == [html.escape(feed.summary, quote=False), dead.summary, idle.summary]  # in the order found
    first = _section(body, 'id="cause-1"', "</section>")
    assert "1234 s on the simulator clock" in first and f"<code>{feed_test}</code>" in first
    assert "Devices down (2): <strong>node01</strong>, <strong>node02</strong>" in first
    assert "Failed tests (3):" in first and f'href="#test-{tests[feed_test]}"' in first
    assert "test_device_answers_with_expected_identity[node02]</a>" in first and "pdu-a" not in first
    assert "Failed tests (1):" in _section(body, 'id="cause-2"', "</section>")
    assert "No test failed on it." in _section(body, 'id="cause-3"', "</section>")
    assert "1 other failed test shares no known cause" in body and "identity[pdu-a]</a>" in body
    assert "tor1" not in body and "<script" not in text.lower()
    _parse(text)


def test_no_cause_no_section(store: SqliteStore, tmp_path: Path) -> None:
    _write_failing_run(store)
    text = render_report(store, "run-fail", tmp_path).read_text(encoding="utf-8")
    assert 'id="causes"' not in text and "Root causes" not in text


def test_many_channels_report_is_bounded(store: SqliteStore, tmp_path: Path) -> None:
    """300 channels x 400 samples: figures are capped, every channel is in the table, the SVG
    size does not grow with the sample count, and rendering twice gives the same bytes."""
    store.start_run(_run_info("run-wide"))
    units = ("W", "degC", "rpm", "V", "A", "%", "Gb/s", "count", "kW", "s")
    store.record_samples(
        "run-wide",
        ((f"dev{c % 30}.ch{c}", f"dev{c % 30}", float(i), float(c + i % 13), units[c % 10])
         for i in range(400) for c in range(300)),  # time-major, as a sampler writes
        batch_size=50_000,
    )  # fmt: skip
    store.finish_run("run-wide", "passed", T0 + 400)
    first = render_report(store, "run-wide", tmp_path / "a")
    text = first.read_text(encoding="utf-8")
    tel = _section(text, 'id="telemetry"', "<h2>Measurements</h2>")
    assert tel.count("<svg") == 8  # MAX_TELEMETRY_PLOTS of the 10 units
    assert "120,000 samples on 300 channels" in tel
    assert _section(text, 'id="channels"', "</table>").count("<tr") == 301
    assert len(text) < 2_000_000
    assert render_report(store, "run-wide", tmp_path / "b").read_bytes() == first.read_bytes()


def test_killed_run_shows_pending_undo(store: SqliteStore, tmp_path: Path) -> None:
    """A run killed mid-action: INCOMPLETE, and the undo that never ran is the loudest thing."""
    store.start_run(_run_info("run-killed-act"))
    tid = store.start_test("run-killed-act", "test_plans/test_power.py::test_outlet_cycle", T0 + 1)
    store.record_action("run-killed-act", ActionRecord("pdu-a", "switch outlet 7 off", "switch outlet 7 on",
                                                       performed_at=T0 + 2, test_id=tid))  # fmt: skip
    text = render_report(store, "run-killed-act", tmp_path).read_text(encoding="utf-8")
    assert _verdict(text) == Verdict.INCOMPLETE
    banner = _section(text, 'id="undo-banner"', "</div>")
    assert "1 action whose undo" in banner and "switch outlet 7 off" in banner and "NEVER RAN" in banner
    assert "switch outlet 7 on" in banner  # what to do by hand
    _parse(text)


@pytest.mark.parametrize("other_rows_per_row", [1, 9])  # dense and sparse placement of the run's rowids
def test_sqlite_telemetry_among_other_runs(store: SqliteStore, other_rows_per_row: int) -> None:
    from rackval.harness.report import telemetry

    for run_id in ("mine", "theirs"):
        store.start_run(RunInfo(run_id=run_id, started_at=T0))
    for i in range(300):  # interleaved, as two stations writing to one store would
        store.record_samples("mine", [(f"c{i % 3}", "d", float(i), None if i == 7 else float(i % 17), "W")])
        store.record_samples("theirs", [(f"c{i % 3}", "d", float(i), 1000.0, "W")] * other_rows_per_row)
    assert telemetry.channel_stats(store, "mine") == telemetry.channel_stats(_PublicOnly(store), "mine")
    assert [c.count for c in telemetry.channel_stats(store, "mine")] == [100, 100, 100]
    assert max(c.maximum or 0 for c in telemetry.channel_stats(store, "mine")) == 16.0


def test_undo_script_is_shown_once_with_the_actions_it_covers(store: SqliteStore, tmp_path: Path) -> None:
    """64 GPU loads whose undo failed when the nodes stopped answering: each failed undo is in the
    banner and the log, and the stop script their messages quote is printed once, listing them."""
    import shlex

    from rackval.drivers.node.linux import STOP_SCRIPT

    cmd = shlex.join(["sh", "-c", STOP_SCRIPT, "rackval-load-stop", "/tmp/rackval-load.pid", "gpu_burn", "5"])
    store.start_run(_run_info("run-undo"))
    tid = store.start_test("run-undo", "test_plans/test_load_soak.py::test_soak", T0 + 1)
    ids = []
    for i in range(1, 65):
        aid = store.record_action("run-undo", ActionRecord(f"node{i:02d}", "start GPU load at 100%", "stop GPU load",
                                                           performed_at=T0 + 2, test_id=tid))  # fmt: skip
        message = f"DeviceTimeout: node{i:02d} (127.0.0.1:{2200 + i}): SSH command {cmd!r}: no exit status within 6.5 s"
        store.record_undo(aid, "failed", message, at=T0 + 3)
        ids.append(aid)
    store.finish_test(tid, "failed", 3.0, "UndoError: 64 of 64 undos failed")
    store.finish_run("run-undo", "fail", T0 + 10)
    text = render_report(store, "run-undo", tmp_path).read_text(encoding="utf-8")
    assert _verdict(text) == Verdict.FAIL
    assert text.count("pidfile=$1; name=$2; grace=$3") == 1  # the script, once
    assert text.count("survived SIGKILL") == 1
    banner = _section(text, 'id="undo-banner"', "</div>")
    assert "64 actions" in banner and banner.count("SSH command &lt;script 1&gt;: no exit status") == 64
    log = _section(text, 'id="action-log"', "</table>")
    assert log.count('class="undo-flagged"') == 64 and log.count("&lt;script 1&gt;") == 64
    scripts = _section(text, 'id="undo-scripts"', "</pre>")
    assert "quoted by the undo" in scripts and "messages of 64 actions" in scripts
    assert all(f'href="#action-{aid}"' in scripts for aid in ids) and "node64" in scripts
    assert '<pre class="undo-script">sh -c &#39;pidfile=$1; name=$2; grace=$3\nalive() {' in scripts
    assert len(text) < 200_000
    _parse(text)


def test_revision_mismatch_is_a_visible_warning_in_traceability(store: SqliteStore, tmp_path: Path) -> None:
    def render(run_id: str, spec_revision: str) -> str:
        info = _run_info(run_id)  # the rack's design revision: rev-C
        store.start_run(RunInfo(**{**info.__dict__, "metadata": {"spec_design_revision": spec_revision}}))
        store.finish_run(run_id, "pass", T0 + 1)
        return render_report(store, run_id, tmp_path / run_id).read_text(encoding="utf-8")

    text = render("run-rev-a", "rev-<b>A</b>")
    trace = _section(text, 'id="traceability"', "<footer>")
    warning = _section(trace, 'id="revision-warning"', "</p>")
    assert "design revision mismatch" in warning
    assert "&#39;rev-&lt;b&gt;A&lt;/b&gt;&#39;" in warning and "&#39;rev-C&#39;" in warning
    assert "rack <code>rev-C</code>, spec <code>rev-&lt;b&gt;A&lt;/b&gt;</code>" in trace
    for run_id, same in (("run-rev-c", "rev-C"), ("run-rev-none", "")):
        assert 'id="revision-warning"' not in render(run_id, same)


def test_templates_compile_once_and_a_cache_that_fails_is_no_cache(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compiled templates come from jinja's on-disk cache on the next render; a cache directory
    that cannot be written, or no safe one at all, still renders the same report."""
    from jinja2 import Environment

    from rackval.harness.report import html as html_module

    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    where = {"dir": str(cache)}

    def cache_dir(self: object) -> str:
        if where["dir"] is None:
            raise RuntimeError("Cannot determine safe temp directory.")
        return where["dir"]

    monkeypatch.setattr(html_module._QuietBytecodeCache, "_get_default_cache_dir", cache_dir)
    compiled: list[str] = []
    real = Environment.compile

    def counting(self: Environment, source: str, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        compiled.append(str(name))
        return real(self, source, name, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", counting)
    _write_failing_run(store)
    first = render_report(store, "run-fail", tmp_path / "a").read_bytes()
    assert compiled and list(cache.iterdir())
    compiled.clear()
    assert render_report(store, "run-fail", tmp_path / "b").read_bytes() == first
    assert compiled == []  # every template from the cache
    where["dir"] = str(tmp_path / "no-such-dir")  # writes fail
    assert render_report(store, "run-fail", tmp_path / "c").read_bytes() == first
    where["dir"] = None  # jinja finds no safe directory
    assert render_report(store, "run-fail", tmp_path / "d").read_bytes() == first
    assert compiled  # compiled again, as without a cache
