"""A simulated CDU speaking Modbus TCP (pymodbus's server) through a register map, on 127.0.0.1.

Why a module of its own: facility equipment often speaks Modbus rather than Redfish, and the
``modbus-cdu`` driver reads it through a register map (YAML, format in racks/modbus-maps/README.md).
This server is the other side: it serves the same CDU as ``redfish_cdu`` — the one model, read at
request time — laid out as a register map says (by default ``racks/modbus-maps/generic-cdu.yaml``,
the generic layout the map format ships). The format is the driver's
(``rackval.drivers.modbus.register_map``): the map is loaded and checked by ``load_register_map``
(a wrong map is the driver's error, naming file:line: field), served words are ``to_words`` of a
field's value and written words are read with ``decode``, so the two sides cannot disagree on an
encoding, a word order, a scale, a unit or an invalid marker. What this module owns is which model
quantity fills which map field, in the field's unit (the unit its name ends in):

- ``loops.primary.*`` / ``loops.secondary.*``: the CDU's readings (``model.cooling.reading``);
  a field the model has no value for (primary pressures) is served as the point's ``invalid``
  marker, or not at all (exception 2);
- ``pumps.<name>``: the map's n-th pump is the CDU's n-th (state, health, speed, set point, run);
- ``leak_detectors.<name>``: the map's n-th detector is the CDU's n-th own detector;
- ``filters``, ``reservoirs``, ``identity``, ``cooling_mode``: as the Redfish CDU reports them.

Writes reach the model only through the map's ``writable`` points: a pump's ``run`` point starts or
stops that pump, its ``setpoint_pct`` sets that pump's speed (above 0, at most 100 %). Any other
write, and any read of an address the map does not give (or of a value its point cannot hold),
answers exception 2 (Illegal Data Address), as a device does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.server import ModbusTcpServer

from rackval.core.errors import ConfigError
from rackval.drivers.modbus.register_map import BIT_TABLES, CONTROL, RegisterMap, decode, load_register_map, to_words
from rackval.sim.equipment_model import CduReading
from rackval.sim.model import RackModel

DEFAULT_MAP = Path(__file__).resolve().parents[2] / "racks" / "modbus-maps" / "generic-cdu.yaml"
# Modbus function code -> the table it reads or writes (the protocol's, not the map's)
_TABLES = {1: "coil", 2: "discrete", 3: "holding", 4: "input", 5: "coil", 15: "coil", 6: "holding", 16: "holding"}


class CduRegisters:
    """The CDU's registers as a map lays them out, read from (and written to) the model."""

    def __init__(self, model: RackModel, cdu: str, register_map: RegisterMap) -> None:
        self.model, self.cdu, self.map = model, cdu, register_map
        pumps = [p.name for p in model.cooling.cdu(cdu).pumps]
        self.pumps = dict(zip(register_map.members("pumps"), pumps, strict=False))
        own = [d.name for d in model.cooling.cdu(cdu).detectors if d.where == cdu]
        self.detectors = dict(zip(register_map.members("leak_detectors"), own, strict=False))

    def values(self) -> dict[str, Any]:
        """Every field the model can fill, in the field's unit (states as Redfish words, None: no reading)."""
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
                f"pumps.{name}.control_mode": "Manual", f"pumps.{name}.{CONTROL}": p.status != "Stopped",
            }  # fmt: skip
        leaks = {name: state for name, _, state in r.leaks}
        for name, detector in self.detectors.items():
            out[f"leak_detectors.{name}.detector_state"] = leaks[detector]
        return out

    def read(self, table: str, address: int, count: int) -> list[int] | None:
        """``count`` words (bits) from ``address``; None when any of them is not served."""
        values = self.values()
        served: dict[int, int] = {}
        for p in self.map.points:
            if p.table == table and p.field in values:
                try:
                    words = to_words(p, self.map.order(p), values[p.field])
                except ValueError:  # a value the point cannot hold (no invalid marker, no enum word): not served
                    continue
                served.update({self.map.address(p) + i: w for i, w in enumerate(words)})
        if any(a not in served for a in range(address, address + count)):
            return None
        return [served[a] for a in range(address, address + count)]

    def write(self, table: str, address: int, words: Sequence[int | bool]) -> bool:
        """Apply a write to the model through the map's writable points; False: refused."""
        m = self.map
        point = next((p for p in m.points if p.table == table and m.address(p) == address and p.writable), None)
        if point is None or len(words) != point.words:
            return False
        collection, member, leaf = point.field.split(".")  # a writable point is <list>.<name>.run / .setpoint_pct
        if collection != "pumps" or member not in self.pumps:
            return False
        try:
            value = decode(point, m.order(point), words)
        except ValueError:  # a state value the point's enum does not list
            return False
        if leaf == CONTROL and isinstance(value, bool):
            self.model.cooling.set_pump(self.cdu, self.pumps[member], value)
            return True
        if leaf == "setpoint_pct" and isinstance(value, float) and 0 < value <= 100:
            self.model.cooling.set_pump_speed(self.cdu, self.pumps[member], value)
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
        return [bool(w) for w in words] if table in BIT_TABLES else words

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
        register_map = load_register_map(map_path)
        if register_map.kind != "cdu":
            raise ConfigError(f"{map_path}: a {register_map.kind} register map, not a cdu map: a CDU cannot serve it")
        self.registers = CduRegisters(model, cdu, register_map)
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
