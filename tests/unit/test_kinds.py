"""Device kinds are declared once (rackval.drivers.kinds) and everything that names kinds reads them."""

from __future__ import annotations

from rackval.drivers import registry
from rackval.drivers.kinds import ANY_DEVICE_PARAM, DEVICE_KINDS, DEVICES, KIND_NAMES, RACK_NODES


def test_registry_kinds_are_the_table() -> None:
    assert registry.KINDS == KIND_NAMES == ("pdu", "switch", "bmc", "analyzer", "node", "cdu", "power_shelf")
    assert {e.kind for e in registry.BUILTIN.values()} == set(KIND_NAMES)


def test_each_kind_has_its_own_test_argument() -> None:
    params = [k.param for k in DEVICE_KINDS.values()]
    assert params == ["pdu_name", "switch_name", "bmc_name", "analyzer_name", "node_name", "cdu_name", "shelf_name"]
    assert ANY_DEVICE_PARAM == "device_name" and ANY_DEVICE_PARAM not in params
    # node_name ranges over the rack file's compute nodes (nodes:), every other argument over devices
    assert {k.name: k.params_over for k in DEVICE_KINDS.values()} == {
        "pdu": DEVICES, "switch": DEVICES, "bmc": DEVICES, "analyzer": DEVICES, "node": RACK_NODES,
        "cdu": DEVICES, "power_shelf": DEVICES,
    }  # fmt: skip
