"""Which Modbus requests read a set of register-map points: neighbours share one request.

Every Modbus request to facility equipment is a round trip through a gateway or a card plus the
device's turnaround, and a CDU's pumps, loops and filters are dozens of points (the generic map's
poll: 32 requests one per point, 10 in spans; ``bench/bench_modbus.py``). Devices lay related
values out in consecutive registers, so the points of one table are sorted by address and merged
into spans:
a span takes the next point when the gap to it is at most ``max_gap`` registers and the span stays
within what one request may ask (``max_registers`` for registers: 125 in the Modbus
specification, FC 3 / 4, less on some gateways; 2,000 bits for coils and discrete inputs, FC 1 / 2).
Both limits come from the register map (``read_gap``, ``max_read``): vendor data.

A device that lacks a register inside a span (a gap it does not implement, a point it does not
have) refuses the whole request with exception 2; the driver then reads that span's points one
by one (``ModbusEquipment``), so a missing register costs only itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rackval.drivers.modbus.register_map import BIT_TABLES, Point

MAX_BITS = 2000  # coils / discrete inputs per request (FC 1 / 2), Modbus Application Protocol 1.1b3


@dataclass(frozen=True)
class Span:
    """One read request: ``count`` registers (or bits) of ``table`` from ``start``, and the points
    (with their protocol addresses) it answers."""

    table: str
    start: int
    count: int
    points: tuple[tuple[Point, int], ...]

    def words_of(self, words: list[int], point: Point, address: int) -> list[int]:
        """The point's words out of the span's answer."""
        return words[address - self.start : address - self.start + point.words]


def plan_reads(points: Iterable[tuple[Point, int]], *, max_registers: int, max_gap: int) -> list[Span]:
    """The spans that read every (point, protocol address), in table then address order."""
    by_table: dict[str, list[tuple[Point, int]]] = {}
    for point, address in points:
        by_table.setdefault(point.table, []).append((point, address))
    spans: list[Span] = []
    for table in sorted(by_table):
        limit = MAX_BITS if table in BIT_TABLES else max_registers
        members: list[tuple[Point, int]] = []
        start = end = 0  # the open span covers [start, end)
        for point, address in sorted(by_table[table], key=lambda pa: (pa[1], pa[0].words)):
            stop = address + point.words
            if members and address - end <= max_gap and max(end, stop) - start <= limit:
                members.append((point, address))
                end = max(end, stop)
                continue
            if members:
                spans.append(Span(table, start, end - start, tuple(members)))
            members, start, end = [(point, address)], address, stop
        if members:
            spans.append(Span(table, start, end - start, tuple(members)))
    return spans
