"""The Modbus register map format: which register fills which capability field, as data.

Facility equipment (CDUs, power shelves, chillers) often speaks Modbus instead of Redfish, and
every make numbers its registers differently. rackval has no vendor code for them: a user writes
the vendor's register table as a YAML map (format documented in ``racks/modbus-maps/README.md``)
and the Modbus drivers (``rackval.drivers.modbus.modbus_device``) read and write through it. The
simulator's Modbus CDU (``rackval.sim.modbus_cdu``) serves the same maps through this module
(``to_words`` what it serves, ``decode`` what it is written). This module owns the format: its
models, the checks that make a wrong map one line naming ``file:line: field``, and the conversion
between raw register words and values in the capability records' units, both ways.

A point says where a value lives (``table``: holding, input, coil, discrete; ``register``:
the protocol address, less the map's ``address_offset``), how it is encoded (``type``: u16,
s16, u32, s32, f32 or bool; ``word_order`` of 32-bit values), how to scale it (``scale``, then
the ``unit`` converted to the field's unit), which raw values mean "no reading" (``invalid``,
e.g. 0xFFFF), the words of an enumerated state (``enum``), and which capability field it fills
(``field``: ``loops.secondary.supply_temp_c``, ``pumps.P1.speed_pct``, ``feeds.A.voltage_v``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rackval.core.errors import ConfigError
from rackval.core.hints import did_you_mean
from rackval.core.yamlfile import YamlLocator, load_yaml_model
from rackval.drivers.capabilities import (
    BatteryState,
    CoolantReading,
    DcOutput,
    FeedReading,
    FilterState,
    LeakDetectorState,
    PumpState,
    RectifierState,
    ReservoirState,
)

TABLES = ("holding", "input", "coil", "discrete")
BIT_TABLES = ("coil", "discrete")
WRITABLE_TABLES = ("holding", "coil")
WORDS = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "f32": 2, "bool": 1}
CONTROL = "run"
"""The field a control point fills: ``pumps.P1.run``, ``rectifiers.R1.run``, ``feeds.A.run``."""

# Units a point may be given in, per field unit: factor and offset to the field's unit.
_CONVERSIONS: dict[str, dict[str, tuple[float, float]]] = {
    "C": {"C": (1, 0), "K": (1, -273.15), "F": (5 / 9, -32 * 5 / 9)},
    "kPa": {"kPa": (1, 0), "Pa": (0.001, 0), "bar": (100, 0), "psi": (6.894757, 0)},
    "L/min": {"L/min": (1, 0), "m3/h": (1000 / 60, 0), "gpm": (3.785412, 0), "L/s": (60, 0)},
    "kW": {"kW": (1, 0), "W": (0.001, 0)},
    "W": {"W": (1, 0), "kW": (1000, 0)},
    "Wh": {"Wh": (1, 0), "kWh": (1000, 0)},
    "V": {"V": (1, 0)},
    "A": {"A": (1, 0)},
    "Hz": {"Hz": (1, 0)},
    "%": {"%": (1, 0)},
    "s": {"s": (1, 0), "min": (60, 0), "h": (3600, 0)},
    "h": {"h": (1, 0)},
    "L": {"L": (1, 0)},
}
_SUFFIX_UNITS = {
    "_c": "C", "_kpa": "kPa", "_lpm": "L/min", "_kw": "kW", "_w": "W", "_wh": "Wh", "_v": "V", "_a": "A",
    "_hz": "Hz", "_pct": "%", "_s": "s", "_hours": "h", "_l": "L",
}  # fmt: skip
_TEXT_FIELDS = {"state", "health", "control_mode", "level_status", "detector_state", "charge_state"}
_BOOL_FIELDS = {"input_ok", "on"}
_TRUE = ("true", "on", "ok", "yes", "1")

# The collections of each kind: collection -> the record whose fields a member's points fill.
_LISTS: dict[str, dict[str, type]] = {
    "cdu": {
        "pumps": PumpState,
        "filters": FilterState,
        "reservoirs": ReservoirState,
        "loops": CoolantReading,
        "leak_detectors": LeakDetectorState,
    },
    "power_shelf": {
        "feeds": FeedReading,
        "rectifiers": RectifierState,
        "batteries": BatteryState,
    },
}
_SINGLE: dict[str, dict[str, tuple[str, ...]]] = {
    "cdu": {"cooling_mode": ()},
    "power_shelf": {"dc_output": tuple(f.name for f in dataclass_fields(DcOutput) if f.name != "name"), "power_w": ()},
}
_IDENTITY = ("vendor", "model", "serial", "firmware")
_CONTROLLED = {"pumps", "feeds", "rectifiers"}
_NOT_FROM_REGISTERS = {"name", "loop", "efficiency_measured", "holdup_estimated"}
LOOPS = ("primary", "secondary")


def field_unit(field: str) -> str | None:
    """The unit a numeric capability field is in (``supply_temp_c`` -> "C"); None: not a quantity."""
    leaf = field.rsplit(".", 1)[-1]
    return next((u for s, u in _SUFFIX_UNITS.items() if leaf.endswith(s)), None)


def field_kind(field: str) -> str:
    """The field's sort: "text" (an enumerated state), "bool", "control" or "number"."""
    leaf = field.rsplit(".", 1)[-1]
    if leaf == CONTROL:
        return "control"
    if leaf in _TEXT_FIELDS or field == "cooling_mode":
        return "text"
    if leaf in _BOOL_FIELDS:
        return "bool"
    return "number"


def known_fields(kind: str) -> list[str]:
    """Every field pattern of ``kind`` (``<name>`` stands for a member's name), for messages and docs."""
    out = [f"identity.{f}" for f in _IDENTITY]
    for collection, record in _LISTS[kind].items():
        names = [f.name for f in dataclass_fields(record) if f.name not in _NOT_FROM_REGISTERS]
        names += [CONTROL] if collection in _CONTROLLED else []
        member = "<primary|secondary>" if collection == "loops" else "<name>"
        out += [f"{collection}.{member}.{n}" for n in names]
    for single, subfields in _SINGLE[kind].items():
        out += [f"{single}.{s}" for s in subfields] if subfields else [single]
    return out


def field_problem(kind: str, field: str) -> str | None:
    """Why ``field`` is not a field a ``kind`` map can fill (None: it is)."""
    parts = field.split(".")
    head = parts[0]
    lists, singles = _LISTS[kind], _SINGLE[kind]
    if head == "identity" and len(parts) == 2 and parts[1] in _IDENTITY:
        return None
    if head in singles:
        subfields = singles[head]
        if (not subfields and len(parts) == 1) or (len(parts) == 2 and parts[1] in subfields):
            return None
    elif head in lists and len(parts) == 3 and parts[1]:
        record = lists[head]
        allowed = {f.name for f in dataclass_fields(record)} - _NOT_FROM_REGISTERS
        allowed |= {CONTROL} if head in _CONTROLLED else set()
        if head == "loops" and parts[1] not in LOOPS:
            return f"a loop is 'primary' or 'secondary', not {parts[1]!r}"
        if parts[2] in allowed:
            return None
        hint = did_you_mean(parts[2], sorted(allowed))
        return f"{head} have no field {parts[2]!r}{' (' + hint + ')' if hint else ''}; they have {sorted(allowed)}"
    patterns = known_fields(kind)
    hint = did_you_mean(field, patterns)
    return f"not a {kind} field{' (' + hint + ')' if hint else ''}; the fields are {', '.join(patterns)}"


# ---- the models ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Point(_Strict):
    """One register (or pair of registers, or bit) and the capability field it fills."""

    field: Annotated[str, Field(min_length=1)]
    table: Literal["holding", "input", "coil", "discrete"]
    reg: int = Field(ge=0, alias="register")  # ``register`` in the file (a BaseModel attribute name)
    type: Literal["u16", "s16", "u32", "s32", "f32", "bool"] | None = None
    word_order: Literal["big", "little"] | None = None
    scale: float = Field(1.0, allow_inf_nan=False)
    unit: str = ""
    enum: dict[int, str] | None = None
    invalid: tuple[int, ...] = ()
    writable: bool = False
    description: str = ""

    @field_validator("enum", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        # YAML reads unquoted on / off / yes / no as booleans: {1: on, 0: off} means the words
        if isinstance(value, dict):
            return {k: ("on" if v else "off") if isinstance(v, bool) else v for k, v in value.items()}
        return value

    @field_validator("invalid", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("must be a non-zero number")
        return value

    @property
    def kind(self) -> str:
        """The encoding, defaulted: bool for coils and discrete inputs, u16 for registers."""
        return self.type or ("bool" if self.table in BIT_TABLES else "u16")

    @property
    def words(self) -> int:
        return WORDS[self.kind]


class Identity(_Strict):
    """Identity text the device does not hold in registers (from the vendor's data sheet)."""

    vendor: str = ""
    model: str = ""
    serial: str = ""
    firmware: str = ""


class RegisterMap(_Strict):
    """A device's register map (the whole YAML file)."""

    kind: Literal["cdu", "power_shelf"]
    name: Annotated[str, Field(min_length=1)]
    source: Annotated[str, Field(min_length=1)]
    unit_id: int = Field(1, ge=0, le=247)
    word_order: Literal["big", "little"] = "big"
    address_offset: int = Field(0, ge=0)
    max_read: int = Field(125, ge=1, le=125)  # registers one request may ask (125: the protocol's limit)
    read_gap: int = Field(4, ge=0, le=124)  # unlisted registers a request may read through to the next point
    identity: Identity = Identity()
    points: tuple[Point, ...] = Field(min_length=1)

    @field_validator("points", mode="before")
    @classmethod
    def _tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    def address(self, point: Point) -> int:
        """The protocol (0-based PDU) address of ``point``."""
        return point.reg - self.address_offset

    def order(self, point: Point) -> str:
        return point.word_order or self.word_order

    def find(self, field: str) -> Point | None:
        return next((p for p in self.points if p.field == field), None)

    def members(self, collection: str) -> list[str]:
        """Member names of ``collection`` (``pumps`` -> ["P1", "P2"]) in the order the map first names them."""
        seen: dict[str, None] = {}
        for p in self.points:
            parts = p.field.split(".")
            if len(parts) == 3 and parts[0] == collection:
                seen.setdefault(parts[1], None)
        return list(seen)


def _point_problems(m: RegisterMap, i: int, p: Point) -> list[tuple[tuple[Any, ...], str]]:
    loc: tuple[Any, ...] = ("points", i)
    problems: list[tuple[tuple[Any, ...], str]] = []
    why = field_problem(m.kind, p.field)
    if why:
        problems.append(((*loc, "field"), why))
    address = m.address(p)
    if not 0 <= address <= 0xFFFF - (p.words - 1):
        problems.append(((*loc, "register"), f"address {address} (register {p.reg} less address_offset "
                         f"{m.address_offset}) is outside 0..{0xFFFF - (p.words - 1)} for a {p.kind}"))  # fmt: skip
    if p.table in BIT_TABLES and p.kind != "bool":
        problems.append(((*loc, "type"), f"a {p.table} holds one bit: type bool, not {p.kind}"))
    if p.table not in BIT_TABLES and p.kind == "bool":
        problems.append(((*loc, "type"), f"a {p.table} register holds a number: u16, s16, u32, s32 or f32"))
    kind = field_kind(p.field) if not why else "number"
    if kind == "text" and not p.enum:
        problems.append(((*loc, "enum"), f"{p.field} is a state: give the words of its values (enum)"))
    if kind == "control":
        if p.table not in WRITABLE_TABLES or not p.writable:
            problems.append(((*loc, "writable"), "a control point is a coil or holding register with writable: true"))
        elif p.table == "holding" and not (p.enum and {"on", "off"} <= {v.lower() for v in p.enum.values()}):
            problems.append(((*loc, "enum"), "a holding-register control needs the values of on and off (enum)"))
    elif p.writable and not (p.field.endswith(".setpoint_pct") and p.table == "holding"):
        problems.append(((*loc, "writable"), "only control points (run) and pump speed set points are written"))
    target = field_unit(p.field) if kind == "number" and not why else None
    if target and (p.unit or target) not in _CONVERSIONS[target]:
        problems.append(((*loc, "unit"), f"{p.unit!r} cannot fill {p.field} (in {target}; "
                         f"give one of {sorted(_CONVERSIONS[target])})"))  # fmt: skip
    if p.kind != "f32":
        span = (0, 0xFFFF) if p.words == 1 else (0, 0xFFFFFFFF)
        signed = p.kind.startswith("s")
        low, high = (-(span[1] // 2) - 1, span[1] // 2) if signed else span
        for j, raw in enumerate(p.invalid):
            if not low <= raw <= high:
                problems.append(((*loc, "invalid", j), f"{raw} is not a {p.kind} value"))
    return problems


def map_problems(m: RegisterMap) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-field problems of a validated map, each with the YAML path it belongs to."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    seen: dict[str, int] = {}
    for i, p in enumerate(m.points):
        problems += _point_problems(m, i, p)
        if p.field in seen:
            problems.append((("points", i, "field"), f"{p.field} is filled twice (first by points[{seen[p.field]}])"))
        seen.setdefault(p.field, i)
    return problems


def load_register_map(path: str | Path) -> RegisterMap:
    """Read and check a map file; a ConfigError naming ``file:line: field: problem`` otherwise."""
    m, where = load_yaml_model(Path(path), RegisterMap, "modbus map")
    problems = map_problems(m)
    if problems:
        raise where.errors(problems)
    return m


def check_map(m: RegisterMap, where: YamlLocator | None = None) -> RegisterMap:
    """``m`` when it has no cross-field problem (maps built in code); ConfigError otherwise."""
    problems = map_problems(m)
    if problems:
        if where is not None:
            raise where.errors(problems)
        raise ConfigError("invalid modbus map: " + "; ".join(f"{'.'.join(map(str, lo))}: {t}" for lo, t in problems))
    return m


# ---- raw words <-> values -------------------------------------------------------------------------


def _pack_words(words: Sequence[int], order: str) -> bytes:
    ordered = list(words) if order == "big" else list(reversed(words))
    return b"".join(struct.pack(">H", w & 0xFFFF) for w in ordered)


def raw_value(point: Point, order: str, words: Sequence[int]) -> float | int:
    """The raw number the register words hold (before scale); a bool point gives 0 or 1."""
    kind = point.kind
    if kind == "bool":
        return 1 if words[0] else 0
    data = _pack_words(words[: point.words], order)
    fmt = {"u16": ">H", "s16": ">h", "u32": ">I", "s32": ">i", "f32": ">f"}[kind]
    return struct.unpack(fmt, data)[0]


def decode(point: Point, order: str, words: Sequence[int]) -> float | str | bool | None:
    """The field's value from the register words: scaled and converted, an enum word, a bool (a
    bool field, or a control point: on is True), or None when the raw value is one of the point's
    ``invalid`` markers or not a finite number. A server reads what ``encode`` wrote with it.

    ValueError (naming the point) for a raw state value the enum does not list.
    """
    raw = raw_value(point, order, words)
    if isinstance(raw, float) and not math.isfinite(raw):
        return None
    if raw in point.invalid:
        return None
    kind = field_kind(point.field)
    if point.enum is not None:
        word = point.enum.get(int(raw)) if float(raw).is_integer() else None
        if word is None:
            raise ValueError(f"{point.field}: {point.table} register {point.reg} holds {raw!r}, "
                             f"which its enum does not list ({sorted(point.enum)})")  # fmt: skip
        if kind in ("bool", "control"):
            return word.strip().lower() in _TRUE
        return word
    if kind in ("bool", "control"):
        return bool(raw)
    value = float(raw) * point.scale
    target = field_unit(point.field)
    if target:
        factor, offset = _CONVERSIONS[target][point.unit or target]
        value = value * factor + offset
    return value


def _pack(point: Point, order: str, raw: float | int) -> list[int]:
    """Register words holding ``raw`` as the point's type; ValueError when it does not fit."""
    kind = point.kind
    if kind == "bool":
        return [1 if raw else 0]
    fmt = {"u16": ">H", "s16": ">h", "u32": ">I", "s32": ">i", "f32": ">f"}[kind]
    try:  # struct.error: out of range; OverflowError / ValueError: an infinite or NaN number
        data = struct.pack(fmt, float(raw) if kind == "f32" else round(raw))
    except (struct.error, OverflowError, ValueError):
        raise ValueError(f"{point.field}: {raw!r} does not fit a {kind} register") from None
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words if order == "big" else list(reversed(words))


def _raw_of_word(point: Point, word: str) -> int:
    raw_of = {v.lower(): k for k, v in (point.enum or {}).items()}
    if word.lower() not in raw_of:
        raise ValueError(f"{point.field}: no enum value means {word!r} (the enum has {sorted(raw_of)})")
    return raw_of[word.lower()]


def encode(point: Point, order: str, value: float | bool | str) -> list[int] | bool:
    """What to write for ``value``: a coil's bool, or register words. ``value`` is "on"/"off" (a
    control), True/False (a coil) or a number (raw x scale: set points are in the point's unit).
    ValueError when it does not fit."""
    if point.table == "coil":
        return value.lower() == "on" if isinstance(value, str) else bool(value)
    raw = _raw_of_word(point, value) if isinstance(value, str) else float(value) / point.scale
    return _pack(point, order, raw)


def to_words(point: Point, order: str, value: float | bool | str | None) -> list[int]:
    """The register words (or the bit, as [0] / [1]) that ``decode`` reads back as ``value``: what
    a server serving the map holds for a field's value in the field's unit (the simulator's and
    the tests' Modbus devices); None (no reading) is the point's first ``invalid`` marker.
    ValueError when the point cannot hold the value."""
    if value is None:
        if not point.invalid:
            raise ValueError(f"{point.field}: the map gives no invalid marker to say 'no reading'")
        raw: float | int = point.invalid[0]
    elif isinstance(value, str):
        raw = _raw_of_word(point, value)
    elif isinstance(value, bool) and point.enum:
        word = next((w for w in point.enum.values() if (w.strip().lower() in _TRUE) == value), None)
        if word is None:
            raise ValueError(f"{point.field}: no enum value means {value}")
        raw = _raw_of_word(point, word)
    elif isinstance(value, bool):
        raw = int(value)
    else:
        target = field_unit(point.field)
        factor, offset = _CONVERSIONS[target][point.unit or target] if target else (1.0, 0.0)
        raw = (float(value) - offset) / factor / point.scale
    return _pack(point, order, raw)
