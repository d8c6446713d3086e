"""Plan: every BMC's event log holds no Critical entry, and every temperature is within limits.

A Critical SEL entry (a failed PSU or fan, an overload, a thermal trip) is a hardware finding
whether or not it happened during this run: a rack is not accepted with one on record. The
decision is deliberately simple: *any* Critical entry fails, and the failure lists each one
(id, time, message), so the engineer can judge it and clear the log after the repair.

Temperatures: the inlet sensor(s) against ``inlet_temperature``, every GPU sensor against
``gpu_temperature`` (the spec's limits, the same for every design revision's plans); any other
temperature sensor is recorded and judged against the BMC's own upper caution threshold when
the BMC reports one. Each sensor is one measurement (channel = sensor name).

What a BMC must have comes from its node's class in the spec (``node_classes``; without them,
every node expects inlet and GPU temperatures): a sensor group the class expects but the BMC
lacks fails, naming node, class and what is missing; one the class does not expect (a management
node's GPUs) is not applicable: recorded as a measurement without limits and the test passes on
what it did judge (skipped only when it judged no sensor at all). A sensor the class does not
expect but the BMC has is still measured and judged.

Limits: ``sel_critical_entries``, ``inlet_temperature``, ``gpu_temperature``.
"""

from __future__ import annotations

import pytest

from rackval.core.printable import printable
from rackval.drivers.capabilities import TemperatureThresholds
from rackval.harness.inventory import Inventory
from rackval.harness.measure import Limit, Outcome
from rackval.harness.rack import Rack
from rackval.harness.spec import Spec

CRITICAL = "critical"
JUDGED = ("inlet_temperature", "gpu_temperature")  # the sensor groups _classify sorts sensors into
MAX_LISTED = 10  # entries named in a failure message; the count is always complete


def test_sel_has_no_critical_entries(bmc_name: str, rack: Rack, measure) -> None:
    entries = rack.driver(bmc_name).sel_entries()
    critical = [e for e in entries if e.severity.strip().lower() == CRITICAL]
    measure("SEL entries", len(entries), "count", device=bmc_name)
    measure("SEL Critical entries", len(critical), "count", limit="sel_critical_entries", device=bmc_name, soft=True)
    listed = "; ".join(f"#{e.id} {e.created} {e.message_id or ''} {e.message}".strip() for e in critical[:MAX_LISTED])
    more = f" (and {len(critical) - MAX_LISTED} more)" if len(critical) > MAX_LISTED else ""
    assert not critical, printable(f"{bmc_name}: {len(critical)} Critical SEL entries: {listed}{more}")


def _classify(sensor: str) -> str | None:
    """The spec requirement a sensor is judged by, from its name (Redfish names are free text)."""
    low = sensor.lower()
    if "inlet" in low or "intake" in low or "ambient" in low:
        return "inlet_temperature"
    if "gpu" in low:
        return "gpu_temperature"
    return None


def test_temperatures_within_limits(bmc_name: str, rack: Rack, inventory: Inventory, spec: Spec, measure) -> None:
    expected = spec.expectation(inventory, bmc_name)
    bmc = rack.driver(bmc_name)
    temps = bmc.temperatures()
    own = bmc.sensor_thresholds() if isinstance(bmc, TemperatureThresholds) else {}
    found = dict.fromkeys(JUDGED, 0)
    hot = []
    for sensor, celsius in sorted(temps.items()):
        requirement = _classify(sensor)
        limit: Limit | str | None = requirement
        if requirement is not None:
            found[requirement] += 1
        elif (thresholds := own.get(sensor)) is not None and thresholds.caution is not None:
            limit = Limit(
                high=thresholds.caution, unit="degC", marginal=spec.data.defaults.marginal,
                description=f"{bmc_name}'s own upper caution threshold for {sensor}",
            )  # fmt: skip
        m = measure("temperature", celsius, "degC", limit=limit, device=bmc_name, channel=sensor, soft=True)
        if m.outcome == Outcome.FAIL:
            bound = m.high if m.high is not None else m.low
            hot.append(f"{sensor} {celsius:g} degC (limit {bound:g} degC, {requirement or 'BMC threshold'})")
    missing = [r for r, n in found.items() if n == 0 and expected.expects(r)]
    not_applicable = [r for r, n in found.items() if n == 0 and not expected.expects(r)]
    for requirement in not_applicable:
        measure("temperature sensors", 0, "count", device=bmc_name,
                channel=requirement, detail=f"not applicable, not expected of {expected.describe()}")  # fmt: skip
    problems = []
    if hot:
        problems.append("temperature out of limits: " + ", ".join(hot))
    if missing:
        problems.append(
            f"no sensor for {', '.join(missing)}, which {expected.describe()} expects, among {sorted(temps)}"
        )
    assert not problems, printable(f"{bmc_name}: " + "; ".join(problems))
    if not temps:
        pytest.skip(printable(f"{bmc_name}: no temperature sensor, and {expected.describe()} expects none"))
