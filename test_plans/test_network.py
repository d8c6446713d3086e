"""Plan: the network is cabled as the rack file says (LLDP) and every cabled port is up."""

from __future__ import annotations

from harness.inventory import Inventory
from harness.rack import Rack


def _expected_cabling(inventory: Inventory, switch: str) -> dict[str, tuple[str, str]]:
    """switch port -> (node, nic) from the rack file's nodes section."""
    return {
        link.port: (node, nic)
        for node, spec in inventory.data.nodes.items()
        for nic, link in spec.nics.items()
        if link.switch == switch
    }


def test_lldp_neighbors_match_cabling(switch_name: str, rack: Rack, inventory: Inventory, measure) -> None:
    expected = _expected_cabling(inventory, switch_name)
    seen = {n.local_port: (n.remote_system, n.remote_port) for n in rack.driver(switch_name).lldp_neighbors()}
    problems = []
    for port, (node, nic) in sorted(expected.items()):
        got = seen.get(port)
        if got is None:
            problems.append(f"{port}: expected {node} {nic}, LLDP sees nothing")
        elif got != (node, nic):
            problems.append(f"{port}: expected {node} {nic}, LLDP sees {got[0]} {got[1]}")
    measure("cabled ports checked", len(expected), "count", device=switch_name)
    measure("LLDP mismatches", len(problems), "count", limit="lldp_mismatches", device=switch_name, soft=True)
    assert not problems, f"{switch_name}: " + "; ".join(problems)


def test_cabled_ports_are_up(switch_name: str, rack: Rack, inventory: Inventory, measure) -> None:
    expected = _expected_cabling(inventory, switch_name)
    ports = {p.name: p for p in rack.driver(switch_name).ports()}
    down = [p for p in sorted(expected) if p not in ports or not ports[p].oper_up]
    measure("cabled ports down", len(down), "count", limit="cabled_ports_down", device=switch_name, soft=True)
    assert not down, f"{switch_name}: cabled ports not up: {', '.join(down)}"
