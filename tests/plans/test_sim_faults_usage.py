"""A bad ``--sim-faults`` file is one usage error before collection, and the simulator never starts.

The file is checked in ``pytest_configure`` against an in-process model of the rack the simulator
would build (same size and parameters; no server), so every mistake below is a single
``ERROR: file:line: field: problem`` line with exit status 4. Each run goes through a wrapper that
records every ``rackval sim`` process pytest would start; the wrapper is proved to see one when the
file is good.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# pytest with subprocess.Popen watched: every `rackval sim` start is written to argv[1].
SPY = """
import subprocess, sys
import pytest

real_popen = subprocess.Popen

def watched(args, *rest, **kwargs):
    words = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
    if "rackval.harness.cli" in words and "sim" in words:
        with open(sys.argv[1], "a") as log:
            log.write(" ".join(words) + "\\n")
    return real_popen(args, *rest, **kwargs)

subprocess.Popen = watched
sys.exit(pytest.main(sys.argv[2:]))
"""

# (name, fault file, the one line expected after "ERROR: <file>:")
CASES = [
    ("unknown-kind", "- kind: psu_failur\n  device: node01\n  component: PSU1\n",
     "1: 0.kind: unknown fault kind 'psu_failur' (did you mean 'psu_failure'?)"),
    ("unknown-device", "- kind: psu_failure\n  device: nod01\n  component: PSU1\n",
     "2: 0.device: no device 'nod01' in the simulated rack (did you mean 'node01'?)"),
    ("bad-parameter-type", "- kind: link_errors\n  device: tor1\n  component: Ethernet0\n  params:\n    ber: high\n",
     "5: 0.params.ber: must be float, got 'high'"),
    ("nan-parameter", "- kind: link_errors\n  device: tor1\n  component: Ethernet0\n  params:\n    ber: .nan\n",
     "5: 0.params.ber: must be a finite number, got nan"),
    ("outlet-999", "- kind: outlet_relay_stuck\n  device: pdu-a\n  component: 999\n",
     "3: 0.component: pdu-a has no outlet '999' (have 1, 2, 3, 4)"),
    ("no-such-port", "faults:\n  - kind: link_down\n    device: tor1\n    component: Ethernet999\n",
     "4: faults.0.component: tor1 has no port 'Ethernet999' (have Ethernet0, Ethernet8, Ethernet16, Ethernet24,"
     " ..., Ethernet504 (64 in all))"),
    ("yaml-syntax", "- kind: [unclosed\n  device: tor1\n",
     "2: fault file is not valid YAML: expected ',' or ']', but got ':'"),
    ("duplicate-key", "- kind: link_down\n  device: tor1\n  component: Ethernet0\n  device: tor2\n",
     "4: 'device' is given twice (first on line 2); the second would silently win"),
]  # fmt: skip


def _run(tmp_path: Path, faults: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    spy, starts = tmp_path / "spy.py", tmp_path / "sim-starts.log"
    spy.write_text(SPY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, str(spy), str(starts), "test_plans/", "-p", "no:cacheprovider", "-q",
         "--sim-nodes", "2", "--sim-faults", str(faults), "--report-dir", str(tmp_path / "reports"), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=180, env=env, check=False,
    )  # fmt: skip
    return result, starts.read_text().splitlines() if starts.exists() else []


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_fault_file_is_one_usage_error_and_no_simulator(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    faults = tmp_path / f"{name}.yaml"
    faults.write_text(text)
    result, sim_starts = _run(tmp_path, faults)
    assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error: nothing ran
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"ERROR: {faults}:{expected}"], result.stderr
    assert "Traceback" not in result.stdout + result.stderr and result.stdout.strip() == ""
    assert sim_starts == []  # no simulator process was started ...
    assert not list(tmp_path.rglob("rack.yaml")) and not (tmp_path / "reports").exists()  # ... nor a state dir


def test_the_watch_sees_a_simulator_start_when_the_file_is_good(tmp_path: Path) -> None:
    faults = tmp_path / "good.yaml"
    faults.write_text("- kind: link_down\n  device: tor1\n  component: Ethernet0\n")
    result, sim_starts = _run(tmp_path, faults, "--collect-only")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(sim_starts) == 1 and f"--faults {faults}" in sim_starts[0], sim_starts
