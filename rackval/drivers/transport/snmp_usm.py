"""SNMPv3 messages with the User-based Security Model (RFC 3412 / 3414 / 3826 / 7860), lean.

Why: a rack's PDUs and switches should be polled over SNMPv3 authPriv, and pysnmp's engine and
pyasn1 codec cost ~100+ us of CPU per var-bind — 3-4x net-snmp's C client. This module builds
and checks USM messages directly over bytes with the lean BER codec (``snmp_ber``); the
cryptography is the standard library's HMAC/hashes and ``cryptography``'s AES. It covers what a
rack should use: authentication HMAC-MD5-96, HMAC-SHA-96 and the SHA-2 family of RFC 7860, and
privacy AES-128 (CFB, RFC 3826). DES and the AES-192/256 key-extension variants stay with
pysnmp (``SnmpTransport`` picks the path).

Both sides use it: the manager (``snmp_usm_channel``) and the simulator's agent fast path.

Security notes: digests are compared in constant time; a message that claims authentication is
only believed after its digest checks; keys never appear in messages or reprs.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from rackval.drivers.transport import snmp_ber as ber

VERSION_3 = 3
USM_SECURITY_MODEL = 3
REPORT = 0xA8
FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
MAX_MESSAGE_SIZE = 65_507

# hash name and HMAC truncation length (RFC 3414 / RFC 7860)
AUTH = {
    "MD5": ("md5", 12),
    "SHA": ("sha1", 12),
    "SHA224": ("sha224", 16),
    "SHA256": ("sha256", 24),
    "SHA384": ("sha384", 32),
    "SHA512": ("sha512", 48),
}
PRIV = ("AES", "AES128")  # AES-128 CFB; the others go through pysnmp

# usmStats counters an agent reports (RFC 3414 5)
USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
UNSUPPORTED_SEC_LEVELS = (*USM_STATS, 1, 0)
NOT_IN_TIME_WINDOWS = (*USM_STATS, 2, 0)
UNKNOWN_USER_NAMES = (*USM_STATS, 3, 0)
UNKNOWN_ENGINE_IDS = (*USM_STATS, 4, 0)
WRONG_DIGESTS = (*USM_STATS, 5, 0)
DECRYPTION_ERRORS = (*USM_STATS, 6, 0)


class UsmError(ValueError):
    """A USM message failed a check (digest, decryption, format)."""


@lru_cache(maxsize=64)
def password_to_key(password: bytes, hash_name: str) -> bytes:
    """RFC 3414 A.2: the user's key Ku, from the password stretched to 1 MiB (cached: ~5 ms)."""
    if not password:
        raise UsmError("empty SNMPv3 key")
    count = 1_048_576
    stretched = (password * (count // len(password) + 1))[:count]
    return hashlib.new(hash_name, stretched).digest()


def localize(ku: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """RFC 3414 A.2: the key localized to one authoritative engine."""
    return hashlib.new(hash_name, ku + engine_id + ku).digest()


@dataclass(frozen=True, slots=True)
class UsmKeys:
    """A user's keys localized to one engine: what signing and encryption need."""

    user: bytes
    auth: str | None  # a key of AUTH, or None (noAuthNoPriv)
    auth_key: bytes = b""
    priv_key: bytes = b""  # AES-128 key (16 bytes) or b"" (no privacy)

    def __repr__(self) -> str:
        return f"UsmKeys(user={self.user!r}, auth={self.auth!r}, priv={bool(self.priv_key)})"

    @property
    def flags(self) -> int:
        return (FLAG_AUTH if self.auth else 0) | (FLAG_PRIV if self.priv_key else 0)

    @property
    def auth_length(self) -> int:
        return AUTH[self.auth][1] if self.auth else 0


def localized_keys(
    user: str, auth: str | None, auth_password: str | None, priv: str | None, priv_password: str | None,
    engine_id: bytes,
) -> UsmKeys:  # fmt: skip
    """Keys for ``user`` at ``engine_id`` from the configured passwords."""
    if auth is None:
        return UsmKeys(user.encode(), None)
    hash_name = AUTH[auth][0]
    auth_key = localize(password_to_key((auth_password or "").encode(), hash_name), engine_id, hash_name)
    priv_key = b""
    if priv is not None:
        if priv not in PRIV:
            raise UsmError(f"privacy protocol {priv} is not handled here")
        priv_key = localize(password_to_key((priv_password or "").encode(), hash_name), engine_id, hash_name)[:16]
    return UsmKeys(user.encode(), auth, auth_key, priv_key)


def _aes_cfb(key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    try:  # cryptography >= 43 keeps CFB among the "decrepit" modes; SNMP (RFC 3826) needs it
        from cryptography.hazmat.decrepit.ciphers.modes import CFB
    except ImportError:  # pragma: no cover - older cryptography
        from cryptography.hazmat.primitives.ciphers.modes import CFB

    cipher = Cipher(algorithms.AES(key), CFB(iv))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def _digest(keys: UsmKeys, whole: bytes) -> bytes:
    assert keys.auth is not None
    hash_name, length = AUTH[keys.auth]
    return hmac.new(keys.auth_key, whole, hash_name).digest()[:length]


@dataclass(slots=True)
class V3Message:
    """A decoded SNMPv3 message; ``scoped`` is the plaintext ScopedPDU once decrypted."""

    msg_id: int
    max_size: int
    flags: int
    engine_id: bytes
    boots: int
    time: int
    user: bytes
    auth_params: bytes
    priv_params: bytes
    data: bytes  # encrypted ScopedPDU (flags & PRIV) or the plaintext ScopedPDU TLV
    raw: bytes
    auth_offset: int  # where auth_params lies in ``raw`` (zeroed to check the digest)


def encode_message(
    keys: UsmKeys,
    *,
    msg_id: int,
    engine_id: bytes,
    boots: int,
    time: int,
    scoped_pdu: bytes,
    salt: int = 0,
    reportable: bool = True,
    flags: int | None = None,
) -> bytes:
    """A whole SNMPv3 message carrying ``scoped_pdu`` (a ScopedPDU TLV), signed and encrypted
    as ``keys`` say (``flags`` overrides the security level, e.g. noAuthNoPriv discovery)."""
    level = keys.flags if flags is None else flags
    priv_params = b""
    data = scoped_pdu
    if level & FLAG_PRIV:
        priv_params = salt.to_bytes(8, "big")
        iv = boots.to_bytes(4, "big") + time.to_bytes(4, "big") + priv_params
        data = ber.tlv(ber.OCTET_STRING, _aes_cfb(keys.priv_key, iv, scoped_pdu, encrypt=True))
    auth_len = keys.auth_length if level & FLAG_AUTH else 0
    head = (
        ber.tlv(ber.OCTET_STRING, engine_id)
        + ber.integer(boots)
        + ber.integer(time)
        + ber.tlv(ber.OCTET_STRING, keys.user)
    )
    auth_tlv_head = bytes((ber.OCTET_STRING,)) + ber.encode_length(auth_len)
    tail = ber.tlv(ber.OCTET_STRING, priv_params)
    sec_content = head + auth_tlv_head + bytes(auth_len) + tail
    sec_seq = ber.tlv(ber.SEQUENCE, sec_content)
    sec_octets = ber.tlv(ber.OCTET_STRING, sec_seq)
    global_data = ber.tlv(
        ber.SEQUENCE,
        ber.integer(msg_id)
        + ber.integer(MAX_MESSAGE_SIZE)
        + ber.tlv(ber.OCTET_STRING, bytes((level | (FLAG_REPORTABLE if reportable else 0),)))
        + ber.integer(USM_SECURITY_MODEL),
    )
    body = ber.integer(VERSION_3) + global_data + sec_octets + data
    whole = bytes((ber.SEQUENCE,)) + ber.encode_length(len(body)) + body
    if not auth_len:
        return whole
    # offset of the auth params: outer header, version, global data, then inside the two headers
    offset = (
        len(whole) - len(body) + len(ber.integer(VERSION_3)) + len(global_data)
        + (len(sec_octets) - len(sec_seq)) + (len(sec_seq) - len(sec_content)) + len(head) + len(auth_tlv_head)
    )  # fmt: skip
    digest = _digest(keys, whole)
    return whole[:offset] + digest + whole[offset + auth_len :]


def decode_message(data: bytes) -> V3Message:
    """Parse an SNMPv3 USM message (not yet authenticated or decrypted)."""
    data = bytes(data)
    try:
        tag, pos, end = ber.read_tlv(data, 0, len(data), "message")
        if tag != ber.SEQUENCE:
            raise UsmError("not an SNMP message")
        version, pos = ber.read_integer(data, pos, end, "msgVersion")
        if version != VERSION_3:
            raise UsmError(f"msgVersion {version} is not SNMPv3")
        tag, gpos, pos = ber.read_tlv(data, pos, end, "msgGlobalData")
        msg_id, gpos = ber.read_integer(data, gpos, pos, "msgID")
        max_size, gpos = ber.read_integer(data, gpos, pos, "msgMaxSize")
        tag, fstart, gpos = ber.read_tlv(data, gpos, pos, "msgFlags")
        if tag != ber.OCTET_STRING or gpos - fstart != 1:
            raise UsmError("msgFlags is not one octet")
        flags = data[fstart]
        model, gpos = ber.read_integer(data, gpos, pos, "msgSecurityModel")
        if model != USM_SECURITY_MODEL:
            raise UsmError(f"security model {model} is not USM")
        tag, spos, pos = ber.read_tlv(data, pos, end, "msgSecurityParameters")
        if tag != ber.OCTET_STRING:
            raise UsmError("msgSecurityParameters is not an OCTET STRING")
        tag, spos, send = ber.read_tlv(data, spos, pos, "UsmSecurityParameters")
        if tag != ber.SEQUENCE:
            raise UsmError("UsmSecurityParameters is not a SEQUENCE")
        fields: list[bytes] = []
        tag, a, spos = ber.read_tlv(data, spos, send, "msgAuthoritativeEngineID")
        engine_id = data[a:spos]
        boots, spos = ber.read_integer(data, spos, send, "msgAuthoritativeEngineBoots")
        time, spos = ber.read_integer(data, spos, send, "msgAuthoritativeEngineTime")
        auth_offset = 0
        for what in ("msgUserName", "msgAuthenticationParameters", "msgPrivacyParameters"):
            tag, a, spos = ber.read_tlv(data, spos, send, what)
            if tag != ber.OCTET_STRING:
                raise UsmError(f"{what} is not an OCTET STRING")
            if what == "msgAuthenticationParameters":
                auth_offset = a
            fields.append(data[a:spos])
        tag, dstart, dend = ber.read_tlv(data, pos, end, "msgData")
        payload = data[dstart:dend] if tag == ber.OCTET_STRING else data[pos:dend]
    except ber.BerError as exc:
        raise UsmError(str(exc)) from exc
    if flags & FLAG_PRIV and tag != ber.OCTET_STRING:
        raise UsmError("privacy flag set but msgData is not encrypted")
    return V3Message(msg_id, max_size, flags, engine_id, boots, time, fields[0], fields[1], fields[2], payload, data,
                     auth_offset)  # fmt: skip


def verify(keys: UsmKeys, msg: V3Message) -> None:
    """Check the digest of an authenticated message (UsmError on mismatch)."""
    if len(msg.auth_params) != keys.auth_length:
        raise UsmError("authentication parameters of the wrong length")
    zeroed = msg.raw[: msg.auth_offset] + bytes(keys.auth_length) + msg.raw[msg.auth_offset + keys.auth_length :]
    if not hmac.compare_digest(_digest(keys, zeroed), msg.auth_params):
        raise UsmError("wrong digest")


def scoped_pdu_of(keys: UsmKeys, msg: V3Message) -> bytes:
    """The plaintext ScopedPDU TLV (decrypting if the message is encrypted)."""
    if not msg.flags & FLAG_PRIV:
        return msg.data
    if not keys.priv_key:
        raise UsmError("encrypted message but no privacy key for this user")
    if len(msg.priv_params) != 8:
        raise UsmError("privacy parameters are not 8 octets")
    iv = msg.boots.to_bytes(4, "big") + msg.time.to_bytes(4, "big") + msg.priv_params
    return _aes_cfb(keys.priv_key, iv, msg.data, encrypt=False)


def encode_scoped_pdu(context_engine_id: bytes, context_name: bytes, pdu: bytes) -> bytes:
    return ber.tlv(
        ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, context_engine_id) + ber.tlv(ber.OCTET_STRING, context_name) + pdu
    )


def decode_scoped_pdu(data: bytes) -> tuple[bytes, bytes, tuple[int, int, int, int, list[tuple[ber.Oid, int, object]]]]:
    """(contextEngineID, contextName, (pdu type, request-id, error-status, error-index, var-binds))."""
    try:
        tag, pos, end = ber.read_tlv(data, 0, len(data), "ScopedPDU")
        if tag != ber.SEQUENCE:
            raise UsmError("ScopedPDU is not a SEQUENCE (wrong privacy key?)")
        tag, a, pos = ber.read_tlv(data, pos, end, "contextEngineID")
        engine = data[a:pos]
        tag, a, pos = ber.read_tlv(data, pos, end, "contextName")
        name = data[a:pos]
        return engine, name, ber.decode_pdu(data, pos, end)
    except ber.BerError as exc:
        raise UsmError(f"undecodable ScopedPDU (wrong privacy key?): {exc}") from exc
