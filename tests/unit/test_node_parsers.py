"""Parsers for GPU-node tool output, on text in the tools' exact formats (tests/data/node/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError
from rackval.drivers.capabilities import DiagTestResult, GpuTelemetry
from rackval.drivers.node.parsers import (
    OLD_REASONS_FIELD,
    QUERY_FIELDS,
    decode_event_reasons,
    invalid_query_field,
    parse_dcgm_diag,
    parse_gpu_burn,
    parse_gpu_query,
    parse_nccl_tests,
    query_gpu_argv,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "node"


def data(name: str) -> str:
    return (DATA / name).read_text()


# ---- nvidia-smi -------------------------------------------------------------------------------


def test_query_argv_names_every_field_in_order_and_can_use_the_old_reason_name() -> None:
    argv = query_gpu_argv()
    assert argv[0] == "nvidia-smi"
    assert argv[1] == (
        "--query-gpu=index,uuid,power.draw,power.limit,temperature.gpu,clocks.current.sm,"
        "utilization.gpu,clocks_event_reasons.active,ecc.errors.uncorrected.volatile.total"
    )
    assert argv[2] == "--format=csv,noheader,nounits"
    old = query_gpu_argv("/usr/bin/nvidia-smi", OLD_REASONS_FIELD)
    assert old[0] == "/usr/bin/nvidia-smi"
    assert "clocks_throttle_reasons.active" in old[1] and "clocks_event_reasons" not in old[1]
    assert len(old[1].split("=", 1)[1].split(",")) == len(QUERY_FIELDS)


def test_gpu_query_parses_eight_gpus_with_values_and_reasons() -> None:
    gpus = parse_gpu_query(data("nvidia_smi_query.csv"))
    assert [g.index for g in gpus] == list(range(8))
    g0 = gpus[0]
    assert g0 == GpuTelemetry(
        index=0,
        uuid="GPU-3b5d8c2e-7f1a-4c62-9e0b-5a1d2f4c8e01",
        power_w=612.35,
        power_limit_w=700.0,
        temperature_c=61.0,
        sm_clock_mhz=1980.0,
        utilization_pct=100.0,
        event_reasons=0,
        event_reason_names=(),
        ecc_uncorrected=0,
    )
    assert gpus[2].event_reasons == 0x4 and gpus[2].event_reason_names == ("SwPowerCap",)
    assert gpus[3].event_reasons == 0x20 and gpus[3].event_reason_names == ("SwThermal",)
    assert gpus[3].temperature_c == 88.0 and gpus[3].sm_clock_mhz == 1410.0
    assert gpus[7].event_reason_names == ("GpuIdle",)
    assert sum(g.power_w or 0 for g in gpus) == pytest.approx(4137.13, abs=0.01)


def test_gpu_query_maps_na_and_not_supported_to_none() -> None:
    gpus = parse_gpu_query(data("nvidia_smi_query_na.csv"))
    assert gpus[0].ecc_uncorrected is None
    assert gpus[0].power_w == 38.52
    g1 = gpus[1]
    assert g1.power_w is None and g1.power_limit_w is None and g1.sm_clock_mhz is None
    assert g1.utilization_pct is None and g1.ecc_uncorrected is None
    assert g1.event_reasons is None and g1.event_reason_names == ()
    assert g1.temperature_c == 44.0


@pytest.mark.parametrize(
    ("mask", "names"),
    [
        (0x0, ()),
        (0x1, ("GpuIdle",)),
        (0x4, ("SwPowerCap",)),
        (0x8, ("HwSlowdown",)),
        (0x20, ("SwThermal",)),
        (0x40, ("HwThermal",)),
        (0x80, ("HwPowerBrake",)),
        (0xC8, ("HwSlowdown", "HwThermal", "HwPowerBrake")),
        (0x24, ("SwPowerCap", "SwThermal")),
        (0x1000 | 0x20, ("SwThermal", "0x1000")),
    ],
)
def test_decode_event_reasons(mask: int, names: tuple[str, ...]) -> None:
    assert decode_event_reasons(mask) == names


def test_hex_mask_without_leading_zeros_and_decimal_ecc() -> None:
    line = "0, GPU-x, 100.5, 700, 50, 1500, 80, 0x48, 3\n"
    (gpu,) = parse_gpu_query(line)
    assert gpu.event_reasons == 0x48
    assert gpu.event_reason_names == ("HwSlowdown", "HwThermal")
    assert gpu.ecc_uncorrected == 3


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no GPU lines"),
        ("0, GPU-x, 100.5, 700, 50, 1500, 80, 0x0\n", "has 8 fields, expected 9"),
        (
            "0, GPU-x, 1, 2, 3, 4, 5, 0x0, 0\n"
            "Unable to determine the device handle for GPU0000:2A:00.0: Unknown Error\n",
            "line 2 has 1 fields",
        ),
        ("0, GPU-x, lots, 700, 50, 1500, 80, 0x0, 0\n", "power.draw is not a number: 'lots'"),
        ("0, GPU-x, 100, 700, 50, 1500, 80, 0xZZ, 0\n", "clocks_event_reasons.active is not a number"),
        ("0, GPU-x, nan, 700, 50, 1500, 80, 0x0, 0\n", "power.draw is 'nan'"),
        ("[N/A], GPU-x, 1, 700, 50, 1500, 80, 0x0, 0\n", "GPU index missing"),
        ("0, GPU-a, 1, 2, 3, 4, 5, 0x0, 0\n0, GPU-b, 1, 2, 3, 4, 5, 0x0, 0\n", "listed twice"),
    ],
)
def test_gpu_query_malformed_names_device_and_command(text: str, needle: str) -> None:
    with pytest.raises(DeviceProtocolError) as info:
        parse_gpu_query(text, device="node07", address="10.0.0.7:22", command="nvidia-smi --query-gpu=...")
    message = str(info.value)
    assert needle in message
    assert info.value.device == "node07" and info.value.address == "10.0.0.7:22"
    assert "nvidia-smi --query-gpu=..." in message


def test_invalid_field_message_is_recognised() -> None:
    assert invalid_query_field(data("nvidia_smi_invalid_field.txt")) == "clocks_event_reasons.active"
    assert invalid_query_field(data("nvidia_smi_query.csv")) is None


# ---- dcgmi diag -------------------------------------------------------------------------------


def test_dcgm4_pass_with_a_skip() -> None:
    result = parse_dcgm_diag(data("dcgmi_diag_r1_dcgm4_pass.json"), 1)
    assert result.level == 1
    assert result.passed
    assert result.failures == ()
    assert DiagTestResult("Deployment", "software", "pass", 0) in result.tests
    assert DiagTestResult("Deployment", "software", "pass", 1) in result.tests
    skip = [t for t in result.tests if t.status == "skip"]
    assert skip == [DiagTestResult("Hardware", "memory", "skip", 1, "Skipped: MIG mode is enabled")]
    assert len(result.tests) == 4


def test_dcgm3_failure_names_test_gpu_and_warning() -> None:
    result = parse_dcgm_diag(data("dcgmi_diag_r2_dcgm3_fail.json"), 2)
    assert not result.passed
    (failure,) = result.failures
    assert failure.category == "Integration" and failure.name == "PCIe" and failure.gpu == 1
    assert "1403 PCIe replays" in failure.detail
    # "gpu_ids": "0,1" expands to one entry per GPU; a deployment test is not per GPU.
    assert [t.gpu for t in result.tests if t.name == "GPU Memory"] == [0, 1]
    assert [t.gpu for t in result.tests if t.name == "Denylist"] == [None]


def test_dcgm_summary_failure_without_failed_result_still_fails() -> None:
    doc = {
        "DCGM Diagnostic": {
            "test_categories": [
                {
                    "category": "Stress",
                    "tests": [
                        {
                            "name": "targeted_power",
                            "results": [
                                {"entity_group": "GPU", "entity_group_id": 1, "entity_id": 0, "status": "Pass"}
                            ],
                            "test_summary": {"status": "Fail", "warnings": [{"warning": "power target not reached"}]},
                        },
                        {"name": "pulse_test", "results": [], "test_summary": {"status": "Skip"}},
                    ],
                }
            ]
        }
    }
    result = parse_dcgm_diag("Successfully ran diagnostic.\n" + json.dumps(doc), 3)
    assert not result.passed
    assert result.failures == (DiagTestResult("Stress", "targeted_power", "fail", None, "power target not reached"),)
    assert DiagTestResult("Stress", "pulse_test", "skip", None) in result.tests


def test_dcgm_runtime_error_is_a_device_error_not_a_result() -> None:
    text = json.dumps({"DCGM Diagnostic": {"runtime_error": "Unable to connect to host engine"}})
    with pytest.raises(DeviceError) as info:
        parse_dcgm_diag(text, 1, device="node03", address="10.0.0.3", command="dcgmi diag -r 1 --json")
    assert "Unable to connect to host engine" in str(info.value)
    assert "node03" in str(info.value) and "dcgmi diag -r 1 --json" in str(info.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Error: unable to establish a connection to the host engine\n", "no 'DCGM Diagnostic' object"),
        ('{"DCGM Diagnostic": {"test_categories": [', "not valid JSON"),
        ('{"something": 1}', "no 'DCGM Diagnostic' object"),
        ('{"DCGM Diagnostic": {"test_categories": []}}', "no test_categories"),
        ('{"DCGM Diagnostic": {"test_categories": [{"category": "x"}]}}', "unexpected diagnostic JSON shape"),
        (
            '{"DCGM Diagnostic": {"test_categories": [{"category": "x", "tests": [{"name": "t"}]}]}}',
            "neither results nor test_summary",
        ),
    ],
)
def test_dcgm_malformed(text: str, needle: str) -> None:
    with pytest.raises(DeviceProtocolError) as info:
        parse_dcgm_diag(text, 1, device="node03", address="10.0.0.3", command="dcgmi diag -r 1 --json")
    assert needle in str(info.value)
    assert "node03" in str(info.value) and "dcgmi diag -r 1 --json" in str(info.value)


# ---- gpu-burn and nccl-tests ------------------------------------------------------------------


def test_gpu_burn_verdict() -> None:
    result = parse_gpu_burn(data("gpu_burn_output.txt"))
    assert result.tested == 2
    assert result.gpus == {0: True, 1: False}
    assert not result.passed
    assert result.faulty == [1]
    ok = parse_gpu_burn("Tested 1 GPUs:\n\tGPU 0: OK\n")
    assert ok.passed and ok.faulty == []


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Burning for 60 seconds.\n10.0%  proc'd: 1\n", "no 'Tested N GPUs:' verdict"),
        ("Tested 2 GPUs:\n\tGPU 0: OK\n", "says it tested 2 GPUs but lists a verdict for 1"),
    ],
)
def test_gpu_burn_malformed(text: str, needle: str) -> None:
    with pytest.raises(DeviceProtocolError) as info:
        parse_gpu_burn(text, device="node01", command="gpu_burn 60")
    assert needle in str(info.value) and "node01" in str(info.value) and "gpu_burn 60" in str(info.value)


def test_nccl_trailer() -> None:
    result = parse_nccl_tests(data("nccl_all_reduce_perf.txt"))
    assert result.out_of_bounds == 0
    assert result.avg_bus_bandwidth_gbps == pytest.approx(172.318)
    assert result.passed
    bad = parse_nccl_tests("# Out of bounds values : 12 FAILED\n# Avg bus bandwidth    : 3.5\n")
    assert bad.out_of_bounds == 12 and not bad.passed


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("#  size  count\n", "no '# Out of bounds values' and '# Avg bus bandwidth' trailer"),
        ("# Out of bounds values : 0 OK\n", "no '# Avg bus bandwidth' trailer"),
        ("# Out of bounds values : 0 OK\n# Avg bus bandwidth : fast\n", "not a number: 'fast'"),
        ("# Out of bounds values : 0 OK\n# Avg bus bandwidth : nan\n", "average bus bandwidth is 'nan'"),
    ],
)
def test_nccl_malformed(text: str, needle: str) -> None:
    with pytest.raises(DeviceProtocolError) as info:
        parse_nccl_tests(text, device="node01", command="all_reduce_perf -b 8 -e 8G")
    assert needle in str(info.value) and "all_reduce_perf" in str(info.value)
