"""The Redfish BMC driver reads a liquid-cooled node's coolant connectors, pumps and leak detectors
under its chassis ThermalSubsystem, and says "not available" on an air-cooled node.

public-rackmount1 (air-cooled) has none of them. For the liquid-cooled node, the same mockup is
served with a ThermalSubsystem that links them, each resource being a DMTF-written document from
public-cooling-unit (a CoolantConnector, a Pump, two LeakDetectors) re-homed under the node's
chassis: what the driver must read comes from those files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import DeviceProtocolError, NotAvailable
from rackval.drivers.bmc.redfish import RedfishBmc
from rackval.drivers.capabilities import LeakDetection, LiquidCooledNode
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from tests.support.static_http import RawBody, StaticRedfishServer

MOCKUPS = Path(__file__).resolve().parents[1] / "data" / "redfish" / "mockups"
NODE, COOLING = MOCKUPS / "public-rackmount1", MOCKUPS / "public-cooling-unit"
THERMAL = "/redfish/v1/Chassis/1U/ThermalSubsystem"
CDU = "/redfish/v1/ThermalEquipment/CDUs/1"


def _load(root: Path, odata_id: str) -> dict[str, Any]:
    return json.loads((root / odata_id.removeprefix("/redfish/v1").strip("/") / "index.json").read_text())


def _serve(server: StaticRedfishServer, odata_id: str, doc: dict[str, Any]) -> None:
    server.raw[odata_id] = RawBody(json.dumps({**doc, "@odata.id": odata_id}).encode())


@pytest.fixture
def server() -> Iterator[StaticRedfishServer]:
    srv = StaticRedfishServer(NODE)
    yield srv
    srv.stop()


@pytest.fixture
def bmc(server: StaticRedfishServer) -> Iterator[RedfishBmc]:
    driver = RedfishBmc(
        DeviceConfig(
            name="bmc-node01", kind="bmc", driver="redfish", host=server.host, port=server.port,
            credentials=Credentials(username="admin", password=Secret("mockup-pw")),
            options={"scheme": "http"}, timeout_s=5.0,
        )
    )  # fmt: skip
    yield driver
    driver.close()


def _liquid(server: StaticRedfishServer) -> dict[str, dict[str, Any]]:
    """Make the node liquid-cooled; returns the third-party documents served, by their new path."""
    thermal = _load(NODE, THERMAL)
    thermal["CoolantConnectors"] = {"@odata.id": f"{THERMAL}/CoolantConnectors"}
    thermal["Pumps"] = {"@odata.id": f"{THERMAL}/Pumps"}
    thermal["LeakDetection"] = {"@odata.id": f"{THERMAL}/LeakDetection"}
    _serve(server, THERMAL, thermal)
    served = {
        f"{THERMAL}/CoolantConnectors/1": _load(COOLING, f"{CDU}/SecondaryCoolantConnectors/1"),
        f"{THERMAL}/Pumps/1": _load(COOLING, f"{CDU}/Pumps/1"),
        **{
            f"{THERMAL}/LeakDetection/LeakDetectors/{d}": _load(COOLING, f"{CDU}/LeakDetection/LeakDetectors/{d}")
            for d in ("Moisture", "Overflow")
        },
    }
    for path, doc in served.items():
        _serve(server, path, doc)
    for collection in ("CoolantConnectors", "Pumps", "LeakDetection/LeakDetectors"):
        listed = [{"@odata.id": p} for p in served if p.startswith(f"{THERMAL}/{collection}/")]
        _serve(server, f"{THERMAL}/{collection}", {"Members": listed})
    detection = {k: v for k, v in _load(COOLING, f"{CDU}/LeakDetection").items() if k != "LeakDetectorGroups"}
    _serve(server, f"{THERMAL}/LeakDetection", detection)
    return served


def test_an_air_cooled_node_has_no_liquid_readings(bmc: RedfishBmc) -> None:
    assert isinstance(bmc, LiquidCooledNode) and isinstance(bmc, LeakDetection)
    assert bmc.temperatures()  # the node's other readings are there
    for read, what in ((bmc.coolant_connectors, "CoolantConnectors"), (bmc.pumps, "Pumps")):
        with pytest.raises(NotAvailable, match=rf"bmc-node01 \(.*\): .*: the chassis ThermalSubsystem has no {what}"):
            read()
    with pytest.raises(NotAvailable, match=r"read leak detectors .*: no LeakDetection or LeakDetectors"):
        bmc.leak_detectors()


def test_a_liquid_cooled_node_reads_what_its_chassis_reports(server: StaticRedfishServer, bmc: RedfishBmc) -> None:
    served = _liquid(server)
    [connector] = bmc.coolant_connectors()
    doc = served[f"{THERMAL}/CoolantConnectors/1"]
    assert (connector.flow_lpm, connector.supply_temp_c, connector.return_temp_c, connector.supply_pressure_kpa) == (
        doc["FlowLitersPerMinute"]["Reading"], doc["SupplyTemperatureCelsius"]["Reading"],
        doc["ReturnTemperatureCelsius"]["Reading"], doc["SupplyPressurekPa"]["Reading"],
    )  # fmt: skip
    assert connector.loop == ""
    [pump] = bmc.pumps()
    assert pump.speed_pct == served[f"{THERMAL}/Pumps/1"]["PumpSpeedPercent"]["Reading"]
    assert [(d.name, d.dry) for d in bmc.leak_detectors()] == [("Moisture", True), ("Overflow", True)]
    assert bmc.temperatures()


def test_a_leak_and_a_bad_reading(server: StaticRedfishServer, bmc: RedfishBmc) -> None:
    served = _liquid(server)
    moisture = dict(served[f"{THERMAL}/LeakDetection/LeakDetectors/Moisture"], DetectorState="Critical")
    _serve(server, f"{THERMAL}/LeakDetection/LeakDetectors/Moisture", moisture)
    assert [d.dry for d in bmc.leak_detectors()] == [False, True]
    broken = dict(served[f"{THERMAL}/CoolantConnectors/1"], FlowLitersPerMinute={"Reading": [42]})
    _serve(server, f"{THERMAL}/CoolantConnectors/1", broken)
    with pytest.raises(DeviceProtocolError, match=r"read coolant connectors: .*FlowLitersPerMinute\.Reading: expected"):
        bmc.coolant_connectors()
    assert bmc.pumps()  # each reading on its own


def test_leak_detectors_on_the_chassis_where_dmtf_places_them(server: StaticRedfishServer, bmc: RedfishBmc) -> None:
    served = _liquid(server)
    del server.raw[f"{THERMAL}/LeakDetection/LeakDetectors"]  # served by _liquid: now 404
    chassis = _load(NODE, "/redfish/v1/Chassis/1U")
    chassis["LeakDetectors"] = {"@odata.id": "/redfish/v1/Chassis/1U/LeakDetectors"}
    _serve(server, "/redfish/v1/Chassis/1U", chassis)
    tray = dict(served[f"{THERMAL}/LeakDetection/LeakDetectors/Moisture"], Id="Tray", DetectorState="Warning")
    _serve(server, "/redfish/v1/Chassis/1U/LeakDetectors/Tray", tray)
    listed = [{"@odata.id": "/redfish/v1/Chassis/1U/LeakDetectors/Tray"}]
    _serve(server, "/redfish/v1/Chassis/1U/LeakDetectors", {"Members": listed})
    assert [(d.name, d.dry) for d in bmc.leak_detectors()] == [("Tray", False)]
