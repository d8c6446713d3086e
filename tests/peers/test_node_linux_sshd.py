"""LinuxGpuNode against a real OpenSSH sshd playing a GPU node (see tests/support/gpu_node_sshd.py).

The load tool is ``sleep``, started by the driver's own detached-start script and stopped by
its stop script, both really executed by /bin/sh behind sshd: the tests check the process on
this machine, by PID.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.core.errors import DeviceError
from rackval.drivers.capabilities import Device, GpuNode, Identity
from rackval.drivers.node.linux import LinuxGpuNode
from tests.support.gpu_node_sshd import NodeSshd, node_sshd, process_running

DMI = {"sys_vendor": "Supermicro\n", "product_name": "SYS-821GE-TNHR\n", "bios_version": "2.1a\n"}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeSshd]:
    with node_sshd(tmp_path_factory.mktemp("node-sshd"), DMI) as server:
        yield server


@pytest.fixture
def make_node(sshd: NodeSshd, tmp_path: Path) -> Iterator:
    """Build drivers with a pid file under tmp_path; kill any load they left behind."""
    made: list[LinuxGpuNode] = []
    pid_files: list[Path] = []

    def make(**options: object) -> LinuxGpuNode:
        pid_file = Path(str(options.setdefault("load_pid_file", str(tmp_path / "load.pid"))))
        options.setdefault("load_log_file", str(tmp_path / "load.log"))
        options.setdefault("load_command", ["sleep", "{duration}"])
        options.setdefault("load_stop_grace_s", 2)
        pid_files.append(pid_file)
        node = LinuxGpuNode(sshd.config(**options))
        made.append(node)
        return node

    yield make
    for node in made:
        if node.load_pid is not None and process_running(node.load_pid):
            with contextlib.suppress(OSError):
                os.kill(node.load_pid, signal.SIGKILL)
        node.close()
    for pid_file in pid_files:
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if process_running(pid) and b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def test_is_a_device_and_gpu_node(make_node) -> None:
    node = make_node()
    assert isinstance(node, Device)
    assert isinstance(node, GpuNode)
    assert node.name == "node-sshd"


def test_identify_from_dmi_with_unreadable_serial(make_node, sshd: NodeSshd) -> None:
    node = make_node()
    assert node.identify() == Identity(vendor="Supermicro", model="SYS-821GE-TNHR", serial="", firmware="2.1a")
    assert "cat /sys/class/dmi/id/product_serial" in sshd.commands()


def test_identify_falls_back_to_kernel_and_fails_without_vendor(make_node, sshd: NodeSshd) -> None:
    bios, vendor = sshd.dir / "dmi" / "bios_version", sshd.dir / "dmi" / "sys_vendor"
    bios.unlink()
    try:
        assert make_node().identify().firmware == "kernel 6.8.0-45-generic"
        vendor.unlink()
        with pytest.raises(DeviceError) as info:
            make_node().identify()
        assert "/sys/class/dmi/id/sys_vendor" in str(info.value) and "No such file" in str(info.value)
    finally:
        bios.write_text(DMI["bios_version"])
        vendor.write_text(DMI["sys_vendor"])


def test_gpus_reads_eight_gpus_and_sees_the_thermally_slowed_one(make_node) -> None:
    gpus = make_node().gpus()
    assert len(gpus) == 8
    slowed = [g.index for g in gpus if "SwThermal" in g.event_reason_names]
    assert slowed == [3]
    assert gpus[3].event_reasons == 0x20
    assert gpus[3].temperature_c == 88.0
    assert gpus[0].power_w == 612.35 and gpus[0].power_limit_w == 700.0
    assert gpus[0].uuid == "GPU-3b5d8c2e-7f1a-4c62-9e0b-5a1d2f4c8e01"


def test_old_driver_field_name_is_retried_once_and_remembered(make_node, sshd: NodeSshd) -> None:
    node = make_node(nvidia_smi="nvidia-smi-r470")
    before = len(sshd.commands())
    gpus = node.gpus()
    assert [g.event_reason_names for g in gpus][3] == ("SwThermal",)
    log = sshd.commands()[before:]
    assert log.count("sh") == 1  # telemetry runs in one shell session (run_persistent)
    sent = [c for c in log if c != "sh"]
    assert len(sent) == 2
    assert "clocks_event_reasons.active" in sent[0]
    assert "clocks_throttle_reasons.active" in sent[1]
    node.gpus()
    again = sshd.commands()[before + len(log) :]
    assert len(again) == 1 and "clocks_throttle_reasons.active" in again[0]


def test_missing_nvidia_smi_names_device_and_command(make_node) -> None:
    node = make_node(nvidia_smi="/opt/none/nvidia-smi")
    with pytest.raises(DeviceError) as info:
        node.gpus()
    message = str(info.value)
    assert "node-sshd" in message and "/opt/none/nvidia-smi --query-gpu=" in message
    assert "exit status 127" in message and "not found" in message  # bash "command not found", dash "not found"


def test_run_diag_pass_and_fail(make_node) -> None:
    node = make_node()
    ok = node.run_diag(1)
    assert ok.passed and ok.level == 1
    bad = node.run_diag(2)  # dcgmi exits non-zero on a failed test; the JSON still decides
    assert not bad.passed
    assert [(t.name, t.gpu) for t in bad.failures] == [("PCIe", 1)]
    with pytest.raises(ValueError):
        node.run_diag(5)


def test_run_diag_without_dcgmi_is_a_device_error(make_node) -> None:
    with pytest.raises(DeviceError) as info:
        make_node(dcgmi="dcgmi-not-installed").run_diag(1)
    assert "dcgmi-not-installed diag -r 1 --json" in str(info.value)
    assert "exit status 127" in str(info.value)


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def _wait_gone(pid: int, limit_s: float = 5.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if not process_running(pid):
            return True
        time.sleep(0.05)
    return False


def test_start_load_detached_then_stop_kills_it_by_pid(make_node, tmp_path: Path) -> None:
    node = make_node()
    start = time.monotonic()
    node.start_load(1.0, 30)
    assert time.monotonic() - start < 3  # the SSH channel did not wait for the 30 s tool
    pid = node.load_pid
    assert pid is not None
    assert (tmp_path / "load.pid").read_text().strip() == str(pid)
    assert process_running(pid)
    assert _cmdline(pid) == ["sleep", "30"]

    node.stop_load()
    assert _wait_gone(pid), f"load process {pid} still running after stop_load"
    assert not (tmp_path / "load.pid").exists()
    assert node.load_pid is None
    node.stop_load()  # idempotent: no pid file is not an error


def test_second_start_is_refused_while_running(make_node) -> None:
    node = make_node()
    node.start_load(1.0, 30)
    first = node.load_pid
    assert first is not None
    with pytest.raises(DeviceError) as info:
        node.start_load(1.0, 30)
    assert f"already running as pid {first}" in str(info.value)
    assert process_running(first)
    node.stop_load()
    assert _wait_gone(first)


def test_level_placeholders_and_unbounded_duration(make_node) -> None:
    node = make_node(load_command=["sleep", "{level_pct}"])
    node.start_load(0.5, None)
    assert node.load_pid is not None
    assert _cmdline(node.load_pid) == ["sleep", "50"]
    node.stop_load()
    node = make_node(load_command="sleep {duration}", load_pid_file=str(Path(node._pid_file).with_suffix(".2")))
    node.start_load(1.0, None)
    assert node.load_pid is not None
    assert _cmdline(node.load_pid) == ["sleep", str(168 * 3600)]
    node.stop_load()


def test_partial_level_with_full_load_tool_is_refused(make_node, sshd: NodeSshd) -> None:
    node = make_node(load_command=["gpu_burn", "{duration}"])
    before = len(sshd.commands())
    with pytest.raises(DeviceError) as info:
        node.start_load(0.5, 60)
    assert "no {level} or {level_pct} placeholder" in str(info.value)
    assert len(sshd.commands()) == before  # nothing was started
    with pytest.raises(ValueError):
        node.start_load(1.5, 60)


def test_load_tool_that_exits_at_once_is_reported(make_node, tmp_path: Path) -> None:
    node = make_node(load_command=["/no/such/gpu_burn", "{duration}"])
    with pytest.raises(DeviceError) as info:
        node.start_load(1.0, 10)
    message = str(info.value)
    assert "load command exited at once" in message or "No such file" in message
    assert "node-sshd" in message
    assert not (tmp_path / "load.pid").exists()


def test_paths_with_shell_metacharacters_arrive_as_one_word(make_node, tmp_path: Path) -> None:
    odd_dir = tmp_path / "run dir $(touch PWNED) 'q'"
    odd_dir.mkdir()
    pid_file = odd_dir / "load;rm -rf x.pid"
    node = make_node(load_pid_file=str(pid_file), load_log_file=str(odd_dir / "load `id`.log"))
    node.start_load(1.0, 20)
    assert pid_file.read_text().strip() == str(node.load_pid)
    assert (odd_dir / "load `id`.log").exists()
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    node.stop_load()
    assert not pid_file.exists()


def test_stale_pid_of_another_program_is_not_killed(make_node, tmp_path: Path) -> None:
    other = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        (tmp_path / "load.pid").write_text(f"{other.pid}\n")
        node = make_node()
        with pytest.raises(DeviceError) as info:
            node.stop_load()
        assert f"pid {other.pid} no longer runs sleep" in str(info.value)
        assert other.poll() is None  # still alive
    finally:
        other.kill()
        other.wait(timeout=5)


def test_commands_are_quoted_argv(make_node, sshd: NodeSshd, tmp_path: Path) -> None:
    node = make_node()
    node.start_load(1.0, 5)
    node.stop_load()
    start_line = next(c for c in reversed(sshd.commands()) if "rackval-load " in c)
    words = shlex.split(start_line.replace("\\n", "\n"))
    assert words[0:2] == ["sh", "-c"]
    assert words[3:] == ["rackval-load", str(tmp_path / "load.pid"), str(tmp_path / "load.log"), "sleep", "5"]
