"""The temperature plan judges each BMC by its node's class: a management node without GPU sensors
passes, a GPU compute node without them fails naming node and class, GPU sensors a class does not
expect are still judged, the GPU load plans skip a node whose class has no GPUs, and a class the
spec does not define stops the run with one line naming the rack file's line.

The simulated rack is built without GPUs (``gpus_per_node: 0``), so both BMCs really lack GPU
temperature sensors; the rack file copy puts node01 in the ``management`` class and leaves node02
in the spec's default, ``gpu-compute``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rackval.harness.simproc import SimProcess
from tests.support.plan_runs import SPEC, control_of, failed_tests, failure_text, measurements, run_plans

PLAN = ("test_plans/test_bmc_health.py",)
NO_GPUS = "size: {nodes: 2, gpus_per_node: 0}\n"


@pytest.fixture(scope="module")
def gpu_less_rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    base = tmp_path_factory.mktemp("gpu-less")
    params = base / "params.yaml"
    params.write_text(NO_GPUS)
    sim = SimProcess(base / "sim", nodes=2, params=params)
    try:
        yield sim
    finally:
        sim.stop()


def classed_rack(rack_file: Path, node_class: str) -> Path:
    """A copy of the generated rack file with node01 in ``node_class``."""
    rack = yaml.safe_load(rack_file.read_text())
    rack["nodes"]["node01"] = {"class": node_class, **rack["nodes"]["node01"]}
    path = rack_file.parent / f"classed-{node_class}.yaml"
    path.write_text(yaml.safe_dump(rack, sort_keys=False))
    return path


def test_management_node_passes_without_gpu_sensors_and_gpu_compute_node_fails(
    tmp_path: Path, gpu_less_rack: SimProcess
) -> None:
    rack = classed_rack(gpu_less_rack.rack_file, "management")
    result = run_plans(tmp_path / "reports", "--rack", str(rack), "--spec", str(SPEC), "-k", "temperatures",
                       plans=PLAN, timeout=180)  # fmt: skip
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert failed_tests(out) == {"test_temperatures_within_limits[bmc-node02]"}, out
    assert "1 passed" in out, out  # bmc-node01: its inlet sensor judged, GPUs not applicable
    missing = failure_text(out, "test_temperatures_within_limits[bmc-node02]")
    assert (
        "bmc-node02: no sensor for gpu_temperature, which node node02 (class 'gpu-compute') expects, among"
        " ['Exhaust Temp', 'Inlet Temp']" in missing
    ), missing
    results = tmp_path / "reports" / "results.sqlite"
    assert measurements(results, "temperature sensors") == [("bmc-node01", "gpu_temperature", 0.0, "info")]
    with sqlite3.connect(results) as db:  # the words beside the key
        (detail,) = db.execute("SELECT detail FROM measurements WHERE name = 'temperature sensors'").fetchone()
    assert detail == "not applicable, not expected of node node01 (class 'management')"
    judged = {(device, channel): outcome for device, channel, _, outcome in measurements(results, "temperature")}
    assert judged[("bmc-node01", "Inlet Temp")] == "pass" and judged[("bmc-node02", "Inlet Temp")] == "pass"


def test_unknown_class_stops_the_run_naming_the_rack_file_line(tmp_path: Path, gpu_less_rack: SimProcess) -> None:
    rack = classed_rack(gpu_less_rack.rack_file, "managment")
    result = run_plans(tmp_path / "reports", "--rack", str(rack), "--spec", str(SPEC), "-k", "temperatures",
                       plans=PLAN, timeout=180)  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "passed" not in result.stdout, out
    line = next((n for n, text in enumerate(rack.read_text().splitlines(), 1) if "class: managment" in text), 0)
    assert (
        f"{rack}:{line}: nodes.node01.class: unknown node class 'managment' (did you mean 'management'? the spec" in out
    ), out
    assert "Traceback" not in out, out


def test_gpu_load_plans_skip_a_node_whose_class_has_no_gpus(tmp_path: Path, gpu_less_rack: SimProcess) -> None:
    rack = classed_rack(gpu_less_rack.rack_file, "management")
    result = run_plans(tmp_path / "reports", "--rack", str(rack), "--spec", str(SPEC), "-k", "node01",
                       plans=("test_plans/test_power_capping.py",), timeout=180)  # fmt: skip
    out = result.stdout
    assert result.returncode == 0 and "1 skipped" in out, out + result.stderr
    assert "node01: no GPUs to load, node node01 (class 'management') does not expect gpu_temperature" in out, out


def test_gpu_sensors_a_class_does_not_expect_are_still_judged(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("- {kind: gpu_overheat, device: node01, component: GPU3, params: {delta_c: 80.0}}\n")
    sim = SimProcess(tmp_path / "sim", nodes=1, faults=faults)
    try:
        control = control_of(sim.rack_file)
        try:
            control.advance(600)  # the GPU heats up
        finally:
            control.close()
        rack = classed_rack(sim.rack_file, "management")
        result = run_plans(tmp_path / "reports", "--rack", str(rack), "--spec", str(SPEC), "-k", "temperatures",
                           plans=PLAN, timeout=180)  # fmt: skip
    finally:
        sim.stop()
    out = result.stdout
    assert failed_tests(out) == {"test_temperatures_within_limits[bmc-node01]"}, out + result.stderr
    hot = failure_text(out, "test_temperatures_within_limits[bmc-node01]")
    assert "bmc-node01: temperature out of limits: GPU3 Temp" in hot and "no sensor" not in hot, hot
    assert not measurements(tmp_path / "reports" / "results.sqlite", "temperature sensors")  # nothing n/a
