"""Running acceptance plans as an engineer does, for tests/plans/: pytest in a subprocess (bounded in
time), what failed and why, what the store recorded, and edited copies of the spec and rack files
to make a healthy simulated rack fail on purpose."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from rackval.sim.control import ControlClient

REPO = Path(__file__).resolve().parents[2]
GROUP_A_PLANS = (
    "test_plans/test_inventory_firmware.py",
    "test_plans/test_power_map.py",
    "test_plans/test_network_health.py",
    "test_plans/test_bmc_health.py",
)
GROUP_B_PLANS = (
    "test_plans/test_power_sequencing.py",
    "test_plans/test_load_soak.py",
    "test_plans/test_feed_redundancy.py",
    "test_plans/test_power_capping.py",
)
SPEC = REPO / "specs" / "sim-reference.yaml"
LIQUID_PARAMS = REPO / "racks" / "sim-liquid-params.yaml"
LIQUID_SPEC = REPO / "specs" / "sim-liquid.yaml"
LIQUID_PLANS = (
    "test_plans/test_liquid_cooling.py",
    "test_plans/test_pump_redundancy.py",
    "test_plans/test_power_shelves.py",
)
# The reference spec soaks 30 minutes (1,800 ticks); CI judges the same plan on a 5-minute soak
# (still ~10 GPU thermal time constants, so the steady figures settle) to keep its run bounded.
CI_SOAK = {"load_soak_duration": {"min": 300}}


def run_plans(report_dir: Path, *args: str, plans: tuple[str, ...], timeout: float = 300):
    """``pytest <plans> -rfs`` as an engineer runs it, in a subprocess (bounded in time). pytest
    runs the files in the order given."""
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
    """The ``E ...`` lines of one failed test's section in pytest's failure report (the whole
    section when it has none; "" if the test has no section)."""
    sections = re.split(r"^_{3,} (\S+) _{3,}$", stdout, flags=re.M)
    for name, body in zip(sections[1::2], sections[2::2], strict=False):
        if name == test:
            lines = [line[1:].strip() for line in body.splitlines() if line.startswith("E ")]
            # a device error is reported as one line (no traceback): "path:line: DeviceTimeout: ..."
            return "\n".join(lines) if lines else body.strip()
    return ""


def measurements(results: Path, name: str) -> list[tuple[Any, ...]]:
    """(device, channel, value, outcome) of one measurement name over every run in a store."""
    with sqlite3.connect(results) as db:
        return list(db.execute("SELECT device, channel, value, outcome FROM measurements WHERE name = ?", (name,)))


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


def spec_variant(path: Path, base: Path = SPEC, **limits: dict[str, float]) -> Path:
    """A copy of a simulated design's spec (``base``, the reference by default) with some
    requirements' limits replaced (and the soak shortened to ``CI_SOAK`` unless
    ``load_soak_duration`` is given)."""
    doc = yaml.safe_load(base.read_text())
    for key, fields in {**CI_SOAK, **limits}.items():
        assert key in doc["requirements"], key
        doc["requirements"][key].update(fields)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def locked_rack(rack_file: Path) -> Path:
    """A copy of a generated rack file with ``allow_destructive: false``."""
    rack = yaml.safe_load(rack_file.read_text())
    rack["rack"]["allow_destructive"] = False
    locked = rack_file.parent / "no-destructive.yaml"
    locked.write_text(yaml.safe_dump(rack))
    return locked


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
    return miswired, locked_rack(rack_file)
