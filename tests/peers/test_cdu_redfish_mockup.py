"""RedfishCdu against DMTF's public-cooling-unit mockup on a plain static server.

What the driver must read is derived here from the mockup's JSON, not remembered: every Sensor
of the CDU's chassis, every reading excerpt (an object with a ``Reading``) anywhere under
``ThermalEquipment/CDUs/1``, every pump, filter, reservoir and leak detector, and the identity.
Then the device that is half there: a resource taken out, a reading null or of the wrong type,
a listed sensor that 404s, a service that never answers, and controls the CDU refuses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout, NotAvailable
from rackval.drivers.capabilities import CoolingUnit, Device, LeakDetection, PumpControl, Sensors
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.cooling.redfish_cdu import RedfishCdu
from tests.support.redfish_patch_http import PatchableRedfishServer, Patched
from tests.support.scripted_peers import scripted_tcp
from tests.support.static_http import RawBody, StaticRedfishServer

MOCKUP = Path(__file__).resolve().parents[1] / "data" / "redfish" / "mockups" / "public-cooling-unit"
CDU = "/redfish/v1/ThermalEquipment/CDUs/1"
# CoolantConnector property -> CoolantReading field: the driver's contract, checked against every excerpt
CONNECTOR_FIELDS = {
    "SupplyTemperatureCelsius": "supply_temp_c",
    "ReturnTemperatureCelsius": "return_temp_c",
    "DeltaTemperatureCelsius": "delta_temp_c",
    "FlowLitersPerMinute": "flow_lpm",
    "SupplyPressurekPa": "supply_pressure_kpa",
    "ReturnPressurekPa": "return_pressure_kpa",
    "DeltaPressurekPa": "delta_pressure_kpa",
    "HeatRemovedkW": "heat_kw",
}


def _load(odata_id: str) -> dict[str, Any]:
    return json.loads((MOCKUP / odata_id.removeprefix("/redfish/v1").strip("/") / "index.json").read_text())


def _members(odata_id: str) -> list[str]:
    return [m["@odata.id"] for m in _load(odata_id)["Members"]]


def _excerpts() -> list[tuple[str, str, dict[str, Any]]]:
    """(resource path, property, excerpt) of every reading excerpt under the CDU, from the files."""
    found = []
    for file in sorted((MOCKUP / "ThermalEquipment" / "CDUs" / "1").rglob("index.json")):
        doc = json.loads(file.read_text())
        found += [(doc["@odata.id"], k, v) for k, v in doc.items() if isinstance(v, dict) and "Reading" in v]
        for group in doc.get("LeakDetectorGroups", []):
            found += [(doc["@odata.id"], k, v) for k, v in group.items() if isinstance(v, dict) and "Reading" in v]
    return found


@pytest.fixture
def server() -> Iterator[StaticRedfishServer]:
    assert MOCKUP.is_dir(), f"DMTF mockup missing at {MOCKUP}"
    srv = StaticRedfishServer(MOCKUP)
    yield srv
    srv.stop()


def _config(host: str, port: int, timeout_s: float = 5.0) -> DeviceConfig:
    return DeviceConfig(
        name="cdu-1", kind="cdu", driver="redfish-cdu", host=host, port=port,
        credentials=Credentials(username="admin", password=Secret("cdu-mockup-pw")),
        options={"scheme": "http"}, timeout_s=timeout_s,
    )  # fmt: skip


@pytest.fixture
def cdu(server: StaticRedfishServer) -> Iterator[RedfishCdu]:
    driver = RedfishCdu(_config(server.host, server.port))
    yield driver
    driver.close()


def _serve(server: StaticRedfishServer, odata_id: str, doc: dict[str, Any]) -> None:
    server.raw[odata_id] = RawBody(json.dumps(doc).encode())


# ---- what the mockup has, all of it ---------------------------------------------------------------


def test_claims_the_cdu_capabilities(cdu: RedfishCdu) -> None:
    for capability in (Device, CoolingUnit, PumpControl, LeakDetection, Sensors):
        assert isinstance(cdu, capability), capability


def test_identity_and_mode_match_the_mockup(cdu: RedfishCdu) -> None:
    doc = _load(CDU)
    identity = cdu.identify()
    assert (identity.vendor, identity.model, identity.serial, identity.firmware) == (
        doc["Manufacturer"], doc["Model"], doc["SerialNumber"], doc["FirmwareVersion"],
    )  # fmt: skip
    assert identity.serial and cdu.cooling_mode() == doc["Status"]["State"]


def test_every_chassis_sensor_is_read(cdu: RedfishCdu) -> None:
    chassis = _load(CDU)["Links"]["Chassis"][0]["@odata.id"]
    expected = {p.rsplit("/", 1)[-1]: _load(p) for p in _members(f"{chassis}/Sensors")}
    got = {s.name: s for s in cdu.sensors()}
    assert set(got) == set(expected) and len(expected) >= 18
    for name, doc in expected.items():
        assert (got[name].value, got[name].unit, got[name].ok) == (doc["Reading"], doc["ReadingUnits"], True), name


def test_every_reading_excerpt_under_the_cdu_is_read(cdu: RedfishCdu) -> None:
    loops = {(f"{CDU}/{r.loop.capitalize()}CoolantConnectors/{r.name}"): r for r in cdu.loops()}
    pumps = {f"{CDU}/Pumps/{p.name}": p for p in cdu.pumps()}
    sensors = {s.name: s.value for s in cdu.sensors()}
    excerpts = _excerpts()
    assert len(excerpts) >= 20
    for path, prop, excerpt in excerpts:
        if path in loops:
            assert getattr(loops[path], CONNECTOR_FIELDS[prop]) == excerpt["Reading"], (path, prop)
        elif path in pumps and prop == "PumpSpeedPercent":
            assert pumps[path].speed_pct == excerpt["Reading"], path
        else:  # EnvironmentMetrics, LeakDetection humidity: the chassis sensor they cite
            sensor = excerpt.get("DataSourceUri", "").rsplit("/", 1)[-1]
            assert sensors.get(sensor) == excerpt["Reading"], (path, prop, sensor)
    setpoints = {r.loop: r.supply_setpoint_c for r in cdu.loops()}
    secondary = _load(f"{CDU}/SecondaryCoolantConnectors/1")
    assert setpoints == {"primary": None, "secondary": secondary["SupplyTemperatureControlCelsius"]["SetPoint"]}


def test_every_component_is_read(cdu: RedfishCdu) -> None:
    pumps = {p.name: p for p in cdu.pumps()}
    assert set(pumps) == {p.rsplit("/", 1)[-1] for p in _members(f"{CDU}/Pumps")}
    for name, pump in pumps.items():
        doc = _load(f"{CDU}/Pumps/{name}")
        assert (pump.state, pump.health) == (doc["Status"]["State"], doc["Status"]["Health"])
        assert pump.setpoint_pct == doc["SpeedControlPercent"]["SetPoint"]
    assert pumps["2"].running is False and pumps["1"].running is True  # the mockup's failed pump
    filters = cdu.filters()
    assert [f.name for f in filters] == [p.rsplit("/", 1)[-1] for p in _members(f"{CDU}/Filters")]
    assert filters[0].service_hours == _load(f"{CDU}/Filters/1")["ServiceHours"]
    reservoirs = cdu.reservoirs()  # served, though the CDU does not link it: found at the canonical URI
    assert "Reservoirs" not in _load(CDU)
    assert [(r.name, r.level_status, r.capacity_l) for r in reservoirs] == [
        (p.rsplit("/", 1)[-1], _load(p)["FluidLevelStatus"], _load(p)["CapacityLiters"])
        for p in _members(f"{CDU}/Reservoirs")
    ]
    detectors = cdu.leak_detectors()
    expected = _members(f"{CDU}/LeakDetection/LeakDetectors")
    assert [(d.name, d.detector_state) for d in detectors] == [
        (p.rsplit("/", 1)[-1], _load(p)["DetectorState"]) for p in expected
    ]
    assert all(d.dry for d in detectors)


def test_what_the_mockup_lacks_is_not_available(cdu: RedfishCdu) -> None:
    with pytest.raises(NotAvailable, match=r"cdu-1 \(127\.0\.0\.1:\d+\): read pump redundancy .*: no PumpRedundancy"):
        cdu.pump_redundancy()


# ---- the device that is half there ------------------------------------------------------------------


def test_a_missing_collection_is_that_reading_only(server: StaticRedfishServer, cdu: RedfishCdu) -> None:
    server.hidden.update({f"{CDU}/Pumps", f"{CDU}/Filters"})
    with pytest.raises(NotAvailable, match="the CDU has no Pumps"):
        cdu.pumps()
    with pytest.raises(NotAvailable, match="the CDU has no Filters"):
        cdu.filters()
    assert len(cdu.loops()) == 2 and cdu.leak_detectors()  # the rest still reads


def test_one_loop_missing_and_null_readings_are_absent_not_zero(server: StaticRedfishServer, cdu: RedfishCdu) -> None:
    server.hidden.add(f"{CDU}/PrimaryCoolantConnectors")
    doc = _load(f"{CDU}/SecondaryCoolantConnectors/1")
    doc["FlowLitersPerMinute"] = {"Reading": None}
    del doc["HeatRemovedkW"]
    _serve(server, f"{CDU}/SecondaryCoolantConnectors/1", doc)
    [loop] = cdu.loops()
    assert (loop.loop, loop.flow_lpm, loop.heat_kw, loop.supply_temp_c) == ("secondary", None, None, 30)


def test_a_wrong_type_is_one_line_naming_the_property(server: StaticRedfishServer, cdu: RedfishCdu) -> None:
    doc = _load(f"{CDU}/Pumps/1")
    doc["PumpSpeedPercent"] = {"Reading": "38.5"}
    _serve(server, f"{CDU}/Pumps/1", doc)
    with pytest.raises(DeviceProtocolError) as info:
        cdu.pumps()
    message = str(info.value)
    assert "\n" not in message and "read pumps" in message and "Pumps/1 PumpSpeedPercent.Reading" in message


def test_nan_in_a_body_is_refused_in_one_line(server: StaticRedfishServer, cdu: RedfishCdu) -> None:
    server.raw[f"{CDU}/PrimaryCoolantConnectors/1"] = RawBody(b'{"Id": "1", "FlowLitersPerMinute": {"Reading": NaN}}')
    with pytest.raises(DeviceProtocolError, match="non-standard JSON constant NaN") as info:
        cdu.loops()
    assert "\n" not in str(info.value)


def test_a_listed_sensor_that_404s_is_absent_and_the_others_read(server: StaticRedfishServer, cdu: RedfishCdu) -> None:
    server.hidden.add("/redfish/v1/Chassis/CDU/Sensors/PrimaryFlow")
    got = {s.name: s for s in cdu.sensors()}
    assert (got["PrimaryFlow"].value, got["PrimaryFlow"].status) == (None, "absent")
    assert got["SecondaryFlow"].value == _load("/redfish/v1/Chassis/CDU/Sensors/SecondaryFlow")["Reading"]


def test_leak_detectors_fall_back_to_the_chassis_then_the_groups(server: StaticRedfishServer, cdu: RedfishCdu) -> None:
    server.hidden.add(f"{CDU}/LeakDetection/LeakDetectors")
    on_chassis = cdu.leak_detectors()  # Chassis/CDU/LeakDetectors, where DMTF now places them
    assert [(d.name, d.detector_type) for d in on_chassis] == [("Moisture", "Moisture"), ("Overflow", "FloatSwitch")]
    doc = _load("/redfish/v1/Chassis/CDU")
    del doc["LeakDetectors"]
    _serve(server, "/redfish/v1/Chassis/CDU", doc)
    grouped = cdu.leak_detectors()  # only the LeakDetectorGroups entries are left
    assert [(d.name, d.dry) for d in grouped] == [("Moisture Leak Detector", True), ("Fluid Level Overflow", True)]
    server.hidden.add(f"{CDU}/LeakDetection")
    with pytest.raises(NotAvailable, match="no LeakDetection or LeakDetectors"):
        cdu.leak_detectors()


def test_a_service_that_never_answers_times_out_in_one_line() -> None:
    with scripted_tcp(lambda peer: peer.hold()) as silent:
        driver = RedfishCdu(_config(silent.host, silent.port, timeout_s=0.5))
        start = time.monotonic()
        with pytest.raises(DeviceTimeout) as info:
            driver.pumps()
        assert time.monotonic() - start < 0.5 + 2.0
        assert "\n" not in str(info.value) and "cdu-1" in str(info.value)
        driver.close()


# ---- controls ---------------------------------------------------------------------------------------


def test_set_pump_posts_set_mode_to_the_advertised_target(server: StaticRedfishServer, cdu: RedfishCdu) -> None:
    cdu.set_pump("2", False)
    posts = [r.path for r in server.seen("POST") if "/Actions/" in r.path]
    assert posts == [_load(f"{CDU}/Pumps/2")["Actions"]["#Pump.SetMode"]["target"]]


def test_controls_refused_before_anything_is_sent(server: StaticRedfishServer, cdu: RedfishCdu) -> None:
    with pytest.raises(DeviceError, match=r"no pump '9' \(the CDU has \['1', '2'\]\)"):
        cdu.set_pump("9", True)
    for bad in (150.0, -1.0, float("nan")):
        with pytest.raises(DeviceError, match="the speed must be"):
            cdu.set_pump_speed("1", bad)
    doc = _load(f"{CDU}/Pumps/1")
    del doc["Actions"]
    _serve(server, f"{CDU}/Pumps/1", doc)
    with pytest.raises(DeviceError, match=r"advertises no #Pump\.SetMode action"):
        cdu.set_pump("1", False)
    assert not [r for r in server.seen() if r.method in ("POST", "PATCH") and "Session" not in r.path]


def test_a_refused_speed_patch_is_one_line(cdu: RedfishCdu) -> None:
    with pytest.raises(DeviceError) as info:  # the static server answers PATCH with 405
        cdu.set_pump_speed("1", 60.0)
    assert "\n" not in str(info.value) and "PATCH /redfish/v1/ThermalEquipment/CDUs/1/Pumps/1" in str(info.value)


def test_set_pump_speed_patches_manual_control_and_reads_back() -> None:
    server = PatchableRedfishServer(MOCKUP)
    try:
        driver = RedfishCdu(_config(server.host, server.port))
        driver.set_pump_speed("1", 62.5)
        assert server.patches == [
            Patched(f"{CDU}/Pumps/1", {"SpeedControlPercent": {"ControlMode": "Manual", "SetPoint": 62.5}})
        ]
        pump = next(p for p in driver.pumps() if p.name == "1")
        assert (pump.setpoint_pct, pump.control_mode) == (62.5, "Manual")
        server.patch_status = 400
        with pytest.raises(DeviceError) as info:
            driver.set_pump_speed("1", 70.0)
        assert "\n" not in str(info.value) and "HTTP 400" in str(info.value)
        driver.close()
    finally:
        server.stop()


def test_a_service_that_fails_the_expand_it_advertises_is_read_member_by_member(
    server: StaticRedfishServer, cdu: RedfishCdu
) -> None:
    """The mockup's service root advertises ``$expand``. A service that ignores the query (this
    static server) or answers it with 400 still gives every pump, filter and loop, one GET each;
    after a 400 it is not asked to expand again."""
    expected = (cdu.pumps(), cdu.filters(), cdu.loops())
    assert any("$expand" in s.query for s in server.seen())  # asked, answered with links: read one by one
    server.requests.clear()
    server.query_status = 400
    driver = RedfishCdu(_config(server.host, server.port))
    try:
        assert (driver.pumps(), driver.filters(), driver.loops()) == expected
        assert len([s for s in server.seen() if s.query]) == 1  # the first refusal ends the asking
    finally:
        server.query_status = None
        driver.close()
