"""Plan: every node PSU is plugged into the outlet the rack file says, and the node rides through.

The rack file's power map is what every later decision trusts: which outlet to cycle to reset a
node, which feed a node loses with a breaker, whose power an outlet reading is. A swapped plug
is invisible until the wrong node goes dark. So each PSU's outlet is switched off, one at a time,
through the safety gate (inside ``safety.scoped()``, so it is back on before the next one), and
the node's BMC must report that exactly that PSU lost input while the host stays up.

When the PSU that loses input is another one (or none), the plan finds where the PSU really is:
it reads every BMC while the outlet is off (whose PSU did lose input), then switches candidate
outlets off one at a time (first the outlet the rack file gives that other PSU: a swap is the
usual mistake; then the remaining switched-on outlets of every PDU, those the gate allows)
until the PSU loses input. The message names node, PSU, expected and actual outlet.

The rack is left as found: every switch is undone at the end of its scope (outlet found on goes
back on), and the plan waits until every PSU of the node has input again. A rack that does not
allow destructive actions (or protects the outlets) skips the plan with the gate's reasons.
A PSU going dark here is the plan's own doing, so nothing is marked down in the run's device
health; a host the run already knows is down (a feed drop tripped it) fails the node at once,
naming that cause, since its ride-through cannot be judged.

Limits: ``psu_input_loss_detect_time`` (how long the BMC may take to report the lost input; also
the wait for input to return), ``power_map_mismatches``, ``power_map_host_outages``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rackval.core.printable import printable
from rackval.harness.clock import Clock
from rackval.harness.inventory import Inventory
from rackval.harness.rack import Rack
from rackval.harness.safety import SafetyGate
from rackval.harness.spec import Spec

POLL_S = 0.5  # how often the BMC is asked while waiting for a PSU's input state to change
_HOST_UP = frozenset({"On"})


def _outlet_text(pdu: str, outlet: int) -> str:
    return f"{pdu} outlet {outlet}"


def _no_input(states: dict) -> set[str]:
    """PSUs a BMC reports without line input."""
    return {name for name, s in states.items() if s.input_ok is False}


def _wait_for(clock: Clock, timeout_s: float, read: Callable[[], dict], done: Callable[[dict], bool]) -> tuple:
    """Poll ``read()`` until ``done(value)`` or ``timeout_s`` (clock time) passed: (value, waited, ok)."""
    start = clock.now()
    while True:
        value = read()
        waited = clock.now() - start
        if done(value):
            return value, waited, True
        if waited >= timeout_s:
            return value, waited, False
        clock.sleep(POLL_S)


def _who_lost_input(rack: Rack, inventory: Inventory) -> list[str]:
    """'node PSU' for every PSU in the rack without input now (every BMC, read concurrently)."""
    bmcs = {spec.bmc: node for node, spec in inventory.data.nodes.items() if spec.bmc is not None}
    results = rack.fan_out(list(bmcs), lambda d: d.power_supplies())
    return sorted(f"{bmcs[b]} {psu}" for b, r in results.items() if r.ok for psu in _no_input(r.value))


def _find_actual_outlet(
    node: str, psu: str, first: list[tuple[str, int]], skip: tuple[str, int],
    rack: Rack, inventory: Inventory, safety: SafetyGate, clock: Clock, timeout_s: float,
) -> tuple[str, int] | None:  # fmt: skip
    """Switch candidate outlets off one at a time until ``psu`` of ``node`` loses input.

    Order: ``first`` (the outlets the rack file gives the PSUs that did lose input: a swap), then
    switched-on outlets the rack file gives to no PSU (a plug in the wrong socket), then the
    others. For an outlet the rack file gives to another node's PSU, the wait ends as soon as
    either PSU reports the loss, so ruling out a correctly wired outlet costs one detection
    time, not the whole ``timeout_s``.
    """
    bmc = rack.driver(inventory.data.nodes[node].bmc)
    nodes = inventory.data.nodes
    owner = {(link.pdu, link.outlet): (n, p) for n, spec in nodes.items() for p, link in spec.psus.items()}
    pdus = inventory.devices_of_kind("pdu")
    switched_on = [(pdu, o.outlet) for pdu in pdus for o in rack.driver(pdu).outlets() if o.on]
    unowned = [c for c in switched_on if c not in owner]
    candidates = list(dict.fromkeys([*first, *unowned, *switched_on]))
    for pdu, outlet in candidates:
        if (pdu, outlet) == skip or safety.refusal(pdu, outlet):
            continue
        other = owner.get((pdu, outlet))
        other_bmc = nodes[other[0]].bmc if other is not None and other[0] != node else None

        def read(other_bmc: str | None = other_bmc) -> tuple[set[str], set[str]]:
            theirs = _no_input(rack.driver(other_bmc).power_supplies()) if other_bmc else set()
            return _no_input(bmc.power_supplies()), theirs

        def seen(r: tuple[set[str], set[str]], other: tuple[str, str] | None = other) -> bool:
            ours, theirs = r
            if psu in ours or other is None:
                return psu in ours
            return other[1] in (ours if other[0] == node else theirs)

        with safety.scoped():
            safety.outlet(pdu, outlet, False)
            (ours, _), _, _ = _wait_for(clock, timeout_s, read, seen)
            if psu in ours:
                return pdu, outlet
    return None


def test_psu_outlets_match_rack_file(
    node_name: str, rack: Rack, inventory: Inventory, spec: Spec, safety: SafetyGate, clock: Clock, measure
) -> None:
    node = inventory.data.nodes[node_name]
    if node.bmc is None or not node.psus:
        pytest.skip(f"{node_name} has no BMC or no PSUs in {inventory.path}: nothing to map")
    refused = {psu: reasons for psu, link in node.psus.items() if (reasons := safety.refusal(link.pdu, link.outlet))}
    if len(refused) == len(node.psus):
        reasons = sorted({r for rs in refused.values() for r in rs})
        pytest.skip(f"{node_name}: power map not checked, outlet switching refused: {'; '.join(reasons)}")
    timeout_s = spec.limit("psu_input_loss_detect_time").high or 10.0
    bmc = rack.driver(node.bmc)

    before = bmc.power_supplies()
    host = bmc.power_state()
    missing = sorted(set(node.psus) - set(before))
    assert not missing, f"{node_name}: {node.bmc} reports no {', '.join(missing)} (it reports {sorted(before)})"
    dark = sorted(_no_input(before) & set(node.psus))
    assert not dark, f"{node_name}: {', '.join(dark)} without input before any outlet was switched"
    if host not in _HOST_UP and node.host:  # a host the run knows is down fails naming why (and since when)
        rack.health.check(node.host, f"check the ride-through (host is {host})")
    assert host in _HOST_UP, f"{node_name}: host is {host} before the test; the ride-through cannot be checked"

    problems: list[str] = []
    outages: list[str] = []
    for psu, link in sorted(node.psus.items()):
        if psu in refused:
            continue
        where = _outlet_text(link.pdu, link.outlet)
        with safety.scoped():
            safety.outlet(link.pdu, link.outlet, False)
            states, waited, _ = _wait_for(clock, timeout_s, bmc.power_supplies, lambda s: bool(_no_input(s)))
            lost = _no_input(states)
            if psu in lost:
                measure(
                    "PSU input loss reported after", waited, "s", limit="psu_input_loss_detect_time",
                    device=node.bmc, channel=psu, detail=where, soft=True,
                )  # fmt: skip
            host = bmc.power_state()
            others = [] if psu in lost else _who_lost_input(rack, inventory)
        if host not in _HOST_UP:
            outages.append(f"host went {host} with {where} ({psu}) off")
        if psu in lost and lost == {psu}:
            mismatch = ""
        elif psu in lost:
            mismatch = (
                f"{node_name} {psu}: switching {where} off also cut {', '.join(sorted(lost - {psu}))} of {node_name}"
            )
        else:
            cut = ", ".join(others) or "no PSU in the rack"
            first = [
                (inventory.data.nodes[n].psus[p].pdu, inventory.data.nodes[n].psus[p].outlet)
                for n, p in (o.split(" ", 1) for o in others)
                if p in inventory.data.nodes[n].psus
            ]
            actual = _find_actual_outlet(
                node_name, psu, first, (link.pdu, link.outlet), rack, inventory, safety, clock, timeout_s
            )
            actual_text = _outlet_text(*actual) if actual else "an outlet not found on any PDU the gate may switch"
            mismatch = (
                f"{node_name} {psu}: rack file says {where}, actual outlet is {actual_text} "
                f"(switching {where} off cut {cut})"
            )
        measure(
            "power map mismatch", 1 if mismatch else 0, "count", limit="power_map_mismatches",
            device=node_name, channel=psu, detail=where, soft=True,
        )  # fmt: skip
        if mismatch:
            problems.append(mismatch)
    measure(
        "host outages during PSU outlet switching", len(outages), "count",
        limit="power_map_host_outages", device=node.bmc, soft=True,
    )  # fmt: skip

    # back as found: every outlet was switched back on at the end of its scope; the PSUs must see it
    after, waited, ok = _wait_for(clock, timeout_s, bmc.power_supplies, lambda s: not (_no_input(s) & set(node.psus)))
    if not ok:
        problems.append(f"{node_name}: {', '.join(sorted(_no_input(after)))} still without input {waited:.0f} s after")
    problems += [f"{node_name}: {o}" for o in outages]
    assert not problems, printable("; ".join(problems))
    if refused:
        pytest.skip(
            f"{node_name}: checked {', '.join(p for p in sorted(node.psus) if p not in refused)}; not checked "
            + "; ".join(f"{p}: {', '.join(r)}" for p, r in sorted(refused.items()))
        )
