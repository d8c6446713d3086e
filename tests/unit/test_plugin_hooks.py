"""The plugin's hooks stop a session with one line when the rack cannot be used."""

from __future__ import annotations

import pytest

from rackval.core.errors import ConfigError
from rackval.drivers.kinds import ANY_DEVICE_PARAM
from rackval.harness.plugin.hooks import RunHooks


class _UnreachableRun:
    """A run whose rack is found unusable at collection (a simulator that would not start)."""

    @property
    def inventory(self) -> object:
        raise ConfigError("simulated rack exited with status 1 before it was up:\nrackval: port in use")


class _Metafunc:
    fixturenames = [ANY_DEVICE_PARAM]


def test_a_rack_that_fails_at_collection_exits_with_a_usage_error_not_a_collection_error_per_module() -> None:
    hooks = RunHooks(_UnreachableRun())  # type: ignore[arg-type]
    with pytest.raises(pytest.exit.Exception) as caught:
        hooks.pytest_generate_tests(_Metafunc())  # type: ignore[arg-type]
    assert caught.value.returncode == pytest.ExitCode.USAGE_ERROR
    assert caught.value.msg.startswith("rackval: simulated rack exited with status 1 before it was up")
