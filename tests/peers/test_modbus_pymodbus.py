"""The Modbus CDU and power shelf drivers against pymodbus's own TCP server (a third-party peer).

The server holds what a register map says, laid out with the map's encoding; an address it was
not given answers exception 2, like a device without that register. Hand-computed raw values
check the decoding itself (tenths in s16, bar to kPa, a little-endian float), the shipped maps
are read end to end, and then the device that fails: a missing register, a NaN float, a state
the enum does not list, a device-failure exception, a device that never answers, and controls
the map does not give.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from rackval.core.errors import ConfigError, DeviceError, DeviceProtocolError, DeviceTimeout, NotAvailable
from rackval.drivers.capabilities import Identity
from rackval.drivers.config import DeviceConfig
from rackval.drivers.modbus.modbus_device import ModbusCdu, ModbusPowerShelf
from rackval.drivers.modbus.register_map import load_register_map
from tests.support.modbus_peer import PymodbusServer, Tables, words_for
from tests.support.scripted_peers import Peer, scripted_tcp

MAPS = Path(__file__).resolve().parents[2] / "racks" / "modbus-maps"
GENERIC, LIEBERT = MAPS / "generic-cdu.yaml", MAPS / "liebert-hpc-icom4.yaml"

CDU_VALUES: dict[str, Any] = {
    "identity.serial": 123456, "identity.firmware": 7, "cooling_mode": "Enabled",
    "loops.primary.supply_temp_c": 28.5, "loops.primary.return_temp_c": 38.0, "loops.primary.flow_lpm": 42.5,
    "loops.primary.supply_pressure_kpa": 250.0, "loops.primary.return_pressure_kpa": 230.0,
    "loops.primary.heat_kw": 25.25,
    "loops.secondary.supply_temp_c": 30.0, "loops.secondary.return_temp_c": 45.5,
    "loops.secondary.delta_temp_c": 15.5, "loops.secondary.flow_lpm": 80.0,
    "loops.secondary.supply_pressure_kpa": 103.0, "loops.secondary.return_pressure_kpa": 137.0,
    "loops.secondary.delta_pressure_kpa": 34.0, "loops.secondary.heat_kw": 25.0,
    "loops.secondary.supply_setpoint_c": 30.0,
    "pumps.P1.state": "Enabled", "pumps.P1.health": "OK", "pumps.P1.speed_pct": 61.5,
    "pumps.P1.setpoint_pct": 60.0, "pumps.P1.control_mode": "Automatic", "pumps.P1.run": True,
    "pumps.P2.state": "UnavailableOffline", "pumps.P2.health": "Critical", "pumps.P2.speed_pct": 0.0,
    "pumps.P2.setpoint_pct": 60.0, "pumps.P2.control_mode": "Automatic", "pumps.P2.run": False,
    "filters.F1.health": "OK", "filters.F1.service_hours": 5791, "filters.F1.rated_service_hours": 10000,
    "reservoirs.R1.level_status": "OK", "reservoirs.R1.level_pct": 87.5, "reservoirs.R1.capacity_l": 12.0,
    "leak_detectors.CDU-Tray.detector_state": "OK", "leak_detectors.CDU-Drip-Pan.detector_state": "Critical",
}  # fmt: skip


def _config(host: str, port: int, register_map: Path | str, timeout_s: float = 3.0, **options: Any) -> DeviceConfig:
    return DeviceConfig(
        name="cdu-modbus", kind="cdu", driver="modbus-cdu", host=host, port=port,
        options={"register_map": str(register_map), **options}, timeout_s=timeout_s,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tables() -> Tables:
    found = words_for(load_register_map(GENERIC), CDU_VALUES)
    assert found["input"][100] == 285  # 28.5 C in tenths: what a vendor's s16 x 0.1 register holds
    assert found["input"][104] == 250  # 250 kPa = 2.50 bar in hundredths of a bar
    swapped = list(reversed(struct.unpack(">HH", struct.pack(">f", 25.25))))
    assert [found["input"][106], found["input"][107]] == swapped  # a little-endian (word-swapped) float
    return found


@pytest.fixture(scope="module")
def server(tables: Tables) -> Iterator[PymodbusServer]:
    srv = PymodbusServer(tables)
    yield srv
    srv.stop()


@pytest.fixture
def cdu(server: PymodbusServer) -> Iterator[ModbusCdu]:
    driver = ModbusCdu(_config(server.host, server.port, GENERIC))
    yield driver
    driver.close()


def _served(tables: Tables, **changes: dict[int, int | None]) -> Tables:
    out = {t: dict(v) for t, v in tables.items()}
    for table, regs in changes.items():
        for address, raw in regs.items():
            if raw is None:
                out[table].pop(address, None)
            else:
                out[table][address] = raw
    return out


# ---- every point of the shipped maps -------------------------------------------------------------------


def test_every_point_of_the_generic_map_is_read(cdu: ModbusCdu) -> None:
    assert cdu.identify() == Identity("Generic", "CDU-Modbus", "123456", "7")
    assert cdu.cooling_mode() == "Enabled"
    got: dict[str, Any] = {}
    for loop in cdu.loops():
        got |= {f"loops.{loop.loop}.{k}": v for k, v in loop.__dict__.items()}
    for name, read in (("pumps", cdu.pumps), ("filters", cdu.filters), ("reservoirs", cdu.reservoirs),
                       ("leak_detectors", cdu.leak_detectors)):  # fmt: skip
        for record in read():
            got |= {f"{name}.{record.name}.{k}": v for k, v in record.__dict__.items()}
    for field, want in CDU_VALUES.items():
        if field.startswith("identity.") or field == "cooling_mode" or field.endswith(".run"):
            continue
        assert got[field] == (pytest.approx(want) if isinstance(want, float) else want), field
    assert [lp.loop for lp in cdu.loops()] == ["primary", "secondary"]
    assert [(d.name, d.dry) for d in cdu.leak_detectors()] == [("CDU-Tray", True), ("CDU-Drip-Pan", False)]
    assert [p.running for p in cdu.pumps()] == [True, False]


def test_fields_the_map_does_not_give_are_absent(cdu: ModbusCdu) -> None:
    primary = cdu.loops()[0]
    assert (primary.delta_temp_c, primary.delta_pressure_kpa, primary.supply_setpoint_c) == (None, None, None)
    with pytest.raises(NotAvailable, match="a Modbus register map does not describe redundancy"):
        cdu.pump_redundancy()


def test_the_vendor_map_reads_a_chiller_and_says_what_it_lacks() -> None:
    m = load_register_map(LIEBERT)
    values = {"cooling_mode": "Enabled", "loops.secondary.health": "Warning", "loops.secondary.return_temp_c": 17.1,
              "loops.secondary.supply_temp_c": 13.0, "loops.secondary.supply_setpoint_c": 13.5,
              "pumps.P1.state": "Enabled", "pumps.P2.state": "Disabled"}  # fmt: skip
    tables = words_for(m, values)
    assert tables["input"][490] == 171 and tables["input"][482] == 8  # 30491 / 30483 in the guide's numbering
    srv = PymodbusServer(tables)
    try:
        driver = ModbusCdu(_config(srv.host, srv.port, LIEBERT))
        [loop] = driver.loops()
        assert (loop.loop, loop.health, loop.supply_temp_c, loop.return_temp_c) == ("secondary", "Warning", 13.0, 17.1)
        assert loop.flow_lpm is None and loop.heat_kw is None  # not in the chiller's table: absent, never 0
        pumps = [(p.name, p.state, p.speed_pct) for p in driver.pumps()]
        assert pumps == [("P1", "Enabled", None), ("P2", "Disabled", None)]
        for read in (driver.filters, driver.reservoirs, driver.leak_detectors):
            with pytest.raises(NotAvailable, match="gives no"):
                read()
        assert driver.identify().vendor == "Vertiv"
        with pytest.raises(DeviceError, match=r"gives no writable pumps\.P1\.run"):
            driver.set_pump("P1", False)
        driver.close()
    finally:
        srv.stop()


def _counting(driver: ModbusCdu) -> list[tuple[str, int, int]]:
    """The read requests ``driver`` sends from now on, as (table, address, count)."""
    sent: list[tuple[str, int, int]] = []
    real = driver._transport.read

    def read(table: str, address: int, count: int) -> list[int]:
        sent.append((table, address, count))
        return real(table, address, count)

    driver._transport.read = read  # type: ignore[method-assign]
    return sent


def _poll(cdu: ModbusCdu) -> list[Any]:
    return [cdu.loops(), cdu.pumps(), cdu.filters(), cdu.reservoirs(), cdu.leak_detectors()]


def test_a_poll_asks_for_neighbouring_registers_together(server: PymodbusServer) -> None:
    """The generic map's 35 loop, pump, filter, reservoir and leak points: a request per table
    block, not per point; the same records as one request per point (read_gap 0, max_read 1)."""
    batched = ModbusCdu(_config(server.host, server.port, GENERIC))
    sent = _counting(batched)
    records = _poll(batched)
    polled = ("loops", "pumps", "filters", "reservoirs", "leak_detectors")
    points = sum(1 for p in batched.map.points if p.field.split(".")[0] in polled and not p.field.endswith(".run"))
    assert points >= 30 and len(sent) <= 10, sent
    assert all(count <= 125 for _, _, count in sent)
    one_by_one = ModbusCdu(_config(server.host, server.port, GENERIC))
    object.__setattr__(one_by_one.map, "read_gap", 0)
    object.__setattr__(one_by_one.map, "max_read", 1)
    singles = _counting(one_by_one)
    assert _poll(one_by_one) == records
    assert len(singles) > 3 * len(sent) and all(count <= 2 for _, _, count in singles)  # f32 / u32: two words
    batched.close()
    one_by_one.close()


def test_a_span_the_device_refuses_is_read_point_by_point_from_then_on(tables: Tables) -> None:
    """A device without register 103 (inside the primary loop's block) refuses the block with
    exception 2: its other points still read, and the next poll does not ask for the block again."""
    srv = PymodbusServer(_served(tables, input={103: None}))
    try:
        driver = ModbusCdu(_config(srv.host, srv.port, GENERIC))
        sent = _counting(driver)
        primary, secondary = driver.loops()
        assert primary.flow_lpm is None  # its second word is gone: that field only
        assert primary.supply_temp_c == pytest.approx(28.5) and primary.heat_kw == pytest.approx(25.25)
        assert secondary.return_temp_c == pytest.approx(45.5)
        block = ("input", 100, 8)  # the primary loop's registers 100..107, 103 among them
        assert sent.count(block) == 1 and ("input", 102, 2) in sent  # refused, then point by point
        first = list(sent)
        sent.clear()
        assert driver.loops() == [primary, secondary]
        assert block not in sent and sorted(sent) == sorted(r for r in first if r != block)
        driver.close()
    finally:
        srv.stop()


# ---- the device that fails ---------------------------------------------------------------------------------


def test_a_missing_register_nan_and_invalid_markers_are_absent(tables: Tables) -> None:
    nan = struct.unpack(">HH", struct.pack(">f", float("nan")))
    served = _served(tables, input={102: None, 103: None, 123: nan[0], 124: nan[1], 120: 32767})
    srv = PymodbusServer(served)
    try:
        driver = ModbusCdu(_config(srv.host, srv.port, GENERIC))
        primary, secondary = driver.loops()
        assert primary.flow_lpm is None and primary.supply_temp_c == pytest.approx(28.5)  # exception 2: that field only
        assert secondary.flow_lpm is None and secondary.supply_temp_c is None  # NaN, 0x7FFF
        assert secondary.return_temp_c == pytest.approx(45.5)
        driver.close()
    finally:
        srv.stop()


def test_a_state_the_enum_does_not_list_is_one_line(tables: Tables) -> None:
    srv = PymodbusServer(_served(tables, input={200: 9}))
    try:
        driver = ModbusCdu(_config(srv.host, srv.port, GENERIC))
        with pytest.raises(DeviceProtocolError) as info:
            driver.pumps()
        text = str(info.value)
        assert "\n" not in text and "pumps.P1.state: input register 200 holds 9" in text and "cdu-modbus" in text
        driver.close()
    finally:
        srv.stop()


def _exception_reply(code: int) -> Any:
    def script(peer: Peer) -> None:
        while not peer.stopping:
            header = peer.recv_exactly(7)  # MBAP: transaction, protocol, length, unit
            length = int.from_bytes(header[4:6], "big")
            pdu = peer.recv_exactly(length - 1)
            peer.send(header[:4] + (3).to_bytes(2, "big") + header[6:7] + bytes([pdu[0] | 0x80, code]))

    return script


def test_a_device_failure_exception_is_an_error_not_absent() -> None:
    with scripted_tcp(_exception_reply(4)) as peer:
        driver = ModbusCdu(_config(peer.host, peer.port, GENERIC))
        with pytest.raises(DeviceError) as info:
            driver.cooling_mode()
        assert not isinstance(info.value, NotAvailable)
        text = str(info.value)
        assert "\n" not in text and "Modbus exception 4 (Server Device Failure)" in text and "input register 10" in text
        driver.close()


def test_a_device_that_never_answers_times_out_in_one_line() -> None:
    with scripted_tcp(lambda peer: peer.hold()) as silent:
        driver = ModbusCdu(_config(silent.host, silent.port, GENERIC, timeout_s=0.5))
        start = time.monotonic()
        with pytest.raises(DeviceTimeout) as info:
            driver.pumps()
        assert time.monotonic() - start < 0.5 + 2.0
        assert "\n" not in str(info.value) and "no answer within 0.5 s" in str(info.value)
        driver.close()


def test_nothing_listening_is_one_line() -> None:
    with scripted_tcp(lambda peer: None) as gone:
        port = gone.port
    driver = ModbusCdu(_config("127.0.0.1", port, GENERIC, timeout_s=1.0))
    with pytest.raises(DeviceError, match=rf"cdu-modbus \(127\.0\.0\.1:{port}\): read input register 10 .*connect"):
        driver.cooling_mode()


def test_a_wrong_map_is_refused_before_any_device_is_touched(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a cdu map, not a power_shelf map"):
        ModbusPowerShelf(_config("127.0.0.1", 1, GENERIC))
    with pytest.raises(ConfigError, match="cannot read"):
        ModbusCdu(_config("127.0.0.1", 1, tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="register_map"):
        ModbusCdu(DeviceConfig(name="x", kind="cdu", driver="modbus-cdu", host="127.0.0.1", options={}))


# ---- controls ----------------------------------------------------------------------------------------------


def test_pump_controls_write_the_map_points(tables: Tables) -> None:
    srv = PymodbusServer(tables)
    try:
        driver = ModbusCdu(_config(srv.host, srv.port, GENERIC))
        driver.set_pump("P1", False)
        driver.set_pump_speed("P2", 55.5)
        client = ModbusTcpClient(srv.host, port=srv.port, timeout=3, retries=0)
        assert client.read_coils(0, count=1, device_id=1).bits[0] is False
        client.close()
        assert [p.setpoint_pct for p in driver.pumps()] == [pytest.approx(60.0), pytest.approx(55.5)]
        with pytest.raises(DeviceError, match=r"no 'P9' in pumps \(the map has \['P1', 'P2'\]\)"):
            driver.set_pump("P9", True)
        for bad in (101.0, float("inf"), -0.5):
            with pytest.raises(DeviceError, match="the speed must be"):
                driver.set_pump_speed("P1", bad)
        driver.close()
    finally:
        srv.stop()


# ---- a power shelf -----------------------------------------------------------------------------------------

SHELF_MAP = """\
kind: power_shelf
name: test shelf
source: a test layout
identity: {vendor: Test, model: Shelf}
points:
  - {field: feeds.A.voltage_v, table: input, register: 0, scale: 0.1}
  - {field: feeds.A.power_w, table: input, register: 1, type: u32}
  - {field: feeds.A.on, table: discrete, register: 0}
  - {field: feeds.A.run, table: coil, register: 0, writable: true}
  - {field: feeds.B.voltage_v, table: input, register: 10, scale: 0.1}
  - {field: feeds.B.power_w, table: input, register: 11, type: u32}
  - {field: rectifiers.R1.state, table: input, register: 20, enum: {0: Disabled, 1: Enabled}}
  - {field: rectifiers.R1.input_power_w, table: input, register: 21, unit: kW, scale: 0.001}
  - {field: rectifiers.R1.output_power_w, table: input, register: 22, unit: kW, scale: 0.001}
  - {field: rectifiers.R1.run, table: holding, register: 0, writable: true, enum: {1: on, 0: off}}
  - {field: dc_output.voltage_v, table: input, register: 30, scale: 0.01}
  - {field: dc_output.power_w, table: input, register: 31, type: u32}
  - {field: batteries.BBU1.charge_pct, table: input, register: 40}
  - {field: batteries.BBU1.charge_state, table: input, register: 41, enum: {0: Idle, 1: Charging, 2: Discharging}}
  - {field: batteries.BBU1.stored_energy_wh, table: input, register: 42, unit: kWh, scale: 0.01}
"""


def test_a_power_shelf_over_modbus(tmp_path: Path) -> None:
    path = tmp_path / "shelf.yaml"
    path.write_text(SHELF_MAP)
    values = {"feeds.A.voltage_v": 230.0, "feeds.A.power_w": 3000, "feeds.A.on": True, "feeds.B.voltage_v": 229.5,
              "feeds.B.power_w": 2900, "rectifiers.R1.state": "Enabled", "rectifiers.R1.input_power_w": 3100,
              "rectifiers.R1.output_power_w": 2945, "dc_output.voltage_v": 54.25, "dc_output.power_w": 5800,
              "batteries.BBU1.charge_pct": 97, "batteries.BBU1.charge_state": "Idle",
              "batteries.BBU1.stored_energy_wh": 500.0, "rectifiers.R1.run": "on", "feeds.A.run": True}  # fmt: skip
    srv = PymodbusServer(words_for(load_register_map(path), values))
    try:
        shelf = ModbusPowerShelf(_config(srv.host, srv.port, path))
        feeds = shelf.feeds()
        assert [(f.name, f.voltage_v, f.power_w, f.on) for f in feeds] == [
            ("A", pytest.approx(230.0), 3000.0, True), ("B", pytest.approx(229.5), 2900.0, None),
        ]  # fmt: skip
        assert shelf.power_watts() == 5900.0  # no power_w point: the feeds' sum
        [r1] = shelf.rectifiers()
        assert (r1.state, r1.efficiency_pct, r1.efficiency_measured) == ("Enabled", pytest.approx(95.0), False)
        assert shelf.dc_output().voltage_v == pytest.approx(54.25)
        [bbu] = shelf.batteries()
        assert (bbu.charge_pct, bbu.charge_state, bbu.holdup_estimated) == (97.0, "Idle", True)
        assert bbu.holdup_s == pytest.approx(500 * 3600 / 5800, abs=0.1)
        shelf.set_rectifier("R1", False)
        shelf.set_feed("A", False)
        client = ModbusTcpClient(srv.host, port=srv.port, timeout=3, retries=0)
        assert client.read_holding_registers(0, count=1, device_id=1).registers == [0]
        assert client.read_coils(0, count=1, device_id=1).bits[0] is False
        client.close()
        with pytest.raises(DeviceError, match=r"gives no writable feeds\.B\.run"):
            shelf.set_feed("B", False)
        shelf.close()
    finally:
        srv.stop()


def _trickled_reply(every_s: float) -> Any:
    def script(peer: Peer) -> None:
        header = peer.recv_exactly(7)
        peer.recv_exactly(int.from_bytes(header[4:6], "big") - 1)
        reply = header[:4] + (5).to_bytes(2, "big") + header[6:7] + bytes([4, 2, 0, 1])
        peer.trickle(reply, every_s)

    return script


def test_a_trickled_answer_ends_by_the_deadline() -> None:
    with scripted_tcp(_trickled_reply(0.3)) as slow:
        driver = ModbusCdu(_config(slow.host, slow.port, GENERIC, timeout_s=1.0))
        start = time.monotonic()
        with pytest.raises(DeviceTimeout) as info:
            driver.cooling_mode()
        assert time.monotonic() - start < 1.0 + 2.0
        assert "\n" not in str(info.value)
        driver.close()


def test_garbage_instead_of_an_answer_is_one_line_within_the_deadline() -> None:
    def script(peer: Peer) -> None:
        peer.recv_exactly(12)
        peer.send(b"\xff" * 64 + b"HTTP/1.1 200 OK\r\n\r\n")
        peer.hold()

    with scripted_tcp(script) as hostile:
        driver = ModbusCdu(_config(hostile.host, hostile.port, GENERIC, timeout_s=1.0))
        start = time.monotonic()
        with pytest.raises(DeviceError) as info:
            driver.cooling_mode()
        assert time.monotonic() - start < 1.0 + 2.0
        assert "\n" not in str(info.value) and "cdu-modbus" in str(info.value)
        driver.close()


def test_a_refused_connection_prints_nothing_but_the_error(tmp_path: Path) -> None:
    """pymodbus logs "Connection ... failed" itself; outside pytest nothing may reach the terminal."""
    with scripted_tcp(lambda peer: None) as gone:
        port = gone.port
    script = (
        "from rackval.drivers.config import DeviceConfig\n"
        "from rackval.drivers.modbus.modbus_device import ModbusCdu\n"
        f"d = ModbusCdu(DeviceConfig(name='m', kind='cdu', driver='modbus-cdu', host='127.0.0.1', port={port},\n"
        f"    options={{'register_map': {str(GENERIC)!r}}}, timeout_s=1.0))\n"
        "try:\n    d.cooling_mode()\nexcept Exception as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.stderr == "" and done.stdout.count("\n") == 1 and "cannot connect" in done.stdout, done
