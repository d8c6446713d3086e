"""Plan: every device answers over its protocol, and says it is what the rack file says it is."""

from __future__ import annotations

import time

from rackval.core.printable import printable
from rackval.harness.inventory import Inventory
from rackval.harness.rack import Rack


def test_device_answers_with_expected_identity(device_name: str, rack: Rack, inventory: Inventory, measure) -> None:
    started = time.monotonic()
    identity = rack.identity(device_name)
    measure("identity response time", time.monotonic() - started, "s", limit="device_response_time", device=device_name)

    expected = inventory.spec_of(device_name).expect
    mismatches = [
        f"{field}: rack file says {want!r}, device says {getattr(identity, field)!r}"
        for field in ("vendor", "model", "serial", "firmware")
        if (want := getattr(expected, field)) and getattr(identity, field) != want
    ]
    measure("identity mismatches", len(mismatches), "count", limit="identity_mismatches", device=device_name, soft=True)
    assert not mismatches, printable(f"{device_name}: " + "; ".join(mismatches))  # device text, terminal-safe
