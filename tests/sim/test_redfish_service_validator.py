"""DMTF's Redfish Service Validator against the simulated BMC: the service must have 0 FAIL.

The validator is a third party judging our payloads against DMTF's own CSDL (release 2025.4 in
shared/redfish/csdl), so a shape we got wrong cannot hide behind a test we wrote. It runs offline
(local schema directory, no download) with the BMC's credentials, in a subprocess bounded in
time. The model is the reference one with the host on, a power cap applied, a failed fan and an
off-baseline BMC firmware, so critical statuses, SEL entries and a non-null power limit are
validated too, not only a healthy idle tree. Deprecation warnings (legacy Power/Thermal, which
the brief asks for beside PowerSubsystem/ThermalSubsystem) are expected and allowed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rackval.sim.clock import SimClock
from rackval.sim.faults import make_fault
from rackval.sim.model import REFERENCE_PARAMS, RackModel, RackSize
from rackval.sim.redfish_server import start_bmc_redfish
from tests.support.sim_redfish import CSDL_DIR, run_validator

NODE = "node01"
USER = "admin"
PASSWORD = "validator-pw-5678"

EXPECTED_URIS = {
    "/redfish/v1/",
    "/redfish/v1/Systems/1",
    "/redfish/v1/Systems/1/LogServices/SEL",
    "/redfish/v1/Systems/1/LogServices/SEL/Entries",
    "/redfish/v1/Chassis/1",
    "/redfish/v1/Chassis/1/Power",
    "/redfish/v1/Chassis/1/Thermal",
    "/redfish/v1/Chassis/1/EnvironmentMetrics",
    "/redfish/v1/Chassis/1/PowerSubsystem/PowerSupplies/PSU1",
    "/redfish/v1/Chassis/1/PowerSubsystem/PowerSupplies/PSU1/Metrics",
    "/redfish/v1/Chassis/1/ThermalSubsystem/Fans/Fan3",
    "/redfish/v1/Chassis/1/ThermalSubsystem/ThermalMetrics",
    "/redfish/v1/Chassis/1/Sensors",
    "/redfish/v1/Chassis/1/Sensors/GPU0Temp",
    "/redfish/v1/Managers/bmc",
    "/redfish/v1/SessionService/Sessions",
    "/redfish/v1/UpdateService/FirmwareInventory",
    "/redfish/v1/UpdateService/FirmwareInventory/BMC",
}


def test_service_validator_reports_no_failures(tmp_path: Path) -> None:
    assert CSDL_DIR.is_dir(), f"DMTF CSDL missing at {CSDL_DIR} (vendored under tests/data/redfish/)"
    schemas = tmp_path / "schemas"  # a copy: the validator may cache into its schema directory
    shutil.copytree(CSDL_DIR, schemas)
    clock = SimClock(time_scale=0)
    model = RackModel(RackSize(nodes=2), clock, REFERENCE_PARAMS)
    model.set_utilization(NODE, 0.7)
    model.set_power_cap(NODE, 4000.0)
    model.inject(make_fault("fan_failure", NODE, "Fan3"))
    model.inject(make_fault("firmware_off_baseline", f"bmc-{NODE}"))
    clock.advance(60.0)
    assert model.host_state(NODE) == "On"
    server = start_bmc_redfish(model, NODE, username=USER, password=PASSWORD)
    try:
        result = run_validator(f"http://{server.host}:{server.port}", USER, PASSWORD, schemas, tmp_path)
    finally:
        server.stop()
    tail = result.output[-3000:]
    assert "No module named" not in result.output, (
        "the validator is not installed: pip install redfish-service-validator\n" + tail
    )
    assert result.counts is not None, f"no summary table in the validator's output:\n{tail}"
    failures = "\n".join(result.failures[:40])
    assert result.counts["FAIL"] == 0, f"validator FAILs ({result.counts}):\n{failures}"
    assert result.failures == []
    assert result.returncode == 0, tail
    assert result.counts["PASS"] >= 1000, result.counts  # it really walked the tree
    missing = EXPECTED_URIS - set(result.validated)
    assert not missing, f"validator never reached {sorted(missing)}"
    assert server.open_sessions == 0  # the validator logged out of its session
    # Only the deprecation warnings of the legacy Power/Thermal resources are expected.
    assert result.warning_kinds() <= {"Deprecated Property Warning", "Deprecated URI Warning"}, result.warnings
