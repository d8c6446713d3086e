"""Plan: every device answers and runs the design's firmware baseline; all nodes run the same firmware.

A rack built from "the same" nodes is only the same if every node runs the same BIOS, BMC and
component firmware: a node left on an old BIOS throttles, boots or fails differently, and a
firmware nobody qualified invalidates every other result of the run.

The baseline is the spec's ``firmware_baseline`` mapping. Key scheme (decided here, documented
in specs/sim-reference.yaml too):

- ``<driver>`` or ``<kind>`` -> the version the device reports as its own firmware (its
  identity: a PDU's AOS, a switch's OS, a BMC's firmware, a node host's BIOS). A driver key
  (``apc-rpdu2``) wins over a kind key (``pdu``), so racks mixing PDU makes can pin each make.
- ``<driver>/<component>`` or ``<kind>/<component>`` -> one component of the firmware inventory
  a BMC reports (Redfish UpdateService/FirmwareInventory, keyed by component name: ``bmc/BIOS``,
  ``bmc/CPLD``). The component part may be a shell pattern (``bmc/GPU*``, ``bmc/PSU*``).

A device or component without a baseline key is recorded (identity in the store, the component
count as a measurement) but not judged: the spec decides what is controlled. Identity fields
against the rack file's ``expect`` are checked by test_identity.py.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rackval.core.errors import ConfigError, DeviceError
from rackval.core.printable import printable
from rackval.drivers.capabilities import FirmwareInventory
from rackval.harness.inventory import Inventory
from rackval.harness.rack import Rack
from rackval.harness.spec import Spec

BMC_FIRMWARE = "BMC firmware"  # the BMC's own firmware as its identity reports it
HOST_FIRMWARE = "host firmware (BIOS)"  # the node host's own firmware as its identity reports it


def _baseline_for(spec: Spec, keys: tuple[str, ...], component: str | None = None) -> tuple[str, str] | None:
    """(baseline key, version) for a device's own firmware (``component`` None) or one component,
    trying the given key prefixes in order (driver first, then kind); None when not in the baseline."""
    baseline = spec.data.firmware_baseline
    for prefix in keys:
        if component is None:
            if prefix in baseline:
                return prefix, baseline[prefix]
            continue
        exact = f"{prefix}/{component}"
        if exact in baseline:
            return exact, baseline[exact]
        for key, version in baseline.items():
            head, _, pattern = key.partition("/")
            if head == prefix and pattern and fnmatch.fnmatchcase(component, pattern):
                return key, version
    return None


def _inventory_of(rack: Rack, device: str) -> dict[str, str]:
    """The component firmware inventory a device reports, or {} for drivers that have none."""
    driver = rack.driver(device)
    return dict(driver.firmware_inventory()) if isinstance(driver, FirmwareInventory) else {}


def test_device_firmware_matches_baseline(
    device_name: str, rack: Rack, inventory: Inventory, spec: Spec, measure
) -> None:
    identity = rack.identity(device_name)  # asked once per run; recorded in the store with model and serial
    assert identity.model and identity.serial, printable(
        f"{device_name}: reports no model/serial (model={identity.model!r}, serial={identity.serial!r})"
    )

    dev = inventory.spec_of(device_name)
    keys = (dev.driver, dev.kind)
    problems = []
    judged = 0
    own = _baseline_for(spec, keys)
    if own is not None:
        judged += 1
        key, want = own
        if identity.firmware != want:
            problems.append(f"firmware {identity.firmware!r}, baseline {key!r} says {want!r}")
    components = _inventory_of(rack, device_name) if dev.kind == "bmc" else {}
    measure("firmware components reported", len(components), "count", device=device_name)
    for component, version in sorted(components.items()):
        found = _baseline_for(spec, keys, component)
        if found is None:
            continue
        judged += 1
        key, want = found
        if version != want:
            problems.append(f"{component} firmware {version!r}, baseline {key!r} says {want!r}")
    measure("firmware versions judged against baseline", judged, "count", device=device_name)
    measure(
        "firmware baseline mismatches", len(problems), "count",
        limit="firmware_baseline_mismatches", device=device_name, soft=True,
    )  # fmt: skip
    assert not problems, printable(
        f"{device_name} ({identity.vendor} {identity.model} {identity.serial}): " + "; ".join(problems)
    )


@pytest.fixture(scope="module")
def node_firmware(rack: Rack, inventory: Inventory) -> dict[str, dict[str, str] | Exception]:
    """Per node: every firmware version it runs ({component: version}), read once for all nodes
    (the consistency check of one node needs every other node's versions), or the error."""

    def read(node: str) -> dict[str, str]:
        spec = inventory.data.nodes[node]
        versions: dict[str, str] = {}
        if spec.bmc is not None:
            versions[BMC_FIRMWARE] = rack.identity(spec.bmc).firmware
            versions |= {f"{c} (BMC inventory)": v for c, v in _inventory_of(rack, spec.bmc).items()}
        if spec.host is not None:
            versions[HOST_FIRMWARE] = rack.identity(spec.host).firmware
        return versions

    nodes = list(inventory.data.nodes)

    def one(node: str) -> tuple[str, dict[str, str] | Exception]:
        try:
            return node, read(node)
        except (DeviceError, ConfigError) as exc:  # a node that cannot be read fails its own test only
            return node, exc

    # one node per worker: each node's devices are used by one thread at a time
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(nodes))), thread_name_prefix="firmware") as pool:
        return dict(pool.map(one, nodes))


def test_node_firmware_consistent_across_nodes(
    node_name: str, node_firmware: dict[str, Any], inventory: Inventory, measure
) -> None:
    mine = node_firmware[node_name]
    if isinstance(mine, Exception):
        raise mine
    if not mine:
        pytest.skip(f"{node_name} has neither a BMC nor a host in {inventory.path}: no firmware to compare")
    others = {n: v for n, v in node_firmware.items() if n != node_name and isinstance(v, dict)}
    problems = []
    for component, version in sorted(mine.items()):
        seen = Counter(v[component] for v in others.values() if component in v)
        if not seen:
            continue
        (common, count), *rest = seen.most_common()
        if rest and rest[0][1] == count:  # no majority among the others: say so rather than guess
            if version not in seen:
                problems.append(f"{component} {version!r}; the other nodes are split: {dict(seen)}")
            continue
        if version != common:
            problems.append(f"{component} {version!r} differs from the other nodes ({common!r} on {count})")
    measure(
        "firmware versions differing from the other nodes", len(problems), "count",
        limit="firmware_inconsistent_components", device=node_name, soft=True,
    )  # fmt: skip
    assert not problems, printable(f"{node_name}: " + "; ".join(problems))
