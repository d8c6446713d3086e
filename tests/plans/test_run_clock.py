"""A run on the simulated rack reports its own speed: virtual s, wall s and their ratio.

The figure is printed in the terminal summary and stored with the run as three run-level
measurements without limits (outcome info), so it never fails a run but every run keeps it.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from rackval.harness.plugin.run import RUN_TIME_RATIO, RUN_VIRTUAL_TIME, RUN_WALL_TIME, RunClockFigure

REPO = Path(__file__).resolve().parents[2]

PLAN = """
def test_waits_ten_virtual_minutes(clock, measure):
    t0 = clock.now()
    clock.sleep(600)
    measure("waited", clock.now() - t0, "s")
"""

LINE = re.compile(r"simulator clock: (\d+) virtual s in ([\d.]+) wall s: virtual/wall = ([\d.]+)")


def test_figure_ratio_and_line() -> None:
    figure = RunClockFigure(virtual_s=3000.0, wall_s=80.0)
    assert figure.ratio == 37.5
    assert figure.line() == "simulator clock: 3000 virtual s in 80.0 wall s: virtual/wall = 37.5"
    assert math.isinf(RunClockFigure(1.0, 0.0).ratio)


def test_simulated_run_prints_and_stores_its_clock_figure(tmp_path: Path) -> None:
    plan = tmp_path / "test_clock_plan.py"
    plan.write_text(PLAN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(plan), "-q", "-p", "no:cacheprovider", "--sim-nodes", "2",
         "--spec", str(REPO / "specs" / "sim-reference.yaml"), "--report-dir", str(tmp_path / "reports")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    match = LINE.search(out)
    assert match, out
    virtual, wall, ratio = int(match[1]), float(match[2]), float(match[3])
    # 600 s slept, plus the simulator's own running clock (it runs at 1x while nobody advances it)
    assert 600 <= virtual < 600 + 120, out
    assert 0 < wall < 120, out
    # printed figures are rounded (virtual to 1 s, wall to 0.1 s): the ratio lies within their bounds
    assert (virtual - 0.5) / (wall + 0.05) <= ratio <= (virtual + 0.5) / max(wall - 0.05, 1e-9), out
    session = re.search(r"with report and exports: ([\d.]+) wall s: virtual/wall = ([\d.]+)", out)
    assert session and float(session[1]) >= wall, out  # the whole session, honestly the longer

    with sqlite3.connect(tmp_path / "reports" / "results.sqlite") as db:
        (outcome,) = db.execute("SELECT outcome FROM runs").fetchone()
        rows = {
            name: (test_id, value, unit, low, high, m_outcome)
            for name, test_id, value, unit, low, high, m_outcome in db.execute(
                "SELECT name, test_id, value, unit, low, high, outcome FROM measurements"
            )
        }
    assert outcome == "pass"  # a figure without limits is information, never a failure
    v, w, r = rows[RUN_VIRTUAL_TIME], rows[RUN_WALL_TIME], rows[RUN_TIME_RATIO]
    for test_id, _, _, low, high, m_outcome in (v, w, r):
        assert test_id is None and low is None and high is None and m_outcome == "info"
    assert v[2] == "s" and w[2] == "s"
    assert abs(v[1] - virtual) <= 1 and abs(w[1] - wall) <= 0.05
    assert abs(r[1] - v[1] / w[1]) < 1e-9
    assert rows["waited"][1] >= 600
