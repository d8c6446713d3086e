"""What a simulated SNMP agent serves, and what the active faults do to one request.

Both read paths of the simulated agents use these: pysnmp's engine with its own MIB controller
(``rackval.sim.snmp_engine``) and the lean fast path (``rackval.sim.snmp_fastpath``). They live
here, below both, so that neither path imports the other's module for its data:

* ``Entry``: one served object instance (how to read it, and if writable how to check and write
  it); ``ServedIndex``: the sorted OID index of an agent's entries (built once per topology).
* ``RequestPlan``: what the device's protocol faults do to one request (drop, delay, malformed
  reply, hidden or mistyped OIDs), decided when its datagram arrives.
* ``wrong_type_value``: the ``snmp_wrong_type`` fault's substitute for a value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Oid = tuple[int, ...]

SYS = (1, 3, 6, 1, 2, 1, 1)


def oid(text: str, *index: int) -> Oid:
    """A numeric OID string (leading dot allowed) plus index parts as a tuple."""
    text = text.strip().lstrip(".")
    return (tuple(int(x) for x in text.split(".")) if text else ()) + index


def subtrees(*texts: str) -> tuple[Oid, ...]:
    return tuple(oid(t) for t in texts)


@dataclass
class Entry:
    """One served object instance: how to read it, and (if writable) how to check and write it."""

    get: Callable[[], Any]
    check: Callable[[Any], None] | None = None  # raises an SMI error for a bad value
    apply: Callable[[Any], None] | None = None


@dataclass
class RequestPlan:
    """What the active protocol faults do to one request (decided when its datagram arrives)."""

    drop: bool = False
    delay_s: float = 0.0
    v3_wrong_keys: bool = False
    malformed: str | None = None  # truncate | garbage | wrong_length
    no_such: tuple[Oid, ...] = ()
    wrong_type: tuple[Oid, ...] = ()

    def hidden(self, key: Oid) -> bool:
        return any(key[: len(p)] == p for p in self.no_such)

    def mistyped(self, key: Oid) -> bool:
        return any(key[: len(p)] == p for p in self.wrong_type)


@dataclass
class ServedIndex:
    """An agent's entries with their OIDs sorted (for GETNEXT) and the set of their columns."""

    entries: dict[Oid, Entry]
    keys: list[Oid] = field(default_factory=list)
    columns: set[Oid] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.keys = sorted(self.entries)
        self.columns = {k[:-1] for k in self.entries}


def wrong_type_value(value: Any) -> Any:
    """The same value with the wrong ASN.1 type: numbers as OCTET STRING text, text as Integer32."""
    from pyasn1.type import univ
    from pysnmp.proto import rfc1902

    if isinstance(value, univ.Integer):  # Integer32, Gauge32, Counter32/64, TimeTicks ...
        return rfc1902.OctetString(str(int(value)))
    if isinstance(value, univ.OctetString):
        return rfc1902.Integer32(len(bytes(value)))
    return rfc1902.OctetString(str(value))
