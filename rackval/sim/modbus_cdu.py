"""A simulated CDU speaking Modbus TCP (pymodbus's server) through a register map, on 127.0.0.1.

Why a module of its own: facility equipment often speaks Modbus rather than Redfish, and the
``modbus-cdu`` driver reads it through a register map (YAML, format in racks/modbus-maps/README.md).
This server is the other side: it serves the same CDU as ``redfish_cdu`` — the one model, read at
request time — laid out as a register map says (by default ``racks/modbus-maps/generic-cdu.yaml``,
the generic layout the map format ships). Each map field is filled from the model:

- ``loops.primary.*`` / ``loops.secondary.*``: the CDU's readings (``model.cooling.reading``), in
  the point's unit (C, L/min, kPa or bar, kW or W); a field the model has no value for (primary
  pressures) is served as the point's ``invalid`` marker, or not at all (exception 2);
- ``pumps.<name>``: the map's n-th pump is the CDU's n-th (state, health, speed, set point, run);
- ``leak_detectors.<name>``: the map's n-th detector is the CDU's n-th own detector;
- ``filters``, ``reservoirs``, ``identity``, ``cooling_mode``: as the Redfish CDU reports them.

Writes reach the model only through the map's ``writable`` points: a pump's ``run`` coil starts or
stops that pump, its ``setpoint_pct`` sets that pump's speed. Any other write, and any read of
an address the map does not give, answers exception 2 (Illegal Data Address), as a device does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.server import ModbusTcpServer

from rackval.sim.equipment_model import CduReading
from rackval.sim.model import RackModel

DEFAULT_MAP = Path(__file__).resolve().parents[2] / "racks" / "modbus-maps" / "generic-cdu.yaml"
_TABLES = {1: "coil", 2: "discrete", 3: "holding", 4: "input", 5: "coil", 15: "coil", 6: "holding", 16: "holding"}
_WIDTH = {"u16": 1, "s16": 1, "bool": 1, "u32": 2, "s32": 2, "f32": 2}
# the point's unit per unit of the model's (temperatures C, flows L/min, pressures kPa, heat kW ...)
_FROM_MODEL = {"C": 1.0, "L/min": 1.0, "kPa": 1.0, "bar": 0.01, "kW": 1.0, "W": 1000.0, "%": 1.0, "h": 1.0, "L": 1.0}


@dataclass(frozen=True)
class Point:
    """One point of a register map (the fields the server needs)."""

    field: str
    table: str
    address: int
    type: str
    big_endian_words: bool
    scale: float = 1.0
    unit: str | None = None
    invalid: tuple[int, ...] = ()
    enum: dict[int, str] = field(default_factory=dict)
    writable: bool = False


def load_points(path: Path) -> list[Point]:
    """The points of a register map file; a malformed one raises ValueError naming file and point."""
    doc = yaml.safe_load(Path(path).read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("points"), list):
        raise ValueError(f"{path}: not a register map (no points: list)")
    offset, order = int(doc.get("address_offset", 0)), doc.get("word_order", "big")
    points = []
    for i, p in enumerate(doc["points"]):
        try:
            table = p["table"]
            kind = p.get("type", "bool" if table in ("coil", "discrete") else "u16")
            if kind not in _WIDTH or table not in ("coil", "discrete", "holding", "input"):
                raise ValueError(f"type {kind!r} / table {table!r}")
            points.append(Point(
                p["field"], table, int(p["register"]) - offset, kind, p.get("word_order", order) == "big",
                float(p.get("scale", 1.0)), p.get("unit"), tuple(p.get("invalid", ())),
                {int(k): str(v) for k, v in (p.get("enum") or {}).items()}, bool(p.get("writable", False)),
            ))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: points.{i}: cannot serve this point ({exc})") from None
    return points


def _members(points: list[Point], group: str) -> list[str]:
    """Member names of ``group`` (pumps, leak_detectors) in the map's order."""
    seen: list[str] = []
    for p in points:
        parts = p.field.split(".")
        if parts[0] == group and parts[1] not in seen:
            seen.append(parts[1])
    return seen


def _words(p: Point, value: Any) -> list[int] | None:
    """The raw words (or bit) of ``value`` as ``p`` encodes it; None when it cannot be served."""
    if value is None:
        return [p.invalid[0]] if p.invalid else None
    if p.enum:
        raw = next((k for k, word in p.enum.items() if word == value), None)
        return None if raw is None else [raw]
    if p.type == "bool":
        return [1 if value else 0]
    v = float(value) * _FROM_MODEL.get(p.unit or "", 1.0) / p.scale
    if p.type == "f32":
        hi, lo = struct.unpack(">HH", struct.pack(">f", v))
    elif p.type in ("u32", "s32"):
        n = round(v) & 0xFFFFFFFF
        hi, lo = n >> 16, n & 0xFFFF
    else:
        return [round(v) & 0xFFFF]
    return [hi, lo] if p.big_endian_words else [lo, hi]


class CduRegisters:
    """The CDU's registers as a map lays them out, read from (and written to) the model."""

    def __init__(self, model: RackModel, cdu: str, points: list[Point]) -> None:
        self.model, self.cdu, self.points = model, cdu, points
        self.pumps = dict(zip(_members(points, "pumps"), [p.name for p in model.cooling.cdu(cdu).pumps], strict=False))
        own = [d.name for d in model.cooling.cdu(cdu).detectors if d.where == cdu]
        self.detectors = dict(zip(_members(points, "leak_detectors"), own, strict=False))

    def values(self) -> dict[str, Any]:
        """Every field the model can fill, in the model's units (states as Redfish words)."""
        r: CduReading = self.model.cooling.reading(self.cdu)
        info = self.model.cooling.cdu(self.cdu).info
        level = 100.0 * r.reservoir_l / r.reservoir_capacity_l
        out: dict[str, Any] = {
            "identity.serial": int("".join(c for c in info.serial if c.isdigit()) or 0),
            "identity.firmware": int("".join(c for c in info.firmware if c.isdigit()) or 0),
            "cooling_mode": "Enabled",
            "loops.primary.supply_temp_c": r.primary_supply_c, "loops.primary.return_temp_c": r.primary_return_c,
            "loops.primary.flow_lpm": r.primary_flow_lpm, "loops.primary.heat_kw": r.heat_w / 1000.0,
            "loops.primary.supply_pressure_kpa": None, "loops.primary.return_pressure_kpa": None,
            "loops.secondary.supply_temp_c": r.supply_c, "loops.secondary.return_temp_c": r.return_c,
            "loops.secondary.delta_temp_c": r.return_c - r.supply_c, "loops.secondary.flow_lpm": r.flow_lpm,
            "loops.secondary.supply_pressure_kpa": r.supply_kpa, "loops.secondary.return_pressure_kpa": r.return_kpa,
            "loops.secondary.delta_pressure_kpa": r.delta_kpa, "loops.secondary.heat_kw": r.heat_w / 1000.0,
            "loops.secondary.supply_setpoint_c": r.setpoint_c,
            "filters.F1.health": "OK", "filters.F1.service_hours": 2180, "filters.F1.rated_service_hours": 10000,
            "reservoirs.R1.level_pct": level, "reservoirs.R1.capacity_l": r.reservoir_capacity_l,
            "reservoirs.R1.level_status": "OK" if level >= 50 else "Warning" if level >= 20 else "Critical",
        }  # fmt: skip
        pumps = {p.name: p for p in r.pumps}
        for name, pump in self.pumps.items():
            p = pumps[pump]
            out |= {
                f"pumps.{name}.state": {"OK": "Enabled", "Stopped": "Disabled"}.get(p.status, "UnavailableOffline"),
                f"pumps.{name}.health": "Critical" if p.status == "Failed" else "OK",
                f"pumps.{name}.speed_pct": p.speed_percent, f"pumps.{name}.setpoint_pct": p.setpoint_percent,
                f"pumps.{name}.control_mode": "Manual", f"pumps.{name}.run": p.status != "Stopped",
            }  # fmt: skip
        leaks = {name: state for name, _, state in r.leaks}
        for name, detector in self.detectors.items():
            out[f"leak_detectors.{name}.detector_state"] = leaks[detector]
        return out

    def read(self, table: str, address: int, count: int) -> list[int] | None:
        """``count`` words (bits) from ``address``; None when any of them is not served."""
        values = self.values()
        served: dict[int, int] = {}
        for p in self.points:
            if p.table == table and p.field in values:
                words = _words(p, values[p.field])
                if words is not None:
                    served.update({p.address + i: w for i, w in enumerate(words)})
        if any(a not in served for a in range(address, address + count)):
            return None
        return [served[a] for a in range(address, address + count)]

    def write(self, table: str, address: int, values: Sequence[int | bool]) -> bool:
        """Apply a write to the model through the map's writable points; False: refused."""
        point = next((p for p in self.points if p.table == table and p.address == address and p.writable), None)
        if point is None or len(values) != 1:
            return False
        member = point.field.split(".")
        if member[0] != "pumps" or member[1] not in self.pumps:
            return False
        if member[2] == "run":
            self.model.cooling.set_pump(self.cdu, self.pumps[member[1]], bool(values[0]))
            return True
        if member[2] == "setpoint_pct":
            percent = int(values[0]) * point.scale
            if not 0 < percent <= 100:
                return False
            self.model.cooling.set_pump_speed(self.cdu, self.pumps[member[1]], percent)
            return True
        return False


class _LiveContext(ModbusServerContext):
    """pymodbus's server context, answering from ``CduRegisters`` (every unit id)."""

    def __init__(self, registers: CduRegisters) -> None:  # the base's store is not used
        self.registers = registers
        self.old_simulator = True
        self.simdevices = []

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1) -> Any:
        table = _TABLES.get(func_code)
        words = self.registers.read(table, address, count) if table else None
        if words is None:
            return ExcCodes.ILLEGAL_ADDRESS
        return [bool(w) for w in words] if table in ("coil", "discrete") else words

    async def async_setValues(self, device_id: int, func_code: int, address: int, values: Any) -> Any:
        table = _TABLES.get(func_code)
        if table is None or not self.registers.write(table, address, list(values)):
            return ExcCodes.ILLEGAL_ADDRESS
        return None

    def device_ids(self) -> list[int]:
        return [0]


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ModbusCduServer:
    """A running Modbus TCP CDU: ``host``/``port``; ``stop()`` ends it (safe to call twice)."""

    def __init__(self, model: RackModel, cdu: str, host: str, map_path: Path) -> None:
        self.device = f"{cdu}-modbus"
        self.host = host
        self.registers = CduRegisters(model, cdu, load_points(map_path))
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: ModbusTcpServer | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"modbus-{cdu}")
        self._thread.start()
        if not self._ready.wait(10.0) or self._error is not None:
            self.stop()
            raise RuntimeError(f"Modbus CDU {cdu} did not start on {host}: {self._error}")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        logging.getLogger("pymodbus").setLevel(logging.ERROR)  # its deprecation notes are not ours to print
        for _ in range(5):  # the free port may be taken between finding and binding it
            self.port = _free_port(self.host)
            try:
                self._loop.run_until_complete(self._listen())
                break
            except (OSError, RuntimeError) as exc:
                self._error = exc
        else:
            self._ready.set()
            return
        self._error = None
        self._ready.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        self._server = ModbusTcpServer(_LiveContext(self.registers), address=(self.host, self.port))
        await self._server.serve_forever(background=True)

    def stop(self) -> None:
        if self._loop.is_running():
            if self._server is not None:
                asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5.0)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._loop.is_running() and not self._loop.is_closed() and not self._thread.is_alive():
            self._loop.close()


def start_cdu_modbus(
    model: RackModel, cdu: str, *, host: str = "127.0.0.1", map_path: Path = DEFAULT_MAP
) -> ModbusCduServer:
    """Start the Modbus TCP server of CDU ``cdu`` laid out as ``map_path`` says, on a free port."""
    if cdu not in model.cooling.cdus():
        raise ValueError(f"no CDU {cdu!r} in the model (have {model.cooling.cdus() or 'none'})")
    return ModbusCduServer(model, cdu, host, map_path)


def write_register_map(directory: Path, cdu: str, map_path: Path = DEFAULT_MAP) -> Path:
    """Copy the map the server serves beside the rack file (the driver's ``register_map``)."""
    target = directory / f"{cdu}-registers.yaml"
    target.write_text(Path(map_path).read_text())
    return target
