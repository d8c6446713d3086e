"""The simulated rack ends with the pytest run that started it, however that run ends (SIGKILL
included), and its secrets do not outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.plan_runs import REPO


def _state(pid: int) -> str | None:
    """The process's state letter from /proc (None: gone). A zombie counts as ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _simulator_of(parent: int) -> int | None:
    """The PID of the ``rackval ... sim`` child of ``parent``, if it has one."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"sim" in cmdline and b"--exit-with-parent" in cmdline:
            return int(entry.name)
    return None


def test_sigkill_of_pytest_ends_the_simulator_and_removes_its_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "test_plans/test_load_soak.py", "-p", "no:cacheprovider", "-q",
         "--sim-nodes", "2", "--report-dir", str(tmp_path)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        secrets: list[Path] = []
        sim = None
        while time.monotonic() < deadline and not (secrets and sim):
            secrets = [p for p in tmp_path.glob("*/sim/secrets") if any(p.iterdir())]
            sim = _simulator_of(run.pid)
            assert run.poll() is None, "the run ended before the simulator was up"
            time.sleep(0.2)
        assert sim is not None and secrets, "the simulator did not come up within 90 s"
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        deadline = time.monotonic() + 20
        while _state(sim) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _state(sim) in (None, "Z"), f"simulator {sim} still running 20 s after pytest was killed"
        assert not any(p.exists() for p in secrets), f"secrets left behind: {secrets}"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
