"""The simulated BMC as a Redfish service: every resource observable through the protocol, with
the model's physics in the numbers, and every protocol fault seen by ``RedfishBmc`` as the right
error class.

The model runs the reference (dynamic) parameters on a frozen ``SimClock``: time passes only when
a test advances it, so "the cap is met within CorrectionInMs" or "the host is On after the
power-on time" are checked at exact virtual instants, in milliseconds of wall time.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from rackval.core.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.bmc.redfish import RedfishBmc
from rackval.sim.clock import SimClock
from rackval.sim.faults import make_fault
from rackval.sim.model import REFERENCE_PARAMS, RackModel, RackSize
from rackval.sim.redfish_server import SIM_EPOCH, RedfishServer, start_bmc_redfish
from tests.support.sim_redfish import CSDL_DIR, bmc_config

NODE = "node01"
BMC_NAME = f"bmc-{NODE}"
USER = "admin"
PASSWORD = "sim-service-pw-42"
V1 = "/redfish/v1"
CHASSIS = f"{V1}/Chassis/1"
SYSTEM = f"{V1}/Systems/1"
BMC_ACCURACY = 0.03  # the model's BMC meter: readings within 3 % of the true value
TIMING = REFERENCE_PARAMS.timing


@pytest.fixture
def clock() -> SimClock:
    return SimClock(time_scale=0)


@pytest.fixture
def model(clock: SimClock) -> RackModel:
    return RackModel(RackSize(nodes=2), clock, REFERENCE_PARAMS)


@pytest.fixture
def server(model: RackModel) -> Iterator[RedfishServer]:
    srv = start_bmc_redfish(model, NODE, username=USER, password=PASSWORD)
    yield srv
    srv.stop()


def _driver(server: RedfishServer, **options: Any) -> RedfishBmc:
    timeout = float(options.pop("timeout_s", 5.0))
    return RedfishBmc(bmc_config(server.host, server.port, USER, PASSWORD, timeout_s=timeout, **options))


@pytest.fixture
def bmc(server: RedfishServer) -> Iterator[RedfishBmc]:
    drv = _driver(server)
    yield drv
    drv.close()


@pytest.fixture
def http(server: RedfishServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"http://{server.host}:{server.port}", auth=(USER, PASSWORD), timeout=5.0, trust_env=False
    ) as client:
        yield client


def _get(http: httpx.Client, path: str) -> dict[str, Any]:
    resp = http.get(path)
    assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
    return resp.json()


# ---- host power ------------------------------------------------------------------------------
def test_reset_returns_at_once_and_power_state_follows_the_model_timeline(
    bmc: RedfishBmc, http: httpx.Client, model: RackModel, clock: SimClock
) -> None:
    assert bmc.power_state() == "On"
    bmc.reset("ForceOff")
    assert bmc.power_state() == "Off"
    assert _get(http, SYSTEM)["Status"]["State"] == "StandbyOffline"
    bmc.reset("On")  # 204 at once; the host takes host_power_on_s to come up
    assert bmc.power_state() == "PoweringOn"
    assert _get(http, SYSTEM)["Status"]["State"] == "Starting"
    clock.advance(TIMING.host_power_on_s * 0.9)
    assert bmc.power_state() == "PoweringOn"
    clock.advance(TIMING.host_power_on_s * 0.2)
    assert bmc.power_state() == "On"
    bmc.reset("ForceRestart")
    assert bmc.power_state() == "PoweringOn"
    clock.advance(TIMING.host_power_on_s + 1)
    assert bmc.power_state() == "On" and model.host_state(NODE) == "On"


def test_system_summaries_and_boot_override_patch(http: httpx.Client, model: RackModel) -> None:
    system = _get(http, SYSTEM)
    assert system["ProcessorSummary"]["Count"] >= 1 and system["MemorySummary"]["TotalSystemMemoryGiB"] > 0
    assert system["SerialNumber"] == model.nodes[NODE].info.serial
    assert system["BiosVersion"] == model.firmware(NODE)["BIOS"]
    resp = http.patch(SYSTEM, json={"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}})
    assert resp.status_code == 200
    boot = _get(http, SYSTEM)["Boot"]
    assert (boot["BootSourceOverrideTarget"], boot["BootSourceOverrideEnabled"]) == ("Pxe", "Once")
    assert http.patch(SYSTEM, json={"Boot": {"BootSourceOverrideTarget": "Floppy"}}).status_code == 400
    assert http.patch(SYSTEM, json={"PowerState": "Off"}).status_code == 400
    assert model.host_state(NODE) == "On"


# ---- power capping ---------------------------------------------------------------------------
def test_legacy_power_cap_settles_under_the_cap_after_correction_time(
    bmc: RedfishBmc, http: httpx.Client, model: RackModel, clock: SimClock
) -> None:
    model.set_utilization(NODE, 1.0)
    clock.advance(120)
    uncapped = bmc.power_watts()
    cap = 4000.0
    assert uncapped > cap * (1 + BMC_ACCURACY)
    assert bmc.power_limit() == (None, TIMING.power_cap_correction_ms)
    bmc.set_power_limit(cap)  # legacy PowerControl[0].PowerLimit
    limit = _get(http, f"{CHASSIS}/Power")["PowerControl"][0]["PowerLimit"]
    assert limit == {"LimitInWatts": cap, "LimitException": "LogEventOnly", "CorrectionInMs": 1000}
    assert model.power_cap(NODE) == cap
    assert bmc.power_watts() > cap * (1 + BMC_ACCURACY)  # no virtual time has passed yet
    clock.advance(TIMING.power_cap_correction_ms / 1000.0)
    assert model.node_input_power_w(NODE) < cap
    consumed = _get(http, f"{CHASSIS}/Power")["PowerControl"][0]["PowerConsumedWatts"]
    assert consumed < cap * (1 + BMC_ACCURACY)
    assert consumed == pytest.approx(model.node_input_power_w(NODE), rel=BMC_ACCURACY)
    assert model.gpu_event_reasons(NODE, 0) & 0x4  # SwPowerCap: the GPUs are held by the cap
    bmc.set_power_limit(None)
    assert bmc.power_limit()[0] is None and model.power_cap(NODE) is None
    clock.advance(2.0)
    assert bmc.power_watts() > cap * (1 + BMC_ACCURACY)
    messages = [e.message_id for e in bmc.sel_entries()]
    assert messages[-2:] == ["Power.1.0.PowerLimitApplied", "Power.1.0.PowerLimitRemoved"]


def test_patched_correction_time_is_the_one_the_model_uses(
    http: httpx.Client, model: RackModel, clock: SimClock
) -> None:
    model.set_utilization(NODE, 1.0)
    cap = 3500.0
    body = {"PowerControl": [{"PowerLimit": {"LimitInWatts": cap, "CorrectionInMs": 5000}}]}
    resp = http.patch(f"{CHASSIS}/Power", json=body)
    assert resp.status_code == 200
    assert resp.json()["PowerControl"][0]["PowerLimit"]["CorrectionInMs"] == 5000
    clock.advance(1.0)  # one tau of a 5 s correction: still well above the cap
    assert model.node_input_power_w(NODE) > cap * 1.1
    clock.advance(4.0)
    assert model.node_input_power_w(NODE) < cap
    bad = {"PowerControl": [{"PowerLimit": {"LimitInWatts": 50}}]}  # below what the node can hold
    assert http.patch(f"{CHASSIS}/Power", json=bad).status_code == 400
    assert http.patch(f"{CHASSIS}/Power", json={"PowerControl": [{"PowerConsumedWatts": 1}]}).status_code == 400
    assert model.power_cap(NODE) == cap


def test_environment_metrics_power_limit(server: RedfishServer, http: httpx.Client, model: RackModel) -> None:
    bmc = _driver(server, power_source="environment")
    try:
        env = _get(http, f"{CHASSIS}/EnvironmentMetrics")
        limit = env["PowerLimitWatts"]
        assert limit["ControlMode"] == "Disabled"
        low, high = limit["AllowableMin"], limit["AllowableMax"]
        assert 1000 < low < high == sum(p.rated_w for p in model.nodes[NODE].psus)
        bmc.set_power_limit(3000.0)
        assert bmc.power_limit() == (3000.0, None)
        assert model.power_cap(NODE) == 3000.0
        limit = _get(http, f"{CHASSIS}/EnvironmentMetrics")["PowerLimitWatts"]
        assert (limit["SetPoint"], limit["ControlMode"]) == (3000.0, "Automatic")
        posts = server.request_count("PATCH")
        with pytest.raises(DeviceError, match="allowable range"):
            bmc.set_power_limit(low - 10)  # refused by the driver from AllowableMin, before a PATCH
        assert server.request_count("PATCH") == posts
        bmc.set_power_limit(None)
        assert bmc.power_limit() == (None, None) and model.power_cap(NODE) is None
        # Enabling again without a new set point restores the last one.
        resp = http.patch(f"{CHASSIS}/EnvironmentMetrics", json={"PowerLimitWatts": {"ControlMode": "Automatic"}})
        assert resp.status_code == 200 and model.power_cap(NODE) == 3000.0
    finally:
        bmc.close()


def test_environment_metrics_readings_match_model(http: httpx.Client, model: RackModel) -> None:
    model.set_utilization(NODE, 0.5)
    env = _get(http, f"{CHASSIS}/EnvironmentMetrics")
    assert env["PowerWatts"]["Reading"] == pytest.approx(model.node_input_power_w(NODE), rel=BMC_ACCURACY)
    assert env["TemperatureCelsius"]["Reading"] == pytest.approx(model.node_outlet_temperature_c(NODE), abs=0.05)
    fans = env["FanSpeedsPercent"]
    assert len(fans) == model.nodes[NODE].fans
    assert fans[0]["Reading"] == pytest.approx(model.fan_speed_percent(NODE), abs=0.05)
    assert fans[0]["SpeedRPM"] == model.fan_rpm(NODE, 1)


# ---- PSUs, feeds and the SEL -----------------------------------------------------------------
def test_feed_loss_takes_a_psu_offline_and_logs_it(
    bmc: RedfishBmc, http: httpx.Client, model: RackModel, clock: SimClock
) -> None:
    clock.advance(100.0)
    fid = model.inject(make_fault("feed_loss", "A"))  # PSU1 is on feed A, PSU2 on B
    power = _get(http, f"{CHASSIS}/Power")
    psu1, psu2 = power["PowerSupplies"]
    assert psu1["Status"] == {"State": "UnavailableOffline", "Health": "Critical"}
    assert psu1["LineInputVoltage"] == 0 and psu1["PowerInputWatts"] == 0
    assert psu2["Status"] == {"State": "Enabled", "Health": "OK"}
    assert psu2["LineInputVoltage"] == pytest.approx(REFERENCE_PARAMS.pdu_voltage_v, rel=BMC_ACCURACY)
    assert psu2["PowerInputWatts"] == pytest.approx(model.node_input_power_w(NODE), rel=BMC_ACCURACY)
    new = _get(http, f"{CHASSIS}/PowerSubsystem/PowerSupplies/PSU1")
    assert new["Status"]["State"] == "UnavailableOffline" and new["LineInputStatus"] == "LossOfInput"
    metrics = _get(http, f"{CHASSIS}/PowerSubsystem/PowerSupplies/PSU1/Metrics")
    assert metrics["InputVoltage"]["Reading"] == 0 and metrics["InputPowerWatts"]["Reading"] == 0
    metrics2 = _get(http, f"{CHASSIS}/PowerSubsystem/PowerSupplies/PSU2/Metrics")
    assert metrics2["OutputPowerWatts"]["Reading"] == pytest.approx(model.node_dc_power_w(NODE), rel=BMC_ACCURACY)
    assert metrics2["InputPowerWatts"]["Reading"] > metrics2["OutputPowerWatts"]["Reading"]  # PSU losses
    assert _get(http, CHASSIS)["Status"]["HealthRollup"] == "Critical"
    assert bmc.power_state() == "On"  # the idle node runs on PSU2 alone
    lost = [e for e in bmc.sel_entries() if e.message_id == "Power.1.0.PowerSupplyInputLost"]
    assert len(lost) == 1 and lost[0].severity == "Warning" and "PSU1" in lost[0].message
    created = datetime.fromisoformat(lost[0].created.replace("Z", "+00:00"))
    assert created == SIM_EPOCH + timedelta(seconds=100)
    model.clear_fault(fid)
    assert _get(http, f"{CHASSIS}/Power")["PowerSupplies"][0]["Status"]["Health"] == "OK"
    assert bmc.sel_entries()[-1].message_id == "Power.1.0.PowerSupplyInputRestored"


def test_feed_loss_under_full_load_overloads_the_last_psu(bmc: RedfishBmc, model: RackModel) -> None:
    model.set_utilization(NODE, 1.0)
    model.inject(make_fault("feed_loss", "B"))
    assert bmc.power_state() == "Off"  # 6 kW on one 3.3 kW PSU: the node trips
    last = bmc.sel_entries()[-1]
    assert (last.message_id, last.severity) == ("Power.1.0.PowerSupplyOverload", "Critical")


def test_psu_failure_is_critical_but_keeps_line_voltage(http: httpx.Client, model: RackModel) -> None:
    model.inject(make_fault("psu_failure", NODE, "PSU2"))
    psu2 = _get(http, f"{CHASSIS}/Power")["PowerSupplies"][1]
    assert psu2["Status"] == {"State": "Enabled", "Health": "Critical"}
    assert psu2["LineInputVoltage"] > 200 and psu2["PowerInputWatts"] == 0
    assert _get(http, f"{CHASSIS}/PowerSubsystem/PowerSupplies/PSU2")["LineInputStatus"] == "Normal"


def test_clear_log_action_empties_the_sel(bmc: RedfishBmc, http: httpx.Client, model: RackModel) -> None:
    model.inject(make_fault("fan_failure", NODE, "Fan1"))
    entries = _get(http, f"{SYSTEM}/LogServices/SEL/Entries")
    assert entries["Members@odata.count"] == len(model.sel(NODE)) >= 1
    member = entries["Members"][0]  # LogEntryCollection members come expanded
    assert member["EntryType"] == "SEL" and member["Severity"] in ("OK", "Warning", "Critical")
    assert _get(http, member["@odata.id"])["MessageId"] == member["MessageId"]
    service = _get(http, f"{SYSTEM}/LogServices/SEL")
    target = service["Actions"]["#LogService.ClearLog"]["target"]
    assert http.post(target, json={}).status_code == 204
    assert bmc.sel_entries() == [] and model.sel(NODE) == []
    assert http.get(member["@odata.id"]).status_code == 404


# ---- thermal -------------------------------------------------------------------------------
def test_fan_failure_shows_a_fan_at_zero_rpm(
    bmc: RedfishBmc, http: httpx.Client, model: RackModel, clock: SimClock
) -> None:
    model.set_utilization(NODE, 0.3)
    healthy_rpm = _get(http, f"{CHASSIS}/ThermalSubsystem/Fans/Fan3")["SpeedPercent"]["SpeedRPM"]
    model.inject(make_fault("fan_failure", NODE, "Fan3"))
    clock.advance(10)
    fans = _get(http, f"{CHASSIS}/Thermal")["Fans"]
    assert [f["Reading"] for f in fans].count(0) == 1 and fans[2]["Reading"] == 0
    assert fans[2]["Status"]["Health"] == "Critical"
    max_rpm = REFERENCE_PARAMS.fans.max_rpm
    assert all(f["Reading"] == max_rpm for i, f in enumerate(fans) if i != 2)  # the others at 100 %
    assert 0 < healthy_rpm < max_rpm
    fan3 = _get(http, f"{CHASSIS}/ThermalSubsystem/Fans/Fan3")
    assert fan3["SpeedPercent"] == {"Reading": 0.0, "SpeedRPM": 0, "DataSourceUri": f"{CHASSIS}/Sensors/Fan3"}
    assert _get(http, f"{CHASSIS}/ThermalSubsystem/Fans/Fan1")["SpeedPercent"]["Reading"] == 100.0
    assert _get(http, f"{CHASSIS}/Sensors/Fan3")["SpeedRPM"] == 0
    assert _get(http, f"{CHASSIS}/ThermalSubsystem")["Status"]["HealthRollup"] == "Critical"
    last = bmc.sel_entries()[-1]
    assert last.severity == "Critical" and "Fan3" in last.message


def test_per_gpu_temperatures_and_thresholds(
    bmc: RedfishBmc, http: httpx.Client, model: RackModel, clock: SimClock
) -> None:
    model.set_utilization(NODE, 1.0)
    model.inject(make_fault("gpu_overheat", NODE, "GPU2", r_th_factor=3.0))
    clock.advance(300)
    temps = bmc.temperatures()
    for i in range(model.nodes[NODE].gpus):
        assert temps[f"GPU{i} Temp"] == pytest.approx(model.gpu_temperature_c(NODE, i), abs=0.05)
    assert temps["GPU2 Temp"] > max(v for k, v in temps.items() if k.startswith("GPU") and k != "GPU2 Temp") + 5
    sensor = _get(http, f"{CHASSIS}/Sensors/GPU2Temp")
    thermal = REFERENCE_PARAMS.thermal
    assert (sensor["ReadingType"], sensor["ReadingUnits"]) == ("Temperature", "Cel")
    assert sensor["Thresholds"]["UpperCaution"]["Reading"] == thermal.gpu_slowdown_c
    assert sensor["Thresholds"]["UpperCritical"]["Reading"] == thermal.gpu_hw_slowdown_c
    assert sensor["Reading"] == pytest.approx(thermal.gpu_slowdown_c, abs=0.1)  # throttled at the limit
    assert sensor["Status"]["Health"] == "Warning"
    assert _get(http, f"{CHASSIS}/Sensors/GPU0Temp")["Status"]["Health"] == "OK"
    metrics = _get(http, f"{CHASSIS}/ThermalSubsystem/ThermalMetrics")
    assert metrics["TemperatureSummaryCelsius"]["Internal"]["Reading"] == sensor["Reading"]
    assert metrics["TemperatureSummaryCelsius"]["Intake"]["Reading"] == model.ambient_c


def test_sensors_collection_expands_in_one_request(http: httpx.Client, server: RedfishServer) -> None:
    features = _get(http, V1)["ProtocolFeaturesSupported"]["ExpandQuery"]
    assert features["Levels"] is True and features["MaxLevels"] == 1
    before = server.request_count("GET")
    expanded = _get(http, f"{CHASSIS}/Sensors?$expand=.($levels=1)")
    assert server.request_count("GET") == before + 1
    kinds = {m["ReadingType"] for m in expanded["Members"]}
    assert kinds == {"Temperature", "Power", "Voltage", "Percent"}
    total = next(m for m in expanded["Members"] if m["Id"] == "TotalPower")
    assert total["ReadingUnits"] == "W" and total["Reading"] > 0
    chassis = _get(http, f"{CHASSIS}?$expand=*")
    assert chassis["Links"]["ComputerSystems"][0]["Id"] == "1"  # * expands links too
    assert "Id" not in _get(http, f"{CHASSIS}?$expand=.")["Links"]["ComputerSystems"][0]  # . does not
    assert http.get(f"{CHASSIS}/Sensors?$expand=.($levels=2)").status_code == 400
    assert http.get(f"{CHASSIS}/Sensors?$select=Reading").status_code == 501


# ---- firmware and manager ------------------------------------------------------------------
def test_firmware_off_baseline_is_visible(bmc: RedfishBmc, http: httpx.Client, model: RackModel) -> None:
    inventory = bmc.firmware_inventory()
    assert inventory == {**model.firmware(BMC_NAME), **model.firmware(NODE)}
    model.inject(make_fault("firmware_off_baseline", BMC_NAME))
    model.inject(make_fault("firmware_off_baseline", NODE, "GPU3", version="96.00.61.00.01"))
    inventory = bmc.firmware_inventory()
    assert inventory["BMC"] == "2.18.0-offbaseline" == bmc.identify().firmware
    assert inventory["GPU3"] == "96.00.61.00.01" and inventory["GPU2"] == model.baseline_firmware(NODE)["GPU2"]
    doc = _get(http, f"{V1}/UpdateService/FirmwareInventory/GPU3")
    assert doc["Updateable"] is False and doc["Status"]["Health"] == "Warning"
    assert _get(http, f"{V1}/Managers/bmc")["FirmwareVersion"] == "2.18.0-offbaseline"


def test_started_by_bmc_name_and_manager_clock(model: RackModel, clock: SimClock) -> None:
    srv = start_bmc_redfish(model, BMC_NAME, username=USER, password=PASSWORD)
    try:
        assert srv.node == NODE and srv.device == BMC_NAME
        clock.advance(3600)
        with httpx.Client(base_url=f"http://{srv.host}:{srv.port}", auth=(USER, PASSWORD), trust_env=False) as c:
            manager = c.get(f"{V1}/Managers/bmc").json()
        assert manager["DateTime"] == "2026-01-01T01:00:00Z"
    finally:
        srv.stop()


# ---- protocol: $metadata, headers, methods ---------------------------------------------------
def _crawl(http: httpx.Client, limit: int = 300) -> dict[str, dict[str, Any]]:
    """Every resource reachable from the service root (bounded)."""
    seen: dict[str, dict[str, Any]] = {}
    todo = [V1]

    def links(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "@odata.id" and isinstance(item, str) and "#" not in item:
                    yield item
                else:
                    yield from links(item)
        elif isinstance(value, list):
            for item in value:
                yield from links(item)

    while todo and len(seen) < limit:
        path = todo.pop().rstrip("/")
        if path in seen:
            continue
        seen[path] = _get(http, path)
        todo += [p for p in links(seen[path]) if p.rstrip("/") not in seen]
    return seen


def test_metadata_lists_every_schema_used_and_resolves_offline(http: httpx.Client) -> None:
    resp = httpx.get(f"{http.base_url}{V1}/$metadata", trust_env=False)  # no credentials needed
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/xml")
    assert resp.headers["odata-version"] == "4.0"
    root = ET.fromstring(resp.text)
    edmx = "{http://docs.oasis-open.org/odata/ns/edmx}"
    included: set[str] = set()
    for ref in root.iter(f"{edmx}Reference"):
        schema_file = CSDL_DIR / ref.attrib["Uri"].rsplit("/", 1)[-1]
        assert schema_file.is_file(), f"$metadata references {ref.attrib['Uri']}, not in {CSDL_DIR}"
        text = schema_file.read_text()
        for inc in ref.iter(f"{edmx}Include"):
            namespace = inc.attrib["Namespace"]
            assert f'Namespace="{namespace}"' in text, f"{namespace} is not defined in {schema_file.name}"
            included.add(namespace)
    resources = _crawl(http)
    assert len(resources) > 60
    for path, doc in resources.items():
        odata_type = doc["@odata.type"].lstrip("#")
        namespace = odata_type.rsplit(".", 1)[0]
        assert namespace in included, f"{path}: {odata_type} not in $metadata"
        entity = odata_type.rsplit(".", 1)[1]
        assert doc["@odata.context"] == f"{V1}/$metadata#{entity}.{entity}", path
        assert doc["@odata.id"].rstrip("/") == path or path == V1


def test_headers_methods_and_errors(http: httpx.Client) -> None:
    resp = http.get(f"{CHASSIS}/Power")
    assert resp.headers["odata-version"] == "4.0"
    assert resp.headers["etag"].startswith('W/"')
    assert "PATCH" in resp.headers["allow"]
    assert http.head(f"{CHASSIS}/Power").status_code == 200
    assert "PATCH" not in http.get(f"{CHASSIS}/Thermal").headers["allow"]
    resp = http.put(f"{CHASSIS}/Power", json={})
    assert resp.status_code == 405 and "GET" in resp.headers["allow"]
    assert http.patch(f"{CHASSIS}/Thermal", json={"Fans": []}).status_code == 405
    assert http.get(f"{V1}/UpdateService/FirmwareInventory/NoSuch").status_code == 404
    err = http.patch(f"{CHASSIS}/Power", content=b"{not json").json()["error"]
    assert err["code"].endswith("MalformedJSON") and err["@Message.ExtendedInfo"][0]["Message"]
    assert _get(http, f"{V1}/odata")["value"][0]["url"] == "/redfish/v1/"


# ---- protocol faults as the driver sees them ----------------------------------------------
def test_auth_failure_refuses_valid_credentials(server: RedfishServer, bmc: RedfishBmc, model: RackModel) -> None:
    assert bmc.power_state() == "On"  # holds a session when the fault starts
    fid = model.inject(make_fault("auth_failure", BMC_NAME))
    with pytest.raises(DeviceAuthError) as info:
        bmc.power_state()
    assert info.value.device == BMC_NAME and PASSWORD not in str(info.value)
    fresh = _driver(server, auth="basic")
    try:
        with pytest.raises(DeviceAuthError):
            fresh.identify()
        model.clear_fault(fid)
        assert fresh.identify().serial == model.nodes[NODE].info.serial
        assert bmc.power_state() == "On"
    finally:
        fresh.close()


def test_session_exhaustion_is_a_503_device_error(server: RedfishServer, model: RackModel) -> None:
    holder = _driver(server)
    late = _driver(server, retries_503=1)
    try:
        assert holder.power_state() == "On"
        model.inject(make_fault("session_exhaustion", BMC_NAME, max_sessions=1))
        assert holder.power_state() == "On"  # its session stays valid
        with pytest.raises(DeviceError, match="503") as info:
            late.power_state()
        assert not isinstance(info.value, DeviceAuthError | DeviceTimeout)
        assert "log in" in info.value.operation
        holder.close()
        assert late.power_state() == "On"  # a freed session slot is usable
    finally:
        holder.close()
        late.close()


def test_device_silent_times_out_and_stop_is_bounded(model: RackModel) -> None:
    srv = start_bmc_redfish(model, NODE, username=USER, password=PASSWORD)
    bmc = _driver(srv, timeout_s=0.5)
    try:
        fid = model.inject(make_fault("device_silent", BMC_NAME))
        started = time.monotonic()
        with pytest.raises(DeviceTimeout):
            bmc.power_state()
        assert time.monotonic() - started < 3.0
        deadline = time.monotonic() + 2.0  # the client gave up: the held handler thread ends too
        while srv.connection_sockets() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.connection_sockets() == []
        model.clear_fault(fid)
        bmc.close()
        assert bmc.power_state() == "On"
        model.inject(make_fault("device_silent", BMC_NAME))
        with pytest.raises(DeviceTimeout):
            bmc.power_state()  # leaves a server thread holding a request
    finally:
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 3.0  # held handlers are released, not waited out
        assert srv.connection_sockets() == []
        bmc.close()


def test_device_slow_delays_every_answer(server: RedfishServer, bmc: RedfishBmc, model: RackModel) -> None:
    assert bmc.power_state() == "On"
    fid = model.inject(make_fault("device_slow", BMC_NAME, delay_s=0.3, jitter_s=0.05))
    started = time.monotonic()
    assert bmc.power_state() == "On"
    assert 0.3 <= time.monotonic() - started < 2.0
    model.clear_fault(fid)
    fid = model.inject(make_fault("device_slow", BMC_NAME, delay_s=2.0))
    impatient = _driver(server, timeout_s=0.4)
    try:
        with pytest.raises(DeviceTimeout):
            impatient.power_state()
    finally:
        model.clear_fault(fid)
        impatient.close()


@pytest.mark.parametrize("mode", ["truncate", "garbage", "wrong_length"])
def test_malformed_reply_is_a_protocol_error(server: RedfishServer, model: RackModel, mode: str) -> None:
    bmc = _driver(server, timeout_s=2.0)
    try:
        assert bmc.power_state() == "On"
        fid = model.inject(make_fault("malformed_reply", BMC_NAME, mode=mode))
        with pytest.raises(DeviceProtocolError) as info:
            bmc.power_state()
        assert info.value.device == BMC_NAME
        model.clear_fault(fid)
        assert bmc.power_state() == "On"
    finally:
        bmc.close()


def test_malformed_reply_probability_affects_a_fraction(http: httpx.Client, model: RackModel) -> None:
    model.inject(make_fault("malformed_reply", BMC_NAME, probability=0.5, mode="truncate"))
    bad = 0
    for _ in range(40):
        try:
            http.get(f"{CHASSIS}/Thermal").json()
        except ValueError:
            bad += 1
    assert 5 <= bad <= 35


def test_unpowered_bmc_is_silent_then_boots(model: RackModel, clock: SimClock) -> None:
    srv = start_bmc_redfish(model, NODE, username=USER, password=PASSWORD)
    bmc = _driver(srv, timeout_s=0.5, retries_503=0)
    try:
        model.set_feed("A", False)
        model.set_feed("B", False)
        with pytest.raises(DeviceTimeout):
            bmc.power_state()
        model.set_feed("A", True)
        model.set_feed("B", True)
        with pytest.raises(DeviceError, match="503"):
            bmc.power_state()  # booting: the web server answers 503
        clock.advance(TIMING.bmc_boot_s)
        assert bmc.power_state() == "PoweringOn"  # LastState restore policy: the host comes back
        clock.advance(TIMING.host_power_on_s)
        assert bmc.power_state() == "On"
    finally:
        srv.stop()
        bmc.close()
