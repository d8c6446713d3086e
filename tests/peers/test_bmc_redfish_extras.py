"""RedfishBmc power capping, event log and firmware inventory against DMTF's public-rackmount1
mockup (third-party payloads). Expected values are read from the mockup JSON in the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.core.errors import DeviceError
from rackval.drivers.bmc.redfish import RedfishBmc
from rackval.drivers.capabilities import LogEntry
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from tests.support.redfish_patch_http import PatchableRedfishServer, RawBody, merge_patch

MOCKUP = Path(__file__).resolve().parents[1] / "data" / "redfish" / "mockups" / "public-rackmount1"
PASSWORD = "mockup-secret-pw"


def _load(oid: str) -> dict:
    rel = oid.removeprefix("/redfish/v1").strip("/")
    return json.loads((MOCKUP / rel / "index.json").read_text())


def _first(collection: str) -> str:
    return _load(collection)["Members"][0]["@odata.id"]


@pytest.fixture
def server() -> Iterator[PatchableRedfishServer]:
    assert MOCKUP.is_dir(), f"DMTF mockup missing at {MOCKUP}"
    srv = PatchableRedfishServer(MOCKUP)
    yield srv
    srv.stop()


def _bmc(server: PatchableRedfishServer, **options: object) -> RedfishBmc:
    return RedfishBmc(
        DeviceConfig(
            name="bmc-mockup",
            kind="bmc",
            driver="redfish",
            host=server.host,
            port=server.port,
            credentials=Credentials(username="admin", password=Secret(PASSWORD)),
            options={"scheme": "http", **options},
            timeout_s=5.0,
        )
    )


@pytest.fixture
def bmc(server: PatchableRedfishServer) -> Iterator[RedfishBmc]:
    driver = _bmc(server)
    yield driver
    driver.close()


def _chassis() -> str:
    return _first("/redfish/v1/Chassis")


# ---- power limit --------------------------------------------------------------------------------


def test_power_limit_from_legacy_power_control(bmc: RedfishBmc) -> None:
    limit = _load(f"{_chassis()}/Power")["PowerControl"][0]["PowerLimit"]
    assert bmc.power_limit() == (float(limit["LimitInWatts"]), float(limit["CorrectionInMs"]))


def test_power_limit_from_environment_metrics(server: PatchableRedfishServer) -> None:
    setpoint = _load(f"{_chassis()}/EnvironmentMetrics")["PowerLimitWatts"]["SetPoint"]
    bmc = _bmc(server, power_source="environment")
    try:
        assert bmc.power_limit() == (float(setpoint), None)
    finally:
        bmc.close()


def test_power_limit_falls_back_to_environment_when_legacy_missing(server: PatchableRedfishServer) -> None:
    server.hidden.add(f"{_chassis()}/Power")
    setpoint = _load(f"{_chassis()}/EnvironmentMetrics")["PowerLimitWatts"]["SetPoint"]
    bmc = _bmc(server)
    try:
        assert bmc.power_limit() == (float(setpoint), None)
    finally:
        bmc.close()


def test_no_power_limit_anywhere_is_a_clear_error(server: PatchableRedfishServer) -> None:
    server.hidden.update({f"{_chassis()}/Power", f"{_chassis()}/EnvironmentMetrics"})
    bmc = _bmc(server)
    try:
        with pytest.raises(DeviceError, match="reports no power limit"):
            bmc.power_limit()
    finally:
        bmc.close()


def test_set_power_limit_patches_legacy_and_reads_back(bmc: RedfishBmc, server: PatchableRedfishServer) -> None:
    path = f"{_chassis()}/Power"
    correction = _load(path)["PowerControl"][0]["PowerLimit"]["CorrectionInMs"]
    bmc.set_power_limit(420)
    assert [(p.path, p.body) for p in server.patches] == [
        (path, {"PowerControl": [{"PowerLimit": {"LimitInWatts": 420}}]})
    ]
    assert bmc.power_limit() == (420.0, float(correction))


def test_set_power_limit_none_removes_the_cap(bmc: RedfishBmc, server: PatchableRedfishServer) -> None:
    bmc.set_power_limit(None)
    assert server.patches[-1].body == {"PowerControl": [{"PowerLimit": {"LimitInWatts": None}}]}
    watts, _ = bmc.power_limit()
    assert watts is None


def test_set_power_limit_environment_checks_allowable_range(server: PatchableRedfishServer) -> None:
    path = f"{_chassis()}/EnvironmentMetrics"
    allowed = _load(path)["PowerLimitWatts"]
    bmc = _bmc(server, power_source="environment")
    try:
        with pytest.raises(DeviceError, match="allowable range"):
            bmc.set_power_limit(allowed["AllowableMax"] + 1)
        assert server.patches == []  # refused before any PATCH
        bmc.set_power_limit(allowed["AllowableMin"])
        assert server.patches[-1].path == path
        assert server.patches[-1].body == {"PowerLimitWatts": {"SetPoint": allowed["AllowableMin"]}}
        assert bmc.power_limit() == (float(allowed["AllowableMin"]), None)
        bmc.set_power_limit(None)
        assert server.patches[-1].body == {"PowerLimitWatts": {"ControlMode": "Disabled"}}
        assert bmc.power_limit() == (None, None)
    finally:
        bmc.close()


def test_refused_patch_is_a_device_error_naming_the_request(bmc: RedfishBmc, server: PatchableRedfishServer) -> None:
    server.patch_status = 400
    with pytest.raises(DeviceError) as info:
        bmc.set_power_limit(300)
    assert info.value.device == "bmc-mockup"
    assert "PATCH" in str(info.value) and "/Power" in str(info.value)


def test_set_power_limit_rejects_nonsense_before_any_request(bmc: RedfishBmc, server: PatchableRedfishServer) -> None:
    for bad in (0, -5, "500", True):
        with pytest.raises(DeviceError, match="positive number"):
            bmc.set_power_limit(bad)  # type: ignore[arg-type]
    assert server.patches == []


def test_merge_patch_helper_semantics() -> None:
    doc = {"PowerControl": [{"PowerLimit": {"LimitInWatts": 500, "CorrectionInMs": 50}, "Name": "x"}]}
    patched = merge_patch(doc, {"PowerControl": [{"PowerLimit": {"LimitInWatts": None}}]})
    assert patched == {"PowerControl": [{"PowerLimit": {"LimitInWatts": None, "CorrectionInMs": 50}, "Name": "x"}]}


# ---- event log ----------------------------------------------------------------------------------


def _expected_entries() -> list[LogEntry]:
    system = _first("/redfish/v1/Systems")
    service = _first(f"{system}/LogServices")
    entries = _load(_load(service)["Entries"]["@odata.id"])["Members"]
    return [
        LogEntry(
            id=e["Id"], created=e["Created"], severity=e["Severity"], message=e["Message"], message_id=e["MessageId"]
        )
        for e in entries
    ]


def test_sel_entries_from_first_log_service(bmc: RedfishBmc, server: PatchableRedfishServer) -> None:
    expected = _expected_entries()
    assert expected  # the mockup has entries
    # The mockup's @odata.nextLink (?$skiptoken=2) returns the same page from a static server:
    # the driver must stop instead of looping or duplicating.
    assert bmc.sel_entries() == expected


def test_sel_entries_fetch_members_given_as_links(bmc: RedfishBmc, server: PatchableRedfishServer) -> None:
    system = _first("/redfish/v1/Systems")
    entries_path = _load(_first(f"{system}/LogServices"))["Entries"]["@odata.id"]
    doc = _load(entries_path)
    links_only = {**doc, "Members": [{"@odata.id": m["@odata.id"]} for m in doc["Members"]]}
    links_only.pop("@odata.nextLink")
    server.raw[entries_path] = RawBody(json.dumps(links_only).encode())
    assert bmc.sel_entries() == _expected_entries()


# ---- firmware inventory -------------------------------------------------------------------------


def _expected_firmware() -> dict[str, str]:
    members = _load("/redfish/v1/UpdateService/FirmwareInventory")["Members"]
    docs = [_load(m["@odata.id"]) for m in members]
    return {d["Name"]: d["Version"] for d in docs}


def test_firmware_inventory_member_by_member(bmc: RedfishBmc, server: PatchableRedfishServer) -> None:
    # The plain static server ignores $expand: the driver sees links and GETs each member.
    inventory = bmc.firmware_inventory()
    assert inventory == _expected_firmware()
    assert len(inventory) >= 3


def test_firmware_inventory_with_expand(server: PatchableRedfishServer) -> None:
    server.expand = True
    bmc = _bmc(server)
    try:
        assert bmc.firmware_inventory() == _expected_firmware()
    finally:
        bmc.close()
    assert server.expanded == ["/redfish/v1/UpdateService/FirmwareInventory"]
    member_gets = [r for r in server.seen("GET") if r.path.startswith("/redfish/v1/UpdateService/FirmwareInventory/")]
    assert member_gets == []  # one expanded GET, no per-member GETs


def test_firmware_inventory_expand_disabled_by_option(server: PatchableRedfishServer) -> None:
    server.expand = True
    bmc = _bmc(server, expand=False)
    try:
        assert bmc.firmware_inventory() == _expected_firmware()
    finally:
        bmc.close()
    assert server.expanded == []
