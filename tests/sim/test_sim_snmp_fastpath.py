"""The simulated agents' v2c fast path serves exactly what the pysnmp path serves, by the RFC.

Two independent references: the same agent's pysnmp engine (reached over SNMPv3, which never
takes the fast path) must serve the same objects with the same types, and net-snmp's own
command-line manager (snmpbulkget / snmpwalk / snmpget) must read the fast path correctly,
including GETBULK's non-repeaters / max-repetitions and the exception values.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from rackval.core.errors import DeviceError
from rackval.drivers.transport.snmp import SnmpTransport
from rackval.sim.clock import SimClock
from rackval.sim.model import RackModel
from tests.support.sim_snmp_agents import Agent

PDU_A, PDU_B, SWITCH = "pdu-a", "pdu-b", "tor1"
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
NET_SNMP_ENV = {**os.environ, "MIBS": "", "MIBDIRS": ""}


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, Agent]]:
    model = RackModel(clock=SimClock(time_scale=0))  # frozen time: both paths read the same state
    started = {
        "apc": Agent(model, PDU_B, "pdu", mib="apc"),
        "raritan": Agent(model, PDU_A, "pdu", mib="raritan"),
        "servertech": Agent(model, PDU_A, "pdu", mib="servertech"),
        "eaton": Agent(model, PDU_B, "pdu", mib="eaton"),
        "switch": Agent(model, SWITCH, "switch"),
    }
    yield started
    for agent in started.values():
        agent.stop()


def _net_snmp(tool: str, agent: Agent, *args: str) -> list[str]:
    out = subprocess.run(
        [tool, "-v2c", "-c", agent.ro, "-On", "-r", "0", "-t", "3", *args],
        env=NET_SNMP_ENV,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.splitlines()


@pytest.mark.parametrize("which", ["apc", "raritan", "servertech", "eaton", "switch"])
def test_fast_path_serves_the_same_objects_and_types_as_pysnmp(agents: dict[str, Agent], which: str) -> None:
    agent = agents[which]
    server = agent.server
    walks: dict[tuple[str, bool], list[tuple[str, object]]] = {}
    try:
        for fast in (True, False):
            server.fast_path = fast
            before = server.fast_answers
            for version in ("v2c", "v3"):
                with SnmpTransport(agent.v2c() if version == "v2c" else agent.v3()) as t:
                    walks[version, fast] = t.walk("1.3.6.1", max_repetitions=40)
            assert (server.fast_answers > before) == fast
    finally:
        server.fast_path = True
    reference = walks["v3", False]  # pysnmp's engine end to end
    assert len(reference) > 20
    for key, rows in walks.items():
        assert [oid for oid, _ in rows] == [oid for oid, _ in reference], key
        assert [type(v) for _, v in rows] == [type(v) for _, v in reference], key
        # Nameplate and configuration objects (text) are identical; meters may carry seeded noise.
        assert [(o, v) for o, v in rows if isinstance(v, str)] == [(o, v) for o, v in reference if isinstance(v, str)]


def test_net_snmp_getbulk_non_repeaters_and_repetitions(agents: dict[str, Agent]) -> None:
    agent = agents["switch"]
    lines = _net_snmp("snmpbulkget", agent, "-Cn1", "-Cr3", agent.server.host + f":{agent.server.port}",
                      SYS_DESCR, IF_DESCR)  # fmt: skip
    assert len(lines) == 4
    assert lines[0].startswith(".1.3.6.1.2.1.1.2.0 = OID:")  # the non-repeater: GETNEXT of sysDescr.0
    assert [line.split(" = ")[0].rsplit(".", 1)[0] for line in lines[1:]] == [f".{IF_DESCR}"] * 3
    assert all("STRING:" in line for line in lines[1:])


def test_net_snmp_walk_agrees_with_ours_and_ends_cleanly(agents: dict[str, Agent]) -> None:
    agent = agents["apc"]
    target = f"{agent.server.host}:{agent.server.port}"
    lines = _net_snmp("snmpbulkwalk", agent, "-Cr30", target, ".1.3.6.1")
    assert "No more variables left in this MIB View" in lines[-1]  # the walk ran into endOfMibView
    theirs = [line.split(" = ")[0].lstrip(".") for line in lines[:-1]]
    with SnmpTransport(agent.v2c()) as t:
        ours = [oid for oid, _ in t.walk("1.3.6.1", max_repetitions=30)]
    assert theirs == ours
    missing = _net_snmp("snmpget", agent, target, "1.3.6.1.2.1.1.1.5", "1.3.6.1.4.1.99999.1.0")
    assert "No Such Instance" in missing[0] and "No Such Object" in missing[1]


def test_model_failure_is_gen_err_not_a_dead_agent(agents: dict[str, Agent]) -> None:
    agent = agents["switch"]
    key = (1, 3, 6, 1, 2, 1, 1, 5, 0)  # sysName.0
    entry = agent.server.index.entries[key]
    original = entry.get

    def broken() -> object:
        raise RuntimeError("model bug")

    entry.get = broken
    try:
        with SnmpTransport(agent.v2c()) as t:
            with pytest.raises(DeviceError, match=r"agent answered genErr at 1\.3\.6\.1\.2\.1\.1\.5\.0"):
                t.get([SYS_DESCR, "1.3.6.1.2.1.1.5.0"])
            assert t.get([SYS_DESCR])  # the agent still answers
    finally:
        entry.get = original


def test_unknown_community_is_left_to_pysnmp_which_drops_it(agents: dict[str, Agent]) -> None:
    agent = agents["switch"]
    with SnmpTransport(agent.v2c("not-the-community", timeout_s=0.3, retries=0)) as t, pytest.raises(DeviceError):
        t.get([SYS_DESCR])


def test_net_snmp_reads_the_v3_fast_path(agents: dict[str, Agent]) -> None:
    agent = agents["raritan"]
    before = agent.server.fast_answers
    out = subprocess.run(
        ["snmpget", "-v3", "-l", "authPriv", "-u", "rackval", "-a", "SHA-256", "-A", agent.auth, "-x", "AES",
         "-X", agent.priv, "-On", "-r", "0", "-t", "3", f"{agent.server.host}:{agent.server.port}", SYS_DESCR,
         "1.3.6.1.2.1.1.5.0"],
        env=NET_SNMP_ENV, capture_output=True, text=True, timeout=30, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[0].startswith(f".{SYS_DESCR} = STRING:") and out[1].startswith(".1.3.6.1.2.1.1.5.0 = STRING:")
    assert agent.server.fast_answers > before  # discovery went to pysnmp, the GET to the fast path
