"""The lean SNMP BER codec agrees with pysnmp/pyasn1 both ways, and refuses bad bytes cleanly.

pyasn1 is the reference here: what our codec encodes must decode identically in pysnmp, and what
pysnmp encodes (every SMIv2 type, long lengths, big arcs, exception values) must decode
identically in ours. Truncation at every byte and seeded garbage must give BerError, never an
IndexError or a value read past the data.
"""

from __future__ import annotations

import contextlib
import random

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1902, rfc1905

from rackval.drivers.transport import snmp_ber as ber

V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]

BIG_ARC_OID = (1, 3, 6, 1, 4, 1, 2**32 - 1, 0, 128, 16383, 16384)
VALUES: list[tuple[tuple[int, ...], int, object, object]] = [
    # (oid, tag, our plain value, pysnmp object)
    ((1, 3, 6, 1, 2, 1, 1, 1, 0), ber.OCTET_STRING, b"x" * 300, rfc1902.OctetString(b"x" * 300)),
    ((1, 3, 6, 1, 2, 1, 1, 2, 0), ber.OBJECT_IDENTIFIER, BIG_ARC_OID, rfc1902.ObjectIdentifier(BIG_ARC_OID)),
    ((1, 3, 6, 1, 2, 1, 1, 3, 0), ber.TIME_TICKS, 2**32 - 1, rfc1902.TimeTicks(2**32 - 1)),
    ((1, 3, 6, 1, 2, 1, 1, 7, 0), ber.INTEGER, -(2**31), rfc1902.Integer32(-(2**31))),
    ((1, 3, 6, 1, 2, 1, 1, 8, 0), ber.INTEGER, 2**31 - 1, rfc1902.Integer32(2**31 - 1)),
    ((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1), ber.COUNTER32, 2**31, rfc1902.Counter32(2**31)),
    ((1, 3, 6, 1, 2, 1, 2, 2, 1, 5, 1), ber.GAUGE32, 0, rfc1902.Gauge32(0)),
    ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 1), ber.COUNTER64, 2**64 - 1, rfc1902.Counter64(2**64 - 1)),
    ((1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 1), ber.IP_ADDRESS, bytes([127, 0, 0, 1]), rfc1902.IpAddress("127.0.0.1")),
    ((1, 3, 6, 1, 2, 1, 99, 1), ber.OPAQUE, b"\x9f\x78\x04", rfc1902.Opaque(b"\x9f\x78\x04")),
    ((1, 3, 6, 1, 2, 1, 99, 2), ber.NO_SUCH_OBJECT, None, rfc1905.noSuchObject),
    ((1, 3, 6, 1, 2, 1, 99, 3), ber.NO_SUCH_INSTANCE, None, rfc1905.noSuchInstance),
    ((1, 3, 6, 1, 2, 1, 99, 4), ber.END_OF_MIB_VIEW, None, rfc1905.endOfMibView),
    ((2, 999, 1), ber.NULL, None, rfc1902.Null("")),
]


def _pysnmp_response(request_id: int, community: bytes) -> bytes:
    pdu = V2C.GetResponsePDU()
    V2C.apiPDU.set_defaults(pdu)
    V2C.apiPDU.set_request_id(pdu, request_id)
    V2C.apiPDU.set_varbinds(pdu, [(rfc1902.ObjectName(o), obj) for o, _, _, obj in VALUES])
    msg = V2C.Message()
    V2C.apiMessage.set_defaults(msg)
    V2C.apiMessage.set_community(msg, community)
    V2C.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def test_pysnmp_encoded_response_decodes_to_the_same_values() -> None:
    data = _pysnmp_response(123456789, b"pub\xfflic")
    msg = ber.decode_message(data)
    assert (msg.version, msg.community, msg.pdu_type, msg.request_id) == (1, b"pub\xfflic", ber.RESPONSE, 123456789)
    assert (msg.error_status, msg.error_index) == (0, 0)
    assert [(o, t, v) for o, t, v in msg.var_binds] == [(o, t, v) for o, t, v, _ in VALUES]


def test_our_response_decodes_identically_in_pysnmp() -> None:
    vbs = [ber.encode_var_bind(o, t, v) for o, t, v, _ in VALUES]
    data = ber.encode_message(ber.VERSION_2C, b"c" * 200, ber.RESPONSE, 2**31 - 1, 0, 0, vbs)
    assert data == _pysnmp_response(2**31 - 1, b"c" * 200)  # byte for byte: both are DER-minimal
    msg, rest = decoder.decode(data, asn1Spec=V2C.Message())
    assert rest == b""
    pdu = V2C.apiMessage.get_pdu(msg)
    assert int(V2C.apiPDU.get_request_id(pdu)) == 2**31 - 1
    got = V2C.apiPDU.get_varbinds(pdu)
    assert [tuple(o) for o, _ in got] == [o for o, _, _, _ in VALUES]
    for (_, _, _, expected), (_, value) in zip(VALUES, got, strict=True):
        assert value.tagSet == expected.tagSet
        assert value == expected


def test_requests_decode_in_pysnmp_as_get_and_getbulk() -> None:
    oids = [(1, 3, 6, 1, 2, 1, 1, 1, 0), BIG_ARC_OID]
    get = ber.encode_request(ber.VERSION_2C, b"public", ber.GET_REQUEST, 7, oids)
    msg, _ = decoder.decode(get, asn1Spec=V2C.Message())
    pdu = V2C.apiMessage.get_pdu(msg)
    assert pdu.tagSet == V2C.GetRequestPDU.tagSet
    assert [tuple(o) for o, _ in V2C.apiPDU.get_varbinds(pdu)] == oids
    bulk = ber.encode_request(ber.VERSION_2C, b"public", ber.GET_BULK_REQUEST, 8, oids[:1], max_repetitions=25)
    msg, _ = decoder.decode(bulk, asn1Spec=V2C.Message())
    pdu = V2C.apiMessage.get_pdu(msg)
    assert pdu.tagSet == V2C.GetBulkRequestPDU.tagSet
    assert int(V2C.apiBulkPDU.get_max_repetitions(pdu)) == 25
    assert int(V2C.apiBulkPDU.get_non_repeaters(pdu)) == 0


def test_counter_without_its_leading_zero_is_read_as_unsigned() -> None:
    # Some agents encode Counter32 3000000000 in 4 bytes (top bit set) instead of 5.
    vb = ber.tlv(ber.SEQUENCE, ber.encode_oid((1, 3, 6, 1)) + bytes([0x41, 4]) + (3_000_000_000).to_bytes(4, "big"))
    data = ber.encode_message(1, b"p", ber.RESPONSE, 1, 0, 0, [vb])
    assert ber.decode_message(data).var_binds == [((1, 3, 6, 1), ber.COUNTER32, 3_000_000_000)]


def test_every_truncation_is_a_ber_error() -> None:
    data = _pysnmp_response(42, b"public")
    for cut in range(len(data)):
        with pytest.raises(ber.BerError):
            ber.decode_message(data[:cut])


def test_seeded_garbage_never_escapes_as_another_exception() -> None:
    rng = random.Random(20261122)
    good = _pysnmp_response(42, b"public")
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(ber.BerError):
            ber.decode_message(bytes(data))
    for _ in range(1000):
        with contextlib.suppress(ber.BerError):
            ber.decode_message(bytes(rng.randrange(256) for _ in range(rng.randint(0, 80))))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x30\x80\x02\x01\x01\x00\x00", "indefinite length"),
        (b"\x02\x01\x01", "not an SNMP message"),
        (ber.tlv(0x30, ber.tlv(0x02, b"\x03")), "not a community-based message"),
        (ber.tlv(0x30, b"\x02\x01\x01" + ber.tlv(0x04, b"p") + ber.tlv(0xBF, b"")), "unknown PDU type"),
        (b"\x30\x85\x00\x00\x00\x00\x01", "bad length"),
    ],
)
def test_malformed_messages_say_what_is_wrong(data: bytes, problem: str) -> None:
    with pytest.raises(ber.BerError, match=problem):
        ber.decode_message(data)


def test_values_out_of_range_or_of_wrong_shape_are_refused() -> None:
    def response_with(value_tlv: bytes) -> bytes:
        vb = ber.tlv(ber.SEQUENCE, ber.encode_oid((1, 3, 6, 1)) + value_tlv)
        return ber.encode_message(1, b"p", ber.RESPONSE, 1, 0, 0, [vb])

    with pytest.raises(ber.BerError, match=r"Counter32 value \d+ out of range"):
        ber.decode_message(response_with(ber.tlv(ber.COUNTER32, (2**32).to_bytes(5, "big"))))
    with pytest.raises(ber.BerError, match="IpAddress of 3 bytes"):
        ber.decode_message(response_with(ber.tlv(ber.IP_ADDRESS, b"\x01\x02\x03")))
    with pytest.raises(ber.BerError, match="ends inside a sub-identifier"):
        ber.decode_message(response_with(ber.tlv(ber.OBJECT_IDENTIFIER, b"\x2b\x86")))
    with pytest.raises(ber.BerError, match="unknown value tag"):
        ber.decode_message(response_with(ber.tlv(0x47, b"\x01")))
    with pytest.raises(ber.BerError, match="not an Integer32"):
        ber.encode_value(ber.INTEGER, 2**31)
    with pytest.raises(ber.BerError, match="not a valid object identifier"):
        ber.encode_oid((1, 40))


def test_message_version_reads_only_the_header() -> None:
    assert ber.message_version(_pysnmp_response(1, b"p")) == 1
    assert ber.message_version(b"\x30\x03\x02\x01\x03") == 3
    assert ber.message_version(b"\x00garbage") is None
