"""Helpers for the simulated-BMC Redfish tests: driver configs, and running DMTF's Service Validator.

The validator (PyPI ``redfish-service-validator``) runs in a subprocess, offline: schemas come
from a local CSDL directory (``--schema_directory`` + ``--skipschema``, so nothing is fetched from
dmtf.org), and its result is read from the summary table it prints and the debug log it writes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rackval.drivers.config import Credentials, DeviceConfig, Secret

# DMTF's CSDL schemas, vendored with their license (tests/data/redfish/).
CSDL_DIR = Path(__file__).resolve().parents[1] / "data" / "redfish" / "csdl"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HEADER = re.compile(r"\|\s*PASS\s*\|\s*WARN\s*\|\s*FAIL\s*\|\s*NOT TESTED\s*\|")
_COUNTS = re.compile(r"\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|")
_RESULT_LINE = re.compile(r" - (?:ERROR|WARNING) - (FAIL|WARN) - (.*)$")


def bmc_config(
    host: str, port: int, username: str, password: str, *, name: str = "bmc-node01", timeout_s: float = 5.0,
    **options: object,
) -> DeviceConfig:  # fmt: skip
    """A RedfishBmc config for a simulated BMC over plain HTTP, with short back-offs for tests."""
    return DeviceConfig(
        name=name,
        kind="bmc",
        driver="redfish",
        host=host,
        port=port,
        credentials=Credentials(username=username, password=Secret(password)),
        options={"scheme": "http", "backoff_s": 0.01, "backoff_max_s": 0.02, **options},
        timeout_s=timeout_s,
    )


@dataclass
class ValidatorResult:
    """What one validator run reported."""

    returncode: int
    output: str
    counts: dict[str, int] | None  # PASS / WARN / FAIL / NOT TESTED from the summary table
    validated: list[str] = field(default_factory=list)  # URIs in the order validated
    failures: list[str] = field(default_factory=list)  # "FAIL - <property>: <message>" lines
    warnings: list[str] = field(default_factory=list)

    def warning_kinds(self) -> set[str]:
        """The kinds of warning ("Deprecated Property Warning", ...), as the validator classes them."""
        return {w.split("): ", 1)[-1].split(":", 1)[0] for w in self.warnings}


def parse_summary(output: str) -> dict[str, int] | None:
    """The counts of the validator's closing summary table, or None if it printed none."""
    lines = _ANSI.sub("", output).splitlines()
    for i, line in enumerate(lines):
        if _HEADER.search(line):
            for follow in lines[i + 1 : i + 4]:
                m = _COUNTS.search(follow)
                if m:
                    return dict(zip(("PASS", "WARN", "FAIL", "NOT TESTED"), map(int, m.groups()), strict=True))
    return None


def run_validator(
    rhost: str, username: str, password: str, schema_dir: Path, work_dir: Path, *, timeout_s: float = 240.0
) -> ValidatorResult:
    """Run rf_service_validator against ``rhost`` offline; bounded by ``timeout_s`` (then killed)."""
    logdir = work_dir / "logs"
    command = [
        sys.executable, "-c", "from redfish_service_validator.console_scripts import main; main()",
        "--rhost", rhost, "--user", username, "--password", password, "--authtype", "Session",
        "--logdir", str(logdir), "--schema_directory", str(schema_dir), "--skipschema",
        "--timeout", "10", "--config", str(work_dir / "no-config.ini"),
    ]  # fmt: skip
    # Loopback only: no proxy from the environment may see the service's credentials.
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    proc = subprocess.run(
        command, cwd=work_dir, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    output = proc.stdout + proc.stderr
    result = ValidatorResult(proc.returncode, output, parse_summary(output))
    result.validated = [
        line.removeprefix("Validating ").removesuffix("...")
        for line in _ANSI.sub("", proc.stdout).splitlines()
        if line.startswith("Validating ")
    ]
    for log in sorted(logdir.glob("*/RedfishServiceValidatorDebug_*.log")):
        for line in log.read_text(errors="replace").splitlines():
            m = _RESULT_LINE.search(line)
            if m:
                (result.failures if m.group(1) == "FAIL" else result.warnings).append(f"{m.group(1)} - {m.group(2)}")
    return result
