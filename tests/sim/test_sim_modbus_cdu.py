"""The simulated Modbus TCP CDU, read and written with pymodbus's own client (a third party), laid
out as the generic register map (racks/modbus-maps/generic-cdu.yaml) says: readings follow the
model and its faults, writes reach it only through writable points, unknown addresses and bad
maps are refused. Last, the whole liquid rack started as ``rackval sim`` starts it: its rack file
lists the CDU (Redfish and Modbus) and the power shelves with the drivers that read them."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from rackval.sim.clock import SimClock
from rackval.sim.faults import make_fault
from rackval.sim.modbus_cdu import DEFAULT_MAP, load_points, start_cdu_modbus, write_register_map
from rackval.sim.model import REFERENCE_PARAMS, RackModel, RackSize
from rackval.sim.reference import load_model_params

REPO = Path(__file__).resolve().parents[2]
SIZE, PARAMS = load_model_params(REPO / "racks" / "sim-liquid-params.yaml")


@pytest.fixture
def cdu() -> Iterator[tuple[RackModel, ModbusTcpClient]]:
    clock = SimClock(time_scale=0.0)
    model = RackModel(SIZE, clock, PARAMS)
    for n in model.nodes:
        model.set_utilization(n, 0.8)
    clock.advance(300.0)
    server = start_cdu_modbus(model, "cdu1")
    client = ModbusTcpClient(server.host, port=server.port, timeout=3, retries=0)
    assert client.connect()
    try:
        yield model, client
    finally:
        client.close()
        server.stop()


def ok(reply: Any) -> Any:
    assert not reply.isError(), reply
    return reply


def f32(words: list[int], big: bool = True) -> float:
    hi, lo = words if big else words[::-1]
    return float(struct.unpack(">f", struct.pack(">HH", hi, lo))[0])


def s16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def test_readings_follow_the_model(cdu: tuple[RackModel, ModbusTcpClient]) -> None:
    model, client = cdu
    true = model.cooling.cdu("cdu1")
    regs = ok(client.read_input_registers(120, count=10)).registers
    assert s16(regs[0]) / 10 == pytest.approx(true.supply_c, rel=0.05)  # secondary supply, tenths of C
    assert f32(regs[3:5]) == pytest.approx(true.flow_lpm, rel=0.05)  # secondary flow, f32 big-endian words
    heat = f32(regs[8:10], big=False)  # heat, f32 with little-endian word order
    assert heat == pytest.approx(model._parts.cooling.heat_w() / 1000, rel=0.05)
    primary = ok(client.read_input_registers(100, count=6)).registers
    assert primary[4] == primary[5] == 65535  # primary pressures: the model has none, "no reading"
    pumps = ok(client.read_input_registers(200, count=3)).registers
    assert pumps[:2] == [1, 0] and pumps[2] / 10 == pytest.approx(PARAMS.cooling.pump_speed_percent)
    assert ok(client.read_discrete_inputs(0, count=2)).bits[:2] == [False, False]  # dry


def test_faults_show_in_the_registers(cdu: tuple[RackModel, ModbusTcpClient]) -> None:
    model, client = cdu
    model.inject(make_fault("pump_failure", "cdu1", "Pump1"))
    model.inject(make_fault("coolant_leak", "cdu1"))
    state, health = ok(client.read_input_registers(200, count=2)).registers
    assert (state, health) == (2, 2)  # UnavailableOffline, Critical
    assert ok(client.read_discrete_inputs(0, count=2)).bits[:2] == [True, False]  # the CDU's moisture detector


def test_writes_reach_the_model_only_through_writable_points(cdu: tuple[RackModel, ModbusTcpClient]) -> None:
    model, client = cdu
    ok(client.write_coil(1, False))  # pumps.P2.run
    assert [p.status for p in model.cooling.reading("cdu1").pumps] == ["OK", "Stopped"]
    assert ok(client.read_coils(0, count=2)).bits[:2] == [True, False]
    ok(client.write_register(20, 900))  # pumps.P1.setpoint_pct: 90.0 %
    assert [p.speed_percent for p in model.cooling.cdu("cdu1").pumps] == [90.0, PARAMS.cooling.pump_speed_percent]
    assert client.write_register(20, 0).isError()  # 0 % is no speed
    assert client.write_register(10, 250).isError()  # the supply set point is not writable in this map
    assert client.write_register(21, 1).isError()  # nor the control mode
    assert model.cooling.cdu("cdu1").pumps[0].speed_percent == 90.0


def test_an_address_the_map_lacks_is_illegal(cdu: tuple[RackModel, ModbusTcpClient]) -> None:
    _, client = cdu
    reply = client.read_input_registers(5000, count=1)
    assert reply.isError() and reply.exception_code == 2
    assert client.read_input_registers(128, count=3).isError()  # runs past the last served register (129)


def test_bad_map_and_missing_cdu_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "map.yaml"
    bad.write_text("kind: cdu\npoints:\n  - {field: cooling_mode, table: input}\n")
    with pytest.raises(ValueError, match=r"map\.yaml: points\.0: cannot serve this point"):
        load_points(bad)
    air = RackModel(RackSize(nodes=1), SimClock(time_scale=0.0), REFERENCE_PARAMS)
    with pytest.raises(ValueError, match=r"no CDU 'cdu1' in the model \(have none\)"):
        start_cdu_modbus(air, "cdu1")
    copy = write_register_map(tmp_path, "cdu1")
    assert copy.read_text() == DEFAULT_MAP.read_text()


# ---- the whole liquid rack ----------------------------------------------------------------------
def test_liquid_rack_file_lists_the_cdu_and_shelves_with_their_drivers(tmp_path: Path) -> None:
    import requests
    import yaml

    from rackval.sim.rack import SimulatedRack

    small = dataclasses.replace(SIZE, nodes=2, switch_ports=8)
    sim = SimulatedRack.start(small, tmp_path / "sim", params=PARAMS.quasi_static())
    try:
        assert sim.rack_file is not None
        doc = yaml.safe_load(sim.rack_file.read_text())
        devices = doc["devices"]
        kinds = {name: (d["kind"], d["driver"]) for name, d in devices.items() if d["kind"] in ("cdu", "power_shelf")}
        assert kinds == {
            "cdu1": ("cdu", "redfish-cdu"), "cdu1-modbus": ("cdu", "modbus-cdu"),
            **{f"shelf{i}": ("power_shelf", "redfish-power-shelf") for i in range(1, 9)},
        }  # fmt: skip
        assert not any(d["kind"] == "pdu" for d in devices.values())  # a busbar design has no PDUs
        assert doc["nodes"]["node01"]["psus"] == {}
        assert devices["shelf1"]["feeds"] == ["A", "B"]
        assert devices["cdu1"]["expect"]["model"] == "SC-CDU150"
        password = (tmp_path / "sim" / "secrets" / "bmc-password").read_text().strip()
        cdu = devices["cdu1"]
        reply = requests.get(f"http://{cdu['host']}:{cdu['port']}/redfish/v1/ThermalEquipment/CDUs/1",
                             auth=("admin", password), timeout=5)  # fmt: skip
        assert reply.status_code == 200 and reply.json()["SerialNumber"] == cdu["expect"]["serial"]
        modbus = devices["cdu1-modbus"]
        assert (tmp_path / "sim" / modbus["options"]["register_map"]).is_file()
        client = ModbusTcpClient(modbus["host"], port=modbus["port"], timeout=3, retries=0)
        assert client.connect()
        try:
            assert not client.read_input_registers(120, count=1).isError()
        finally:
            client.close()
    finally:
        sim.stop()
