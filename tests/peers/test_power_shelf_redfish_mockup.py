"""RedfishPowerShelf against DMTF's public-power-shelf mockup on a plain static server.

The expectations come from the mockup's JSON: every Sensor of the shelf's chassis, every reading
excerpt under the shelf and its chassis PowerSubsystem, every PSU bay (the collection lists Bay3
twice and leaves Bay2 out; the redundancy group names all six), the feeds, the DC output and the
identity. Excerpts that cite a sensor the mockup does not have (its Metrics' PDUEnergy, CabTemp)
and that no capability field holds are the only ones not read, and the test derives that list
too. Then batteries (the mockup has none: served here per the Battery schema), hidden
resources, and controls the shelf refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import DeviceError, NotAvailable
from rackval.drivers.capabilities import Device, PowerMeter, PowerShelf, Sensors, ShelfControl
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.power_shelf.redfish_shelf import RedfishPowerShelf
from tests.support.static_http import RawBody, StaticRedfishServer

MOCKUP = Path(__file__).resolve().parents[1] / "data" / "redfish" / "mockups" / "public-power-shelf"
SHELF = "/redfish/v1/PowerEquipment/PowerShelves/1"
CHASSIS = "/redfish/v1/Chassis/PowerShelf"
SUBSYSTEM = f"{CHASSIS}/PowerSubsystem"
FEED_FIELDS = {
    "Voltage": "voltage_v",
    "CurrentAmps": "current_a",
    "PowerWatts": "power_w",
    "FrequencyHz": "frequency_hz",
}
PSU_FIELDS = {"InputPowerWatts": "input_power_w", "OutputPowerWatts": "output_power_w"}


def _load(odata_id: str) -> dict[str, Any]:
    return json.loads((MOCKUP / odata_id.removeprefix("/redfish/v1").strip("/") / "index.json").read_text())


def _exists(odata_id: str) -> bool:
    return (MOCKUP / odata_id.removeprefix("/redfish/v1").strip("/") / "index.json").is_file()


def _excerpts() -> list[tuple[str, str, dict[str, Any]]]:
    """(resource, property, excerpt) of every reading excerpt under the shelf and its chassis power."""
    roots = [MOCKUP / "PowerEquipment" / "PowerShelves" / "1", MOCKUP / "Chassis" / "PowerShelf"]
    found = []
    for root in roots:
        for file in sorted(root.rglob("index.json")):
            doc = json.loads(file.read_text())
            for key, value in doc.items():
                entries = value if isinstance(value, list) else [value]
                found += [(doc["@odata.id"], key, e) for e in entries if isinstance(e, dict) and "Reading" in e]
    return [f for f in found if not f[0].startswith(f"{CHASSIS}/Sensors")]  # sensors: their own test


@pytest.fixture
def server() -> Iterator[StaticRedfishServer]:
    assert MOCKUP.is_dir(), f"DMTF mockup missing at {MOCKUP}"
    srv = StaticRedfishServer(MOCKUP)
    yield srv
    srv.stop()


@pytest.fixture
def shelf(server: StaticRedfishServer) -> Iterator[RedfishPowerShelf]:
    driver = RedfishPowerShelf(
        DeviceConfig(
            name="shelf-1", kind="power_shelf", driver="redfish-power-shelf", host=server.host, port=server.port,
            credentials=Credentials(username="admin", password=Secret("shelf-mockup-pw")),
            options={"scheme": "http"}, timeout_s=5.0,
        )
    )  # fmt: skip
    yield driver
    driver.close()


def _serve(server: StaticRedfishServer, odata_id: str, doc: dict[str, Any]) -> None:
    server.raw[odata_id] = RawBody(json.dumps(doc).encode())


# ---- what the mockup has, all of it ---------------------------------------------------------------


def test_claims_the_shelf_capabilities_and_identity(shelf: RedfishPowerShelf) -> None:
    for capability in (Device, PowerMeter, PowerShelf, ShelfControl, Sensors):
        assert isinstance(shelf, capability), capability
    doc = _load(SHELF)
    identity = shelf.identify()
    assert (identity.vendor, identity.model, identity.serial, identity.firmware) == (
        doc["Manufacturer"], doc["Model"], doc["SerialNumber"], doc["FirmwareVersion"],
    )  # fmt: skip


def test_every_chassis_sensor_is_read(shelf: RedfishPowerShelf) -> None:
    expected = {
        m["@odata.id"].rsplit("/", 1)[-1]: _load(m["@odata.id"]) for m in _load(f"{CHASSIS}/Sensors")["Members"]
    }
    got = {s.name: s for s in shelf.sensors()}
    assert set(got) == set(expected) and len(expected) >= 30
    for name, doc in expected.items():
        assert (got[name].value, got[name].unit) == (doc["Reading"], doc["ReadingUnits"]), name


def test_every_reading_excerpt_is_read_but_those_citing_missing_sensors(shelf: RedfishPowerShelf) -> None:
    feeds = {f"{SHELF}/Mains/{f.name}": f for f in shelf.feeds()}
    dc = shelf.dc_output()
    rectifiers = {f"{SUBSYSTEM}/PowerSupplies/{r.name}/Metrics": r for r in shelf.rectifiers()}
    sensors = {s.name for s in shelf.sensors()}
    total = shelf.power_watts()
    unread = []
    for path, prop, excerpt in _excerpts():
        value = excerpt["Reading"]
        if path in feeds and prop in FEED_FIELDS:
            assert getattr(feeds[path], FEED_FIELDS[prop]) == value, (path, prop)
        elif path == f"{SHELF}/Branches/{dc.name}" and prop in FEED_FIELDS:
            assert getattr(dc, FEED_FIELDS[prop]) == value, (path, prop)
        elif path in rectifiers and prop in PSU_FIELDS:
            assert getattr(rectifiers[path], PSU_FIELDS[prop]) == value, (path, prop)
        elif path == f"{SHELF}/Metrics" and prop == "PowerWatts":
            assert total == value
        elif excerpt.get("DataSourceUri", "").rsplit("/", 1)[-1] in sensors:
            pass  # the sensor it cites is read (test_every_chassis_sensor_is_read)
        else:
            unread.append((path, prop))
    citing_nothing = [
        (path, prop) for path, prop, e in _excerpts() if "DataSourceUri" in e and not _exists(e["DataSourceUri"])
    ]
    assert set(unread) <= set(citing_nothing), unread  # today: Metrics EnergykWh, TemperatureCelsius


def test_every_bay_feed_and_the_dc_output(shelf: RedfishPowerShelf) -> None:
    bays = {r.name: r for r in shelf.rectifiers()}
    on_disk = {
        p.name for p in (MOCKUP / "Chassis" / "PowerShelf" / "PowerSubsystem" / "PowerSupplies").iterdir() if p.is_dir()
    }
    assert set(bays) == on_disk and len(bays) == 6  # Bay2 from the redundancy group, Bay3 once
    assert bays["Bay2"].state == "Absent" and bays["Bay2"].output_power_w is None
    bay1 = _load(f"{SUBSYSTEM}/PowerSupplies/Bay1")
    assert (bays["Bay1"].input_ok, bays["Bay1"].capacity_w) == (True, bay1["PowerCapacityWatts"])
    metrics = _load(f"{SUBSYSTEM}/PowerSupplies/Bay1/Metrics")
    assert bays["Bay1"].output_voltage_v == 49.03 == metrics["RailVoltage"][1]["Reading"]  # the 48 V DCBus rail
    assert bays["Bay1"].efficiency_pct == pytest.approx(
        100 * metrics["OutputPowerWatts"]["Reading"] / metrics["InputPowerWatts"]["Reading"]
    )
    group = shelf.rectifier_redundancy()
    redundancy = _load(SUBSYSTEM)["PowerSupplyRedundancy"][0]
    assert (group.kind, group.min_needed, len(group.members)) == (
        redundancy["RedundancyType"], redundancy["MinNeededInGroup"], len(redundancy["RedundancyGroup"]),
    )  # fmt: skip
    assert [f.name for f in shelf.feeds()] == [
        m["@odata.id"].rsplit("/", 1)[-1] for m in _load(f"{SHELF}/Mains")["Members"]
    ]
    assert shelf.dc_output().name == "DC"


def test_no_batteries_in_the_mockup_is_not_available(shelf: RedfishPowerShelf) -> None:
    with pytest.raises(NotAvailable, match=r"shelf-1 \(127\.0\.0\.1:\d+\): read batteries .*has no Batteries"):
        shelf.batteries()


# ---- batteries, absent resources, controls -------------------------------------------------------------


def test_batteries_per_the_schema_with_a_holdup_estimate(server: StaticRedfishServer, shelf: RedfishPowerShelf) -> None:
    subsystem = _load(SUBSYSTEM)
    subsystem["Batteries"] = {"@odata.id": f"{SUBSYSTEM}/Batteries"}
    _serve(server, SUBSYSTEM, subsystem)
    chassis = _load(CHASSIS)
    chassis["PowerSubsystem"] = {"@odata.id": SUBSYSTEM}
    _serve(server, CHASSIS, chassis)
    _serve(
        server, f"{SUBSYSTEM}/Batteries", {"Members": [{"@odata.id": f"{SUBSYSTEM}/Batteries/BBU{i}"} for i in (1, 2)]}
    )
    for i, stored in ((1, 200.0), (2, None)):
        _serve(server, f"{SUBSYSTEM}/Batteries/BBU{i}", {
            "Id": f"BBU{i}", "Status": {"State": "Enabled", "Health": "OK"}, "ChargeState": "Discharging",
            "StateOfHealthPercent": {"Reading": 97.5},
            "Metrics": {"@odata.id": f"{SUBSYSTEM}/Batteries/BBU{i}/Metrics"},
        })  # fmt: skip
        _serve(server, f"{SUBSYSTEM}/Batteries/BBU{i}/Metrics", {
            "ChargePercent": {"Reading": 88.0}, "StoredEnergyWattHours": {"Reading": stored},
        })  # fmt: skip
    first, second = shelf.batteries()
    load_w = _load(f"{SHELF}/Branches/DC")["PowerWatts"]["Reading"]
    assert (first.charge_pct, first.health_pct, first.charge_state) == (88.0, 97.5, "Discharging")
    assert first.holdup_s == pytest.approx(200.0 * 3600 / (load_w / 2), abs=0.1) and first.holdup_estimated
    assert (second.stored_energy_wh, second.holdup_s, second.holdup_estimated) == (None, None, False)


def test_power_falls_back_to_the_feeds_then_is_not_available(
    server: StaticRedfishServer, shelf: RedfishPowerShelf
) -> None:
    server.hidden.add(f"{SHELF}/Metrics")
    feeds = [_load(f"{SHELF}/Mains/{n}")["PowerWatts"]["Reading"] for n in ("AC1", "AC2")]
    assert shelf.power_watts() == pytest.approx(sum(feeds))
    server.hidden.add(f"{SHELF}/Mains")
    with pytest.raises(NotAvailable, match="the power shelf has no Mains"):
        shelf.feeds()
    with pytest.raises(NotAvailable):
        shelf.power_watts()
    assert shelf.dc_output().power_w is not None and shelf.rectifiers()  # the rest still reads


def test_controls_the_shelf_does_not_offer_are_refused_unsent(
    server: StaticRedfishServer, shelf: RedfishPowerShelf
) -> None:
    with pytest.raises(DeviceError, match=r"AC1 advertises no #Circuit.BreakerControl action"):
        shelf.set_feed("AC1", False)
    with pytest.raises(DeviceError, match=r"no 'Bay9' here \(the shelf has \['Bay1', 'Bay3'"):
        shelf.set_rectifier("Bay9", False)
    assert not server.seen("POST") or all("Session" in r.path for r in server.seen("POST"))


def test_set_rectifier_posts_the_advertised_reset(server: StaticRedfishServer, shelf: RedfishPowerShelf) -> None:
    with pytest.raises(DeviceError) as info:  # the mockup's target has no /Actions/: the static server says 405
        shelf.set_rectifier("Bay1", False)
    target = _load(f"{SUBSYSTEM}/PowerSupplies/Bay1")["Actions"]["#PowerSupply.Reset"]["target"]
    assert f"POST {target}" in str(info.value) and "\n" not in str(info.value)
