"""Register-map points are read in as few requests as their layout and the map's limits allow."""

from __future__ import annotations

from typing import Any

from rackval.drivers.modbus.read_plan import MAX_BITS, plan_reads
from rackval.drivers.modbus.register_map import Point


def _p(field: str, table: str, register: int, **kw: Any) -> tuple[Point, int]:
    return Point(field=field, table=table, register=register, **kw), register


def _spans(points: list[tuple[Point, int]], **limits: int) -> list[tuple[str, int, int, list[str]]]:
    limits = {"max_registers": 125, "max_gap": 4, **limits}
    return [(s.table, s.start, s.count, [p.field for p, _ in s.points]) for s in plan_reads(points, **limits)]


def test_neighbours_share_a_request_and_a_far_register_starts_another() -> None:
    points = [
        _p("a", "input", 100), _p("b", "input", 101, type="f32"), _p("c", "input", 107),  # gap of 4 after 102
        _p("d", "input", 112),  # gap of 4 after 107: joins; then 200 is far
        _p("e", "input", 200), _p("h", "holding", 101), _p("k", "coil", 5), _p("l", "coil", 9),
    ]  # fmt: skip
    assert _spans(points[::-1]) == [  # any order in; table, then address order out
        ("coil", 5, 5, ["k", "l"]),
        ("holding", 101, 1, ["h"]),
        ("input", 100, 13, ["a", "b", "c", "d"]),
        ("input", 200, 1, ["e"]),
    ]
    assert [s for s in _spans(points, max_gap=0) if s[0] != "holding"] == [
        ("coil", 5, 1, ["k"]), ("coil", 9, 1, ["l"]),
        ("input", 100, 3, ["a", "b"]), ("input", 107, 1, ["c"]), ("input", 112, 1, ["d"]), ("input", 200, 1, ["e"]),
    ]  # fmt: skip


def test_a_span_never_asks_more_than_one_request_may() -> None:
    registers = [_p(f"r{i}", "holding", i) for i in range(300)]
    spans = _spans(registers)
    assert [(start, count) for _, start, count, _ in spans] == [(0, 125), (125, 125), (250, 50)]
    assert [count for _, _, count, _ in _spans(registers, max_registers=10)] == [10] * 30
    wide = [_p("x", "input", 0, type="u32"), _p("y", "input", 9, type="f32")]  # y ends at 11: over 10
    assert _spans(wide, max_registers=10) == [("input", 0, 2, ["x"]), ("input", 9, 2, ["y"])]
    bits = [_p(f"c{i}", "discrete", i * 2) for i in range(1500)]  # 3,000 bits apart: 2,000 per request
    assert [count for _, _, count, _ in _spans(bits)] == [MAX_BITS - 1, 999]


def test_two_fields_on_one_register_are_one_read() -> None:
    same = [_p("state", "input", 7, enum={0: "Off", 1: "On"}), _p("health", "input", 7, enum={0: "OK"})]
    assert _spans(same) == [("input", 7, 1, ["state", "health"])]
    assert _spans([]) == []
