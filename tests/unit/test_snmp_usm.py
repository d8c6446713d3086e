"""The lean USM (SNMPv3) path: RFC key vectors, pysnmp agreement, forged replies, time sync.

Interoperability with net-snmp's agent for every auth/priv combination is in
test_snmp_transport_snmpd.py; here: the published key-localization vectors, a round trip of our
messages through pysnmp's engine (the simulator's agent), and what a manager must refuse or
recover from — a reply signed with another key, an engine whose boots/time moved on, an engine
that was replaced.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from rackval.core.errors import DeviceAuthError, DeviceProtocolError
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.transport import snmp_ber as ber
from rackval.drivers.transport import snmp_usm as usm
from rackval.drivers.transport.snmp import SnmpTransport
from rackval.sim.clock import SimClock
from rackval.sim.model import RackModel
from tests.support.sim_snmp_agents import Agent

SYS_DESCR = "1.3.6.1.2.1.1.1.0"


def test_rfc3414_key_localization_vectors() -> None:
    # RFC 3414 A.3.1 / A.3.2: password "maplesyrup", engine ID 00..02
    engine = bytes.fromhex("000000000000000000000002")
    md5_ku = usm.password_to_key(b"maplesyrup", "md5")
    assert md5_ku.hex() == "9faf3283884e92834ebc9847d8edd963"
    assert usm.localize(md5_ku, engine, "md5").hex() == "526f5eed9fcce26f8964c2930787d82b"
    sha_ku = usm.password_to_key(b"maplesyrup", "sha1")
    assert sha_ku.hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    assert usm.localize(sha_ku, engine, "sha1").hex() == "6695febc9288e36282235fc7151f128497b38f3f"


def test_messages_round_trip_and_a_changed_byte_fails_the_digest() -> None:
    keys = usm.localized_keys("rackval", "SHA256", "auth-key-123", "AES128", "priv-key-456", b"\x80\x00\x1f\x88\x04x")
    assert "auth-key" not in repr(keys) and "priv-key" not in repr(keys)
    pdu = ber.encode_pdu(ber.GET_REQUEST, 77, 0, 0, [ber.null_var_bind((1, 3, 6, 1, 2, 1, 1, 1, 0))])
    scoped = usm.encode_scoped_pdu(b"\x80\x00\x1f\x88\x04x", b"", pdu)
    data = usm.encode_message(keys, msg_id=5, engine_id=b"\x80\x00\x1f\x88\x04x", boots=3, time=1234,
                              scoped_pdu=scoped, salt=99)  # fmt: skip
    msg = usm.decode_message(data)
    usm.verify(keys, msg)
    assert (msg.msg_id, msg.boots, msg.time, msg.user, msg.flags & 3) == (5, 3, 1234, b"rackval", 3)
    assert scoped not in data  # encrypted on the wire
    assert usm.decode_scoped_pdu(usm.scoped_pdu_of(keys, msg))[2][1] == 77
    with pytest.raises(usm.UsmError, match="no privacy key"):
        usm.scoped_pdu_of(usm.UsmKeys(b"rackval", "SHA256", keys.auth_key), msg)
    tampered = bytearray(data)
    tampered[-1] ^= 0x01
    with pytest.raises(usm.UsmError, match="wrong digest"):
        usm.verify(keys, usm.decode_message(bytes(tampered)))


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    a = Agent(RackModel(clock=SimClock(time_scale=0)), "tor1", "switch")
    yield a
    a.stop()


def test_resyncs_after_the_engine_time_moved_and_rediscovers_a_replaced_engine(agent: Agent) -> None:
    with SnmpTransport(agent.v3()) as t:
        assert t._lean
        first = t.get([SYS_DESCR])[SYS_DESCR]
        channel = t._channel
        assert channel is not None
        boots = channel._boots
        channel._boots += 5  # our idea of the engine's boots is now wrong: notInTimeWindows
        assert t.get([SYS_DESCR])[SYS_DESCR] == first
        assert channel._boots == boots  # re-learnt from the agent's authenticated report
        channel._engine_id = b"\x80\x00\x00\x00\x04gone"  # as if the device was swapped
        channel._keys = usm.localized_keys("rackval", "SHA256", agent.auth, "AES128", agent.priv, channel._engine_id)
        assert t.get([SYS_DESCR])[SYS_DESCR] == first
        assert channel._engine_id != b"\x80\x00\x00\x00\x04gone"


class ForgingAgent:
    """Answers discovery honestly, then signs its responses with a key the manager does not hold."""

    ENGINE = b"\x80\x00\x1f\x88\x04forger"

    def __init__(self, user: str, auth_key: str) -> None:
        self.user, self.auth_key = user, auth_key
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        forged = usm.localized_keys(self.user, "SHA256", "not-the-key-xyz", None, None, self.ENGINE)
        anon = usm.UsmKeys(b"", None)
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            msg = usm.decode_message(data)
            if not msg.engine_id:  # discovery: report our engine ID
                report = ber.encode_pdu(
                    usm.REPORT, 0, 0, 0, [ber.encode_var_bind(usm.UNKNOWN_ENGINE_IDS, ber.COUNTER32, 1)]
                )
                out = usm.encode_message(anon, msg_id=msg.msg_id, engine_id=self.ENGINE, boots=1, time=10,
                                         scoped_pdu=usm.encode_scoped_pdu(self.ENGINE, b"", report), flags=0,
                                         reportable=False)  # fmt: skip
            else:
                _, _, (_, rid, _, _, vbs) = usm.decode_scoped_pdu(msg.data)
                answer = [ber.encode_var_bind(o, ber.OCTET_STRING, b"forged") for o, _, _ in vbs]
                pdu = ber.encode_pdu(ber.RESPONSE, rid, 0, 0, answer)
                scoped = usm.encode_scoped_pdu(self.ENGINE, b"", pdu)
                out = usm.encode_message(forged, msg_id=msg.msg_id, engine_id=self.ENGINE, boots=1, time=10,
                                         scoped_pdu=scoped, reportable=False)  # fmt: skip
            self.sock.sendto(out, peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def test_a_reply_signed_with_another_key_is_never_believed() -> None:
    forger = ForgingAgent("rackval", "the-real-key-1")
    try:
        cfg = DeviceConfig(
            name="pdu-x", kind="pdu", driver="apc-rpdu2", host="127.0.0.1", port=forger.port, timeout_s=0.3,
            credentials=Credentials(snmp_version="3", username="rackval", auth_protocol="SHA256",
                                    auth_key=Secret("the-real-key-1")),
            options={"retries": 0},
        )  # fmt: skip
        with SnmpTransport(cfg) as t, pytest.raises(DeviceProtocolError, match="wrong digest") as info:
            t.get([SYS_DESCR])
        assert "pdu-x" in str(info.value) and "the-real-key" not in str(info.value)
    finally:
        forger.stop()


def test_wrong_keys_against_pysnmp_engine_are_auth_errors(agent: Agent) -> None:
    cfg = agent.v3(timeout_s=0.5, retries=0)
    creds = Credentials(**{**cfg.credentials.__dict__, "auth_key": Secret("wrong-auth-key-9")})
    bad = DeviceConfig(**{**cfg.__dict__, "credentials": creds})
    with SnmpTransport(bad) as t, pytest.raises(DeviceAuthError, match="wrong auth key") as info:
        t.get([SYS_DESCR])
    assert "wrong-auth-key-9" not in str(info.value)
