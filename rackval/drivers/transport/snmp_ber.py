"""A lean BER codec for community-based SNMP messages (v1 / v2c): the polling hot path.

Why this exists next to pysnmp: polling a rack is thousands of GETs and GETBULKs per second of
plain var-binds, and pysnmp's pyasn1 codec alone costs 2.6x net-snmp's whole GET
(bench/README_drivers.md). SNMP's message grammar for community messages is small and fixed
(RFC 1157 / RFC 3416: a SEQUENCE of version, community and one PDU of var-binds), so a direct
codec over ``bytes`` does the same work in a few microseconds per var-bind. Everything else —
SNMPv3 (USM keys, engine discovery, authentication and privacy), traps, MIB names — stays with
pysnmp.

Scope and strictness: definite lengths only (BER as SNMP uses it; indefinite length is refused),
single-byte tags, the SMIv2 application types and the SNMPv2 exception values. Every way a
datagram can be short, overlong or mistyped raises :class:`BerError` with what was wrong and
where, so the transport can name device and operation; nothing here ever reads past the data.

Values are plain Python: INTEGER and the unsigned application types as ``int``, OCTET STRING,
Opaque and IpAddress as ``bytes``, OBJECT IDENTIFIER as a tuple of ints, NULL and the exception
values as ``None`` (the tag tells them apart).
"""

from __future__ import annotations

from dataclasses import dataclass

Oid = tuple[int, ...]

# Universal and SMIv2 application tags (RFC 2578 / RFC 3416).
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42  # also Unsigned32
TIME_TICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82

# PDU tags (context-specific, constructed).
GET_REQUEST = 0xA0
GET_NEXT_REQUEST = 0xA1
RESPONSE = 0xA2
SET_REQUEST = 0xA3
GET_BULK_REQUEST = 0xA5

VERSION_1 = 0
VERSION_2C = 1

EXCEPTION_NAMES = {
    NO_SUCH_OBJECT: "noSuchObject",
    NO_SUCH_INSTANCE: "noSuchInstance",
    END_OF_MIB_VIEW: "endOfMibView",
}

# RFC 3416 error-status values, by the names net-snmp and pysnmp print.
ERROR_STATUS_NAMES = (
    "noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess", "wrongType",
    "wrongLength", "wrongEncoding", "wrongValue", "noCreation", "inconsistentValue",
    "resourceUnavailable", "commitFailed", "undoFailed", "authorizationError", "notWritable",
    "inconsistentName",
)  # fmt: skip

_UNSIGNED_LIMITS = {COUNTER32: 2**32, GAUGE32: 2**32, TIME_TICKS: 2**32, COUNTER64: 2**64}
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_TAG_NAMES = {
    INTEGER: "INTEGER", OCTET_STRING: "OCTET STRING", NULL: "NULL", OBJECT_IDENTIFIER: "OBJECT IDENTIFIER",
    IP_ADDRESS: "IpAddress", COUNTER32: "Counter32", GAUGE32: "Gauge32", TIME_TICKS: "TimeTicks",
    OPAQUE: "Opaque", COUNTER64: "Counter64", **EXCEPTION_NAMES,
}  # fmt: skip

# Encoded OIDs repeat poll after poll: caching both directions makes them nearly free. Bounded
# so a walk over a huge table cannot grow them without limit.
_CACHE_LIMIT = 50_000
_oid_decode_cache: dict[bytes, Oid] = {}
_oid_encode_cache: dict[Oid, bytes] = {}
_null_var_bind_cache: dict[Oid, bytes] = {}


class BerError(ValueError):
    """The bytes are not a well-formed SNMP message (or a value cannot be encoded)."""


def tag_name(tag: int) -> str:
    """A readable name for a value tag, for error messages."""
    return _TAG_NAMES.get(tag, f"tag 0x{tag:02x}")


@dataclass(slots=True)
class Message:
    """One community-based SNMP message. For GETBULK, ``error_status`` / ``error_index`` hold
    non-repeaters / max-repetitions (the same two INTEGERs on the wire)."""

    version: int
    community: bytes
    pdu_type: int
    request_id: int
    error_status: int
    error_index: int
    var_binds: list[tuple[Oid, int, object]]  # (oid, value tag, value)


# ---- encoding ------------------------------------------------------------------------------------
def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + encode_length(n) + content


def _integer_content(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)


def encode_oid(oid: Oid) -> bytes:
    """OBJECT IDENTIFIER TLV (cached)."""
    cached = _oid_encode_cache.get(oid)
    if cached is not None:
        return cached
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40) or any(a < 0 for a in oid):
        raise BerError(f"cannot encode OID {'.'.join(map(str, oid))}: not a valid object identifier")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = bytearray()
        while arc:
            chunk.append((arc & 0x7F) | 0x80)
            arc >>= 7
        chunk[0] &= 0x7F
        chunk.reverse()
        out += chunk
    encoded = tlv(OBJECT_IDENTIFIER, bytes(out))
    if len(_oid_encode_cache) >= _CACHE_LIMIT:
        _oid_encode_cache.clear()
    _oid_encode_cache[oid] = encoded
    return encoded


def encode_value(tag: int, value: object) -> bytes:
    """A value TLV from its tag and plain Python value (see the module docstring)."""
    if tag == INTEGER:
        if not isinstance(value, int) or not _INT32_MIN <= value <= _INT32_MAX:
            raise BerError(f"INTEGER value {value!r} is not an Integer32")
        return tlv(INTEGER, _integer_content(value))
    limit = _UNSIGNED_LIMITS.get(tag)
    if limit is not None:
        if not isinstance(value, int) or not 0 <= value < limit:
            raise BerError(f"{tag_name(tag)} value {value!r} is out of range")
        return tlv(tag, _integer_content(value))
    if tag in (OCTET_STRING, OPAQUE, IP_ADDRESS):
        raw = value.encode() if isinstance(value, str) else value
        if not isinstance(raw, bytes | bytearray):
            raise BerError(f"{tag_name(tag)} value must be bytes or str, not {type(value).__name__}")
        if tag == IP_ADDRESS and len(raw) != 4:
            raise BerError("IpAddress must be 4 bytes")
        return tlv(tag, bytes(raw))
    if tag == OBJECT_IDENTIFIER:
        return encode_oid(value)  # type: ignore[arg-type]
    if tag in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW):
        return bytes((tag, 0))
    raise BerError(f"cannot encode a value with tag 0x{tag:02x}")


def encode_var_bind(oid: Oid, tag: int, value: object) -> bytes:
    return tlv(SEQUENCE, encode_oid(oid) + encode_value(tag, value))


def null_var_bind(oid: Oid) -> bytes:
    """(oid, NULL): what every GET / GETNEXT / GETBULK request carries (cached)."""
    cached = _null_var_bind_cache.get(oid)
    if cached is None:
        cached = tlv(SEQUENCE, encode_oid(oid) + b"\x05\x00")
        if len(_null_var_bind_cache) >= _CACHE_LIMIT:
            _null_var_bind_cache.clear()
        _null_var_bind_cache[oid] = cached
    return cached


def encode_message(
    version: int,
    community: bytes,
    pdu_type: int,
    request_id: int,
    error_status: int,
    error_index: int,
    encoded_var_binds: list[bytes],
) -> bytes:
    """A whole message from already-encoded var-binds (``encode_var_bind`` / ``null_var_bind``)."""
    pdu = encode_pdu(pdu_type, request_id, error_status, error_index, encoded_var_binds)
    return tlv(SEQUENCE, tlv(INTEGER, _integer_content(version)) + tlv(OCTET_STRING, community) + pdu)


def encode_request(
    version: int,
    community: bytes,
    pdu_type: int,
    request_id: int,
    oids: list[Oid],
    *,
    non_repeaters: int = 0,
    max_repetitions: int = 0,
) -> bytes:
    """GET / GETNEXT / GETBULK request for ``oids``."""
    return encode_message(
        version, community, pdu_type, request_id, non_repeaters, max_repetitions, [null_var_bind(o) for o in oids]
    )


# ---- decoding ------------------------------------------------------------------------------------
def _header(data: bytes, pos: int, end: int, what: str) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``pos``, bounded by ``end``."""
    if pos + 2 > end:
        raise BerError(f"truncated at byte {pos}: {what} header missing")
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first & 0x80:
        n = first & 0x7F
        if n == 0:
            raise BerError(f"indefinite length at byte {pos - 1} ({what}); SNMP uses definite lengths")
        if n > 4 or pos + n > end:
            raise BerError(f"bad length of {n} bytes at byte {pos - 1} ({what})")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    else:
        length = first
    if pos + length > end:
        raise BerError(f"truncated: {what} at byte {pos} claims {length} bytes, {end - pos} left")
    return tag, pos, pos + length


def _decode_oid(content: bytes) -> Oid:
    cached = _oid_decode_cache.get(content)
    if cached is not None:
        return cached
    if not content:
        raise BerError("empty OBJECT IDENTIFIER")
    if content[-1] & 0x80:
        raise BerError("OBJECT IDENTIFIER ends inside a sub-identifier")
    arcs: list[int] = []
    acc = 0
    for b in content:
        acc = (acc << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(acc)
            acc = 0
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    oid = head + tuple(arcs[1:])
    if len(_oid_decode_cache) >= _CACHE_LIMIT:
        _oid_decode_cache.clear()
    _oid_decode_cache[content] = oid
    return oid


def _decode_value(tag: int, content: bytes) -> object:
    if tag == INTEGER:
        if not content:
            raise BerError("empty INTEGER")
        return int.from_bytes(content, "big", signed=True)
    if tag in (OCTET_STRING, OPAQUE):
        return content
    limit = _UNSIGNED_LIMITS.get(tag)
    if limit is not None:
        if not content:
            raise BerError(f"empty {tag_name(tag)}")
        # Unsigned: some agents drop the leading zero of values >= 2**31; read them as meant.
        value = int.from_bytes(content, "big")
        if value >= limit:
            raise BerError(f"{tag_name(tag)} value {value} out of range")
        return value
    if tag == OBJECT_IDENTIFIER:
        return _decode_oid(content)
    if tag == IP_ADDRESS:
        if len(content) != 4:
            raise BerError(f"IpAddress of {len(content)} bytes")
        return content
    if tag in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW):
        if content:
            raise BerError(f"{tag_name(tag)} with content")
        return None
    raise BerError(f"unknown value tag 0x{tag:02x}")


def _decode_integer(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    tag, start, stop = _header(data, pos, end, what)
    if tag != INTEGER or start == stop:
        raise BerError(f"{what} is not an INTEGER")
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def decode_message(data: bytes) -> Message:
    """Parse a community-based SNMP message; bytes after the outer SEQUENCE are ignored."""
    data = bytes(data)
    total = len(data)
    tag, pos, end = _header(data, 0, total, "message")
    if tag != SEQUENCE:
        raise BerError(f"not an SNMP message (starts with 0x{tag:02x}, not a SEQUENCE)")
    version, pos = _decode_integer(data, pos, end, "msgVersion")
    if version not in (VERSION_1, VERSION_2C):
        raise BerError(f"msgVersion {version} is not a community-based message (v1/v2c)")
    tag, start, pos = _header(data, pos, end, "community")
    if tag != OCTET_STRING:
        raise BerError("community is not an OCTET STRING")
    community = data[start:pos]
    pdu_type, request_id, error_status, error_index, var_binds = decode_pdu(data, pos, end)
    return Message(version, community, pdu_type, request_id, error_status, error_index, var_binds)


def decode_pdu(data: bytes, pos: int, end: int) -> tuple[int, int, int, int, list[tuple[Oid, int, object]]]:
    """(pdu type, request-id, error-status, error-index, var-binds) of the PDU TLV at ``pos``."""
    pdu_type, pos, pdu_end = _header(data, pos, end, "PDU")
    if not 0xA0 <= pdu_type <= 0xA8:
        raise BerError(f"unknown PDU type 0x{pdu_type:02x}")
    request_id, pos = _decode_integer(data, pos, pdu_end, "request-id")
    error_status, pos = _decode_integer(data, pos, pdu_end, "error-status")
    error_index, pos = _decode_integer(data, pos, pdu_end, "error-index")
    tag, pos, list_end = _header(data, pos, pdu_end, "variable-bindings")
    if tag != SEQUENCE:
        raise BerError("variable-bindings is not a SEQUENCE")
    var_binds: list[tuple[Oid, int, object]] = []
    append = var_binds.append
    while pos < list_end:
        tag, pos, vb_end = _header(data, pos, list_end, "var-bind")
        if tag != SEQUENCE:
            raise BerError(f"var-bind {len(var_binds) + 1} is not a SEQUENCE")
        tag, start, pos = _header(data, pos, vb_end, "var-bind name")
        if tag != OBJECT_IDENTIFIER:
            raise BerError(f"var-bind {len(var_binds) + 1} name is not an OBJECT IDENTIFIER")
        name = _decode_oid(data[start:pos])
        vtag, start, pos = _header(data, pos, vb_end, "var-bind value")
        if pos != vb_end:
            raise BerError(f"var-bind {len(var_binds) + 1} has trailing bytes")
        append((name, vtag, _decode_value(vtag, data[start:pos])))
    return pdu_type, request_id, error_status, error_index, var_binds


def encode_pdu(
    pdu_type: int, request_id: int, error_status: int, error_index: int, encoded_var_binds: list[bytes]
) -> bytes:
    """A PDU TLV from already-encoded var-binds."""
    return tlv(
        pdu_type,
        tlv(INTEGER, _integer_content(request_id))
        + tlv(INTEGER, _integer_content(error_status))
        + tlv(INTEGER, _integer_content(error_index))
        + tlv(SEQUENCE, b"".join(encoded_var_binds)),
    )


def read_tlv(data: bytes, pos: int, end: int, what: str) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at ``pos``; BerError if it overruns ``end``."""
    return _header(data, pos, end, what)


def read_integer(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """(value, next position) of the INTEGER TLV at ``pos``."""
    return _decode_integer(data, pos, end, what)


def integer(value: int) -> bytes:
    """INTEGER TLV."""
    return tlv(INTEGER, _integer_content(value))


def message_version(data: bytes) -> int | None:
    """msgVersion (0 v1, 1 v2c, 3 v3) from the header without decoding the rest, or None."""
    try:
        tag, pos, end = _header(data, 0, len(data), "message")
        if tag != SEQUENCE:
            return None
        version, _ = _decode_integer(data, pos, end, "msgVersion")
    except BerError:
        return None
    return version


def format_oid(oid: Oid) -> str:
    return ".".join(map(str, oid))
