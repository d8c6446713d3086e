"""Every built-in driver is importable, has the kind the registry claims, and fits its Protocols."""

from __future__ import annotations

import pytest

from rackval.core.errors import ConfigError
from rackval.drivers import registry
from rackval.drivers.kinds import DEVICE_KINDS


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_builtin_driver_loads_and_implements_its_kind(name: str) -> None:
    entry = registry.BUILTIN[name]
    assert entry.kind in registry.KINDS
    cls = registry.load(name)
    for proto in DEVICE_KINDS[entry.kind].protocols:
        assert proto in cls.__mro__, f"{name} ({cls.__name__}) does not claim {proto.__name__} (subclass it)"
        methods = [m for m, v in vars(proto).items() if callable(v) and not m.startswith("_")]
        assert methods, proto
        # the Protocol's own empty body, inherited by claiming it, is not an implementation
        missing = [m for m in methods if not callable(getattr(cls, m, None)) or getattr(cls, m) is vars(proto)[m]]
        assert not missing, f"{name} ({cls.__name__}) lacks {proto.__name__}: {missing}"


def test_unknown_driver_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown driver 'nope' \(available: .*apc-rpdu2"):
        registry.load("nope")
