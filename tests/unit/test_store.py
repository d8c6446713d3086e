"""The results store keeps what was measured, even when the process recording it is killed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from rackval.harness.cli import main as rackval_main
from rackval.harness.junit import write_junit
from rackval.harness.measure import Limit, Measurement, Outcome
from rackval.harness.store import RunInfo, open_store

KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys, time
    from rackval.harness.measure import Limit, Measurement
    from rackval.harness.store import RunInfo, open_store
    store = open_store(sys.argv[1])
    store.start_run(RunInfo("killed-run", time.time(), rack_name="r1"))
    test_id = store.start_test("killed-run", "test_plans/test_x.py::test_soak")
    for i in range(5):
        store.record_measurement("killed-run", test_id, Measurement.judged(
            "rack power", 4000 + i, "W", Limit(high=5000, unit="W", requirement="p")))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_sigkilled_run_keeps_its_measurements_and_reads_incomplete(tmp_path: Path, capsys) -> None:
    db = tmp_path / "results.sqlite"
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(db)], timeout=60, check=False)
    assert proc.returncode == -9  # it really died by SIGKILL, with no chance to clean up
    store = open_store(db)
    values = [m.value for _, m in store.measurements("killed-run")]
    assert values == [4000, 4001, 4002, 4003, 4004]
    assert store.run_status("killed-run") == ("running", None)
    assert [t.outcome for t in store.tests("killed-run")] == ["running"]
    store.close()

    # any stored run, even a killed one, can be re-rendered later
    assert rackval_main(["report", "latest", "--results", str(db), "--out", str(tmp_path / "out")]) == 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert "INCOMPLETE" in html and "rack power" in html
    assert str(tmp_path / "out" / "report.html") in capsys.readouterr().out


def test_round_trip_and_junit_properties(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    store.start_run(RunInfo("r", 1.0, rack_name="rack-a", rack_serial="S1", design_revision="rev-B"))
    t1 = store.start_test("r", "test_plans/test_p.py::test_ok")
    t2 = store.start_test("r", "test_plans/test_p.py::test_bad")
    ok = Measurement.judged("v", 230.0, "V", Limit(low=220, high=240, unit="V"), device="an1")
    bad = Measurement.judged("p", 7.0, "kW", Limit(high=6, unit="kW"), device="pdu-a", channel="outlet 3")
    store.record_measurement("r", t1, ok)
    store.record_measurement("r", t2, bad)
    store.finish_test(t1, "passed", 0.5)
    store.finish_test(t2, "failed", 0.25, bad.describe())
    store.finish_run("r", "fail")
    assert store.run("r").design_revision == "rev-B"
    assert [(tid, m.outcome) for tid, m in store.measurements("r")] == [(t1, Outcome.PASS), (t2, Outcome.FAIL)]

    suite = ET.parse(write_junit(store, "r", tmp_path / "junit.xml")).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.find("testcase[@name='test_bad']/failure")
    assert failure is not None and "pdu-a" in failure.get("message")
    props = {p.get("name"): p.get("value") for p in suite.findall("testcase[@name='test_bad']/properties/property")}
    assert props == {"p[pdu-a][outlet 3].value": "7.0", "p[pdu-a][outlet 3].unit": "kW",
                     "p[pdu-a][outlet 3].low": "", "p[pdu-a][outlet 3].high": "6.0",
                     "p[pdu-a][outlet 3].margin": "-1.0", "p[pdu-a][outlet 3].outcome": "fail",
                     "p[pdu-a][outlet 3].detail": ""}  # fmt: skip
    store.close()


def test_next_run_marks_a_killed_run_incomplete(tmp_path: Path) -> None:
    import os
    import socket

    from rackval.harness.plugin.run import mark_dead_runs_incomplete

    db = tmp_path / "results.sqlite"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a pid whose process has exited
    store = open_store(db)
    here = {"host": socket.gethostname()}
    store.start_run(RunInfo("killed", 1.0, metadata={**here, "pid": dead_pid}))
    store.start_run(RunInfo("alive", 2.0, metadata={**here, "pid": os.getpid()}))
    store.start_run(RunInfo("elsewhere", 3.0, metadata={"host": "other-station", "pid": dead_pid}))
    assert mark_dead_runs_incomplete(store) == ["killed"]
    assert store.run_status("killed")[0] == "incomplete"
    assert store.run_status("alive")[0] == "running"
    assert store.run_status("elsewhere")[0] == "running"
    store.close()
