"""What a Redfish service's JSON may be: a bounded parse, and typed values that name their field.

A Redfish body comes from firmware we did not write. The parse refuses what would otherwise
escape as an exception nobody expects or a value nobody checked: nesting deep enough to exhaust
the parser's recursion (100,000 ``[`` in 100 KB raise ``RecursionError`` out of ``json.loads``),
the non-JSON constants ``NaN`` / ``Infinity`` that Python's parser accepts, numbers too long to
convert, and anything but an object at the top. The size is capped before this, by the
transport (``max_body_bytes``).

The accessors say what a field must be, and raise ``WrongType`` (a ``ValueError``) naming the
field and what arrived when it is something else; JSON ``null`` (and an absent member) is "not reported",
``None``. A ``Manufacturer`` of ``123`` or ``["x"]`` is a device fault to report, not identity
text; a reading of ``"12"`` or ``1e999`` is not a number. The Redfish BMC and PDU drivers
decorate their reading methods with ``rackval.core.errors.protocol_errors``, which turns such a
``ValueError`` into a DeviceProtocolError naming device, address and what was being read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

_SHOWN_CHARS = 60


class JsonRefused(ValueError):
    """The body is not a JSON document we accept; the message says why."""


class WrongType(ValueError):
    """A field holds a JSON value of the wrong type; the message names the field and the value."""


def _no_constants(name: str) -> Any:
    raise JsonRefused(f"non-standard JSON constant {name}")


def parse_object(text: str) -> dict[str, Any]:
    """The JSON object in ``text``; JsonRefused for anything else (see the module docstring)."""
    try:
        doc = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise JsonRefused("JSON nested too deeply to parse") from None
    except JsonRefused:
        raise
    except ValueError as exc:
        raise JsonRefused(f"not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise JsonRefused(f"expected a JSON object, got {kind_of(doc)}")
    return doc


def kind_of(value: Any) -> str:
    """A JSON value as a reader would name it: 'a number (123)', 'an array (["x"])', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    kind = {str: "a string", int: "a number", float: "a number", list: "an array", dict: "an object"}.get(
        type(value), type(value).__name__
    )
    try:
        shown = json.dumps(value, ensure_ascii=True, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        shown = "..."
    if len(shown) > _SHOWN_CHARS:
        shown = shown[: _SHOWN_CHARS - 3] + "..."
    return f"{kind} ({shown})"


def number(value: Any, field: str) -> float | None:
    """A finite JSON number as float; None for null; ValueError naming ``field`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WrongType(f"{field}: expected a number, got {kind_of(value)}")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise WrongType(f"{field}: expected a finite number, got {kind_of(value)}")
    return result


def text(value: Any, field: str) -> str | None:
    """A JSON string; None for null; ValueError naming ``field`` otherwise."""
    if value is None or isinstance(value, str):
        return value
    raise WrongType(f"{field}: expected a string, got {kind_of(value)}")


def member_text(doc: Mapping[str, Any], key: str, field: str | None = None) -> str:
    """``doc[key]`` as text, "" when absent or null (a member the service does not report)."""
    return text(doc.get(key), field or key) or ""


def reading(doc: Mapping[str, Any], key: str, field: str | None = None) -> float | None:
    """``doc[key]["Reading"]`` (a Redfish SensorExcerpt) as a number; None when absent or null."""
    excerpt = doc.get(key)
    if excerpt is None:
        return None
    where = field or key
    if not isinstance(excerpt, dict):
        raise WrongType(f"{where}: expected an object with a Reading, got {kind_of(excerpt)}")
    return number(excerpt.get("Reading"), f"{where}.Reading")


def link(doc: Mapping[str, Any], key: str) -> str | None:
    """The @odata.id a resource links under ``key`` (e.g. chassis["Thermal"]), if any."""
    value = doc.get(key)
    if isinstance(value, dict) and isinstance(value.get("@odata.id"), str):
        return value["@odata.id"]
    return None
