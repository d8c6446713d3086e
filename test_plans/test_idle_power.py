"""Plan: idle rack power is under budget, and the analyzer, the PDUs and the BMCs agree on it.

Three independent instruments read the same power: a disagreement beyond their stated accuracy
means a miswired meter, a wrong scaling in a driver, or a PSU fed from an unexpected outlet.

A meter a device does not have (a PDU without a total or without outlet meters, a BMC without
DCMI) is "not available", never 0 W: a comparison the spec asks for then fails naming the
device and what it lacks, instead of passing on a partial sum.
"""

from __future__ import annotations

import pytest

from rackval.core.errors import NotAvailable
from rackval.harness.inventory import Inventory
from rackval.harness.rack import Rack, values_or_raise


def _deviation_pct(value: float, reference: float) -> float:
    return 100.0 * (value - reference) / reference


def _analyzer_power(rack: Rack, inventory: Inventory) -> tuple[str, float]:
    """Rack power from the analyzers that together measure every feed once, and their names."""
    chosen = inventory.feed_analyzers()
    readings = values_or_raise(rack.fan_out(chosen, lambda d: d.power_watts()), "read analyzer power")
    return "+".join(chosen), sum(readings.values())


def _sum_readings(rack: Rack, names: list[str], what: str) -> float:
    """Sum of every device's power; fails naming each device whose power meter is not available."""
    results = rack.fan_out(names, lambda d: d.power_watts())
    absent = {n: r.error for n, r in results.items() if isinstance(r.error, NotAvailable)}
    if absent:
        pytest.fail(f"{what} not available: " + "; ".join(str(e) for e in absent.values()))
    return sum(values_or_raise(results, "read power").values())


def test_idle_rack_power_within_budget(rack: Rack, inventory: Inventory, measure) -> None:
    analyzer, watts = _analyzer_power(rack, inventory)
    measure("idle rack power", watts, "W", limit="idle_rack_power", device=analyzer)


def test_pdus_agree_with_analyzer(rack: Rack, inventory: Inventory, measure) -> None:
    if not rack.names("pdu"):
        pytest.skip(f"{inventory.path} has no PDUs (a busbar-fed rack: power shelves feed the nodes)")
    analyzer, reference = _analyzer_power(rack, inventory)
    pdu_total = _sum_readings(rack, rack.names("pdu"), "PDU total power")
    measure("PDU total", pdu_total, "W", device="all PDUs")
    measure(
        "PDU total vs analyzer", _deviation_pct(pdu_total, reference), "%", limit="pdu_vs_analyzer", device=analyzer
    )


def test_bmcs_agree_with_analyzer(rack: Rack, inventory: Inventory, measure) -> None:
    if rack.names("power_shelf"):
        pytest.skip(
            f"{inventory.path} is busbar-fed: the analyzers measure the power shelves' AC input, which also feeds"
            " what no node BMC reports (switch trays, rectifier losses, BBU charging); the BMC sum is not comparable"
        )
    analyzer, reference = _analyzer_power(rack, inventory)
    bmc_total = _sum_readings(rack, rack.names("bmc"), "BMC power")
    measure("BMC total", bmc_total, "W", device="all BMCs")
    measure(
        "BMC total vs analyzer", _deviation_pct(bmc_total, reference), "%", limit="bmc_vs_analyzer", device=analyzer
    )


def test_node_idle_power_and_outlets_agree(node_name: str, rack: Rack, inventory: Inventory, measure) -> None:
    node = inventory.data.nodes[node_name]
    if node.bmc is None:
        pytest.skip(f"{node_name} has no BMC in {inventory.path}")
    bmc_watts = _sum_readings(rack, [node.bmc], "node power")
    measure("node idle power", bmc_watts, "W", limit="idle_node_power", device=node.bmc)
    if not node.psus:  # a busbar-fed node: no PDU outlet to compare its BMC with
        return

    outlet_watts = 0.0
    unmetered = []
    for psu, link in node.psus.items():
        readings = {o.outlet: o for o in rack.driver(link.pdu).outlets()}
        if link.outlet not in readings:
            pytest.fail(f"{node_name} {psu}: {link.pdu} has no outlet {link.outlet}")
        watts = readings[link.outlet].power_w
        if watts is None:  # no outlet meter: not 0 W
            unmetered.append(f"{link.pdu} outlet {link.outlet} ({psu})")
            continue
        measure("PSU outlet power", watts, "W", device=link.pdu, channel=f"outlet {link.outlet} ({psu})")
        outlet_watts += watts
    if unmetered:
        pytest.fail(
            f"{node_name}: outlet power not available on this device for {', '.join(unmetered)} (no outlet meter): "
            f"{node.bmc} cannot be compared with its PSU outlets"
        )
    measure(
        "BMC vs PSU outlets", _deviation_pct(bmc_watts, outlet_watts), "%", limit="bmc_vs_outlets",
        device=node.bmc, channel=node_name,
    )  # fmt: skip
