"""Rehearsing a design revision on the simulator: the params file carries the rack's identity.

A copy of racks/sim-model-params.yaml saying ``design_revision: sim-rev-B``, ``serial: SIM-0002``,
``seed: 2`` (and 750 W GPUs) must give a run recorded as sim-rev-B / SIM-0002, on a simulator
started with seed 2, with the params file's path, hash and content stored with the run and shown
in the report; the reference spec (written for sim-rev-A) then warns in the terminal and report.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rackval.core.errors import ConfigError
from rackval.sim.reference import load_sim_design, sim_design

REPO = Path(__file__).resolve().parents[2]
REFERENCE_PARAMS_FILE = REPO / "racks" / "sim-model-params.yaml"


def rev_b_params(path: Path, **size: object) -> Path:
    """The reference params file with the revision-B changes of issue 13."""
    doc = yaml.safe_load(REFERENCE_PARAMS_FILE.read_text())
    doc["params"]["power"]["gpu_max_w"] = 750.0
    doc["rack"].update({"design_revision": "sim-rev-B", "serial": "SIM-0002", "seed": 2})
    doc["size"].update(size)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_params_file_gives_identity_seed_and_hash(tmp_path: Path) -> None:
    path = rev_b_params(tmp_path / "rev-b.yaml")
    design = load_sim_design(path)
    assert (design.design_revision, design.rack_serial, design.size.seed) == ("sim-rev-B", "SIM-0002", 2)
    assert design.params.power.gpu_max_w == 750.0
    assert design.source is not None and design.source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "sim-rev-B" in design.source.text
    # the command line's seed and node count win over the file's
    assert sim_design(path, nodes=2, seed=7).size.seed == 7 and sim_design(path, nodes=2).size.nodes == 2
    # the reference rack without a file: revision A, serial from seed 1
    plain = sim_design(None)
    assert (plain.design_revision, plain.rack_serial, plain.source) == ("sim-rev-A", "SIM-0001", None)


def test_old_params_file_with_seed_in_size_still_loads(tmp_path: Path) -> None:
    old = tmp_path / "old.yaml"
    old.write_text("size:\n  nodes: 2\n  seed: 3\nparams:\n  power:\n    gpu_max_w: 720\n")
    design = load_sim_design(old)
    assert (design.size.seed, design.rack_serial, design.design_revision) == (3, "SIM-0003", "sim-rev-A")


def test_seed_given_twice_differently_is_an_error_naming_line_and_field(tmp_path: Path) -> None:
    both = tmp_path / "both.yaml"
    both.write_text("rack:\n  seed: 2\nsize:\n  nodes: 2\n  seed: 3\n")
    with pytest.raises(ConfigError) as err:
        load_sim_design(both)
    assert f"{both}:5: size.seed: 3 disagrees with rack.seed 2" in str(err.value), err.value
    bad = tmp_path / "bad.yaml"
    bad.write_text("rack:\n  revision: B\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: rack.revision: "):
        load_sim_design(bad)


def test_counts_below_what_a_rack_can_have_are_refused_naming_line_and_field(tmp_path: Path) -> None:
    """A rack of 0 or -2 nodes used to start (an empty or nonsense rack that every plan skipped)."""
    bad = tmp_path / "size.yaml"
    bad.write_text("size:\n  nodes: -2\n  psus_per_node: 0\n  snmp_switches: -1\n")
    with pytest.raises(ConfigError) as err:
        load_sim_design(bad)
    for line, field in ((2, "size.nodes"), (3, "size.psus_per_node"), (4, "size.snmp_switches")):
        assert f"{bad}:{line}: {field}: Input should be greater than or equal to" in str(err.value), err.value
    with pytest.raises(ConfigError, match=r"node count must be at least 1, not 0"):
        sim_design(None, nodes=0)
    assert sim_design(None, nodes=3).size.nodes == 3


def test_run_on_a_params_file_is_recorded_under_its_revision_serial_and_seed(tmp_path: Path) -> None:
    params = rev_b_params(tmp_path / "rev-b.yaml")
    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "test_plans/test_identity.py", "-q", "-p", "no:cacheprovider",
         "--sim-nodes", "2", "--sim-params", str(params), "--report-dir", str(reports)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # the reference spec is written for sim-rev-A: a warning in the terminal ...
    assert "WARNING:" in result.stdout and "sim-rev-B" in result.stdout and "sim-rev-A" in result.stdout, result.stdout
    sim_log = (reports / "latest" / "sim" / "sim.log").read_text()
    assert "sim-rev-B serial SIM-0002 (seed 2)" in sim_log, sim_log
    rack = yaml.safe_load((reports / "latest" / "sim" / "rack.yaml").read_text())
    sha = hashlib.sha256(params.read_bytes()).hexdigest()
    assert rack["rack"]["simulator"]["params"] == {"path": str(params.resolve()), "sha256": sha}
    db = sqlite3.connect(reports / "results.sqlite")
    serial, revision, metadata = db.execute("SELECT rack_serial, design_revision, metadata FROM runs").fetchone()
    assert (serial, revision) == ("SIM-0002", "sim-rev-B")
    stored = json.loads(metadata)["sim_params"]
    assert stored["sha256"] == sha and stored["content"] == params.read_text()
    # ... and in the report, beside the params file's path and hash
    html = (reports / "latest" / "report.html").read_text()
    assert 'id="revision-warning"' in html and "sim-rev-B" in html
    assert str(params.resolve()) in html and sha in html
