"""A huge reply must not grow the process by its size: each transport refuses it at its cap.

Measured in a fresh subprocess per transport by bench/bench_transport_caps.py (peak RSS from
/proc/self/status, the misbehaving peer in a process of its own). The reply is 256 MiB and the
bound generous (+200 MB; the bench's target is +50 MB), so a regression to unbounded growth
fails on the bound alone, and a busy machine never does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "bench_transport_caps.py"
BOUND_MB = 200
REPLY_MIB = 256


def peak_growth(case: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--case", case, "--mib", str(REPLY_MIB), "--json"],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc")
@pytest.mark.parametrize("case", ["redfish", "scpi", "snmp", "ipmi"])
def test_huge_reply_is_refused_without_memory_growth(case: str) -> None:
    result = peak_growth(case)
    assert "error" not in result, result
    assert "larger than" in str(result["outcome"]), result
    assert float(result["growth_mb"]) < BOUND_MB, result  # type: ignore[arg-type]
