"""The simulated Modbus TCP CDU, read and written with pymodbus's own client (a third party), laid
out as the generic register map (racks/modbus-maps/generic-cdu.yaml) says: readings follow the
model and its faults, writes reach it only through writable points, unknown addresses and bad
maps are refused. The server speaks the driver's register map format: every point it serves
decodes (``register_map.decode``) to the model's value, in any encoding and unit a map may give,
the ``modbus-cdu`` driver's writes reach the model, and a map the driver refuses the server refuses
with the same message. Last, the whole liquid rack started as ``rackval sim`` starts it: its rack
file lists the CDU (Redfish and Modbus) and the power shelves with the drivers that read them."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from rackval.core.errors import ConfigError
from rackval.drivers.config import DeviceConfig
from rackval.drivers.modbus.modbus_device import ModbusCdu
from rackval.drivers.modbus.register_map import Point, RegisterMap, decode, load_register_map
from rackval.sim.clock import SimClock
from rackval.sim.faults import make_fault
from rackval.sim.modbus_cdu import DEFAULT_MAP, ModbusCduServer, start_cdu_modbus, write_register_map
from rackval.sim.model import REFERENCE_PARAMS, RackModel, RackSize
from rackval.sim.reference import load_model_params

REPO = Path(__file__).resolve().parents[2]
SIZE, PARAMS = load_model_params(REPO / "racks" / "sim-liquid-params.yaml")


# The encodings and units the generic map does not use: word-swapped 32-bit values, F, gpm, psi, a
# 32-bit invalid marker, a run point in a holding register whose words are not 0 / 1, a float set point.
ODD_MAP = """\
kind: cdu
name: odd encodings
source: a test
word_order: little
address_offset: 40001
points:
  - {field: loops.secondary.supply_temp_c, table: input, register: 40001, type: f32, unit: F}
  - {field: loops.secondary.return_temp_c, table: input, register: 40003, type: s32, scale: 0.01, unit: K}
  - {field: loops.secondary.flow_lpm, table: input, register: 40005, type: u32, scale: 0.01, unit: gpm}
  - {field: loops.secondary.supply_pressure_kpa, table: input, register: 40007, type: s16, scale: 0.1, unit: psi}
  - {field: loops.secondary.heat_kw, table: input, register: 40008, type: u32, word_order: big, unit: W}
  - {field: loops.primary.supply_pressure_kpa, table: input, register: 40010, type: u32, invalid: [4294967295]}
  - {field: pumps.A.state, table: input, register: 40012, enum: {5: Disabled, 6: Enabled, 7: UnavailableOffline}}
  - {field: pumps.A.setpoint_pct, table: holding, register: 40013, type: f32, writable: true}
  - {field: pumps.A.run, table: holding, register: 40015, writable: true, enum: {1: off, 2: on}}
  - {field: pumps.B.run, table: coil, register: 40001, writable: true}
  - {field: leak_detectors.Tray.detector_state, table: discrete, register: 40001, enum: {0: OK, 1: Critical}}
"""


def _model() -> RackModel:
    clock = SimClock(time_scale=0.0)
    model = RackModel(SIZE, clock, PARAMS)
    for n in model.nodes:
        model.set_utilization(n, 0.8)
    clock.advance(300.0)
    return model


def _driver(server: ModbusCduServer, register_map: Path) -> ModbusCdu:
    return ModbusCdu(DeviceConfig(
        name=server.device, kind="cdu", driver="modbus-cdu", host=server.host, port=server.port,
        options={"register_map": str(register_map)}, timeout_s=3.0,
    ))  # fmt: skip


@pytest.fixture
def cdu() -> Iterator[tuple[RackModel, ModbusTcpClient]]:
    model = _model()
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


def _read(client: ModbusTcpClient, m: RegisterMap, point: Point) -> list[int]:
    """The point's words (or bit) as pymodbus's client reads them from the server."""
    address, n = m.address(point), point.words
    if point.table == "coil":
        return [int(b) for b in ok(client.read_coils(address, count=1)).bits[:1]]
    if point.table == "discrete":
        return [int(b) for b in ok(client.read_discrete_inputs(address, count=1)).bits[:1]]
    read = client.read_holding_registers if point.table == "holding" else client.read_input_registers
    return list(ok(read(address, count=n)).registers)


def _step(m: RegisterMap, point: Point) -> float:
    """The value of one raw step of ``point`` in the field's unit (0 for a float or a state)."""
    if point.kind == "f32" or point.enum or point.table in ("coil", "discrete"):
        return 0.0
    one, zero = [0] * (point.words - 1) + [1], [0] * point.words
    return abs(float(decode(point, "big", one) or 0) - float(decode(point, "big", zero) or 0))  # type: ignore[arg-type]


@pytest.mark.parametrize("which", ["generic", "odd"])
def test_every_point_served_decodes_to_the_models_value(
    which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = DEFAULT_MAP if which == "generic" else tmp_path / "odd.yaml"
    if which == "odd":
        path.write_text(ODD_MAP)
    m = load_register_map(path)
    model = _model()
    model.inject(make_fault("pump_failure", "cdu1", "Pump1"))  # a state beyond Enabled / Disabled
    server = start_cdu_modbus(model, "cdu1", map_path=path)
    want = server.registers.values()  # one instant: each reading carries its meter's noise
    monkeypatch.setattr(server.registers, "values", lambda: want)
    client = ModbusTcpClient(server.host, port=server.port, timeout=3, retries=0)
    try:
        assert client.connect()
        for point in m.points:
            got = decode(point, m.order(point), _read(client, m, point))
            value = want[point.field]
            if isinstance(value, float):
                assert got == pytest.approx(value, rel=1e-6, abs=_step(m, point) / 2 + 1e-9), point.field
            else:
                assert got == value, point.field
    finally:
        client.close()
        server.stop()
    true = model.cooling.cdu("cdu1")
    assert want["loops.secondary.supply_temp_c"] == pytest.approx(true.supply_c, rel=0.05)
    assert want["loops.secondary.flow_lpm"] == pytest.approx(true.flow_lpm, rel=0.05)
    assert want["loops.secondary.heat_kw"] == pytest.approx(model._parts.cooling.heat_w() / 1000, rel=0.05)
    assert want["loops.primary.supply_pressure_kpa"] is None  # the model has no primary pressures
    first = m.members("pumps")[0]
    assert (want[f"pumps.{first}.state"], want[f"pumps.{first}.run"]) == ("UnavailableOffline", True)


def test_the_drivers_reads_and_writes_reach_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(ODD_MAP)
    model = _model()
    server = start_cdu_modbus(model, "cdu1", map_path=path)
    reading = model.cooling.reading("cdu1")  # one instant: each reading carries its meter's noise
    monkeypatch.setattr(model.cooling, "reading", lambda cdu: reading)
    driver = _driver(server, path)
    try:
        primary, secondary = driver.loops()
        assert (primary.loop, primary.supply_pressure_kpa, secondary.loop) == ("primary", None, "secondary")
        assert secondary.supply_temp_c == pytest.approx(reading.supply_c, rel=1e-6)
        assert secondary.return_temp_c == pytest.approx(reading.return_c, abs=0.006)  # hundredths of K
        assert secondary.flow_lpm == pytest.approx(reading.flow_lpm, abs=0.03)  # hundredths of a gpm
        assert secondary.supply_pressure_kpa == pytest.approx(reading.supply_kpa, abs=0.35)  # tenths of a psi
        assert secondary.heat_kw == pytest.approx(reading.heat_w / 1000, abs=0.0006)  # whole W
        assert [p.name for p in driver.pumps()] == ["A", "B"]
        pumps = model.cooling.cdu("cdu1").pumps
        driver.set_pump("A", False)  # holding register 40015 := 1 (off)
        assert [p.running for p in pumps] == [False, True]
        driver.set_pump("A", True)  # := 2 (on)
        driver.set_pump_speed("A", 55.0)  # a word-swapped float
        driver.set_pump("B", False)  # a coil
        assert [(p.running, p.speed_percent) for p in pumps] == [
            (True, 55.0),
            (False, PARAMS.cooling.pump_speed_percent),
        ]
    finally:
        driver.close()
        server.stop()


BAD_MAPS = {
    "unknown type": "  - {field: cooling_mode, table: input, register: 1, type: u64, enum: {1: Enabled}}\n",
    "missing register": "  - {field: loops.secondary.flow_lpm, table: input}\n",
    "unit that cannot fill the field": "  - {field: loops.secondary.flow_lpm, table: input, register: 1, unit: bar}\n",
}


@pytest.mark.parametrize("case", sorted(BAD_MAPS))
def test_a_map_the_driver_refuses_the_server_refuses_alike(case: str, tmp_path: Path) -> None:
    bad = tmp_path / "map.yaml"
    good = "  - {field: loops.secondary.supply_temp_c, table: input, register: 0}\n"
    bad.write_text("kind: cdu\nname: bad\nsource: a test\npoints:\n" + good + BAD_MAPS[case])
    with pytest.raises(ConfigError) as driver_error:
        ModbusCdu(DeviceConfig(name="m", kind="cdu", driver="modbus-cdu", host="127.0.0.1", port=1,
                               options={"register_map": str(bad)}))  # fmt: skip
    with pytest.raises(ConfigError) as server_error:
        start_cdu_modbus(_model(), "cdu1", map_path=bad)
    assert str(server_error.value) == str(driver_error.value)
    header, *problems = str(server_error.value).splitlines()
    assert header == "invalid modbus map file:"
    assert len(problems) == 1 and problems[0].startswith(f"  {bad}:6: points.1."), problems


def test_a_power_shelf_map_is_not_served_as_a_cdu(tmp_path: Path) -> None:
    shelf = tmp_path / "shelf.yaml"
    shelf.write_text("kind: power_shelf\nname: s\nsource: a test\npoints:\n"
                     "  - {field: feeds.A.voltage_v, table: input, register: 1}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"shelf\.yaml: a power_shelf register map, not a cdu map") as info:
        start_cdu_modbus(_model(), "cdu1", map_path=shelf)
    assert "\n" not in str(info.value)


def test_missing_cdu_is_one_line_and_the_served_map_is_copied(tmp_path: Path) -> None:
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
