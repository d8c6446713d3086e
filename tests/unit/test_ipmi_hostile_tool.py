"""The IPMI transport against a stand-in ipmitool that misbehaves: it trickles output for ever,
prints 128 MiB, leaves a grandchild holding its pipes, or fails the session fast and then hangs
in the diagnostic probe. Each case asserts the error class, that the message names device,
address and operation, and that the operation ended within ``timeout_s`` + 2 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.transport.ipmi import IpmiTransport

TIMEOUT_S = 1.0
SLACK_S = 2.0


def tool(tmp_path: Path, body: str, **options: object) -> IpmiTransport:
    fake = tmp_path / "ipmitool"
    fake.write_text("#!/bin/sh\n" + body + "\n")
    fake.chmod(0o755)
    return IpmiTransport(
        DeviceConfig(
            name="bmc-hostile", kind="bmc", driver="ipmi", host="127.0.0.1", port=6239,
            credentials=Credentials(username="admin", password=Secret("ipmi-pw")),
            options={"ipmitool": str(fake), "retries": 1, "retransmit_s": 1, **options}, timeout_s=TIMEOUT_S,
        )
    )  # fmt: skip


def timed_failure(transport: IpmiTransport, cls: type[DeviceError]) -> tuple[DeviceError, float]:
    started = time.monotonic()
    with pytest.raises(cls) as info:
        transport.run(["mc", "info"])
    err = info.value
    assert err.device == "bmc-hostile" and err.address == "127.0.0.1:6239" and err.operation == "ipmitool mc info"
    assert "ipmi-pw" not in str(err)
    return err, time.monotonic() - started


def test_output_trickled_for_ever_ends_by_the_deadline(tmp_path: Path) -> None:
    err, elapsed = timed_failure(tool(tmp_path, "while true; do echo 'Device ID : 32'; sleep 0.1; done"), DeviceTimeout)
    assert f"did not finish within {TIMEOUT_S:g} s" in str(err)
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + SLACK_S


def test_grandchild_holding_the_pipes_does_not_hold_the_caller(tmp_path: Path) -> None:
    _, elapsed = timed_failure(tool(tmp_path, "sleep 60 &\necho 'Device ID : 32'\nexit 0"), DeviceTimeout)
    assert elapsed < TIMEOUT_S + SLACK_S


def test_huge_output_is_refused_at_the_cap(tmp_path: Path) -> None:
    transport = tool(tmp_path, "head -c 134217728 /dev/zero", max_output_bytes=1_000_000)
    err, elapsed = timed_failure(transport, DeviceProtocolError)
    assert "output larger than 1000000 bytes" in str(err)
    assert elapsed < TIMEOUT_S + SLACK_S


def test_session_failure_and_its_probe_share_one_deadline(tmp_path: Path) -> None:
    body = (
        'case " $* " in *" -v "*) sleep 30;; esac\n'
        "echo 'Error: Unable to establish IPMI v2 / RMCP+ session' >&2\nexit 1"
    )
    _, elapsed = timed_failure(tool(tmp_path, body), DeviceError)
    assert elapsed < TIMEOUT_S + SLACK_S


def test_device_text_in_the_error_is_escaped(tmp_path: Path) -> None:
    err, _ = timed_failure(tool(tmp_path, "printf 'bad \\033[2J\\nthing' >&2; exit 1"), DeviceError)
    assert "\x1b" not in str(err) and "\\x1b[2J" in str(err)
