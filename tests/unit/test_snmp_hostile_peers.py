"""The SNMP transport and drivers against a scripted misbehaving agent on 127.0.0.1 (UDP).

An agent that never answers, floods stale or garbage datagrams, nests BER 30,000 levels deep,
answers a walk one slow row at a time or with a table that never ends, or sends an INTEGER
where an OCTET STRING belongs (and the reverse). Each case asserts the error class, that the
message names device, address and operation, and that it ended within the transport's bound
(``timeout_s`` per attempt, one attempt here; ``walk_timeout_s`` for a walk) + 2 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from rackval.core.errors import DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.pdu.apc import ApcRpdu2Pdu
from rackval.drivers.switch import mibs
from rackval.drivers.switch.snmp_switch import SnmpSwitch
from rackval.drivers.transport import snmp_ber as ber
from rackval.drivers.transport.snmp import SnmpTransport
from tests.support.scripted_peers import ScriptedSnmpAgent, SnmpScript, snmp_response

TIMEOUT_S = 1.0
SLACK_S = 2.0
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"


@pytest.fixture
def agent() -> Iterator[Callable[[SnmpScript], ScriptedSnmpAgent]]:
    started: list[ScriptedSnmpAgent] = []

    def start(script: SnmpScript) -> ScriptedSnmpAgent:
        started.append(ScriptedSnmpAgent(script))
        return started[-1]

    yield start
    for a in started:
        a.stop()


def config(port: int, driver: str = "snmp-switch", **options: object) -> DeviceConfig:
    return DeviceConfig(
        name="snmp-hostile", kind="switch", driver=driver, host="127.0.0.1", port=port,
        credentials=Credentials(snmp_version="2c", community=Secret("hostile-community")),
        timeout_s=TIMEOUT_S, options={"retries": 0, **options},
    )  # fmt: skip


def timed_failure(call: Callable[[], object], cls: type[DeviceError]) -> tuple[DeviceError, float]:
    started = time.monotonic()
    with pytest.raises(cls) as info:
        call()
    return info.value, time.monotonic() - started


def names_where(err: DeviceError, port: int, operation: str) -> None:
    assert err.device == "snmp-hostile" and err.address == f"127.0.0.1:{port}"
    assert err.operation == operation
    assert str(err).startswith(f"snmp-hostile (127.0.0.1:{port}): {operation}: ")
    assert "hostile-community" not in str(err)


def oid_t(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split("."))


# ---- deadlines -------------------------------------------------------------------------------------
def test_silent_agent_ends_by_the_deadline(agent) -> None:
    a = agent(lambda msg: [])
    with SnmpTransport(config(a.port)) as t:
        err, elapsed = timed_failure(lambda: t.get([SYS_DESCR]), DeviceTimeout)
    names_where(err, a.port, f"SNMP GET {SYS_DESCR}")
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + SLACK_S


def test_flood_of_stale_answers_does_not_extend_the_wait(agent) -> None:
    def stale_for_three_seconds(msg: ber.Message) -> Iterator[bytes]:
        vb = ber.encode_var_bind(oid_t(SYS_DESCR), ber.OCTET_STRING, b"stale")
        for _ in range(300):
            yield snmp_response(msg, [vb], request_id=msg.request_id - 1)
            time.sleep(0.01)

    a = agent(stale_for_three_seconds)
    with SnmpTransport(config(a.port)) as t:
        err, elapsed = timed_failure(lambda: t.get([SYS_DESCR]), DeviceTimeout)
    names_where(err, a.port, f"SNMP GET {SYS_DESCR}")
    assert elapsed < TIMEOUT_S + SLACK_S


def test_slow_walk_ends_by_the_walk_deadline(agent) -> None:
    def one_slow_row(msg: ber.Message) -> list[bytes]:
        last = msg.var_binds[0][0]
        nxt = (*last[:-1], last[-1] + 1) if len(last) > len(oid_t(IF_NAME)) else (*last, 1)
        time.sleep(0.3)  # inside the per-request timeout, every time
        return [snmp_response(msg, [ber.encode_var_bind(nxt, ber.OCTET_STRING, b"Ethernet")])]

    a = agent(one_slow_row)
    with SnmpTransport(config(a.port, walk_timeout_s=1.5)) as t:
        err, elapsed = timed_failure(lambda: t.walk(IF_NAME, operation="SNMP walk ifName"), DeviceTimeout)
    names_where(err, a.port, "SNMP walk ifName")
    assert "walk not complete within 1.5 s" in str(err) and "rows so far" in str(err)
    assert elapsed < 1.5 + SLACK_S


# ---- size caps and malformed answers ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("value_size", "option", "expected"),
    [(20, {"max_walk_rows": 1000}, "walk returned more than 1000 rows"),
     (1400, {"max_walk_bytes": 100_000}, "walk reply larger than 100000 bytes")],
    ids=["rows", "bytes"],
)  # fmt: skip
def test_table_that_never_ends_is_refused_at_the_cap(agent, value_size: int, option: dict, expected: str) -> None:
    def endless(msg: ber.Message) -> list[bytes]:
        last = msg.var_binds[0][0]
        start = last[-1] + 1 if len(last) > len(oid_t(IF_NAME)) else 1
        rows = [(*oid_t(IF_NAME), i) for i in range(start, start + min(msg.error_index, 40))]  # max-repetitions
        return [snmp_response(msg, [ber.encode_var_bind(o, ber.OCTET_STRING, b"x" * value_size) for o in rows])]

    a = agent(endless)
    with SnmpTransport(config(a.port, **option)) as t:
        err, elapsed = timed_failure(lambda: t.walk(IF_NAME, 40, operation="SNMP walk ifName"), DeviceProtocolError)
    names_where(err, a.port, "SNMP walk ifName")
    assert expected in str(err)
    assert elapsed < TIMEOUT_S + SLACK_S


@pytest.mark.parametrize(
    "datagram",
    [b"\x30" + b"\x84\x00\x00\xff\xf0" + b"\x30\x82\xff\xf0" * 16_000, bytes(range(256)) * 200, b"\x30\x03\x02\x01"],
    ids=["deep-nesting", "garbage", "truncated"],
)
def test_garbage_datagrams_are_a_protocol_error(agent, datagram: bytes) -> None:
    a = agent(lambda msg: [datagram[:65_000]])
    with SnmpTransport(config(a.port)) as t:
        err, elapsed = timed_failure(lambda: t.get([SYS_DESCR]), DeviceProtocolError)
    names_where(err, a.port, f"SNMP GET {SYS_DESCR}")
    assert "malformed SNMP response" in str(err)
    assert elapsed < TIMEOUT_S + SLACK_S


# ---- strict types ----------------------------------------------------------------------------------
def answer_gets(tag: int, value: object) -> SnmpScript:
    """Every requested object answered with ``value`` of type ``tag``; walks find nothing."""

    def script(msg: ber.Message) -> list[bytes]:
        if msg.pdu_type == ber.GET_BULK_REQUEST:
            return [snmp_response(msg, [ber.encode_var_bind((1, 3, 6, 1, 9, 9), ber.INTEGER, 0)])]
        return [snmp_response(msg, [ber.encode_var_bind(o, tag, value) for o, _, _ in msg.var_binds])]

    return script


def test_switch_integer_where_text_belongs_is_a_protocol_error(agent) -> None:
    a = agent(answer_gets(ber.INTEGER, 7))
    switch = SnmpSwitch(config(a.port))
    try:
        err, _ = timed_failure(switch.identify, DeviceProtocolError)
    finally:
        switch.close()
    assert err.operation.startswith("identify")
    assert f"{mibs.SYS_DESCR.name}: expected an OCTET STRING, got the number 7" in str(err)


def test_pdu_integer_where_text_belongs_is_a_protocol_error(agent) -> None:
    a = agent(answer_gets(ber.INTEGER, 7))
    pdu = ApcRpdu2Pdu(config(a.port, driver="apc-rpdu2"))
    try:
        err, _ = timed_failure(pdu.identify, DeviceProtocolError)
    finally:
        pdu.close()
    names_where(err, a.port, "read identity")
    assert "expected an OCTET STRING, got the number 7" in str(err) and "rPDU2Ident" in str(err)


def test_pdu_text_where_a_number_belongs_is_a_protocol_error(agent) -> None:
    a = agent(answer_gets(ber.OCTET_STRING, b"24"))
    pdu = ApcRpdu2Pdu(config(a.port, driver="apc-rpdu2"))
    try:
        err, _ = timed_failure(pdu.power_watts, DeviceProtocolError)
    finally:
        pdu.close()
    assert err.device == "snmp-hostile" and "read total power" in err.operation
    assert "is not a number: '24'" in str(err)


def test_device_text_in_an_snmp_error_is_escaped(agent) -> None:
    a = agent(answer_gets(ber.OCTET_STRING, b"\x1b[2Jx"))
    pdu = ApcRpdu2Pdu(config(a.port, driver="apc-rpdu2"))
    try:
        err, _ = timed_failure(pdu.power_watts, DeviceProtocolError)
    finally:
        pdu.close()
    assert "\x1b" not in str(err) and "\\x1b[2Jx" in str(err)
