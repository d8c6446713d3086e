"""Redfish BMC and PDU drivers against DMTF mockups with properties and resources taken out.

The mockups (public-rackmount1, public-pdu) are served by the plain static server; a test
replaces a resource with the same JSON minus some properties, or hides a resource (404), to
make the device that lacks them. What the device has is still read; what it lacks is None,
empty, or ``NotAvailable``; never a protocol error, never 0 W. ``rackval probe``'s reading of
the same devices says "not available" and counts the metered outlets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import NotAvailable
from rackval.drivers.bmc.redfish import RedfishBmc
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.pdu.redfish_pdu import RedfishRackPdu
from rackval.harness.probe import ANSWERED, NOT_AVAILABLE, DeviceProbe, probe_driver
from rackval.harness.readers import readings_text
from tests.support.static_http import RawBody, StaticRedfishServer

MOCKUPS = Path(__file__).resolve().parents[1] / "data" / "redfish" / "mockups"
SERVER_MOCKUP, PDU_MOCKUP = MOCKUPS / "public-rackmount1", MOCKUPS / "public-pdu"


def _load(root: Path, odata_id: str) -> dict[str, Any]:
    return json.loads((root / odata_id.removeprefix("/redfish/v1").strip("/") / "index.json").read_text())


def _members(root: Path, odata_id: str) -> list[str]:
    return [m["@odata.id"] for m in _load(root, odata_id)["Members"]]


def _without(server: StaticRedfishServer, root: Path, odata_id: str, *keys: str) -> dict[str, Any]:
    """Serve ``odata_id`` without ``keys``; returns the document as served."""
    doc = {k: v for k, v in _load(root, odata_id).items() if k not in keys}
    server.raw[odata_id] = RawBody(json.dumps(doc).encode())
    return doc


def _config(server: StaticRedfishServer, name: str, kind: str, driver: str) -> DeviceConfig:
    return DeviceConfig(
        name=name, kind=kind, driver=driver, host=server.host, port=server.port,
        credentials=Credentials(username="admin", password=Secret("mockup-pw")),
        options={"scheme": "http"}, timeout_s=5.0,
    )  # fmt: skip


@pytest.fixture
def pdu_server() -> Iterator[StaticRedfishServer]:
    server = StaticRedfishServer(PDU_MOCKUP)
    yield server
    server.stop()


@pytest.fixture
def bmc_server() -> Iterator[StaticRedfishServer]:
    server = StaticRedfishServer(SERVER_MOCKUP)
    yield server
    server.stop()


PDU = _members(PDU_MOCKUP, "/redfish/v1/PowerEquipment/RackPDUs")[0]
OUTLETS = _members(PDU_MOCKUP, _load(PDU_MOCKUP, PDU)["Outlets"]["@odata.id"])
SYSTEM = _members(SERVER_MOCKUP, "/redfish/v1/Systems")[0]
CHASSIS = _members(SERVER_MOCKUP, "/redfish/v1/Chassis")[0]


def _metered(path: str) -> bool:
    return "PowerWatts" in _load(PDU_MOCKUP, path)


# ---- the PDU ------------------------------------------------------------------------------------------
def test_outlets_without_meters_keep_their_state(pdu_server: StaticRedfishServer) -> None:
    stripped = [p for p in OUTLETS if _metered(p)][:2]
    for path in stripped:
        _without(pdu_server, PDU_MOCKUP, path, "PowerWatts", "CurrentAmps")
    pdu = RedfishRackPdu(_config(pdu_server, "pdu-rf", "pdu", "redfish-pdu"))
    try:
        outlets = pdu.outlets()
        for reading, path in zip(outlets, OUTLETS, strict=True):
            doc = _load(PDU_MOCKUP, path)
            assert reading.on is (doc.get("PowerState", "On") == "On")
            if path in stripped or not _metered(path):
                assert (reading.power_w, reading.current_a) == (None, None)
            else:
                assert reading.power_w == float(doc["PowerWatts"]["Reading"])
        probe = probe_driver(pdu, DeviceProbe("pdu-rf", "pdu", "redfish-pdu", pdu_server.url))
        metered = sum(1 for o in outlets if o.power_w is not None)
        assert probe.ok and probe.readings["outlets"]["metered"] == metered < len(outlets)
        total = sum(o.power_w for o in outlets if o.power_w is not None)
        assert f"{total:.1f} W ({metered} of {len(outlets)} outlets metered)" in readings_text(probe.readings)
    finally:
        pdu.close()


def test_pdu_without_any_outlet_meter_says_not_available(pdu_server: StaticRedfishServer) -> None:
    for path in OUTLETS:
        _without(pdu_server, PDU_MOCKUP, path, "PowerWatts", "CurrentAmps")
    pdu = RedfishRackPdu(_config(pdu_server, "pdu-rf", "pdu", "redfish-pdu"))
    try:
        assert len(pdu.outlets()) == len(OUTLETS)
        probe = probe_driver(pdu, DeviceProbe("pdu-rf", "pdu", "redfish-pdu", pdu_server.url))
        assert probe.readings["outlets"]["total_w"] is None
        assert "outlet power: not available on this device" in readings_text(probe.readings)
    finally:
        pdu.close()


def test_pdu_without_a_total_and_identity_fields(pdu_server: StaticRedfishServer) -> None:
    doc = _without(pdu_server, PDU_MOCKUP, PDU, "Metrics", "Mains", "SerialNumber", "FirmwareVersion")
    pdu = RedfishRackPdu(_config(pdu_server, "pdu-rf", "pdu", "redfish-pdu"))
    try:
        with pytest.raises(NotAvailable, match="neither a Metrics PowerWatts nor Mains") as info:
            pdu.power_watts()
        assert info.value.device == "pdu-rf"
        identity = pdu.identify()
        assert (identity.vendor, identity.model, identity.serial, identity.firmware) == (
            doc["Manufacturer"], doc["Model"], "", "",
        )  # fmt: skip
        probe = probe_driver(pdu, DeviceProbe("pdu-rf", "pdu", "redfish-pdu", pdu_server.url))
        assert probe.status == ANSWERED and probe.steps["power"] == NOT_AVAILABLE
        assert probe.readings["outlets"]["count"] == len(OUTLETS)
    finally:
        pdu.close()


# ---- the BMC ------------------------------------------------------------------------------------------
def test_bmc_without_power_meter_thermal_and_manager(bmc_server: StaticRedfishServer) -> None:
    links = ("Thermal", "Sensors", "ThermalSubsystem", "EnvironmentMetrics", "Power", "PowerSubsystem")
    chassis = _without(bmc_server, SERVER_MOCKUP, CHASSIS, *links)
    bmc_server.hidden.update({f"{CHASSIS}/Thermal", f"{CHASSIS}/Power", f"{CHASSIS}/EnvironmentMetrics",
                              "/redfish/v1/Managers"})  # fmt: skip
    system = _load(SERVER_MOCKUP, SYSTEM)
    bmc = RedfishBmc(_config(bmc_server, "bmc-rf", "bmc", "redfish"))
    try:
        assert chassis["Id"]
        identity = bmc.identify()
        assert (identity.vendor, identity.model, identity.firmware) == (system["Manufacturer"], system["Model"], "")
        assert bmc.power_state() == system["PowerState"]
        assert bmc.temperatures() == {}
        with pytest.raises(NotAvailable, match=r"reports no EnvironmentMetrics PowerWatts\.Reading"):
            bmc.power_watts()
        with pytest.raises(NotAvailable, match="neither Power PowerSupplies nor PowerSubsystem"):
            bmc.power_supplies()
        probe = probe_driver(bmc, DeviceProbe("bmc-rf", "bmc", "redfish", bmc_server.url))
        assert probe.status == ANSWERED and probe.errors == []
        assert probe.steps["power"] == NOT_AVAILABLE and probe.readings["temperatures"]["sensors"] == 0
    finally:
        bmc.close()


def test_bmc_without_power_state(bmc_server: StaticRedfishServer) -> None:
    _without(bmc_server, SERVER_MOCKUP, SYSTEM, "PowerState")
    bmc = RedfishBmc(_config(bmc_server, "bmc-rf", "bmc", "redfish"))
    try:
        with pytest.raises(NotAvailable, match="no PowerState"):
            bmc.power_state()
        assert bmc.power_watts() > 0 and bmc.temperatures()  # the rest still reads
    finally:
        bmc.close()
