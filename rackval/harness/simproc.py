"""Run the simulated rack in its own process, as ``rackval sim`` would, and stop it by PID.

A separate process keeps the simulator's threads off the test process's GIL and makes it a
device like any other: reachable only over its protocols, and stoppable by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rackval.core.errors import ConfigError


class SimProcess:
    """A ``rackval sim`` child process and the rack file it wrote."""

    def __init__(
        self,
        state_dir: Path,
        nodes: int | None = None,
        seed: int | None = None,
        faults: str | Path | None = None,
        start_timeout_s: float = 60.0,
        params: str | Path | None = None,
    ) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.rack_file = state_dir / "rack.yaml"
        self.rack_file.unlink(missing_ok=True)
        self.log_path = state_dir / "sim.log"
        cmd = [sys.executable, "-m", "rackval.harness.cli", "sim", "--state-dir", str(state_dir)]
        if seed is not None:  # None: the params file's seed (or 1), as `rackval sim` decides
            cmd += ["--seed", str(seed)]
        cmd.append("--exit-with-parent")  # ends with us, however we end: see _cmd_sim
        if nodes is not None:
            cmd += ["--nodes", str(nodes)]
        if faults is not None:
            cmd += ["--faults", str(faults)]
        if params is not None:
            cmd += ["--params", str(Path(params).resolve())]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        # stdin is a pipe we never write to: when this process ends, even by SIGKILL, the kernel
        # closes it and the simulator sees end-of-file and stops (it removes its own secrets).
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE)
        deadline = time.monotonic() + start_timeout_s
        while not self.rack_file.exists():
            if self.proc.poll() is not None:
                self._log.close()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise ConfigError(f"simulated rack exited with status {self.proc.returncode} before it was up:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError(
                    f"simulated rack did not come up within {start_timeout_s:.0f} s (log: {self.log_path})"
                )
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; removes the generated secrets."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout_s)
        if not self._log.closed:
            self._log.close()
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        shutil.rmtree(self.state_dir / "secrets", ignore_errors=True)
