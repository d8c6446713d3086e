"""Every registered SNMP PDU map, served by the simulated agent and read back by its real driver.

The simulated agent serves a vendor from the same ``SnmpPduMap`` the driver reads, so this test
checks what crosses the wire against the model, not against the map: identity, every outlet's
name, state, power and current, the total power and (where the map has them) the inlet and
phase readings. The model is set up so that every outlet differs (each node at another load, one
outlet off), so a map column that points at another column's OID, an index missing from a
template, swapped state codes or a command on the wrong object give wrong values and fail
(``test_a_map_column_on_the_wrong_oid_fails_the_check`` shows it). Whether the map's OIDs are the
vendor's real ones is checked against independently written tables in
tests/peers/test_pdu_vendors_snmpd.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rackval.drivers import registry
from rackval.drivers.capabilities import Identity
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.pdu.snmp_pdu import SnmpPdu
from rackval.drivers.pdu.snmp_pdu_map import Reading, SnmpPduMap
from rackval.sim import pdu_vendors
from rackval.sim.clock import SimClock
from rackval.sim.model import QUASI_STATIC_PARAMS, RackModel, RackSize
from rackval.sim.snmp_agent import SnmpAgentServer, served_objects, start_pdu_agent
from tests.support.sim_snmp_agents import Agent

PDU = "pdu-a"
LOADS = {"node01": 0.1, "node02": 0.4, "node03": 0.7, "node04": 1.0}
OFF_OUTLET = 2  # switched off in the model before reading: its state, power and current must say so
VENDORS = [v.driver for v in pdu_vendors.vendors()]


def make_model(make: str) -> RackModel:
    model = RackModel(RackSize(nodes=4, pdu_vendor_a=make, pdu_vendor_b=make), SimClock(time_scale=0))
    for node, load in LOADS.items():
        model.set_utilization(node, load)
    model.set_outlet(PDU, OFF_OUTLET, False)
    return model


def lsb(reading: Reading | None, unit: str, pdu_map: SnmpPduMap) -> float:
    """The value of one raw unit of a reading as the simulated agent encodes it."""
    assert reading is not None and pdu_map.agent is not None
    digits = pdu_map.agent.decimal_digits.get(unit, 0) if reading.digits is not None else 0
    return reading.scale / 10**digits


def check_read_back(driver: SnmpPdu, model: RackModel) -> None:
    """What the driver reads over SNMP is the model's PDU (within the meter's 1 % and the wire's resolution)."""
    m = driver.map
    pdu = model.pdus[PDU]
    info = pdu.info
    assert driver.identify() == Identity(m.vendor, info.model, info.serial, info.firmware)
    outlets = driver.outlets()
    assert [o.outlet for o in outlets] == sorted(pdu.outlets)
    assert [o.name for o in outlets] == [pdu.outlets[n].name for n in sorted(pdu.outlets)]
    assert [o.on for o in outlets] == [pdu.outlets[n].on for n in sorted(pdu.outlets)]
    power_lsb, current_lsb = lsb(m.outlet_power_w, "W", m), lsb(m.outlet_current_a, "A", m)
    for o in outlets:
        true_w, true_a = model.outlet_power_w(PDU, o.outlet), model.outlet_current_a(PDU, o.outlet)
        assert o.power_w == pytest.approx(true_w, rel=0.03, abs=power_lsb), (o, true_w)
        assert o.current_a == pytest.approx(true_a, rel=0.03, abs=current_lsb), (o, true_a)
    powers = [o.power_w for o in outlets if o.on]
    assert len(set(powers)) == len(powers), "every outlet that is on draws a different power"
    total_lsb = m.device_power_w.scale if m.device_power_w is not None else 1.0
    assert driver.power_watts() == pytest.approx(model.pdu_power_w(PDU), rel=0.03, abs=total_lsb)
    if m.inlets is not None and m.inlets.pole_power_w is not None:
        poles = [r for r in driver.inlet_readings() if r.pole is not None]
        assert [r.pole for r in poles] == [1, 2, 3]
        for r in poles:
            assert r.power_w == pytest.approx(model.pdu_phase_power_w(PDU, r.pole or 0), rel=0.03, abs=2.0)
            assert r.voltage_v in (None, pytest.approx(pdu.voltage_v, rel=0.03))


@pytest.fixture(params=VENDORS)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, RackModel, Agent]]:
    make = str(request.param)
    model = make_model(make)
    agent = Agent(model, PDU, "pdu", mib=make)
    try:
        yield make, model, agent
    finally:
        agent.stop()


def test_every_registered_snmp_pdu_driver_can_be_simulated() -> None:
    snmp_drivers = {
        name
        for name, entry in registry.available().items()
        if entry.kind == "pdu" and issubclass(registry.load(name), SnmpPdu)
    }
    assert set(VENDORS) == snmp_drivers, "an SNMP PDU map without an AgentProfile cannot be simulated"
    assert {"apc-rpdu2", "raritan-pdu2", "servertech-sentry4", "eaton-epdu"} <= snmp_drivers
    for v in pdu_vendors.vendors():
        assert pdu_vendors.vendor(v.driver) is v and pdu_vendors.vendor(v.map.vendor.upper()) is v
    with pytest.raises(ValueError, match=r"unknown PDU make 'acme' \(known: apc, apc-rpdu2, "):
        pdu_vendors.vendor("acme")


def test_the_driver_reads_the_simulated_pdu_back(served: tuple[str, RackModel, Agent]) -> None:
    make, model, agent = served
    driver = registry.load(make)(agent.v2c(agent.rw))
    try:
        check_read_back(driver, model)
        driver.set_outlet(3, False)  # the map's command objects reach the model, the state confirms it
        assert model.pdus[PDU].outlets[3].on is False
        driver.set_outlet(3, True)
        assert model.pdus[PDU].outlets[3].on is True
    finally:
        driver.close()


def test_the_driver_reads_it_over_snmpv3_too(served: tuple[str, RackModel, Agent]) -> None:
    make, model, agent = served
    driver = registry.load(make)(agent.v3())
    try:
        assert driver.identify().serial == model.pdus[PDU].info.serial
        assert driver.power_watts() == pytest.approx(model.pdu_power_w(PDU), rel=0.03, abs=10)
    finally:
        driver.close()


def test_a_map_column_on_the_wrong_oid_fails_the_check() -> None:
    """The check above can fail: current read from the power column gives the wrong numbers."""
    vendor = pdu_vendors.vendor("apc")
    good = vendor.map
    assert good.outlet_power_w is not None and good.outlet_current_a is not None
    broken = dataclasses.replace(
        good, outlet_current_a=dataclasses.replace(good.outlet_current_a, oid=good.outlet_power_w.oid)
    )
    model = make_model("apc")
    server = SnmpAgentServer(
        model, PDU, vendor=dataclasses.replace(vendor, map=broken), reboot_duration_s=1.0, host="127.0.0.1",
        community="c",
    )  # fmt: skip
    server._start()
    config = DeviceConfig(name=PDU, kind="pdu", driver="apc-rpdu2", host=server.host, port=server.port,
                          credentials=Credentials(snmp_version="2c", community=Secret("c")), timeout_s=2.0)  # fmt: skip
    driver = SnmpPdu(config, broken)
    try:
        with pytest.raises(AssertionError):
            check_read_back(driver, model)
    finally:
        driver.close()
        server.stop()


def test_maps_put_one_object_at_each_oid_and_unservable_choices_are_refused() -> None:
    for v in pdu_vendors.vendors():
        shown: dict[str, set[object]] = {}
        for template, value in served_objects(v.map):
            shown.setdefault(template.template, set()).add(repr(value))
        assert all(len(values) == 1 for values in shown.values()), f"{v.driver}: two different objects at one OID"
    no_profile = dataclasses.replace(pdu_vendors.vendor("apc").map, agent=None)
    with pytest.raises(ValueError, match="no agent profile"):
        served_objects(no_profile)
    model = make_model("apc")
    with pytest.raises(ValueError, match=r"mib must name a PDU make the simulator serves: unknown PDU make"):
        start_pdu_agent(model, PDU, community="c", mib="acme")


def test_a_simulated_rack_serves_the_make_its_params_choose(tmp_path: Path) -> None:
    """``pdu_vendor_a`` / ``_b`` by vendor or driver name: the rack file names the driver, which reads it."""
    from rackval.harness.inventory import load_inventory
    from rackval.harness.rack import Rack
    from rackval.sim.rack import SimulatedRack

    size = RackSize(nodes=1, pdu_vendor_a="eaton", pdu_vendor_b="servertech-sentry4", snmp_switches=0)
    sim = SimulatedRack.start(size, tmp_path / "sim", params=QUASI_STATIC_PARAMS)
    try:
        assert sim.rack_file is not None
        devices = yaml.safe_load(sim.rack_file.read_text())["devices"]
        rack = Rack(load_inventory(sim.rack_file))
        try:
            expected = (("pdu-a", "eaton-epdu", "Eaton"), ("pdu-b", "servertech-sentry4", "ServerTech"))
            for pdu, driver, vendor in expected:
                assert devices[pdu]["driver"] == driver
                info = sim.model.pdus[pdu].info
                assert rack.driver(pdu).identify() == Identity(vendor, info.model, info.serial, info.firmware)
                assert rack.driver(pdu).power_watts() == pytest.approx(sim.model.pdu_power_w(pdu), rel=0.03, abs=1)
        finally:
            rack.close()
    finally:
        sim.stop()
