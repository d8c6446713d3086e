"""RedfishBmc against DMTF's public-rackmount1 mockup: third-party payloads, not our own simulator.

Expected values are read from the mockup JSON here, so the test checks the driver's reading of
DMTF-written resources rather than numbers remembered by whoever wrote the driver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError
from rackval.drivers.bmc.redfish import RedfishBmc
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from tests.support.static_http import RawBody, StaticRedfishServer

MOCKUP = Path(__file__).resolve().parents[1] / "data" / "redfish" / "mockups" / "public-rackmount1"
PASSWORD = "mockup-secret-pw"


def _load(rel: str) -> dict:
    return json.loads((MOCKUP / rel / "index.json").read_text())


def _first_member(rel: str) -> str:
    """Mockup directory (relative) of the first member of a collection."""
    oid = _load(rel)["Members"][0]["@odata.id"]
    return oid.removeprefix("/redfish/v1/")


SYSTEM = _first_member("Systems") if MOCKUP.is_dir() else ""
CHASSIS = _first_member("Chassis") if MOCKUP.is_dir() else ""
MANAGER = _first_member("Managers") if MOCKUP.is_dir() else ""


@pytest.fixture
def server() -> Iterator[StaticRedfishServer]:
    assert MOCKUP.is_dir(), f"DMTF mockup missing at {MOCKUP}"
    srv = StaticRedfishServer(MOCKUP)
    yield srv
    srv.stop()


def _bmc(server: StaticRedfishServer, **options: object) -> RedfishBmc:
    config = DeviceConfig(
        name="bmc-mockup",
        kind="bmc",
        driver="redfish",
        host=server.host,
        port=server.port,
        credentials=Credentials(username="admin", password=Secret(PASSWORD)),
        options={"scheme": "http", **options},
        timeout_s=5.0,
    )
    return RedfishBmc(config)


@pytest.fixture
def bmc(server: StaticRedfishServer) -> Iterator[RedfishBmc]:
    drv = _bmc(server)
    yield drv
    drv.close()


def test_identify_reads_mockup_system_and_manager(bmc: RedfishBmc, server: StaticRedfishServer) -> None:
    system, manager = _load(SYSTEM), _load(MANAGER)
    ident = bmc.identify()
    assert ident.vendor == system["Manufacturer"]
    assert ident.model == system["Model"]
    assert ident.serial == system["SerialNumber"]
    assert ident.firmware == manager["FirmwareVersion"]
    # One session, carried on every later request, deleted on close.
    logins = server.seen("POST")
    assert [r.path for r in logins] == ["/redfish/v1/SessionService/Sessions"]
    gets = server.seen("GET")
    assert gets and all(r.token == "static-token-1" for r in gets)
    bmc.close()
    deletes = server.seen("DELETE")
    assert [r.path for r in deletes] == ["/redfish/v1/SessionService/Sessions/static-1"]
    assert server.tokens == {}


def test_power_state(bmc: RedfishBmc) -> None:
    assert bmc.power_state() == _load(SYSTEM)["PowerState"]


def test_power_watts_auto_prefers_environment_metrics(bmc: RedfishBmc) -> None:
    expected = _load(f"{CHASSIS}/EnvironmentMetrics")["PowerWatts"]["Reading"]
    assert bmc.power_watts() == pytest.approx(expected)


def test_power_watts_legacy(server: StaticRedfishServer) -> None:
    bmc = _bmc(server, power_source="legacy")
    try:
        expected = _load(f"{CHASSIS}/Power")["PowerControl"][0]["PowerConsumedWatts"]
        assert bmc.power_watts() == pytest.approx(expected)
    finally:
        bmc.close()


def test_power_watts_auto_falls_back_to_legacy(server: StaticRedfishServer, bmc: RedfishBmc) -> None:
    server.hidden.add(f"/redfish/v1/{CHASSIS}/EnvironmentMetrics")
    expected = _load(f"{CHASSIS}/Power")["PowerControl"][0]["PowerConsumedWatts"]
    assert bmc.power_watts() == pytest.approx(expected)


def test_temperatures_from_legacy_thermal(bmc: RedfishBmc) -> None:
    thermal = _load(f"{CHASSIS}/Thermal")
    expected = {t["Name"]: float(t["ReadingCelsius"]) for t in thermal["Temperatures"] if "ReadingCelsius" in t}
    assert expected, "mockup has no legacy temperature readings"
    assert bmc.temperatures() == expected


def test_temperatures_from_sensors_when_thermal_absent(server: StaticRedfishServer, bmc: RedfishBmc) -> None:
    server.hidden.add(f"/redfish/v1/{CHASSIS}/Thermal")
    expected = {}
    for member in _load(f"{CHASSIS}/Sensors")["Members"]:
        sensor = _load(member["@odata.id"].removeprefix("/redfish/v1/"))
        if (sensor.get("ReadingType") == "Temperature" or sensor.get("ReadingUnits") == "Cel") and isinstance(
            sensor.get("Reading"), int | float
        ):
            expected[sensor["Name"]] = float(sensor["Reading"])
    assert len(expected) >= 3
    assert bmc.temperatures() == expected


def test_reset_type_not_in_allowable_values_is_refused_before_post(
    bmc: RedfishBmc, server: StaticRedfishServer
) -> None:
    allowed = _load(SYSTEM)["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"]
    refused = next(t for t in ("PowerCycle", "FullPowerCycle", "Suspend") if t not in allowed)
    with pytest.raises(DeviceError, match="not allowed") as info:
        bmc.reset(refused)
    assert info.value.device == "bmc-mockup"
    assert [r.path for r in server.seen("POST")] == ["/redfish/v1/SessionService/Sessions"]
    bmc.reset(allowed[0])
    target = _load(SYSTEM)["Actions"]["#ComputerSystem.Reset"]["target"]
    assert server.seen("POST")[-1].path == target


def test_basic_auth_fallback_without_session_service(tmp_path: Path) -> None:
    srv = StaticRedfishServer(MOCKUP, sessions=False)
    try:
        bmc = _bmc(srv)
        try:
            assert bmc.power_state() == _load(SYSTEM)["PowerState"]
            gets = srv.seen("GET")
            assert gets and all(r.basic and r.token is None for r in gets)
        finally:
            bmc.close()
        assert srv.seen("DELETE") == []
    finally:
        srv.stop()


BIG = b'{"Name": "' + b"x" * 1_500_000 + b'"}'


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (RawBody(b'{"Manufacturer": "Contoso", "Mod', declared_length=4096), "truncated"),
        (RawBody(b'{"Manufacturer": "Contoso", "Mod'), "not JSON"),
        (RawBody(b"<html><body>Login required</body></html>", content_type="text/html"), "not JSON"),
        (RawBody(b'{"Manufacturer": "Contoso \xff\xfe"}'), "not UTF-8"),
        (RawBody(b'["not", "an", "object"]'), "JSON object"),
        (RawBody(BIG), "reply larger than 1000000 bytes"),
        (RawBody(BIG, declared_length=None), "reply larger than 1000000 bytes"),
    ],
    ids=["truncated-body", "truncated-json", "html", "non-utf8", "array", "huge", "huge-no-length"],
)
def test_malformed_bodies_raise_protocol_error(server: StaticRedfishServer, raw: RawBody, detail: str) -> None:
    system_path = f"/redfish/v1/{SYSTEM}"
    server.raw[system_path] = raw
    bmc = _bmc(server, max_body_bytes=1_000_000)
    try:
        with pytest.raises(DeviceProtocolError, match=detail) as info:
            bmc.identify()
        err = info.value
        assert err.device == "bmc-mockup"
        assert err.address == f"{server.host}:{server.port}"
        assert err.operation == f"GET {system_path}"
        assert "bmc-mockup" in str(err) and system_path in str(err)
        assert PASSWORD not in str(err) and "static-token" not in str(err)
        # The transport recovers: the next request on a new or kept connection works.
        assert bmc.power_watts() > 0
    finally:
        bmc.close()
