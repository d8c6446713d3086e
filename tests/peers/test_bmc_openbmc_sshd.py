"""OpenBmcSsh: parsers on OpenBMC-format output, then the driver against a real OpenSSH sshd
(third-party peer) whose ForceCommand answers like an OpenBMC shell (tests/support/openbmc_sshd.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.core.errors import DeviceAuthError, DeviceError
from rackval.drivers.bmc.openbmc import (
    OpenBmcSsh,
    parse_busctl_strings,
    parse_obmcutil_state,
    parse_os_release,
    power_from_state,
)
from rackval.drivers.capabilities import Bmc, Device, Identity
from tests.support.openbmc_sshd import DATA_DIR, OpenBmcSshd, openbmc_sshd


def test_parse_obmcutil_state_running() -> None:
    state = parse_obmcutil_state((DATA_DIR / "obmcutil_state_running.txt").read_text())
    assert state["CurrentBMCState"] == "Ready"
    assert state["CurrentPowerState"] == "On"
    assert state["CurrentHostState"] == "Running"
    assert state["OperatingSystemState"] == "Standby"
    assert power_from_state(state) == "On"


def test_parse_obmcutil_state_off_and_transitions() -> None:
    state = parse_obmcutil_state((DATA_DIR / "obmcutil_state_off.txt").read_text())
    assert power_from_state(state) == "Off"
    assert power_from_state({"CurrentHostState": "TransitioningToRunning"}) == "PoweringOn"
    assert power_from_state({"CurrentHostState": "Quiesced"}) == "On"
    assert power_from_state({"CurrentPowerState": "TransitioningToOff"}) == "PoweringOff"
    with pytest.raises(ValueError):
        power_from_state({"CurrentBMCState": "Ready"})


def test_parse_os_release_and_busctl() -> None:
    release = parse_os_release((DATA_DIR / "os-release").read_text())
    assert release["OPENBMC_TARGET_MACHINE"] == "romulus"
    assert release["VERSION_ID"] == "2.14.0-dev-1467-g0bd0f2a8c"
    assert release["NAME"].startswith("Phosphor OpenBMC")
    assert parse_busctl_strings('s "IBM"\ns "8335-GTC"\ns ""\n') == ["IBM", "8335-GTC", ""]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBmcSshd]:
    with openbmc_sshd(tmp_path_factory.mktemp("obmc_sshd")) as server:
        yield server


@pytest.fixture
def bmc(sshd: OpenBmcSshd) -> Iterator[OpenBmcSsh]:
    sshd.set_power(True)
    driver = OpenBmcSsh(sshd.config())
    yield driver
    driver.close()


def _asset() -> list[str]:
    return parse_busctl_strings((DATA_DIR / "busctl_asset.txt").read_text())


def test_capabilities(bmc: OpenBmcSsh) -> None:
    assert isinstance(bmc, Device) and isinstance(bmc, Bmc)


def test_identity_from_inventory_and_os_release(bmc: OpenBmcSsh, sshd: OpenBmcSshd) -> None:
    vendor, model, serial = _asset()
    release = parse_os_release((DATA_DIR / "os-release").read_text())
    assert bmc.identify() == Identity(vendor=vendor, model=model, serial=serial, firmware=release["VERSION_ID"])
    assert (
        "busctl get-property xyz.openbmc_project.Inventory.Manager /xyz/openbmc_project/inventory/system "
        "xyz.openbmc_project.Inventory.Decorator.Asset Manufacturer Model SerialNumber"
    ) in sshd.commands()


def test_identity_falls_back_to_os_release_without_inventory(sshd: OpenBmcSshd) -> None:
    release = parse_os_release((DATA_DIR / "os-release").read_text())
    driver = OpenBmcSsh(sshd.config(inventory_object="/xyz/openbmc_project/inventory/nothing"))
    try:
        assert driver.identify() == Identity(
            vendor=release["NAME"], model="romulus", serial="", firmware=release["VERSION_ID"]
        )
    finally:
        driver.close()


def test_power_off_and_on(bmc: OpenBmcSsh, sshd: OpenBmcSshd) -> None:
    assert bmc.power_state() == "On"
    assert bmc.bmc_ready()
    bmc.power_off()
    assert not sshd.power_on
    assert bmc.power_state() == "Off"
    bmc.reset("On")
    assert sshd.power_on
    assert bmc.power_state() == "On"
    assert sshd.commands()[-4:] == ["obmcutil poweroff", "obmcutil state", "obmcutil poweron", "obmcutil state"]


def test_force_off_uses_chassisoff(bmc: OpenBmcSsh, sshd: OpenBmcSshd) -> None:
    bmc.reset("ForceOff")
    assert sshd.commands()[-1] == "obmcutil chassisoff"
    assert bmc.power_state() == "Off"


def test_unknown_or_unsupported_reset_type_sends_nothing(bmc: OpenBmcSsh, sshd: OpenBmcSshd) -> None:
    before = len(sshd.commands())
    with pytest.raises(DeviceError, match="ResetType 'Nmi' cannot be done with obmcutil"):
        bmc.reset("Nmi")
    with pytest.raises(DeviceError, match="unknown ResetType 'on'"):
        bmc.reset("on")
    assert len(sshd.commands()) == before


def test_temperatures_say_to_use_redfish(bmc: OpenBmcSsh) -> None:
    with pytest.raises(DeviceError, match="redfish"):
        bmc.temperatures()


def test_changed_host_key_is_refused(sshd: OpenBmcSshd, tmp_path: Path) -> None:
    other = tmp_path / "known_hosts"
    other.write_text(
        f"[127.0.0.1]:{sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    driver = OpenBmcSsh(sshd.config(known_hosts=str(other)))
    try:
        with pytest.raises(DeviceAuthError):
            driver.power_state()
    finally:
        driver.close()
