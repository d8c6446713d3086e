"""Helpers for tests/test_plans_group_a.py: run plans in a subprocess, read what failed, and
prepare a faulted simulated rack with edited copies of its rack file."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from drivers.sim.control import ControlClient

REPO = Path(__file__).resolve().parents[1]
GROUP_A_PLANS = (
    "test_plans/test_inventory_firmware.py",
    "test_plans/test_power_map.py",
    "test_plans/test_network_health.py",
    "test_plans/test_bmc_health.py",
)


def run_plans(report_dir: Path, *args: str, plans: tuple[str, ...] = GROUP_A_PLANS, timeout: float = 180):
    """``pytest <plans> -rfs`` as an engineer runs it, in a subprocess (bounded in time)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plans, "-p", "no:cacheprovider", "-q", "-rfs",
         "--report-dir", str(report_dir), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def failed_tests(stdout: str) -> set[str]:
    """Test names (``func[param]``) from the ``FAILED path::name - message`` summary lines."""
    return {line.split()[1].split("::")[-1] for line in stdout.splitlines() if line.startswith("FAILED")}


def failure_text(stdout: str, test: str) -> str:
    """The ``E ...`` lines of one failed test's section in pytest's failure report ("" if none)."""
    sections = re.split(r"^_{3,} (\S+) _{3,}$", stdout, flags=re.M)
    for name, body in zip(sections[1::2], sections[2::2], strict=False):
        if name == test:
            return "\n".join(line[1:].strip() for line in body.splitlines() if line.startswith("E "))
    return ""


def measurements(results: Path, name: str) -> list[tuple[Any, ...]]:
    """(device, channel, value, outcome) of one measurement name over every run in a store."""
    with sqlite3.connect(results) as db:
        rows = db.execute("SELECT device, channel, value, outcome FROM measurements WHERE name = ?", (name,))
        return list(rows)


def actions(results: Path) -> list[tuple[str, str, str]]:
    """(device, operation, undo_outcome) of every safety-gate action in a store."""
    with sqlite3.connect(results) as db:
        return list(db.execute("SELECT device, operation, undo_outcome FROM actions ORDER BY action_id"))


def control_of(rack_file: Path) -> ControlClient:
    """The simulated rack's control channel, from its generated rack file."""
    rack = yaml.safe_load(rack_file.read_text())
    sim = rack["rack"]["simulator"]
    token = (rack_file.parent / sim["token"]["file"]).read_text().strip()
    return ControlClient(sim["control"], token)


def write_rack_variants(rack_file: Path) -> tuple[Path, Path]:
    """Two edited copies of a generated rack file: node01 PSU1 and node02 PSU1 with their outlets
    swapped (the rack file is wrong about both; no outlet is listed twice, which the loader
    refuses), and the same with ``allow_destructive: false``."""
    rack = yaml.safe_load(rack_file.read_text())
    a, b = rack["nodes"]["node01"]["psus"]["PSU1"], rack["nodes"]["node02"]["psus"]["PSU1"]
    assert a["pdu"] == b["pdu"], "the swap assumes both PSU1s are on the same PDU (feed A)"
    a["outlet"], b["outlet"] = b["outlet"], a["outlet"]
    miswired = rack_file.parent / "miswired.yaml"
    miswired.write_text(yaml.safe_dump(rack))
    rack["rack"]["allow_destructive"] = False
    locked = rack_file.parent / "no-destructive.yaml"
    locked.write_text(yaml.safe_dump(rack))
    return miswired, locked
