"""JUnit XML read back by a third-party consumer (``junitparser`` from PyPI): one property per
measurement field (detail included, a hostile one escaped), run identity and timestamps on the suite."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from junitparser import JUnitXml, Properties, TestCase

from rackval.core.printable import printable
from rackval.harness.junit import write_junit
from rackval.harness.measure import Limit, Measurement
from rackval.harness.store import RunInfo, open_store

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOSTILE_DETAIL = "mean of the last \"449\" s\x00\x1b[2J\r\n<script>alert('x')</script> & \u202e\x7f\t"
"""A measurement's free text as a hostile device could make it: NUL and ESC (which XML 1.0 cannot
carry at all), CR LF, markup, both quotes, a bidi override, DEL and a tab."""


def _case_properties(case: TestCase) -> dict[str, str]:
    props = case.child(Properties)
    return {} if props is None else {p.name: p.value for p in props}


def test_junit_through_junitparser(tmp_path: Path) -> None:
    store = open_store(tmp_path / "r.sqlite")
    try:
        store.start_run(RunInfo("run-7", T0, rack_name="rack-<a>", rack_serial="SN-7", design_revision="rev-B",
                                station="bench-3", operator="j.doe", spec_name="gb200", spec_version="2"))  # fmt: skip
        tid = store.start_test("run-7", "test_plans/test_load_soak.py::test_soak", T0 + 5)
        kw = Limit(high=225.0, unit="kW", requirement="rack_steady_power")
        store.record_measurement("run-7", tid, Measurement.judged("rack steady power", 202379.0, "W", kw,
                                                                  device="rack", channel="mean",
                                                                  detail="mean of the last 449 s"))  # fmt: skip
        store.record_measurement("run-7", tid, Measurement.judged("rack steady power", 231000.0, "W", kw,
                                                                  device="rack", channel="mean",
                                                                  detail=HOSTILE_DETAIL))  # fmt: skip
        store.record_measurement("run-7", tid, Measurement.judged("lost", math.nan, "degC", Limit(high=1, unit="degC")))
        store.record_measurement("run-7", tid, Measurement.judged("fw age", 12.0, "d"))
        store.finish_test(tid, "failed", 1800.0, "rack steady power 231 kW > 225 kW\nfrom \x1b[31mpdu\x00 <b>")
        store.finish_run("run-7", "fail", T0 + 1900)
        path = write_junit(store, "run-7", tmp_path / "junit.xml")
    finally:
        store.close()

    xml = JUnitXml.fromfile(str(path))
    suites = list(xml) if isinstance(xml, JUnitXml) else [xml]
    (suite,) = suites
    assert suite.tests == 1 and suite.failures == 1 and suite.errors == 0
    assert datetime.fromisoformat(suite.timestamp) == datetime.fromtimestamp(T0, tz=UTC)
    assert suite.hostname == "bench-3"
    identity = {p.name: p.value for p in suite.properties()}
    assert identity["run_id"] == "run-7" and identity["rack_name"] == "rack-<a>" and identity["rack_serial"] == "SN-7"
    assert identity["design_revision"] == "rev-B" and identity["station"] == "bench-3"
    assert identity["operator"] == "j.doe" and identity["verdict"] == "FAIL"
    assert datetime.fromisoformat(identity["ended_at"]) == datetime.fromtimestamp(T0 + 1900, tz=UTC)

    (case,) = list(suite)
    assert case.name == "test_soak" and case.classname == "test_plans.test_load_soak" and case.time == 1800.0
    assert not case.is_passed and case.result[0].message == "rack steady power 231 kW > 225 kW"
    props = _case_properties(case)
    first = "rack steady power[rack][mean]"
    assert float(props[f"{first}.value"]) == 202379.0 and props[f"{first}.unit"] == "W"
    assert props[f"{first}.low"] == "" and float(props[f"{first}.high"]) == 225000.0
    assert float(props[f"{first}.margin"]) == 225000.0 - 202379.0 and props[f"{first}.outcome"] == "pass"
    assert props[f"{first}#2.outcome"] == "fail" and float(props[f"{first}#2.margin"]) == -6000.0  # repeat kept
    assert math.isnan(float(props["lost.value"])) and props["lost.outcome"] == "fail"
    assert props["fw age.high"] == "" and props["fw age.margin"] == "" and props["fw age.outcome"] == "info"
    assert props[f"{first}.detail"] == "mean of the last 449 s" and props["fw age.detail"] == ""
    assert len(props) == 4 * 7

    # the hostile detail: control characters as visible escapes, the rest as the device wrote it
    assert props[f"{first}#2.detail"] == printable(HOSTILE_DETAIL)
    assert props[f"{first}#2.detail"].startswith("mean of the last \"449\" s\\x00\\x1b[2J\\r\\n<script>alert('x')")
    raw = path.read_text(encoding="utf-8")
    assert not [c for c in raw if not c.isprintable() and c != "\n"]  # no raw control character in the file
    assert "<script>" not in raw and "&lt;script&gt;" in raw and "&quot;449&quot;" in raw
    # a failure's text keeps its lines; its control characters are escaped too
    assert case.result[0].text == "rack steady power 231 kW > 225 kW\nfrom \\x1b[31mpdu\\x00 <b>"
    assert "<b>" not in raw
