"""JUnit XML rendered from the results store, with every measurement as test-case properties.

CI systems read JUnit; putting each measurement into properties lets a dashboard show numbers,
not just green and red. Each measurement is seven properties, one field each, so a consumer never
parses a string: ``<label>.value``, ``.unit``, ``.low``, ``.high``, ``.margin``, ``.outcome`` and
``.detail`` (the measurement's free text, "mean of the last 449 s"; '' when it has none), where
the label is ``name[device][channel]`` (``#2``, ``#3``... when a test records the same label
again). An absent limit or margin is an empty value; a lost reading's value is ``nan``.
The suite carries the run's identity (run id, rack, serial, revision, spec, station, operator,
start and end in UTC) as properties,
its start as the ``timestamp`` attribute and the station as ``hostname``; its ``verdict``
property is the run's verdict (``rackval.harness.verdict``): PASS WITH MARGINALS is visible to
CI too, although no test case failed.

Text from the store (names, devices, channels, details, messages) may come from a device, and
XML 1.0 cannot carry most control characters at all (a raw ESC makes the file unreadable to every
parser), so every string goes through ``rackval.core.printable`` first: control characters
become visible escapes (``\\x1b``), a failure's text keeps its line breaks, and ElementTree
escapes the rest (``<``, ``&``, quotes).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from rackval.core.printable import printable
from rackval.harness.measure import Measurement
from rackval.harness.store import Store
from rackval.harness.verdict import run_verdict

MEASUREMENT_FIELDS = ("value", "unit", "low", "high", "margin", "outcome", "detail")
RUN_PROPERTIES = ("run_id", "rack_name", "rack_serial", "design_revision", "spec_name", "spec_version", "station",
                  "operator", "git_sha")  # fmt: skip


def _fmt(value: float | None) -> str:
    """Full precision (``repr``), so a consumer reads back the stored number; '' for none."""
    return "" if value is None else repr(float(value))


def _utc(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def _lines(text: str) -> str:
    """``text`` made printable line by line: a multi-line failure stays multi-line."""
    return "\n".join(printable(line) for line in text.split("\n"))


def _fields(m: Measurement) -> tuple[str, ...]:
    value = "nan" if m.value is None else _fmt(m.value)  # a lost reading (stored as NULL) is NaN, not absent
    return (value, m.unit, _fmt(m.low), _fmt(m.high), _fmt(m.margin), m.outcome.value, m.detail)


def _add_measurements(case: ET.Element, measurements: list[Measurement]) -> None:
    cprops = ET.SubElement(case, "properties")
    seen: dict[str, int] = {}
    for m in measurements:
        label = m.name + (f"[{m.device}]" if m.device else "") + (f"[{m.channel}]" if m.channel else "")
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label}#{seen[label]}"
        for field, value in zip(MEASUREMENT_FIELDS, _fields(m), strict=True):
            ET.SubElement(cprops, "property", name=printable(f"{label}.{field}"), value=printable(value))


def write_junit(store: Store, run_id: str, path: Path) -> Path:
    run = store.run(run_id)
    outcome, ended_at = store.run_status(run_id)
    tests = store.tests(run_id)
    measured = store.measurements(run_id)
    by_test: dict[int | None, list[Measurement]] = {}
    for test_id, m in measured:
        by_test.setdefault(test_id, []).append(m)
    verdict = run_verdict(outcome, tests, measured, store.actions(run_id))
    total_time = sum(t.duration_s or 0.0 for t in tests)
    suite = ET.Element(
        "testsuite",
        name=printable(f"rackval {run.rack_name}"),
        tests=str(len(tests)),
        failures=str(sum(t.outcome == "failed" for t in tests)),
        errors=str(sum(t.outcome == "error" for t in tests)),
        skipped=str(sum(t.outcome == "skipped" for t in tests)),
        time=f"{total_time:.3f}",
        timestamp=_utc(run.started_at),
        hostname=printable(run.station or str(run.metadata.get("host", ""))),
    )
    props = ET.SubElement(suite, "properties")
    for key in RUN_PROPERTIES:
        ET.SubElement(props, "property", name=key, value=printable(str(getattr(run, key))))
    ET.SubElement(props, "property", name="started_at", value=_utc(run.started_at))
    ET.SubElement(props, "property", name="ended_at", value=_utc(ended_at))
    ET.SubElement(props, "property", name="verdict", value=verdict.value)
    for t in tests:
        module, _, name = t.nodeid.rpartition("::")
        case = ET.SubElement(
            suite, "testcase", classname=printable(module.replace("/", ".").removesuffix(".py")), name=printable(name),
            time=f"{t.duration_s or 0.0:.3f}", timestamp=_utc(t.started_at),
        )  # fmt: skip
        if by_test.get(t.test_id):
            _add_measurements(case, by_test[t.test_id])
        first_line = t.message.splitlines()[0] if t.message else t.outcome
        if t.outcome in ("failed", "error"):
            tag = "failure" if t.outcome == "failed" else "error"
            ET.SubElement(case, tag, message=printable(first_line)).text = _lines(t.message)
        elif t.outcome == "skipped":
            ET.SubElement(case, "skipped", message=printable(t.message))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path
