"""JUnit XML rendered from the results store, with every measurement as a test-case property.

CI systems read JUnit; putting each measurement (value, unit, limits, outcome) into properties
lets a dashboard show numbers, not just green and red. The suite's ``verdict`` property is the
run's verdict (``rackval.harness.verdict``): PASS WITH MARGINALS is visible to CI too, although no
test case failed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rackval.harness.store import Store
from rackval.harness.verdict import run_verdict


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def write_junit(store: Store, run_id: str, path: Path) -> Path:
    run = store.run(run_id)
    tests = store.tests(run_id)
    measured = store.measurements(run_id)
    by_test: dict[int | None, list] = {}
    for test_id, m in measured:
        by_test.setdefault(test_id, []).append(m)
    verdict = run_verdict(store.run_status(run_id)[0], tests, measured, store.actions(run_id))
    failures = sum(t.outcome == "failed" for t in tests)
    errors = sum(t.outcome == "error" for t in tests)
    skipped = sum(t.outcome == "skipped" for t in tests)
    total_time = sum(t.duration_s or 0.0 for t in tests)
    suite = ET.Element(
        "testsuite",
        name=f"rackval {run.rack_name}",
        tests=str(len(tests)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skipped),
        time=f"{total_time:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    for key in ("run_id", "rack_name", "rack_serial", "design_revision", "spec_name", "spec_version", "git_sha"):
        ET.SubElement(props, "property", name=key, value=str(getattr(run, key)))
    ET.SubElement(props, "property", name="verdict", value=verdict.value)
    for t in tests:
        module, _, name = t.nodeid.rpartition("::")
        case = ET.SubElement(
            suite, "testcase", classname=module.replace("/", ".").removesuffix(".py"), name=name,
            time=f"{t.duration_s or 0.0:.3f}",
        )  # fmt: skip
        measurements = by_test.get(t.test_id, [])
        if measurements:
            cprops = ET.SubElement(case, "properties")
            for m in measurements:
                label = m.name + (f"[{m.device}]" if m.device else "") + (f"[{m.channel}]" if m.channel else "")
                limits = f" limits {_fmt(m.low)}..{_fmt(m.high)}" if m.low is not None or m.high is not None else ""
                ET.SubElement(cprops, "property", name=label, value=f"{m.value:.6g} {m.unit}{limits} {m.outcome.value}")
        first_line = t.message.splitlines()[0] if t.message else t.outcome
        if t.outcome in ("failed", "error"):
            tag = "failure" if t.outcome == "failed" else "error"
            ET.SubElement(case, tag, message=first_line).text = t.message
        elif t.outcome == "skipped":
            ET.SubElement(case, "skipped", message=t.message)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path
