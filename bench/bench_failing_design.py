"""A failing design must end in bounded time: wall time of the whole plan run, passing vs failing.

    .venv/bin/python bench/bench_failing_design.py [--gpu-max-w 800] [--nodes N] [--timeout-s 1800]

Runs ``pytest test_plans/ --sim-params FILE`` (as an engineer does, in a subprocess) twice, one
after the other: with the reference design (a copy of racks/sim-model-params.yaml) and with the
same design whose GPUs may draw ``--gpu-max-w`` (800 W: more than one feed's PSUs can carry, so
dropping a feed trips every node). Before device health the failing run waited out SSH and
Redfish timeouts test after test and was still going after 15 minutes.

Prints both wall times and their ratio (target: failing <= 1.5 x passing), the test counts, the
load average before and after (the machine is shared: read the figures with it), and whether
the failing run's report names the root cause at its top: its first section is "Root causes"
and the first cause is the feed drop, with the power the rack drew just before it against the
single-feed rating (over, marginally within or within) and what the tripped nodes' BMC logged.
``--keep DIR`` keeps both runs' reports and stores there.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5


def write_params(dst: Path, gpu_max_w: float | None, nodes: int | None) -> Path:
    """A copy of the reference design's params, with the GPU max power and node count changed if given."""
    doc = yaml.safe_load((REPO / "racks" / "sim-model-params.yaml").read_text())
    if gpu_max_w is not None:
        doc["params"]["power"]["gpu_max_w"] = float(gpu_max_w)
    if nodes is not None:
        doc["size"]["nodes"] = nodes
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


def run_plans(params: Path, report_dir: Path, timeout_s: float) -> tuple[float, int | None, str]:
    """(wall s, exit code or None when killed at the timeout, pytest's last line)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    cmd = [sys.executable, "-m", "pytest", "test_plans/", "--sim-params", str(params), "--report-dir",
           str(report_dir), "-q", "-p", "no:cacheprovider"]  # fmt: skip
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        return time.monotonic() - started, None, f"killed after {timeout_s:g} s"
    wall = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    last = lines[-1] if lines else (done.stdout.strip().splitlines() or [done.stderr.strip()[-200:]])[-1]
    return wall, done.returncode, last.strip("= ")


ROOT_CAUSE = re.compile(
    r"^feed \w+ dropped under full load: the rack drew [\d.]+ kW before the drop,"
    r" (over|marginally within|within) the [\d.]+ kW rating of feed \w+ alone"
)


def root_cause_at_top(report: Path) -> tuple[bool, str]:
    """Is the report's first section 'Root causes', and is its first cause the feed drop with the
    rack's demand against the single-feed rating? Returns (yes/no, the first cause's heading)."""
    if not report.is_file():
        return False, "(no report)"
    text = report.read_text(encoding="utf-8")
    sections = re.findall(r"<h2[^>]*>(.*?)</h2>", text)
    headings = re.findall(r"<h3>(.*?)</h3>", text[text.find('id="causes"') :]) if 'id="causes"' in text else []
    first = html.unescape(headings[0]) if headings else "(no root cause in the report)"
    return bool(sections) and sections[0] == "Root causes" and bool(ROOT_CAUSE.search(first)), first


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu-max-w", type=float, default=800.0, help="the failing design's GPU max power (W)")
    ap.add_argument("--nodes", type=int, default=None, help="nodes in both designs (default: the reference 32)")
    ap.add_argument("--timeout-s", type=float, default=1800.0, help="each run is killed after this (wall s)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the params, reports and stores in this directory")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-failing-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        designs = {
            "passing (reference)": write_params(base / "reference.yaml", None, args.nodes),
            f"failing ({args.gpu_max_w:g} W GPUs)": write_params(base / "failing.yaml", args.gpu_max_w, args.nodes),
        }
        load_before = os.getloadavg()
        results = {}
        for i, (name, params) in enumerate(designs.items()):
            print(f"running {name} ...", flush=True)
            results[name] = run_plans(params, base / f"reports{i}", args.timeout_s)
            wall, code, last = results[name]
            print(f"  {wall:7.1f} s wall, exit {code}: {last}", flush=True)
        load_after = os.getloadavg()
        named, heading = root_cause_at_top(base / "reports1" / "latest" / "report.html")

    (pass_name, (pass_wall, _, _)), (fail_name, (fail_wall, fail_code, _)) = results.items()
    ratio = fail_wall / pass_wall if pass_wall > 0 else float("inf")
    print()
    print(f"{'design':<28} {'wall s':>8}")
    print(f"{pass_name:<28} {pass_wall:8.1f}")
    print(f"{fail_name:<28} {fail_wall:8.1f}{'  (killed)' if fail_code is None else ''}")
    verdict = "ok" if ratio <= TARGET_RATIO else "OVER"
    print(f"ratio failing/passing: {ratio:.2f} (target <= {TARGET_RATIO:g}): {verdict}")
    print(f"failing run's report names the root cause at the top: {'yes' if named else 'NO'}: {heading}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}; after: "
          f"{' '.join(f'{x:.2f}' for x in load_after)} ({os.cpu_count()} CPUs)")  # fmt: skip
    return 0 if ratio <= TARGET_RATIO and named else 1


if __name__ == "__main__":
    raise SystemExit(main())
