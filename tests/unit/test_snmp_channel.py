"""SnmpTransport's v2c path against a scripted, hostile agent on 127.0.0.1.

A real agent (net-snmp snmpd) proves the normal cases in test_snmp_transport_snmpd.py; here a
scripted UDP peer sends what real devices sometimes do: late answers to an earlier request,
huge and non-UTF-8 strings, garbage, error statuses, nothing at all.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.transport import snmp_ber as ber
from rackval.drivers.transport.snmp import SnmpTransport
from tests.support.scripted_peers import ScriptedSnmpAgent, SnmpScript, snmp_response

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)


@pytest.fixture
def agent() -> Iterator[Callable[[SnmpScript], ScriptedSnmpAgent]]:
    started: list[ScriptedSnmpAgent] = []

    def start(script: SnmpScript) -> ScriptedSnmpAgent:
        started.append(ScriptedSnmpAgent(script))
        return started[-1]

    yield start
    for a in started:
        a.stop()


def transport(port: int, *, timeout_s: float = 0.3, retries: int = 0) -> SnmpTransport:
    return SnmpTransport(
        DeviceConfig(
            name="pdu-x",
            kind="pdu",
            driver="apc-rpdu2",
            host="127.0.0.1",
            port=port,
            credentials=Credentials(snmp_version="2c", community=Secret("s3cret-community")),
            timeout_s=timeout_s,
            options={"retries": retries},
        )
    )


def test_late_answer_to_another_request_is_ignored(agent: Callable[[SnmpScript], ScriptedSnmpAgent]) -> None:
    text = ber.encode_var_bind(SYS_DESCR, ber.OCTET_STRING, b"right answer")
    stale = ber.encode_var_bind(SYS_DESCR, ber.OCTET_STRING, b"stale answer")
    a = agent(lambda m: [snmp_response(m, [stale], request_id=m.request_id - 1), snmp_response(m, [text])])
    with transport(a.port) as t:
        assert t.get(["1.3.6.1.2.1.1.1.0"]) == {"1.3.6.1.2.1.1.1.0": "right answer"}
    assert a.requests[0].community == b"s3cret-community" and a.requests[0].pdu_type == ber.GET_REQUEST


def test_huge_and_non_utf8_strings_arrive_intact(agent: Callable[[SnmpScript], ScriptedSnmpAgent]) -> None:
    huge = b"A" * 60_000
    a = agent(
        lambda m: [
            snmp_response(
                m,
                [
                    ber.encode_var_bind(SYS_DESCR, ber.OCTET_STRING, huge),
                    ber.encode_var_bind((1, 3, 6, 1, 2, 1, 2, 2, 1, 6, 1), ber.OCTET_STRING, b"\x00\x1b\xff\xfe\x01"),
                    ber.encode_var_bind((1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 1), ber.IP_ADDRESS, b"\x0a\x00\x00\x01"),
                ],
            )
        ]
    )
    with transport(a.port) as t:
        got = t.get(["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.2.2.1.6.1", "1.3.6.1.2.1.4.20.1.1.1"])
    assert got == {
        "1.3.6.1.2.1.1.1.0": "A" * 60_000,
        "1.3.6.1.2.1.2.2.1.6.1": b"\x00\x1b\xff\xfe\x01",  # a MAC address stays bytes
        "1.3.6.1.2.1.4.20.1.1.1": "10.0.0.1",
    }


def test_garbage_then_a_good_answer_is_accepted(agent: Callable[[SnmpScript], ScriptedSnmpAgent]) -> None:
    good = ber.encode_var_bind(SYS_DESCR, ber.OCTET_STRING, b"ok")
    a = agent(lambda m: [b"\x30\x10garbage", snmp_response(m, [good])])
    with transport(a.port) as t:
        assert t.get(["1.3.6.1.2.1.1.1.0"])["1.3.6.1.2.1.1.1.0"] == "ok"


def test_only_garbage_names_device_operation_and_the_defect(agent: Callable[[SnmpScript], ScriptedSnmpAgent]) -> None:
    a = agent(lambda m: [snmp_response(m, [ber.encode_var_bind(SYS_DESCR, ber.OCTET_STRING, b"x" * 50)])[:-10]])
    with transport(a.port, timeout_s=0.2, retries=1) as t, pytest.raises(DeviceProtocolError) as info:
        t.get(["1.3.6.1.2.1.1.1.0"], operation="read identity")
    text = str(info.value)
    assert "pdu-x" in text and "read identity" in text and "malformed SNMP response: truncated" in text
    assert "s3cret" not in text
    assert len(a.requests) == 2  # the retry was sent


def test_error_status_names_the_status_and_the_oid(agent: Callable[[SnmpScript], ScriptedSnmpAgent]) -> None:
    a = agent(lambda m: [snmp_response(m, [ber.null_var_bind(o) for o, _, _ in m.var_binds], status=2, index=1)])
    with (
        transport(a.port) as t,
        pytest.raises(DeviceError, match=r"agent answered noSuchName at 1\.3\.6\.1\.2\.1\.1\.1\.0"),
    ):
        t.get(["1.3.6.1.2.1.1.1.0"])


def test_set_sends_typed_values(agent: Callable[[SnmpScript], ScriptedSnmpAgent]) -> None:
    a = agent(lambda m: [snmp_response(m, [ber.encode_var_bind(o, t, v) for o, t, v in m.var_binds])])
    with transport(a.port) as t:
        t.set("1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.3", 2)
        t.set("1.3.6.1.2.1.1.5.0", "rack-07")
    (first, second) = a.requests
    assert first.pdu_type == ber.SET_REQUEST and first.var_binds == [
        ((1, 3, 6, 1, 4, 1, 318, 1, 1, 26, 9, 2, 4, 1, 5, 3), ber.INTEGER, 2)
    ]
    assert second.var_binds == [((1, 3, 6, 1, 2, 1, 1, 5, 0), ber.OCTET_STRING, b"rack-07")]


def test_nothing_listening_is_a_timeout_that_says_so() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # the port is free now: the kernel answers ICMP port unreachable
    with transport(port, timeout_s=0.2, retries=1) as t, pytest.raises(DeviceTimeout) as info:
        t.get(["1.3.6.1.2.1.1.1.0"])
    assert "pdu-x" in str(info.value) and "ICMP port unreachable" in str(info.value)


def test_silent_agent_times_out_within_its_bound(agent: Callable[[SnmpScript], ScriptedSnmpAgent]) -> None:
    a = agent(lambda m: [])
    with transport(a.port, timeout_s=0.2, retries=2) as t, pytest.raises(DeviceTimeout, match="no response after 3"):
        t.get(["1.3.6.1.2.1.1.1.0"])
    assert len(a.requests) == 3
