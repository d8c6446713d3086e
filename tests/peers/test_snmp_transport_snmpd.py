"""SnmpTransport and ApcRpdu2Pdu against a third-party agent: net-snmp's snmpd on 127.0.0.1.

snmpd is not our code, so these tests show the transport interoperates (v2c, v3 SHA-256/AES
with engine discovery and key localisation, GETBULK walks, error statuses) and that the APC
driver reads an rPDU2 table served by someone else (a pass_persist script under snmpd).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rackval.core.errors import ConfigError, DeviceAuthError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.capabilities import Device, Identity, OutletSwitch, PowerMeter
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.pdu.apc import ApcRpdu2Pdu
from rackval.drivers.transport.snmp import SnmpTransport
from tests.support.snmpd_peer import APC_FIRMWARE, APC_MODEL, APC_OUTLETS, APC_SERIAL, SnmpdPeer, start_snmpd

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYSTEM = "1.3.6.1.2.1.1"


# (user, net-snmp auth, net-snmp priv, our auth_protocol, our priv_protocol)
V3_MATRIX = [
    ("u-md5-des", "MD5", "DES", "MD5", "DES"),
    ("u-sha-aes", "SHA", "AES", "SHA", "AES128"),
    ("u-sha224-aes", "SHA-224", "AES", "SHA224", "AES"),
    ("u-sha384-aes192", "SHA-384", "AES-192", "SHA384", "AES192"),
    ("u-sha512-aes256", "SHA-512", "AES-256", "SHA512", "AES256"),
    ("u-md5-aes", "MD5", "AES", "MD5", "AES"),
    ("u-sha256-aes", "SHA-256", "AES", "SHA256", "AES128"),
    ("u-sha512-aes", "SHA-512", "AES", "SHA512", "AES"),
    ("u-sha256-auth", "SHA-256", None, "SHA256", None),
]
MATRIX_AUTH, MATRIX_PRIV = "matrix-auth-1", "matrix-priv-1"


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpdPeer]:
    users = [
        line
        for user, auth, priv, _, _ in V3_MATRIX
        for line in (
            f"createUser {user} {auth} {MATRIX_AUTH} {priv} {MATRIX_PRIV}"
            if priv
            else f"createUser {user} {auth} {MATRIX_AUTH}",
            f"rouser {user} {'authPriv' if priv else 'authNoPriv'}",
        )
    ]
    peer = start_snmpd(tmp_path_factory.mktemp("snmpd"), apc_table=True, extra_lines=users)
    try:
        yield peer
    finally:
        peer.stop()


def v2c(
    peer: SnmpdPeer, community: str, *, name: str = "snmpd", timeout_s: float = 2.0, **options: object
) -> DeviceConfig:
    return DeviceConfig(
        name=name,
        kind="pdu",
        driver="apc-rpdu2",
        host=peer.host,
        port=peer.port,
        credentials=Credentials(snmp_version="2c", community=Secret(community)),
        options=options,
        timeout_s=timeout_s,
    )


def v3(
    peer: SnmpdPeer, *, auth: str, priv: str, name: str = "snmpd-v3", timeout_s: float = 2.0, **options: object
) -> DeviceConfig:
    return DeviceConfig(
        name=name,
        kind="pdu",
        driver="apc-rpdu2",
        host=peer.host,
        port=peer.port,
        credentials=Credentials(
            snmp_version="3",
            username=peer.v3_user,
            auth_protocol="SHA256",
            auth_key=Secret(auth),
            priv_protocol="AES",
            priv_key=Secret(priv),
        ),
        options=options,
        timeout_s=timeout_s,
    )


@pytest.fixture
def transport(snmpd: SnmpdPeer) -> Iterator[SnmpTransport]:
    t = SnmpTransport(v2c(snmpd, snmpd.ro_community))
    yield t
    t.close()


def test_get_system_group_values(transport: SnmpTransport, snmpd: SnmpdPeer) -> None:
    values = transport.get([SYS_DESCR, "." + SYS_NAME])
    assert values == {SYS_DESCR: snmpd.sys_descr, SYS_NAME: snmpd.sys_name}


def test_walk_stays_in_subtree_and_is_ordered(transport: SnmpTransport, snmpd: SnmpdPeer) -> None:
    rows = transport.walk(SYSTEM)
    oids = [oid for oid, _ in rows]
    assert all(oid.startswith(SYSTEM + ".") for oid in oids)
    keys = [tuple(int(x) for x in oid.split(".")) for oid in oids]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    values = dict(rows)
    assert values[SYS_DESCR] == snmpd.sys_descr
    assert values[SYS_NAME] == snmpd.sys_name
    assert isinstance(values["1.3.6.1.2.1.1.3.0"], int)  # sysUpTime: TimeTicks -> int
    assert values["1.3.6.1.2.1.1.2.0"].startswith("1.3.6.1.4.1.8072")  # sysObjectID: OID -> str
    # Many small GETBULK rounds give the same rows as a few big ones (sysUpTime ticks on).
    again = transport.walk(SYSTEM, max_repetitions=2)
    assert [oid for oid, _ in again] == oids
    assert [r for r in again if r[0] != "1.3.6.1.2.1.1.3.0"] == [r for r in rows if r[0] != "1.3.6.1.2.1.1.3.0"]


def test_walk_of_empty_subtree_is_empty(transport: SnmpTransport) -> None:
    assert transport.walk("1.3.6.1.4.1.99999.42") == []


def test_v3_auth_priv_get(snmpd: SnmpdPeer) -> None:
    with SnmpTransport(v3(snmpd, auth=snmpd.v3_auth_pass, priv=snmpd.v3_priv_pass)) as t:
        assert t.get([SYS_NAME]) == {SYS_NAME: snmpd.sys_name}
        assert dict(t.walk(SYSTEM))[SYS_DESCR] == snmpd.sys_descr


@pytest.mark.parametrize(("user", "auth", "priv"), [(u, a, p) for u, _, _, a, p in V3_MATRIX])
def test_v3_protocols_interoperate_with_net_snmp(snmpd: SnmpdPeer, user: str, auth: str, priv: str | None) -> None:
    cfg = DeviceConfig(
        name=f"snmpd-{user}",
        kind="pdu",
        driver="apc-rpdu2",
        host=snmpd.host,
        port=snmpd.port,
        credentials=Credentials(
            snmp_version="3",
            username=user,
            auth_protocol=auth,
            auth_key=Secret(MATRIX_AUTH),
            priv_protocol=priv,
            priv_key=Secret(MATRIX_PRIV),
        ),
        timeout_s=1.0,
    )
    with SnmpTransport(cfg) as t:
        assert t.get([SYS_NAME]) == {SYS_NAME: snmpd.sys_name}
        assert dict(t.walk(SYSTEM))[SYS_DESCR] == snmpd.sys_descr
        # AES-128 and no privacy take the lean USM path; DES and AES-192/256 stay with pysnmp.
        assert t._lean == (priv in (None, "AES", "AES128"))


def test_wrong_community_times_out_naming_device_and_address(snmpd: SnmpdPeer) -> None:
    bad = "not-the-community"
    t = SnmpTransport(v2c(snmpd, bad, name="pdu-x", timeout_s=0.4, retries=0))
    start = time.monotonic()
    with pytest.raises(DeviceTimeout) as info:
        t.get([SYS_NAME])
    t.close()
    assert time.monotonic() - start < 3.0
    message = str(info.value)
    assert "pdu-x" in message and f"127.0.0.1:{snmpd.port}" in message and SYS_NAME in message
    assert bad not in message and bad not in repr(t)


def test_wrong_v3_auth_key_is_an_auth_error(snmpd: SnmpdPeer) -> None:
    t = SnmpTransport(v3(snmpd, auth="wrong-auth-key-1", priv=snmpd.v3_priv_pass, timeout_s=0.5, retries=0))
    with pytest.raises(DeviceAuthError) as info:
        t.get([SYS_NAME])
    t.close()
    assert "auth" in str(info.value) and "wrong-auth-key-1" not in str(info.value)


def test_wrong_v3_priv_key_fails_clearly(snmpd: SnmpdPeer) -> None:
    # net-snmp drops a message it cannot decrypt, so the manager sees silence: the timeout
    # message must point at the privacy key.
    t = SnmpTransport(v3(snmpd, auth=snmpd.v3_auth_pass, priv="wrong-priv-key-1", timeout_s=0.4, retries=0))
    with pytest.raises((DeviceTimeout, DeviceAuthError)) as info:
        t.get([SYS_NAME])
    t.close()
    assert "privacy key" in str(info.value)


def test_unknown_v3_user_is_an_auth_error(snmpd: SnmpdPeer) -> None:
    cfg = v3(snmpd, auth=snmpd.v3_auth_pass, priv=snmpd.v3_priv_pass, timeout_s=0.5, retries=0)
    cfg = DeviceConfig(
        **{**cfg.__dict__, "credentials": Credentials(**{**cfg.credentials.__dict__, "username": "nobody"})}
    )
    with SnmpTransport(cfg) as t, pytest.raises(DeviceAuthError, match="does not know this SNMPv3 user"):
        t.get([SYS_NAME])


def test_set_refused_on_read_only_community(transport: SnmpTransport) -> None:
    with pytest.raises(DeviceError) as info:
        transport.set(SYS_NAME, "renamed")
    assert not isinstance(info.value, DeviceTimeout)
    assert "noAccess" in str(info.value) or "notWritable" in str(info.value)
    assert transport.get([SYS_NAME])[SYS_NAME] != "renamed"


def test_missing_object_names_the_oid(transport: SnmpTransport) -> None:
    with pytest.raises(DeviceProtocolError, match=r"noSuch\w+ for 1\.3\.6\.1\.2\.1\.1\.99\.0"):
        transport.get([SYS_NAME, "1.3.6.1.2.1.1.99.0"])


def test_closed_transport_refuses(snmpd: SnmpdPeer) -> None:
    t = SnmpTransport(v2c(snmpd, snmpd.ro_community))
    assert t.get([SYS_NAME])
    t.close()
    t.close()  # idempotent
    with pytest.raises(DeviceError, match="closed"):
        t.get([SYS_NAME])


def test_bad_configuration_is_rejected_before_any_traffic() -> None:
    base = DeviceConfig(name="p", kind="pdu", driver="apc-rpdu2", host="127.0.0.1")
    with pytest.raises(ConfigError, match="community"):
        SnmpTransport(base)
    with pytest.raises(ConfigError, match="snmp_version"):
        SnmpTransport(
            DeviceConfig(**{**base.__dict__, "credentials": Credentials(snmp_version="1", community=Secret("x"))})
        )
    with pytest.raises(ConfigError, match="auth_protocol"):
        SnmpTransport(
            DeviceConfig(
                **{
                    **base.__dict__,
                    "credentials": Credentials(
                        snmp_version="3", username="u", auth_protocol="SHA1024", auth_key=Secret("k" * 8)
                    ),
                }
            )
        )
    with pytest.raises(ValueError, match="numeric OID"):
        SnmpTransport(DeviceConfig(**{**base.__dict__, "credentials": Credentials(community=Secret("c"))})).get(
            ["sysName.0"]
        )


# ---- the APC driver against snmpd + pass_persist ----------------------------------------------------
def test_apc_driver_reads_third_party_agent(snmpd: SnmpdPeer) -> None:
    pdu = ApcRpdu2Pdu(v2c(snmpd, snmpd.ro_community, name="pdu-snmpd"))
    try:
        assert isinstance(pdu, Device) and isinstance(pdu, PowerMeter) and isinstance(pdu, OutletSwitch)
        assert pdu.identify() == Identity("APC", APC_MODEL, APC_SERIAL, APC_FIRMWARE)
        outlets = pdu.outlets()
        assert [o.outlet for o in outlets] == sorted(APC_OUTLETS)
        for o in outlets:
            name, on, watts = APC_OUTLETS[o.outlet]
            assert (o.name, o.on) == (name, on)
            assert o.power_w == (watts if on else 0)
            assert o.current_a == pytest.approx(round(watts / 230 * 10) / 10 if on else 0.0)
        expected_total = 15 + sum(w for _, on, w in APC_OUTLETS.values() if on)
        assert pdu.power_watts() == pytest.approx(round(expected_total / 10) * 10)
    finally:
        pdu.close()


def test_apc_driver_switches_outlet_on_third_party_agent(snmpd: SnmpdPeer) -> None:
    pdu = ApcRpdu2Pdu(v2c(snmpd, snmpd.rw_community, name="pdu-snmpd-rw", poll_interval_s=0.05))
    try:
        assert pdu.outlets()[2].on is False  # outlet 3 starts off
        pdu.set_outlet(3, True)
        assert pdu.outlets()[2].on is True
        pdu.set_outlet(3, False)
        assert pdu.outlets()[2].on is False
    finally:
        pdu.close()
    ro = ApcRpdu2Pdu(v2c(snmpd, snmpd.ro_community, name="pdu-snmpd-ro"))
    try:
        with pytest.raises(DeviceError, match=r"switch outlet 3 on .*rPDU2OutletSwitchedControlCommand\.3"):
            ro.set_outlet(3, True)
        assert ro.outlets()[2].on is False
    finally:
        ro.close()
