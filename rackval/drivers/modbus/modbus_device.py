"""CDUs and power shelves over Modbus TCP, read and controlled through a register map (data).

The map (``rackval.drivers.modbus.register_map``, written from the vendor's manual) says which
register fills which capability field; these drivers read the fields of a call (every pump's,
say) in as few requests as the map's layout allows (``rackval.drivers.modbus.read_plan``) and
build the capability records from what came back. A field the map does not give, or that the device
answers with exception 1 / 2 (it lacks the register), is None in its record ("" for a state),
never 0; a list (pumps, feeds, ...) the map gives no member of is ``NotAvailable``, as is a
single reading (the cooling mode, the DC output) the device cannot give. Every other failure
(timeout, device failure, a state value the map's enum does not list) is a DeviceError naming
device, address and the register.

Controls write the map's control points (``pumps.<name>.run``, ``pumps.<name>.setpoint_pct``,
``rectifiers.<name>.run``, ``feeds.<name>.run``); a control the map does not give is refused
before anything is written. Redundancy is not part of a register map: ``pump_redundancy`` and
``rectifier_redundancy`` are ``NotAvailable``.
"""

from __future__ import annotations

import math
from dataclasses import fields as dataclass_fields
from typing import Any, TypeVar

from rackval.core.errors import ConfigError, DeviceError, DeviceProtocolError, NotAvailable, protocol_errors
from rackval.drivers.capabilities import (
    BatteryState,
    CoolantReading,
    CoolingUnit,
    DcOutput,
    Device,
    FeedReading,
    FilterState,
    Identity,
    LeakDetection,
    LeakDetectorState,
    PowerMeter,
    PowerShelf,
    PumpControl,
    PumpState,
    RectifierState,
    RedundancyGroup,
    ReservoirState,
    ShelfControl,
)
from rackval.drivers.config import DeviceConfig
from rackval.drivers.modbus.read_plan import plan_reads
from rackval.drivers.modbus.register_map import (
    CONTROL,
    LOOPS,
    Point,
    RegisterMap,
    decode,
    encode,
    field_kind,
    load_register_map,
)
from rackval.drivers.options import ModbusOptions, parse_options
from rackval.drivers.transport.modbus import ModbusTransport

R = TypeVar("R")
_FROM_MAP_ONLY = {"name", "loop", "efficiency_measured", "holdup_estimated"}


class ModbusEquipment:
    """What the Modbus CDU and power shelf share: the map, the transport, per-field reads, identity."""

    options_model = ModbusOptions
    KIND = ""

    def __init__(self, config: DeviceConfig) -> None:
        self.name = config.name
        self._config = config
        opts = parse_options(self.options_model, config.options, config.name)
        self.map: RegisterMap = load_register_map(opts.register_map)
        if self.map.kind != self.KIND:
            raise ConfigError(
                f"device {config.name}: option 'register_map': {opts.register_map} is a {self.map.kind} map, "
                f"not a {self.KIND} map"
            )
        self._transport = ModbusTransport(config, opts.unit_id if opts.unit_id is not None else self.map.unit_id)
        self._split: set[tuple[str, int, int]] = set()  # spans the device refused: read point by point

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self._config.address!r}, {self.map.name!r})"

    def _err(self, cls: type[DeviceError], operation: str, detail: str) -> DeviceError:
        return cls(self._config.name, self._config.address, operation, detail)

    # ---- reading ---------------------------------------------------------------------------------
    def _value(self, field: str) -> Any:
        """The field's value, or None when the map or the device lacks it."""
        return self._values([field])[field]

    def _values(self, wanted: list[str]) -> dict[str, Any]:
        """Each field's value (None when the map or the device lacks it), neighbouring registers
        read in one request. A span the device refuses as absent (exception 1 / 2) is read point
        by point, now and on every later call (``_split``), so a register it lacks costs only itself."""
        out: dict[str, Any] = dict.fromkeys(wanted)
        points = [(p, self.map.address(p)) for p in (self.map.find(f) for f in wanted) if p is not None]
        for span in plan_reads(points, max_registers=self.map.max_read, max_gap=self.map.read_gap):
            words = None
            if len(span.points) > 1 and (span.table, span.start, span.count) not in self._split:
                try:
                    words = self._transport.read(span.table, span.start, span.count)
                except NotAvailable:
                    self._split.add((span.table, span.start, span.count))
            for point, address in span.points:
                if words is not None:
                    out[point.field] = self._decoded(point, span.words_of(words, point, address))
                    continue
                try:
                    alone = self._transport.read(point.table, address, point.words)
                except NotAvailable:
                    continue
                out[point.field] = self._decoded(point, alone)
        return out

    def _decoded(self, point: Point, words: list[int]) -> Any:
        try:
            return decode(point, self.map.order(point), words)
        except ValueError as exc:
            raise self._err(DeviceProtocolError, f"read {point.field}", str(exc)) from None

    def _members(self, collection: str, operation: str) -> list[str]:
        names = self.map.members(collection)
        if not names:
            raise self._err(NotAvailable, operation, f"the register map {self.map.name!r} gives no {collection}")
        return names

    def _read_records(
        self, record: type[R], collection: str, members: list[str], given: dict[str, dict[str, Any]] | None = None
    ) -> list[R]:
        """One record per member, every member's fields read together (``_values``); ``given``:
        fields per member that do not come from registers."""
        given = given or {}
        names = [f.name for f in dataclass_fields(record)]  # type: ignore[arg-type]
        wanted = {m: [n for n in names if n not in _FROM_MAP_ONLY and n not in given.get(m, {})] for m in members}
        read = self._values([f"{collection}.{m}.{n}" for m in members for n in wanted[m]])
        out = []
        for m in members:
            values: dict[str, Any] = {"name": m, **given.get(m, {})}
            for n in wanted[m]:
                value = read[f"{collection}.{m}.{n}"]
                values[n] = ("" if value is None else value) if field_kind(n) == "text" else value
            out.append(record(**values))
        return out

    def _records(self, record: type[R], collection: str) -> list[R]:
        return self._read_records(record, collection, self._members(collection, f"read {collection}"))

    @protocol_errors("identify")
    def identify(self) -> Identity:
        """The map's identity text, with the registers it names (serial, firmware) read."""
        out = []
        keys = ("vendor", "model", "serial", "firmware")
        read = self._values([f"identity.{key}" for key in keys])
        for key in keys:
            value = read[f"identity.{key}"]
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            out.append(str(value) if value is not None else getattr(self.map.identity, key))
        return Identity(*out)

    def close(self) -> None:
        self._transport.close()

    # ---- writing ---------------------------------------------------------------------------------
    def _write(self, field: str, value: float | bool | str, operation: str) -> None:
        point = self.map.find(field)
        if point is None or not point.writable:
            raise self._err(DeviceError, operation, f"the register map {self.map.name!r} gives no writable {field}")
        try:
            raw = encode(point, self.map.order(point), value)
        except ValueError as exc:
            raise self._err(DeviceError, operation, str(exc)) from None
        self._transport.write(point.table, self.map.address(point), raw)

    def _control(self, collection: str, member: str, on: bool, operation: str) -> None:
        if member not in self.map.members(collection):
            have = self.map.members(collection)
            raise self._err(DeviceError, operation, f"no {member!r} in {collection} (the map has {have})")
        self._write(f"{collection}.{member}.{CONTROL}", "on" if on else "off", operation)


class ModbusCdu(ModbusEquipment, Device, CoolingUnit, PumpControl, LeakDetection):
    """A CDU over Modbus TCP through a ``kind: cdu`` register map (option ``register_map``)."""

    KIND = "cdu"

    @protocol_errors("read the cooling mode")
    def cooling_mode(self) -> str:
        mode = self._value("cooling_mode")
        if mode is None:
            raise self._err(NotAvailable, "read the cooling mode", "the map or the device gives no cooling_mode")
        return str(mode)

    @protocol_errors("read pumps")
    def pumps(self) -> list[PumpState]:
        return self._records(PumpState, "pumps")

    def pump_redundancy(self) -> RedundancyGroup:
        raise self._err(NotAvailable, "read pump redundancy", "a Modbus register map does not describe redundancy")

    @protocol_errors("read filters")
    def filters(self) -> list[FilterState]:
        return self._records(FilterState, "filters")

    @protocol_errors("read reservoirs")
    def reservoirs(self) -> list[ReservoirState]:
        return self._records(ReservoirState, "reservoirs")

    @protocol_errors("read coolant loops")
    def loops(self) -> list[CoolantReading]:
        names = self._members("loops", "read coolant loops")
        loops = [loop for loop in LOOPS if loop in names]
        return self._read_records(CoolantReading, "loops", loops, {loop: {"loop": loop} for loop in loops})

    @protocol_errors("read leak detectors")
    def leak_detectors(self) -> list[LeakDetectorState]:
        return self._records(LeakDetectorState, "leak_detectors")

    def set_pump(self, pump: str, on: bool) -> None:
        """Write the pump's run point (a coil, or a register with on / off values). Through the gate."""
        self._control("pumps", pump, on, f"set pump {pump} {'on' if on else 'off'}")

    def set_pump_speed(self, pump: str, percent: float) -> None:
        """Write the pump's speed set point in percent (0..100). Through the gate."""
        op = f"set pump {pump} speed to {percent!r} %"
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent):
            raise self._err(DeviceError, op, "the speed must be a number of percent")
        if not 0 <= percent <= 100:
            raise self._err(DeviceError, op, "the speed must be within 0..100 %")
        if pump not in self.map.members("pumps"):
            raise self._err(DeviceError, op, f"no {pump!r} in pumps (the map has {self.map.members('pumps')})")
        self._write(f"pumps.{pump}.setpoint_pct", float(percent), op)


class ModbusPowerShelf(ModbusEquipment, Device, PowerMeter, PowerShelf, ShelfControl):
    """A power shelf over Modbus TCP through a ``kind: power_shelf`` register map."""

    KIND = "power_shelf"

    @protocol_errors("read feeds")
    def feeds(self) -> list[FeedReading]:
        return self._records(FeedReading, "feeds")

    @protocol_errors("read rectifiers")
    def rectifiers(self) -> list[RectifierState]:
        out = []
        members = self._members("rectifiers", "read rectifiers")
        measured = {m: {"efficiency_measured": True} for m in members}
        for r in self._read_records(RectifierState, "rectifiers", members, measured):
            if r.efficiency_pct is None and r.input_power_w and r.output_power_w is not None:
                ratio = round(100 * r.output_power_w / r.input_power_w, 3)
                r = RectifierState(**{**r.__dict__, "efficiency_pct": ratio, "efficiency_measured": False})
            out.append(r)
        return out

    def rectifier_redundancy(self) -> RedundancyGroup:
        raise self._err(NotAvailable, "read rectifier redundancy", "a Modbus register map does not describe redundancy")

    @protocol_errors("read the DC output")
    def dc_output(self) -> DcOutput:
        read = self._values([f"dc_output.{k}" for k in ("voltage_v", "current_a", "power_w")])
        values = {k.removeprefix("dc_output."): v for k, v in read.items()}
        if all(v is None for v in values.values()):
            raise self._err(NotAvailable, "read the DC output", "the map or the device gives no dc_output reading")
        return DcOutput(name="dc", **values)

    @protocol_errors("read batteries")
    def batteries(self) -> list[BatteryState]:
        names = self._members("batteries", "read batteries")
        load_w: float | None = None
        if any(self.map.find(f"batteries.{n}.holdup_s") is None for n in names):
            try:
                load_w = self.dc_output().power_w
            except NotAvailable:
                load_w = None
        out = []
        for b in self._read_records(BatteryState, "batteries", names, {n: {"holdup_estimated": False} for n in names}):
            if b.holdup_s is None and b.stored_energy_wh is not None and load_w:
                estimate = round(b.stored_energy_wh * 3600 / (load_w / len(names)), 1)
                b = BatteryState(**{**b.__dict__, "holdup_s": estimate, "holdup_estimated": True})
            out.append(b)
        return out

    @protocol_errors("read power")
    def power_watts(self) -> float:
        """The shelf's ``power_w`` point, else the sum of its feeds' power (all of them reporting)."""
        total = self._value("power_w")
        if total is not None:
            return float(total)
        feeds = [f.power_w for f in self.feeds()]
        if not feeds or any(w is None for w in feeds):
            raise self._err(NotAvailable, "read power", "no power_w point and not every feed reports power_w")
        return round(sum(w for w in feeds if w is not None), 9)

    def set_rectifier(self, rectifier: str, on: bool) -> None:
        """Write the rectifier's run point. Through the gate."""
        self._control("rectifiers", rectifier, on, f"switch rectifier {rectifier} {'on' if on else 'off'}")

    def set_feed(self, feed: str, on: bool) -> None:
        """Write the feed's run point (its input breaker). Through the gate."""
        self._control("feeds", feed, on, f"switch feed {feed} {'on' if on else 'off'}")
