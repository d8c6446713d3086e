"""The simulated agents' read path: v2c and v3 GET / GETNEXT / GETBULK without pysnmp's engine.

Why: serving the reference rack's telemetry is almost all v2c reads of metered PDU outlets and
switch port counters, and pysnmp's engine + pyasn1 spent ~120 us per var-bind on them (the
simulator's whole CPU budget is 25 % of a core at 1 Hz). Community reads need none of the
engine's state, and an authPriv read of the agent's one v3 user needs only its localized keys and
the engine's ID, boots and time; so both are decoded and encoded with the lean codecs the client
uses (``rackval.drivers.transport.snmp_ber`` / ``snmp_usm``) against the same index, fault plan and
values as the pysnmp controller. Everything else — SNMPv1, SET, v3 discovery, time-window
misses, wrong keys or users (pysnmp answers them with the proper usmStats report), unknown
communities (dropped by pysnmp like a real agent does), undecodable datagrams — returns
``None`` and goes through pysnmp.

It reads the agent through ``ServingAgent`` (index, fault plan, communities, v3 state) and shares
the served objects' types with the engine in ``rackval.sim.snmp_objects``, so it does not import
the engine that calls it. Semantics kept identical to ``MibController`` (see ``snmp_engine``): noSuchObject vs
noSuchInstance, hidden OIDs of ``snmp_no_such_object``, mistyped values of ``snmp_wrong_type``,
one var-bind too few for ``malformed_reply: wrong_length``, genErr when the model fails to
produce a value. GETBULK follows RFC 3416 4.2.3 and stops early when every repeater has
reached endOfMibView or the response would outgrow a UDP datagram.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Any, Protocol

from rackval.drivers.transport import snmp_ber as ber
from rackval.drivers.transport import snmp_usm as usm
from rackval.sim.model import RackModel
from rackval.sim.snmp_objects import Oid, RequestPlan, ServedIndex, wrong_type_value

MAX_RESPONSE_BYTES = 60_000  # under the 65,507-byte UDP payload, with room for the header
GEN_ERR = 5

_tag_by_class: dict[type, int] = {}


def _tag_table() -> dict[type, int]:
    if not _tag_by_class:
        from pysnmp.proto import rfc1902

        _tag_by_class.update(
            {
                rfc1902.Integer32: ber.INTEGER,
                rfc1902.Integer: ber.INTEGER,
                rfc1902.OctetString: ber.OCTET_STRING,
                rfc1902.Bits: ber.OCTET_STRING,
                rfc1902.ObjectIdentifier: ber.OBJECT_IDENTIFIER,
                rfc1902.IpAddress: ber.IP_ADDRESS,
                rfc1902.Counter32: ber.COUNTER32,
                rfc1902.Gauge32: ber.GAUGE32,
                rfc1902.Unsigned32: ber.GAUGE32,
                rfc1902.TimeTicks: ber.TIME_TICKS,
                rfc1902.Opaque: ber.OPAQUE,
                rfc1902.Counter64: ber.COUNTER64,
            }
        )
    return _tag_by_class


def encode_pysnmp_value(value: Any) -> bytes:
    """A pysnmp (rfc1902) value object as a value TLV."""
    tags = _tag_table()
    tag = tags.get(type(value))
    if tag is None:
        for cls, candidate in tags.items():
            if value.tagSet == cls.tagSet:
                tag = candidate
                break
        else:
            raise ber.BerError(f"cannot encode a {type(value).__name__} value")
    if tag in (ber.OCTET_STRING, ber.OPAQUE, ber.IP_ADDRESS):
        return ber.encode_value(tag, value.asOctets())
    if tag == ber.OBJECT_IDENTIFIER:
        return ber.encode_oid(tuple(value))
    return ber.encode_value(tag, int(value))


@dataclass
class UsmAgentState:
    """What the v3 fast path needs from the agent's pysnmp engine: its identity, clock and the
    one user's keys localized to it (refreshed whenever the agent changes that user's keys)."""

    engine_id: bytes
    boots: int
    time_origin: float  # engine time = now - time_origin (pysnmp's snmpEngineTime definition)
    keys: usm.UsmKeys
    salt: int = 0

    def engine_time(self) -> int:
        return int(time.time() - self.time_origin)


class ServingAgent(Protocol):
    """What the fast path reads from a running agent (``rackval.sim.snmp_engine.SnmpAgentBase``)."""

    model: RackModel
    index: ServedIndex  # this request's index
    plan: RequestPlan  # this request's fault plan
    communities: tuple[str, ...]  # v2c communities that may read
    usm_state: UsmAgentState | None  # None: no v3 user, or its keys are being faulted


class _Reader:
    """One request's reads against the agent's index, under its fault plan (model lock held)."""

    def __init__(self, agent: ServingAgent) -> None:
        self.agent = agent
        self.index = agent.index
        self.plan = agent.plan
        self.failed_at: int | None = None  # var-bind number (1-based) whose value could not be made

    def value(self, key: Oid, number: int) -> bytes:
        entry = self.index.entries[key]
        try:
            value = entry.get()
            if self.plan.wrong_type and self.plan.mistyped(key):
                value = wrong_type_value(value)
            return encode_pysnmp_value(value)
        except Exception:  # a model bug must become genErr, not a dead agent
            if self.failed_at is None:
                self.failed_at = number
            return b"\x05\x00"

    def get(self, key: Oid, number: int) -> bytes:
        entry = self.index.entries.get(key)
        plan = self.plan
        if entry is None or (plan.no_such and plan.hidden(key)):
            hidden = entry is not None or key[:-1] not in self.index.columns
            return ber.tlv(
                ber.SEQUENCE, ber.encode_oid(key) + bytes((ber.NO_SUCH_OBJECT if hidden else ber.NO_SUCH_INSTANCE, 0))
            )
        return ber.tlv(ber.SEQUENCE, ber.encode_oid(key) + self.value(key, number))

    def next(self, key: Oid, number: int) -> tuple[bytes, Oid | None]:
        """(var-bind, the OID it names or None at the end of the MIB view)."""
        keys = self.index.keys
        plan = self.plan
        pos = bisect.bisect_right(keys, key)
        while pos < len(keys) and plan.no_such and plan.hidden(keys[pos]):
            pos += 1
        if pos >= len(keys):
            return ber.tlv(ber.SEQUENCE, ber.encode_oid(key) + bytes((ber.END_OF_MIB_VIEW, 0))), None
        found = keys[pos]
        return ber.tlv(ber.SEQUENCE, ber.encode_oid(found) + self.value(found, number)), found


_READS = (ber.GET_REQUEST, ber.GET_NEXT_REQUEST, ber.GET_BULK_REQUEST)


def answer_read(agent: ServingAgent, datagram: bytes) -> bytes | None:
    """The encoded Response to a v2c or v3 read the fast path serves, else None (pysnmp's turn).

    Must run between the agent's ``_begin(plan)`` and ``_end()`` (the plan and index of this
    request); takes the model lock for the reads.
    """
    version = ber.message_version(datagram)
    if version == ber.VERSION_2C:
        return _answer_v2c(agent, datagram)
    if version == usm.VERSION_3:
        return _answer_v3(agent, datagram)
    return None


def _answer_v2c(agent: ServingAgent, datagram: bytes) -> bytes | None:
    try:
        msg = ber.decode_message(datagram)
    except ber.BerError:
        return None  # pysnmp decides what to do with it (it drops it)
    if msg.pdu_type not in _READS:
        return None
    try:
        community = msg.community.decode()
    except UnicodeDecodeError:
        return None
    if community not in agent.communities:
        return None
    status, index, out = _serve(
        agent, msg.pdu_type, [o for o, _, _ in msg.var_binds], msg.error_status, msg.error_index
    )
    return ber.encode_message(ber.VERSION_2C, msg.community, ber.RESPONSE, msg.request_id, status, index, out)


def _answer_v3(agent: ServingAgent, datagram: bytes) -> bytes | None:
    """authPriv reads of the agent's user, in its time window; anything else (discovery, wrong
    keys, time sync, other users or levels) is left to pysnmp, which sends the right report."""
    state = agent.usm_state
    if state is None:
        return None
    try:
        msg = usm.decode_message(datagram)
        keys = state.keys
        if msg.engine_id != state.engine_id or msg.user != keys.user or msg.flags & 3 != keys.flags:
            return None
        now = state.engine_time()
        if msg.boots != state.boots or abs(msg.time - now) > 150:
            return None
        usm.verify(keys, msg)
        context_engine, context_name, (kind, rid, non_rep, max_rep, vbs) = usm.decode_scoped_pdu(
            usm.scoped_pdu_of(keys, msg)
        )
    except (usm.UsmError, ber.BerError):
        return None
    if kind not in _READS or context_name or context_engine not in (state.engine_id, b""):
        return None
    status, index, out = _serve(agent, kind, [o for o, _, _ in vbs], non_rep, max_rep)
    pdu = ber.encode_pdu(ber.RESPONSE, rid, status, index, out)
    state.salt = (state.salt + 1) % 2**64
    return usm.encode_message(keys, msg_id=msg.msg_id, engine_id=state.engine_id, boots=state.boots, time=now,
                              scoped_pdu=usm.encode_scoped_pdu(state.engine_id, b"", pdu), salt=state.salt,
                              reportable=False)  # fmt: skip


def _serve(agent: ServingAgent, pdu_type: int, oids: list[Oid], non_repeaters: int, max_repetitions: int
           ) -> tuple[int, int, list[bytes]]:  # fmt: skip
    """(error-status, error-index, encoded var-binds) of one read request."""
    reader = _Reader(agent)
    with agent.model.lock:
        if pdu_type == ber.GET_REQUEST:
            out = [reader.get(key, i + 1) for i, key in enumerate(oids)]
            if agent.plan.malformed == "wrong_length" and out:
                out.pop()  # a GET response must carry every requested var-bind (RFC 3416 4.2.1)
        elif pdu_type == ber.GET_NEXT_REQUEST:
            out = [reader.next(key, i + 1)[0] for i, key in enumerate(oids)]
        else:
            out = _bulk(reader, oids, non_repeaters=non_repeaters, max_repetitions=max_repetitions)
    if reader.failed_at is not None:
        return GEN_ERR, min(reader.failed_at, len(oids)), [ber.null_var_bind(o) for o in oids]
    return 0, 0, out


def _bulk(reader: _Reader, oids: list[Oid], *, non_repeaters: int, max_repetitions: int) -> list[bytes]:
    n = min(max(non_repeaters, 0), len(oids))
    m = max(max_repetitions, 0)
    out = [reader.next(key, i + 1)[0] for i, key in enumerate(oids[:n])]
    size = sum(map(len, out))
    current = list(oids[n:])
    ended = [False] * len(current)
    for _ in range(m):
        if not current or all(ended):
            break
        for j, key in enumerate(current):
            if ended[j]:  # this repeater ended already: endOfMibView again (RFC 3416 4.2.3)
                vb = ber.tlv(ber.SEQUENCE, ber.encode_oid(key) + bytes((ber.END_OF_MIB_VIEW, 0)))
            else:
                vb, found = reader.next(key, n + j + 1)
                if found is None:
                    ended[j] = True
                else:
                    current[j] = found
            size += len(vb)
            if size > MAX_RESPONSE_BYTES:
                return out
            out.append(vb)
    return out
