"""Pure parsers for GPU-node tool output: nvidia-smi CSV, dcgmi diag JSON, gpu-burn, nccl-tests.

They are functions from text to dataclasses so they can be tested on captured output without a
GPU. Every malformed input raises DeviceProtocolError naming the device and the command, because
"could not parse" on its own does not tell anyone which node to look at.

Sources: nvidia-smi ``--help-query-gpu`` field names; NVML ``nvml.h`` clocks-event reason bits
[V]; DCGM ``nvvs/include/NvvsJsonStrings.h`` and ``testing/python3/dcgm_diag_schema.json``
(DCGM 4 JSON shape) [V]; gpu-burn and nccl-tests trailers from domain.md §5 [S].
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rackval.core.errors import DeviceError, DeviceProtocolError
from rackval.drivers.capabilities import DiagResult, DiagTestResult, GpuTelemetry

# The order matters: parse_gpu_query reads columns by position.
REASONS_FIELD = "clocks_event_reasons.active"
OLD_REASONS_FIELD = "clocks_throttle_reasons.active"  # drivers before R535
QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "uuid",
    "power.draw",
    "power.limit",
    "temperature.gpu",
    "clocks.current.sm",
    "utilization.gpu",
    REASONS_FIELD,
    "ecc.errors.uncorrected.volatile.total",
)
CSV_FORMAT = "--format=csv,noheader,nounits"
assert QUERY_FIELDS[0] == "index" and QUERY_FIELDS[7] == REASONS_FIELD and len(QUERY_FIELDS) == 9  # parse order

# nvmlClocksEventReason* bits, from nvml.h [V].
EVENT_REASON_BITS: tuple[tuple[int, str], ...] = (
    (0x001, "GpuIdle"),
    (0x002, "ApplicationsClocksSetting"),
    (0x004, "SwPowerCap"),
    (0x008, "HwSlowdown"),
    (0x010, "SyncBoost"),
    (0x020, "SwThermal"),
    (0x040, "HwThermal"),
    (0x080, "HwPowerBrake"),
    (0x100, "DisplayClockSetting"),
)
_KNOWN_BITS = sum(bit for bit, _ in EVENT_REASON_BITS)
# What nvidia-smi prints for a field this GPU or driver cannot report: no value, not an error.
_NO_VALUE = {"[n/a]", "n/a", "[not supported]", "not supported", ""}
_INVALID_FIELD = re.compile(r'Field "([^"]+)" is not a valid field to query')


def query_gpu_argv(nvidia_smi: str = "nvidia-smi", reasons_field: str = REASONS_FIELD) -> list[str]:
    """The nvidia-smi argv for QUERY_FIELDS, with the reason field named as this driver knows it."""
    fields = [reasons_field if f == REASONS_FIELD else f for f in QUERY_FIELDS]
    return [nvidia_smi, "--query-gpu=" + ",".join(fields), CSV_FORMAT]


def invalid_query_field(text: str) -> str | None:
    """The field nvidia-smi rejected ('Field "x" is not a valid field to query.'), or None."""
    m = _INVALID_FIELD.search(text)
    return m.group(1) if m else None


def decode_event_reasons(mask: int) -> tuple[str, ...]:
    """0x24 -> ("SwPowerCap", "SwThermal"); bits NVML did not define show as "0x..."."""
    names = [name for bit, name in EVENT_REASON_BITS if mask & bit]
    unknown = mask & ~_KNOWN_BITS
    if unknown:
        names.append(f"0x{unknown:x}")
    return tuple(names)


def _error(command: str, detail: str, device: str, address: str) -> DeviceProtocolError:
    return DeviceProtocolError(device, address, f"parse '{command}' output", detail)


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " | ".join(line.strip() for line in text.strip().splitlines()[:3])
    return repr(flat[:limit] + ("..." if len(flat) > limit else ""))


def _number(
    raw: str, field: str, integer: bool, where: str, device: str, address: str, command: str
) -> float | int | None:
    """One nvidia-smi cell: None for "[N/A]" / "[Not Supported]", ints accept hex ("0x...04").

    Numbers are tried first and the no-value words only when that fails: a 1 Hz soak of 32
    nodes parses ~2,000 cells a second, nearly all of them plain numbers."""
    try:
        if integer:
            return int(raw, 16) if raw[:2] in ("0x", "0X") else int(raw)
        value = float(raw)
    except ValueError:
        if raw.lower() in _NO_VALUE:
            return None
        raise _error(command, f"{where}: {field} is not a number: {raw!r}", device, address) from None
    if not math.isfinite(value):
        raise _error(command, f"{where}: {field} is {raw!r}", device, address)
    return value


def parse_gpu_query(
    text: str,
    *,
    device: str = "<text>",
    address: str = "-",
    command: str = "nvidia-smi --query-gpu",
) -> list[GpuTelemetry]:
    """``nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits`` -> one GpuTelemetry per line.

    A line that is not 9 comma-separated fields (for example "Unable to determine the device
    handle for GPU...: Unknown Error" when a GPU fell off the bus) is an error, not a skipped GPU:
    a missing GPU is exactly what rack validation must notice.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise _error(command, "no GPU lines in the output (no GPUs visible to the driver?)", device, address)
    gpus: list[GpuTelemetry] = []
    for n, line in enumerate(lines, start=1):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(QUERY_FIELDS):
            raise _error(
                command,
                f"line {n} has {len(cells)} fields, expected {len(QUERY_FIELDS)}: {line[:160]!r}",
                device,
                address,
            )
        where = f"line {n}"
        # cells by QUERY_FIELDS position: index, uuid, power.draw, power.limit, temperature.gpu,
        # clocks.current.sm, utilization.gpu, reasons, ecc
        index = _number(cells[0], "index", True, where, device, address, command)
        if index is None:
            raise _error(command, f"line {n}: GPU index missing: {line[:160]!r}", device, address)
        reasons = _number(cells[7], REASONS_FIELD, True, where, device, address, command)
        gpus.append(
            GpuTelemetry(
                index=index,
                uuid=cells[1],
                power_w=_number(cells[2], "power.draw", False, where, device, address, command),
                power_limit_w=_number(cells[3], "power.limit", False, where, device, address, command),
                temperature_c=_number(cells[4], "temperature.gpu", False, where, device, address, command),
                sm_clock_mhz=_number(cells[5], "clocks.current.sm", False, where, device, address, command),
                utilization_pct=_number(cells[6], "utilization.gpu", False, where, device, address, command),
                event_reasons=reasons,
                event_reason_names=decode_event_reasons(reasons) if reasons is not None else (),
                ecc_uncorrected=_number(
                    cells[8], "ecc.errors.uncorrected.volatile.total", True, where, device, address, command
                ),
            )
        )
    seen = [g.index for g in gpus]
    if len(set(seen)) != len(seen):
        raise _error(command, f"GPU index listed twice: {seen}", device, address)
    return gpus


# ---- dcgmi diag --json --------------------------------------------------------------------------


def _status(value: Any) -> str:
    return str(value).strip().lower()


def _messages(entry: Mapping[str, Any]) -> str:
    """Warnings and info of one result as one line: DCGM 3/4 use dicts, DCGM 2 plain strings."""
    parts: list[str] = []
    for key in ("warnings", "info"):
        items = entry.get(key)
        if items is None:
            continue
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, Mapping):
                text = item.get("warning") or item.get("info") or item.get("message") or ""
                parts.append(str(text).strip())
            else:
                parts.append(str(item).strip())
    return "; ".join(p for p in parts if p)


def _gpus_of(result: Mapping[str, Any]) -> list[int | None]:
    """GPU ids of one result: DCGM 4 entity_id (GPU group), DCGM 3 gpu_id, DCGM 2 "gpu_ids": "0,1"."""
    group = str(result.get("entity_group", "GPU")).upper()
    if "entity_id" in result:
        return [int(result["entity_id"])] if group == "GPU" else [None]
    if "gpu_id" in result:
        return [int(result["gpu_id"])]
    ids = result.get("gpu_ids")
    if isinstance(ids, list):
        return [int(i) for i in ids] or [None]
    if isinstance(ids, str) and ids.strip():
        return [int(i) for i in ids.split(",") if i.strip()]
    return [None]


def _diag_root(doc: Any) -> Mapping[str, Any] | None:
    if not isinstance(doc, Mapping):
        return None
    for key in ("DCGM Diagnostic", "DCGM GPU Diagnostic"):  # DCGM 4 / DCGM 2-3
        if isinstance(doc.get(key), Mapping):
            return doc[key]
    return None


def parse_dcgm_diag(
    text: str,
    level: int,
    *,
    device: str = "<text>",
    address: str = "-",
    command: str = "dcgmi diag --json",
) -> DiagResult:
    """``dcgmi diag -r <level> --json`` -> DiagResult with one entry per test and GPU.

    Handles the DCGM 4 shape ("DCGM Diagnostic" / test_categories / tests / results with
    entity_group + entity_id, plus test_summary) and the DCGM 2-3 shape ("DCGM GPU Diagnostic",
    results with gpu_id or gpu_ids). A test whose results all passed but whose summary failed is
    reported as a failure with gpu None. A "runtime_error" means the diagnostic did not run at
    all: that raises DeviceError rather than returning a result that could read as a pass.
    """
    start = text.find("{")
    try:
        doc = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError as exc:
        raise _error(
            command, f"not valid JSON ({exc.msg} at char {exc.pos}): {_excerpt(text)}", device, address
        ) from exc
    root = _diag_root(doc)
    if root is None:
        raise _error(command, f"no 'DCGM Diagnostic' object in {_excerpt(text)}", device, address)
    if root.get("runtime_error"):
        raise DeviceError(device, address, command, f"diagnostic did not run: {root['runtime_error']}")
    categories = root.get("test_categories")
    if not isinstance(categories, list) or not categories:
        raise _error(command, "no test_categories in the diagnostic result", device, address)
    tests: list[DiagTestResult] = []
    try:
        for cat in categories:
            category = str(cat["category"])
            for test in cat["tests"]:
                name = str(test["name"])
                results = test.get("results") or []
                own: list[DiagTestResult] = []
                for result in results:
                    status = _status(result["status"])
                    detail = _messages(result)
                    own.extend(DiagTestResult(category, name, status, gpu, detail) for gpu in _gpus_of(result))
                summary = test.get("test_summary")
                if isinstance(summary, Mapping) and "status" in summary:
                    s_status = _status(summary["status"])
                    if not own or (s_status == "fail" and all(t.status != "fail" for t in own)):
                        own.append(DiagTestResult(category, name, s_status, None, _messages(summary)))
                if not own:
                    raise KeyError(f"test {name!r} has neither results nor test_summary")
                tests.extend(own)
    except (KeyError, TypeError, ValueError) as exc:
        raise _error(command, f"unexpected diagnostic JSON shape: {exc}", device, address) from exc
    return DiagResult(level=level, passed=all(t.status != "fail" for t in tests), tests=tuple(tests))


# ---- gpu-burn -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuBurnResult:
    """gpu-burn's verdict: GPU index -> True for OK, False for FAULTY."""

    tested: int
    gpus: dict[int, bool]

    @property
    def passed(self) -> bool:
        return self.tested == len(self.gpus) and all(self.gpus.values())

    @property
    def faulty(self) -> list[int]:
        return sorted(i for i, ok in self.gpus.items() if not ok)


_TESTED = re.compile(r"^\s*Tested (\d+) GPUs:\s*$")
_GPU_VERDICT = re.compile(r"^\s*GPU (\d+): (OK|FAULTY)\s*$")


def parse_gpu_burn(
    text: str, *, device: str = "<text>", address: str = "-", command: str = "gpu_burn"
) -> GpuBurnResult:
    """gpu-burn output -> GpuBurnResult, from the last "Tested N GPUs:" block (the verdict).

    Output without that block (killed early, crashed) is an error, as is a block listing fewer
    GPUs than it says it tested.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _TESTED.match(line)]
    if not starts:
        raise _error(
            command, f"no 'Tested N GPUs:' verdict (run killed or crashed?): {_excerpt(text[-400:])}", device, address
        )
    first = starts[-1]
    m = _TESTED.match(lines[first])
    assert m is not None
    tested = int(m.group(1))
    gpus: dict[int, bool] = {}
    for line in lines[first + 1 :]:
        v = _GPU_VERDICT.match(line)
        if v is None:
            if line.strip():
                break
            continue
        gpus[int(v.group(1))] = v.group(2) == "OK"
    if len(gpus) != tested:
        raise _error(command, f"says it tested {tested} GPUs but lists a verdict for {len(gpus)}", device, address)
    return GpuBurnResult(tested=tested, gpus=gpus)


# ---- nccl-tests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NcclResult:
    """nccl-tests trailer: data-check failures and average bus bandwidth in GB/s."""

    out_of_bounds: int
    avg_bus_bandwidth_gbps: float

    @property
    def passed(self) -> bool:
        return self.out_of_bounds == 0


_OOB = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)\s*(OK|FAILED)?\s*$", re.MULTILINE)
_BUSBW = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*(\S+)\s*$", re.MULTILINE)


def parse_nccl_tests(
    text: str, *, device: str = "<text>", address: str = "-", command: str = "nccl-tests"
) -> NcclResult:
    """nccl-tests (all_reduce_perf etc.) output -> NcclResult from its closing trailer."""
    oob = _OOB.findall(text)
    bw = _BUSBW.findall(text)
    if not oob or not bw:
        missing = " and ".join(
            name for name, found in (("'# Out of bounds values'", oob), ("'# Avg bus bandwidth'", bw)) if not found
        )
        raise _error(command, f"no {missing} trailer (run incomplete?): {_excerpt(text[-400:])}", device, address)
    count = int(oob[-1][0])
    try:
        bandwidth = float(bw[-1])
    except ValueError:
        raise _error(command, f"average bus bandwidth is not a number: {bw[-1]!r}", device, address) from None
    if not math.isfinite(bandwidth) or bandwidth < 0:
        raise _error(command, f"average bus bandwidth is {bw[-1]!r}", device, address)
    return NcclResult(out_of_bounds=count, avg_bus_bandwidth_gbps=bandwidth)
