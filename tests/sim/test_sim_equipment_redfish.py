"""The simulated CDU's and power shelves' Redfish services: DMTF's Service Validator with 0 FAIL,
readings that follow the model (faults included), control actions, and bad input refused.

The validator is a third party judging our payloads against DMTF's own CSDL (vendored in
tests/data/redfish/csdl), offline, in a subprocess bounded in time; the services are validated
with faults active (a failed pump, a leak, a failed rectifier, BBUs discharging), so Critical
and Warning statuses are validated too, not only a healthy tree.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from rackval.sim.clock import SimClock
from rackval.sim.faults import make_fault
from rackval.sim.model import REFERENCE_PARAMS, RackModel, RackSize
from rackval.sim.redfish_cdu import start_cdu_redfish
from rackval.sim.redfish_server import RedfishService, start_bmc_redfish
from rackval.sim.redfish_shelf import start_shelf_redfish
from rackval.sim.reference import load_model_params
from tests.support.sim_redfish import CSDL_DIR, run_validator

REPO = Path(__file__).resolve().parents[2]
SIZE, PARAMS = load_model_params(REPO / "racks" / "sim-liquid-params.yaml")
USER, PASSWORD = "admin", "equipment-pw-4321"
CDU = "/redfish/v1/ThermalEquipment/CDUs/1"
SHELF = "/redfish/v1/PowerEquipment/PowerShelves/1"


def liquid_rack() -> tuple[RackModel, SimClock]:
    clock = SimClock(time_scale=0.0)
    model = RackModel(SIZE, clock, PARAMS)
    for n in model.nodes:
        model.set_utilization(n, 0.8)
    clock.advance(300.0)
    return model, clock


def get(server: RedfishService, path: str) -> dict[str, Any]:
    reply = requests.get(f"http://{server.host}:{server.port}{path}", auth=(USER, PASSWORD), timeout=5)
    assert reply.status_code == 200, (path, reply.status_code, reply.text[:300])
    return reply.json()


def validate(server: RedfishService, tmp_path: Path, allowed: set[str] | None = None) -> list[str]:
    schemas = tmp_path / "schemas"
    shutil.copytree(CSDL_DIR, schemas)
    result = run_validator(f"http://{server.host}:{server.port}", USER, PASSWORD, schemas, tmp_path)
    tail = result.output[-3000:]
    assert "No module named" not in result.output, "the validator is not installed\n" + tail
    assert result.counts is not None, f"no summary table in the validator's output:\n{tail}"
    assert result.counts["FAIL"] == 0, f"validator FAILs ({result.counts}):\n" + "\n".join(result.failures[:40])
    assert result.failures == [] and result.returncode == 0, tail
    assert server.open_sessions == 0  # the validator logged out
    assert result.warning_kinds() <= (allowed or set()), result.warnings
    return result.validated


# ---- the DMTF validator -------------------------------------------------------------------------
def test_cdu_passes_the_service_validator(tmp_path: Path) -> None:
    model, clock = liquid_rack()
    model.inject(make_fault("pump_failure", "cdu1", "Pump2"))
    model.inject(make_fault("coolant_leak", "cdu1", rate_lpm=0.1))
    clock.advance(60.0)
    server = start_cdu_redfish(model, "cdu1", username=USER, password=PASSWORD)
    try:
        validated = validate(server, tmp_path)
    finally:
        server.stop()
    expected = {
        CDU, f"{CDU}/Pumps/Pump1", f"{CDU}/Filters/1", f"{CDU}/Reservoirs/1", f"{CDU}/LeakDetection",
        "/redfish/v1/Chassis/CDU/LeakDetectors/CDU-Moisture", f"{CDU}/SecondaryCoolantConnectors/1",
        f"{CDU}/PrimaryCoolantConnectors/1", "/redfish/v1/ThermalEquipment/CoolingLoops/Secondary",
        "/redfish/v1/Chassis/CDU/Sensors/SecondaryFlow",
    }  # fmt: skip
    assert not expected - set(validated), f"validator never reached {sorted(expected - set(validated))}"


def test_power_shelf_passes_the_service_validator(tmp_path: Path) -> None:
    model, _ = liquid_rack()
    model.inject(make_fault("rectifier_failure", "shelf1", "PSU2"))
    model.inject(make_fault("bbu_capacity_reduced", "shelf1", "BBU1"))
    model.shelves.set_mains("shelf1", "A", False)  # an open breaker: PowerState Off, BreakerState Off
    model.set_feed("A", False)
    model.set_feed("B", False)  # the BBUs discharge: every battery state is exercised
    assert model.shelves.reading("shelf1").bbus[0].mode == "Discharging"
    server = start_shelf_redfish(model, "shelf1", username=USER, password=PASSWORD)
    try:
        validated = validate(server, tmp_path)
    finally:
        server.stop()
    chassis = "/redfish/v1/Chassis/PowerShelf"
    expected = {
        SHELF, f"{SHELF}/Mains/AC1", f"{SHELF}/Branches/DC", f"{chassis}/PowerSubsystem",
        f"{chassis}/PowerSubsystem/PowerSupplies/PSU1",
        f"{chassis}/PowerSubsystem/PowerSupplies/PSU1/Metrics", f"{chassis}/PowerSubsystem/Batteries/BBU1",
        f"{chassis}/PowerSubsystem/Batteries/BBU1/Metrics", f"{chassis}/Sensors/VoltageDC",
    }  # fmt: skip
    assert not expected - set(validated), f"validator never reached {sorted(expected - set(validated))}"


# ---- readings and actions -----------------------------------------------------------------------
@pytest.fixture
def cdu() -> Any:
    model, clock = liquid_rack()
    server = start_cdu_redfish(model, "cdu1", username=USER, password=PASSWORD)
    yield model, clock, server
    server.stop()


def test_cdu_readings_follow_the_model_and_a_pump_failure(cdu: Any) -> None:
    model, _, server = cdu
    loop = get(server, f"{CDU}/SecondaryCoolantConnectors/1")
    true = model.cooling.cdu("cdu1")
    assert loop["FlowLitersPerMinute"]["Reading"] == pytest.approx(true.flow_lpm, rel=0.05)
    assert loop["SupplyTemperatureCelsius"]["Reading"] == pytest.approx(true.supply_c, rel=0.05)
    assert loop["HeatRemovedkW"]["Reading"] == pytest.approx(model._parts.cooling.heat_w() / 1000, rel=0.05)
    sensor = get(server, loop["FlowLitersPerMinute"]["DataSourceUri"])
    assert sensor["ReadingType"] == "LiquidFlowLPM" and sensor["ReadingUnits"] == "L/min"
    healthy_flow = true.flow_lpm
    model.inject(make_fault("pump_failure", "cdu1", "Pump1"))
    assert get(server, f"{CDU}/Pumps/Pump1")["Status"]["Health"] == "Critical"
    unit = get(server, CDU)
    assert unit["Status"]["Health"] == "Warning"  # N+1: one pump down is a warning
    assert unit["PumpRedundancy"][0]["MinNeededInGroup"] == 1
    assert unit["PumpRedundancy"][0]["Status"]["Health"] == "Warning"  # no spare left
    flow = get(server, f"{CDU}/SecondaryCoolantConnectors/1")["FlowLitersPerMinute"]["Reading"]
    assert flow < healthy_flow * 0.95


def test_cdu_leak_and_pump_control(cdu: Any) -> None:
    model, _, server = cdu
    model.inject(make_fault("coolant_leak", "cdu1"))
    detector = get(server, "/redfish/v1/Chassis/CDU/LeakDetectors/CDU-Moisture")
    assert detector["DetectorState"] == "Critical"
    assert get(server, f"{CDU}/LeakDetection")["Status"]["Health"] == "Critical"
    base = f"http://{server.host}:{server.port}"
    reply = requests.post(f"{base}{CDU}/Pumps/Pump2/Actions/Pump.SetMode", json={"Mode": "Disabled"},
                          auth=(USER, PASSWORD), timeout=5)  # fmt: skip
    assert reply.status_code == 204
    assert [p.status for p in model.cooling.reading("cdu1").pumps] == ["OK", "Stopped"]
    body = {"SpeedControlPercent": {"ControlMode": "Manual", "SetPoint": 90}}  # as the redfish-cdu driver sends it
    reply = requests.patch(f"{base}{CDU}/Pumps/Pump1", json=body,
                           auth=(USER, PASSWORD), timeout=5)  # fmt: skip
    assert reply.status_code == 200 and reply.json()["SpeedControlPercent"]["SetPoint"] == 90
    assert [p.speed_percent for p in model.cooling.cdu("cdu1").pumps] == [90.0, PARAMS.cooling.pump_speed_percent]
    bad = (
        {"SpeedControlPercent": {"SetPoint": 0}}, {"SpeedControlPercent": {"SetPoint": "fast"}}, {"Id": "x"},
        {"SpeedControlPercent": {"SetPoint": 50, "ControlMode": "Automatic"}},
    )  # fmt: skip
    for body in bad:
        reply = requests.patch(f"{base}{CDU}/Pumps/Pump1", json=body, auth=(USER, PASSWORD), timeout=5)
        assert reply.status_code == 400, body
    reply = requests.post(f"{base}{CDU}/Pumps/Pump2/Actions/Pump.SetMode", json={"Mode": "<b>x</b>"},
                          auth=(USER, PASSWORD), timeout=5)  # fmt: skip
    assert reply.status_code == 400
    assert model.cooling.cdu("cdu1").pumps[0].speed_percent == 90.0


def test_shelf_readings_follow_the_model_and_the_holdup(tmp_path: Path) -> None:
    model, clock = liquid_rack()
    server = start_shelf_redfish(model, "shelf1", username=USER, password=PASSWORD)
    try:
        chassis = "/redfish/v1/Chassis/PowerShelf/PowerSubsystem"
        psu = get(server, f"{chassis}/PowerSupplies/PSU1")
        assert psu["Status"]["Health"] == "OK"
        metrics = get(server, f"{chassis}/PowerSupplies/PSU1/Metrics")
        true = model.shelves.reading("shelf1").rectifiers[0]
        assert metrics["OutputPowerWatts"]["Reading"] == pytest.approx(true.output_w, rel=0.05)
        mains = get(server, f"{SHELF}/Mains/AC1")
        assert mains["PowerWatts"]["Reading"] > 0
        dc = get(server, f"{SHELF}/Branches/DC")
        assert dc["Voltage"]["Reading"] == pytest.approx(PARAMS.power_shelves.busbar_v, rel=0.05)
        assert dc["PowerWatts"]["Reading"] == pytest.approx(model.shelves.reading("shelf1").dc_w, rel=0.05)
        redundancy = get(server, chassis)["PowerSupplyRedundancy"][0]
        assert (redundancy["MinNeededInGroup"], redundancy["Status"]["Health"]) == (3, "OK")
        model.set_feed("A", False)
        model.set_feed("B", False)
        battery = get(server, f"{chassis}/Batteries/BBU1")
        assert battery["ChargeState"] == "Discharging"
        assert battery["StateOfHealthPercent"]["Reading"] == 100
        clock.advance(30.0)
        metrics = get(server, f"{chassis}/Batteries/BBU1/Metrics")
        assert 50 < metrics["ChargePercent"]["Reading"] < 95
        assert metrics["StoredEnergyWattHours"]["Reading"] < PARAMS.power_shelves.bbu_capacity_wh
        assert get(server, f"{SHELF}/Mains/AC1")["PowerWatts"]["Reading"] == 0
    finally:
        server.stop()


def test_equipment_servers_refuse_what_the_rack_lacks() -> None:
    model, _ = liquid_rack()
    with pytest.raises(ValueError, match=r"no CDU 'cdu9' in the model \(have \['cdu1'\]\)"):
        start_cdu_redfish(model, "cdu9", username=USER, password=PASSWORD)
    with pytest.raises(ValueError, match=r"no power shelf 'shelf99'"):
        start_shelf_redfish(model, "shelf99", username=USER, password=PASSWORD)


# ---- a liquid-cooled node's BMC -----------------------------------------------------------------
NODE_CHASSIS = "/redfish/v1/Chassis/1"


def test_liquid_node_bmc_passes_the_service_validator(tmp_path: Path) -> None:
    model, clock = liquid_rack()
    model.inject(make_fault("coolant_leak", "node01", rate_lpm=0.1))
    model.inject(make_fault("cold_plate_clogged", "node01", factor=50.0))
    clock.advance(60.0)
    server = start_bmc_redfish(model, "node01", username=USER, password=PASSWORD)
    try:
        validated = validate(server, tmp_path, allowed={"Deprecated Property Warning", "Deprecated URI Warning"})
    finally:
        server.stop()
    expected = {
        f"{NODE_CHASSIS}/ThermalSubsystem/CoolantConnectors/1", f"{NODE_CHASSIS}/ThermalSubsystem/LeakDetection",
        f"{NODE_CHASSIS}/LeakDetectors/Tray", f"{NODE_CHASSIS}/Sensors/CoolantFlow",
        f"{NODE_CHASSIS}/PowerSubsystem/PowerSupplies/PSU1",
    }  # fmt: skip
    assert not expected - set(validated), f"validator never reached {sorted(expected - set(validated))}"


def test_liquid_node_bmc_reports_its_coolant_and_leak_air_node_does_not() -> None:
    model, _ = liquid_rack()
    server = start_bmc_redfish(model, "node03", username=USER, password=PASSWORD)
    try:
        connector = get(server, f"{NODE_CHASSIS}/ThermalSubsystem/CoolantConnectors/1")
        flow = model.cooling.node_flow_lpm("node03")
        assert connector["FlowLitersPerMinute"]["Reading"] == pytest.approx(flow, rel=0.05)
        assert connector["ReturnTemperatureCelsius"]["Reading"] > connector["SupplyTemperatureCelsius"]["Reading"]
        model.inject(make_fault("cold_plate_clogged", "node03", factor=20.0))
        clogged = get(server, f"{NODE_CHASSIS}/ThermalSubsystem/CoolantConnectors/1")
        assert clogged["FlowLitersPerMinute"]["Reading"] < flow / 3
        assert clogged["Status"]["Health"] == "Warning"  # below the design's minimum flow
        model.inject(make_fault("coolant_leak", "node03"))
        assert get(server, f"{NODE_CHASSIS}/LeakDetectors/Tray")["DetectorState"] == "Critical"
        assert get(server, NODE_CHASSIS)["Status"]["HealthRollup"] == "Critical"
        psu = get(server, f"{NODE_CHASSIS}/Sensors/PSU1InputVoltage")
        assert psu["Reading"] == pytest.approx(PARAMS.power_shelves.busbar_v, rel=0.05)  # fed from the busbar
    finally:
        server.stop()
    air = RackModel(RackSize(nodes=1), SimClock(time_scale=0.0), REFERENCE_PARAMS)
    server = start_bmc_redfish(air, "node01", username=USER, password=PASSWORD)
    try:
        assert "CoolantConnectors" not in get(server, f"{NODE_CHASSIS}/ThermalSubsystem")
        reply = requests.get(f"http://{server.host}:{server.port}{NODE_CHASSIS}/ThermalSubsystem/CoolantConnectors",
                             auth=(USER, PASSWORD), timeout=5)  # fmt: skip
        assert reply.status_code == 404
    finally:
        server.stop()


def test_protocol_faults_on_the_cdu_act_on_its_server(cdu: Any) -> None:
    model, _, server = cdu
    fault = model.inject(make_fault("device_silent", "cdu1"))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"http://{server.host}:{server.port}{CDU}", auth=(USER, PASSWORD), timeout=0.5)
    model.clear_fault(fault)
    model.inject(make_fault("malformed_reply", "cdu1", mode="garbage"))
    reply = requests.get(f"http://{server.host}:{server.port}{CDU}", auth=(USER, PASSWORD), timeout=5)
    with pytest.raises(ValueError):
        reply.json()


def test_shelf_controls_switch_a_rectifier_and_a_mains_breaker() -> None:
    model, _ = liquid_rack()
    server = start_shelf_redfish(model, "shelf2", username=USER, password=PASSWORD)
    base = f"http://{server.host}:{server.port}"
    psus = "/redfish/v1/Chassis/PowerShelf/PowerSubsystem/PowerSupplies"
    try:
        reply = requests.post(f"{base}{psus}/PSU3/Actions/PowerSupply.Reset", json={"ResetType": "ForceOff"},
                              auth=(USER, PASSWORD), timeout=5)  # fmt: skip
        assert reply.status_code == 204
        assert model.shelves.reading("shelf2").rectifiers[2].status == "Off"
        assert get(server, f"{psus}/PSU3")["Status"]["State"] == "Disabled"
        reply = requests.post(f"{base}{psus}/PSU3/Actions/PowerSupply.Reset", json={"ResetType": "GracefulRestart"},
                              auth=(USER, PASSWORD), timeout=5)  # fmt: skip
        assert reply.status_code == 400
        requests.post(f"{base}{psus}/PSU3/Actions/PowerSupply.Reset", json={"ResetType": "On"},
                      auth=(USER, PASSWORD), timeout=5)  # fmt: skip
        assert model.shelves.reading("shelf2").rectifiers[2].status == "OK"
        # the breaker of mains AC1 (feed A): this shelf's feed-A rectifiers lose input, the feed stays up
        reply = requests.post(f"{base}{SHELF}/Mains/AC1/Actions/Circuit.BreakerControl", json={"PowerState": "Off"},
                              auth=(USER, PASSWORD), timeout=5)  # fmt: skip
        assert reply.status_code == 204
        assert [x.status for x in model.shelves.reading("shelf2").rectifiers] == ["NoInput", "OK"] * 3
        assert model.feed_up("A") and model.shelves.reading("shelf1").rectifiers[0].status == "OK"
        mains = get(server, f"{SHELF}/Mains/AC1")
        assert (mains["PowerState"], mains["BreakerState"], mains["Voltage"]["Reading"]) == ("Off", "Off", 0)
        assert model.shelves.busbar_up()  # the other shelves carry the busbar
        requests.post(f"{base}{SHELF}/Mains/AC1/Actions/Circuit.BreakerControl", json={"PowerState": "On"},
                      auth=(USER, PASSWORD), timeout=5)  # fmt: skip
        assert get(server, f"{SHELF}/Mains/AC1")["BreakerState"] == "Normal"
    finally:
        server.stop()


# ---- how many requests a poll takes ------------------------------------------------------------
def _driver(cls: Any, server: RedfishService, name: str, kind: str, **options: Any) -> Any:
    from rackval.drivers.config import Credentials, DeviceConfig, Secret

    config = DeviceConfig(
        name=name, kind=kind, driver="x", host=server.host, port=server.port,
        credentials=Credentials(username=USER, password=Secret(PASSWORD)),
        options={"scheme": "http", **options}, timeout_s=5.0,
    )  # fmt: skip
    driver = cls(config)
    sent: list[str] = []
    real = driver._transport.get

    def get(path: str) -> dict[str, Any]:
        sent.append(path)
        return real(path)

    driver._transport.get = get
    return driver, sent


def _shape(polled: list[Any]) -> list[Any]:
    """Every record's type, name and which of its fields have a value (text fields in full)."""
    records = [r for part in polled for r in (part if isinstance(part, list) else [part])]
    return [
        (type(r).__name__, [(k, v if isinstance(v, str | bool) else v is None) for k, v in vars(r).items()])
        for r in records
    ]


def test_a_poll_expands_member_collections_where_the_service_offers_it() -> None:
    """Pumps, filters, reservoirs and loops (CDU), feeds, the DC output and batteries (shelf): one
    ``$expand`` GET per collection instead of one GET per member, the same records; with option
    ``expand: false`` one GET per member, as before."""
    from rackval.drivers.cooling.redfish_cdu import RedfishCdu
    from rackval.drivers.power_shelf.redfish_shelf import RedfishPowerShelf

    model, _ = liquid_rack()
    servers = [start_cdu_redfish(model, "cdu1", username=USER, password=PASSWORD),
               start_shelf_redfish(model, "shelf1", username=USER, password=PASSWORD)]  # fmt: skip
    try:
        polls = {
            (RedfishCdu, "cdu1", "cdu"): lambda d: [d.pumps(), d.filters(), d.reservoirs(), d.loops()],
            (RedfishPowerShelf, "shelf1", "power_shelf"): lambda d: [d.feeds(), d.dc_output(), d.batteries()],
        }
        for server, ((cls, name, kind), poll) in zip(servers, polls.items(), strict=True):
            expanding, with_expand = _driver(cls, server, name, kind)
            one_by_one, without = _driver(cls, server, name, kind, expand=False)
            poll(expanding), poll(one_by_one)  # the service root and the member paths, found once
            with_expand.clear(), without.clear()
            assert _shape(poll(expanding)) == _shape(poll(one_by_one))  # the meters are noisy between reads
            assert any("$expand" in p for p in with_expand) and not any("$expand" in p for p in without)
            assert len(with_expand) < len(without), (name, with_expand, without)
            expanding.close(), one_by_one.close()
    finally:
        for server in servers:
            server.stop()
