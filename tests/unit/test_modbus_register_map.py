"""The Modbus register map format: shipped maps load, a wrong map is one line per problem naming
file:line: field, and raw words decode to the capability's units (invalid markers and NaN absent)."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from rackval.core.errors import ConfigError
from rackval.drivers.modbus.register_map import Point, decode, encode, known_fields, load_register_map, to_words

MAPS = Path(__file__).resolve().parents[2] / "racks" / "modbus-maps"

HEAD = "kind: cdu\nname: test\nsource: a test\npoints:\n"


def _write(tmp_path: Path, points: str, head: str = HEAD) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(head + points)
    return path


def _problem(tmp_path: Path, points: str, head: str = HEAD) -> str:
    with pytest.raises(ConfigError) as info:
        load_register_map(_write(tmp_path, points, head))
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid modbus map file:"
    assert all(line.startswith(f"  {tmp_path / 'map.yaml'}:") for line in lines[1:]), lines
    return "\n".join(lines[1:])


@pytest.mark.parametrize("name", sorted(p.name for p in MAPS.glob("*.yaml")))
def test_shipped_maps_load(name: str) -> None:
    m = load_register_map(MAPS / name)
    assert m.points and m.source


def test_unknown_field_names_line_and_suggests(tmp_path: Path) -> None:
    text = _problem(tmp_path, "  - {field: pumps.P1.sped_pct, table: input, register: 1}\n")
    assert ":5: points.0.field: pumps have no field 'sped_pct' (did you mean 'speed_pct'?)" in text


def test_a_field_of_another_kind_is_refused(tmp_path: Path) -> None:
    text = _problem(tmp_path, "  - {field: feeds.A.voltage_v, table: input, register: 1}\n")
    assert "points.0.field: not a cdu field" in text


def test_wrong_unit_type_table_and_missing_enum(tmp_path: Path) -> None:
    points = (
        "  - {field: loops.primary.flow_lpm, table: input, register: 1, unit: bar}\n"
        "  - {field: pumps.P1.state, table: input, register: 2}\n"
        "  - {field: leak_detectors.T1.detector_state, table: discrete, register: 3, type: u16, enum: {0: OK}}\n"
        "  - {field: loops.loop3.flow_lpm, table: input, register: 4}\n"
    )
    text = _problem(tmp_path, points)
    assert ":5: points.0.unit: 'bar' cannot fill loops.primary.flow_lpm (in L/min" in text
    assert ":6: points.1.enum: pumps.P1.state is a state" in text
    assert ":7: points.2.type: a discrete holds one bit" in text
    assert ":8: points.3.field: a loop is 'primary' or 'secondary'" in text


def test_register_out_of_range_and_twice_filled(tmp_path: Path) -> None:
    points = (
        "  - {field: loops.primary.flow_lpm, table: input, register: 65535, type: f32}\n"
        "  - {field: loops.primary.flow_lpm, table: input, register: 3}\n"
    )
    text = _problem(tmp_path, points)
    assert ":5: points.0.register: address 65535" in text and "outside 0..65534 for a f32" in text
    assert ":6: points.1.field: loops.primary.flow_lpm is filled twice (first by points[0])" in text
    negative = _problem(tmp_path, "  - {field: loops.primary.heat_kw, table: input, register: -1}\n")
    assert ":5: points.0.register: Input should be greater than or equal to 0" in negative


def test_controls_must_be_writable_coils_or_registers_with_on_off(tmp_path: Path) -> None:
    points = (
        "  - {field: pumps.P1.run, table: input, register: 1}\n"
        "  - {field: pumps.P2.run, table: holding, register: 2, writable: true, enum: {1: go}}\n"
        "  - {field: loops.primary.flow_lpm, table: holding, register: 3, writable: true}\n"
    )
    text = _problem(tmp_path, points)
    assert "points.0.writable: a control point is a coil or holding register" in text
    assert "points.1.enum: a holding-register control needs the values of on and off" in text
    assert "points.2.writable: only control points" in text


def test_not_yaml_and_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"map.yaml:\d+: modbus map file is not valid YAML"):
        load_register_map(_write(tmp_path, "  - {field: [", ""))
    text = _problem(tmp_path, "  - {field: cooling_mode, table: input, register: 1, enum: {1: On}, scal: 2}\n")
    assert ":5: points.0.scal: unknown field (check the spelling)" in text


def _point(**kw: object) -> Point:
    return Point.model_validate({"field": "loops.primary.supply_temp_c", "table": "input", "register": 0, **kw})


def test_decode_scales_converts_and_marks_absent() -> None:
    p = _point(type="s16", scale=0.1, unit="C", invalid=[32767])
    assert decode(p, "big", [0xFF9C]) == pytest.approx(-10.0)  # -100 tenths
    assert decode(p, "big", [32767]) is None
    f = _point(type="f32", unit="F")
    words = list(struct.unpack(">HH", struct.pack(">f", 212.0)))
    assert decode(f, "big", words) == pytest.approx(100.0)
    assert decode(f, "little", list(reversed(words))) == pytest.approx(100.0)
    nan = list(struct.unpack(">HH", struct.pack(">f", math.nan)))
    assert decode(f, "big", nan) is None
    bar = Point.model_validate(
        {"field": "loops.primary.supply_pressure_kpa", "table": "input", "register": 0, "scale": 0.01, "unit": "bar"}
    )
    assert decode(bar, "big", [250]) == pytest.approx(250.0)


def test_decode_enum_refuses_an_unlisted_value() -> None:
    p = Point.model_validate({"field": "pumps.P1.state", "table": "input", "register": 7, "enum": {0: "Disabled"}})
    assert decode(p, "big", [0]) == "Disabled"
    with pytest.raises(ValueError, match=r"pumps.P1.state: input register 7 holds 5, which its enum does not list"):
        decode(p, "big", [5])


def test_encode_round_trips_and_refuses_what_does_not_fit() -> None:
    p = Point.model_validate(
        {"field": "pumps.P1.setpoint_pct", "table": "holding", "register": 0, "scale": 0.1, "writable": True}
    )
    assert encode(p, "big", 45.5) == [455]
    with pytest.raises(ValueError, match="does not fit a u16"):
        encode(p, "big", 10_000.0)
    run = Point.model_validate(
        {"field": "pumps.P1.run", "table": "holding", "register": 1, "writable": True, "enum": {1: "on", 0: "off"}}
    )
    assert encode(run, "big", "off") == [0]
    coil = Point.model_validate({"field": "pumps.P1.run", "table": "coil", "register": 1, "writable": True})
    assert encode(coil, "big", "on") is True


def test_known_fields_cover_both_kinds() -> None:
    assert "loops.<primary|secondary>.flow_lpm" in known_fields("cdu")
    assert "batteries.<name>.holdup_s" in known_fields("power_shelf")


def test_to_words_is_what_decode_reads_back() -> None:
    m = load_register_map(MAPS / "generic-cdu.yaml")
    cases = (
        ("loops.primary.supply_pressure_kpa", 250.0),
        ("loops.primary.heat_kw", 25.25),
        ("pumps.P2.state", "UnavailableOffline"),
        ("leak_detectors.CDU-Tray.detector_state", "Critical"),
        ("filters.F1.service_hours", 5791.0),
    )
    for field, value in cases:
        point = m.find(field)
        assert point is not None
        back = decode(point, m.order(point), to_words(point, m.order(point), value))
        assert back == (pytest.approx(value) if isinstance(value, float) else value), field
    with pytest.raises(ValueError, match="no enum value means 'Broken'"):
        to_words(m.find("pumps.P1.state"), "big", "Broken")  # type: ignore[arg-type]


def test_what_encode_writes_decode_reads_back_as_the_value() -> None:
    """The other side of a write (the simulator's Modbus CDU): controls read back as on = True."""
    setpoints = (
        ({"type": "u16", "scale": 0.1}, 45.5),
        ({"type": "f32"}, 72.25),
        ({"type": "s32", "scale": 0.01, "word_order": "little"}, 99.99),
    )
    for kw, value in setpoints:
        p = Point.model_validate(
            {"field": "pumps.P1.setpoint_pct", "table": "holding", "register": 0, "writable": True, **kw}
        )
        order = p.word_order or "big"
        written = encode(p, order, value)
        assert isinstance(written, list) and len(written) == p.words
        assert decode(p, order, written) == pytest.approx(value), kw
    run = Point.model_validate(
        {"field": "pumps.P1.run", "table": "holding", "register": 1, "writable": True, "enum": {2: "On", 1: "Off"}}
    )
    coil = Point.model_validate({"field": "pumps.P1.run", "table": "coil", "register": 1, "writable": True})
    for word, on in (("on", True), ("off", False)):
        assert decode(run, "big", encode(run, "big", word)) is on  # type: ignore[arg-type]
        assert decode(coil, "big", [encode(coil, "big", word)]) is on  # type: ignore[list-item]
        assert decode(run, "big", to_words(run, "big", on)) is on
    with pytest.raises(ValueError, match="holds 3, which its enum does not list"):
        decode(run, "big", [3])  # a word the device would refuse


def test_to_words_of_no_reading_is_the_invalid_marker() -> None:
    p = _point(type="u32", word_order="little", invalid=[0xFFFFFFFE])
    assert to_words(p, "little", None) == [0xFFFE, 0xFFFF]
    assert decode(p, "little", to_words(p, "little", None)) is None
    s = _point(type="s16", invalid=[-32768])
    assert to_words(s, "big", None) == [0x8000]
    with pytest.raises(ValueError, match=r"loops.primary.supply_temp_c: the map gives no invalid marker"):
        to_words(_point(type="s16"), "big", None)
    for hopeless in (math.inf, math.nan, 1e300):
        with pytest.raises(ValueError, match="does not fit a"):
            to_words(_point(type="s16" if hopeless != 1e300 else "f32"), "big", hopeless)


def test_yaml_on_and_off_in_an_enum_are_the_words(tmp_path: Path) -> None:
    m = load_register_map(_write(tmp_path, "  - {field: pumps.P1.run, table: holding, register: 1, writable: true, "
                                           "enum: {1: on, 0: off}}\n"))  # fmt: skip
    assert m.points[0].enum == {1: "on", 0: "off"}
