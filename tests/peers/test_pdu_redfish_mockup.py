"""RedfishRackPdu against DMTF's public-pdu mockup: third-party payloads, not our own simulator.

Expected values are read from the mockup JSON here, so the test checks the driver's reading of
DMTF-written resources rather than numbers remembered by whoever wrote the driver. Switching
uses ``tests/support/redfish_pdu_http.py``, which adds working Outlet.PowerControl actions (with a
transitional PoweringOff/PoweringOn state) on top of the static mockup server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import ConfigError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.capabilities import Device, Identity, OutletSwitch, PowerMeter
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.pdu.redfish_pdu import RedfishRackPdu
from tests.support.redfish_pdu_http import PduMockupServer

MOCKUP = Path(__file__).resolve().parents[1] / "data" / "redfish" / "mockups" / "public-pdu"
PASSWORD = "pdu-mockup-secret"


def _load(odata_id: str) -> dict[str, Any]:
    rel = odata_id.removeprefix("/redfish/v1").strip("/")
    return json.loads((MOCKUP / rel / "index.json").read_text())


def _members(odata_id: str) -> list[str]:
    return [m["@odata.id"] for m in _load(odata_id)["Members"]]


def _reading(doc: dict[str, Any], key: str) -> float | None:
    value = doc.get(key, {}).get("Reading")
    return None if value is None else float(value)


PDU = _members("/redfish/v1/PowerEquipment/RackPDUs")[0] if MOCKUP.is_dir() else ""
PDU_DOC = _load(PDU) if MOCKUP.is_dir() else {}
OUTLETS = _members(PDU_DOC["Outlets"]["@odata.id"]) if MOCKUP.is_dir() else []


def _outlet_number(outlet_id: str) -> int:
    return [o.rsplit("/", 1)[-1] for o in OUTLETS].index(outlet_id) + 1


@pytest.fixture
def server() -> Iterator[PduMockupServer]:
    assert MOCKUP.is_dir(), f"DMTF mockup missing at {MOCKUP}"
    srv = PduMockupServer(MOCKUP, switch_delay_s=0.15)
    yield srv
    srv.stop()


def _config(server: PduMockupServer, **options: object) -> DeviceConfig:
    return DeviceConfig(
        name="pdu-redfish",
        kind="pdu",
        driver="redfish-pdu",
        host=server.host,
        port=server.port,
        credentials=Credentials(username="admin", password=Secret(PASSWORD)),
        options={"scheme": "http", "poll_interval_s": 0.03, "confirm_timeout_s": 3.0, **options},
        timeout_s=5.0,
    )


@pytest.fixture
def pdu(server: PduMockupServer) -> Iterator[RedfishRackPdu]:
    driver = RedfishRackPdu(_config(server))
    yield driver
    driver.close()


def test_implements_the_pdu_protocols(pdu: RedfishRackPdu) -> None:
    assert isinstance(pdu, Device) and isinstance(pdu, PowerMeter) and isinstance(pdu, OutletSwitch)


def test_identify_matches_the_mockup(pdu: RedfishRackPdu) -> None:
    want = Identity(PDU_DOC["Manufacturer"], PDU_DOC["Model"], PDU_DOC["SerialNumber"], PDU_DOC["FirmwareVersion"])
    assert pdu.identify() == want
    assert want.serial  # the mockup does fill these in


def test_outlets_match_the_mockup(pdu: RedfishRackPdu) -> None:
    outlets = pdu.outlets()
    assert [o.outlet for o in outlets] == list(range(1, len(OUTLETS) + 1))
    assert pdu.outlet_ids() == [o.name for o in outlets]
    metered = 0
    for reading, path in zip(outlets, OUTLETS, strict=True):
        doc = _load(path)
        assert reading.name == doc["Id"]
        assert reading.on is (doc.get("PowerState", "On") == "On")
        assert reading.power_w == _reading(doc, "PowerWatts")
        assert reading.current_a == _reading(doc, "CurrentAmps")
        metered += reading.power_w is not None
    assert metered >= 5  # most mockup outlets are metered: the readings were really compared


def test_unmanaged_outlet_is_on_without_readings(pdu: RedfishRackPdu) -> None:
    unmanaged = [p for p in OUTLETS if "PowerState" not in _load(p)]
    assert unmanaged, "the mockup has an un-managed outlet"
    n = OUTLETS.index(unmanaged[0]) + 1
    reading = pdu.outlets()[n - 1]
    assert (reading.on, reading.power_w, reading.current_a) == (True, None, None)


def test_power_watts_from_metrics(pdu: RedfishRackPdu) -> None:
    metrics = _load(PDU_DOC["Metrics"]["@odata.id"])
    assert pdu.power_watts() == float(metrics["PowerWatts"]["Reading"])


def _mains_expected() -> float:
    total = 0.0
    for path in _members(PDU_DOC["Mains"]["@odata.id"]):
        doc = _load(path)
        if "PowerWatts" in doc:
            total += doc["PowerWatts"]["Reading"]
        else:
            lines = doc["PolyPhasePowerWatts"]
            total += sum(lines[k]["Reading"] for k in ("Line1ToNeutral", "Line2ToNeutral", "Line3ToNeutral"))
    return total


def test_power_watts_from_mains(server: PduMockupServer) -> None:
    driver = RedfishRackPdu(_config(server, power_source="mains"))
    try:
        assert driver.power_watts() == pytest.approx(_mains_expected())
    finally:
        driver.close()


def test_auto_falls_back_to_mains_when_metrics_is_missing(server: PduMockupServer, pdu: RedfishRackPdu) -> None:
    server.hidden.add(PDU_DOC["Metrics"]["@odata.id"])
    assert pdu.power_watts() == pytest.approx(_mains_expected())


def test_metrics_only_does_not_fall_back(server: PduMockupServer) -> None:
    server.hidden.add(PDU_DOC["Metrics"]["@odata.id"])
    driver = RedfishRackPdu(_config(server, power_source="metrics"))
    try:
        with pytest.raises(DeviceError, match="404") as info:
            driver.power_watts()
        assert info.value.device == "pdu-redfish"
    finally:
        driver.close()


def test_set_outlet_off_then_on_posts_power_control_and_waits(server: PduMockupServer, pdu: RedfishRackPdu) -> None:
    path = OUTLETS[0]
    doc = _load(path)
    target = doc["Actions"]["#Outlet.PowerControl"]["target"]
    n = _outlet_number(doc["Id"])
    assert pdu.outlets()[n - 1].on is True
    pdu.set_outlet(n, False)
    # The outlet showed PoweringOff first: returning means the driver polled until "Off".
    assert server.outlet_doc(path)["PowerState"] == "Off"
    off = pdu.outlets()[n - 1]
    assert (off.on, off.power_w, off.current_a) == (False, 0.0, 0.0)
    pdu.set_outlet(n, True)
    on = pdu.outlets()[n - 1]
    assert (on.on, on.power_w) == (True, _reading(doc, "PowerWatts"))
    assert server.actions == [(target, {"PowerState": "Off"}), (target, {"PowerState": "On"})]


def test_set_outlet_times_out_when_the_pdu_does_not_switch(server: PduMockupServer) -> None:
    server.switch_delay_s = 5.0
    driver = RedfishRackPdu(_config(server, confirm_timeout_s=0.2))
    try:
        with pytest.raises(DeviceTimeout) as info:
            driver.set_outlet(2, False)
        message = str(info.value)
        assert "switch outlet 2 off" in message and OUTLETS[1] in message and "PoweringOff" in message
        assert PASSWORD not in message
    finally:
        driver.close()


def test_unmanaged_outlet_cannot_be_switched(server: PduMockupServer, pdu: RedfishRackPdu) -> None:
    n = next(i for i, p in enumerate(OUTLETS, start=1) if "PowerState" not in _load(p))
    with pytest.raises(DeviceError, match="not switchable"):
        pdu.set_outlet(n, False)
    assert server.actions == []


def test_no_such_outlet(server: PduMockupServer, pdu: RedfishRackPdu) -> None:
    with pytest.raises(DeviceError, match=rf"no such outlet \(PDU has 1\.\.{len(OUTLETS)}\)"):
        pdu.set_outlet(len(OUTLETS) + 1, True)
    assert server.actions == []


def test_pdu_id_option_and_bad_options(server: PduMockupServer) -> None:
    driver = RedfishRackPdu(_config(server, pdu_id=PDU_DOC["Id"]))
    try:
        assert driver.identify().serial == PDU_DOC["SerialNumber"]
    finally:
        driver.close()
    missing = RedfishRackPdu(_config(server, pdu_id="no-such-pdu"))
    try:
        with pytest.raises(DeviceError, match="404"):
            missing.identify()
    finally:
        missing.close()
    with pytest.raises(ConfigError, match="power_source"):
        RedfishRackPdu(_config(server, power_source="guess"))


def test_malformed_outlet_body_is_a_protocol_error(server: PduMockupServer, pdu: RedfishRackPdu) -> None:
    from tests.support.static_http import RawBody

    server.raw[OUTLETS[0]] = RawBody(json.dumps({"Id": "A1", "PowerState": "Sideways"}).encode())
    with pytest.raises(DeviceProtocolError, match="unexpected PowerState 'Sideways'"):
        pdu.outlets()
