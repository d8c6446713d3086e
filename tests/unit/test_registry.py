"""Every built-in driver is importable, has the kind the registry claims, and fits its Protocols."""

from __future__ import annotations

import pytest

from rackval.core.errors import ConfigError
from rackval.drivers import protocols, registry

KIND_PROTOCOLS = {
    "pdu": (protocols.Device, protocols.PowerMeter, protocols.OutletSwitch),
    "switch": (protocols.Device, protocols.NetSwitch),
    "bmc": (protocols.Device, protocols.Bmc),  # power readings are optional (OpenBMC over SSH has none)
    "analyzer": (protocols.Device, protocols.PowerMeter),
    "node": (protocols.Device, protocols.GpuNode),
}


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_builtin_driver_loads_and_implements_its_kind(name: str) -> None:
    entry = registry.BUILTIN[name]
    assert entry.kind in registry.KINDS
    cls = registry.load(name)
    for proto in KIND_PROTOCOLS[entry.kind]:
        methods = [m for m, v in vars(proto).items() if callable(v) and not m.startswith("_")]
        assert methods, proto
        missing = [m for m in methods if not callable(getattr(cls, m, None))]
        assert not missing, f"{name} ({cls.__name__}) lacks {proto.__name__}: {missing}"


def test_unknown_driver_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown driver 'nope' \(available: .*apc-rpdu2"):
        registry.load("nope")
