"""Plan: idle rack power is under budget, and the analyzer, the PDUs and the BMCs agree on it.

Three independent instruments read the same power: a disagreement beyond their stated accuracy
means a miswired meter, a wrong scaling in a driver, or a PSU fed from an unexpected outlet.
"""

from __future__ import annotations

import pytest

from rackval.harness.inventory import Inventory
from rackval.harness.rack import Rack, values_or_raise


def _deviation_pct(value: float, reference: float) -> float:
    return 100.0 * (value - reference) / reference


def _analyzer_power(rack: Rack, inventory: Inventory) -> tuple[str, float]:
    """Rack power from the analyzers that together measure every feed once, and their names."""
    chosen = inventory.feed_analyzers()
    readings = values_or_raise(rack.fan_out(chosen, lambda d: d.power_watts()), "read analyzer power")
    return "+".join(chosen), sum(readings.values())


def _sum_readings(rack: Rack, names: list[str]) -> float:
    return sum(values_or_raise(rack.fan_out(names, lambda d: d.power_watts()), "read power").values())


def test_idle_rack_power_within_budget(rack: Rack, inventory: Inventory, measure) -> None:
    analyzer, watts = _analyzer_power(rack, inventory)
    measure("idle rack power", watts, "W", limit="idle_rack_power", device=analyzer)


def test_pdus_agree_with_analyzer(rack: Rack, inventory: Inventory, measure) -> None:
    analyzer, reference = _analyzer_power(rack, inventory)
    pdu_total = _sum_readings(rack, rack.names("pdu"))
    measure("PDU total", pdu_total, "W", device="all PDUs")
    measure(
        "PDU total vs analyzer", _deviation_pct(pdu_total, reference), "%", limit="pdu_vs_analyzer", device=analyzer
    )


def test_bmcs_agree_with_analyzer(rack: Rack, inventory: Inventory, measure) -> None:
    analyzer, reference = _analyzer_power(rack, inventory)
    bmc_total = _sum_readings(rack, rack.names("bmc"))
    measure("BMC total", bmc_total, "W", device="all BMCs")
    measure(
        "BMC total vs analyzer", _deviation_pct(bmc_total, reference), "%", limit="bmc_vs_analyzer", device=analyzer
    )


def test_node_idle_power_and_outlets_agree(node_name: str, rack: Rack, inventory: Inventory, measure) -> None:
    node = inventory.data.nodes[node_name]
    if node.bmc is None:
        pytest.skip(f"{node_name} has no BMC in {inventory.path}")
    bmc_watts = rack.driver(node.bmc).power_watts()
    measure("node idle power", bmc_watts, "W", limit="idle_node_power", device=node.bmc)

    outlet_watts = 0.0
    for psu, link in node.psus.items():
        readings = {o.outlet: o for o in rack.driver(link.pdu).outlets()}
        if link.outlet not in readings:
            pytest.fail(f"{node_name} {psu}: {link.pdu} has no outlet {link.outlet}")
        reading = readings[link.outlet]
        measure(
            "PSU outlet power", reading.power_w or 0.0, "W", device=link.pdu, channel=f"outlet {link.outlet} ({psu})"
        )
        outlet_watts += reading.power_w or 0.0
    measure(
        "BMC vs PSU outlets", _deviation_pct(bmc_watts, outlet_watts), "%", limit="bmc_vs_outlets",
        device=node.bmc, channel=node_name,
    )  # fmt: skip
