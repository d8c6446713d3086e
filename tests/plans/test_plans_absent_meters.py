"""The idle-power plan on a rack whose PDU has no outlet meters: "not available", never 0 W.

The simulated pdu-a is given the fault that hides its rPDU2OutletMeteredStatus table (its agent
answers noSuchObject there, as an APC AP79xx switched unit does). Every outlet still reports
its state, the PDU totals still agree with the analyzer, and the node comparison that needs
outlet power fails naming the PDU outlet whose meter is missing, instead of passing on 0 W.
"""

from __future__ import annotations

from pathlib import Path

from rackval.drivers.pdu import apc
from tests.support import plan_runs
from tests.support.plan_runs import failed_tests, failure_text, measurements

NO_OUTLET_METERS = f"""
- {{kind: snmp_no_such_object, device: pdu-a, params: {{oid_prefix: ".{apc.RPDU2}.9.4"}}}}
"""


def test_idle_power_plan_says_outlet_power_is_not_available(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(NO_OUTLET_METERS)
    reports = tmp_path / "reports"
    result = plan_runs.run_plans(
        reports, "--sim-nodes", "4", "--sim-faults", str(faults), plans=("test_plans/test_idle_power.py",), timeout=240
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    failed = failed_tests(result.stdout)
    node_tests = {f"test_node_idle_power_and_outlets_agree[node0{i}]" for i in range(1, 5)}
    assert failed == node_tests, out  # every node has a PSU on pdu-a; the totals still agree
    for test in node_tests:
        text = failure_text(result.stdout, test)
        assert "pdu-a outlet" in text and "outlet power not available on this device" in text, text
    outlet_power = measurements(reports / "results.sqlite", "PSU outlet power")
    assert outlet_power and {device for device, *_ in outlet_power} == {"pdu-b"}  # none recorded as 0 W for pdu-a
    assert all(value > 0 for *_, value, _ in outlet_power)
