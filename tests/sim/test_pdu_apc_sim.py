"""ApcRpdu2Pdu against the simulated APC agent, and the agent's security behaviour.

The agent serves the shared RackModel, so the driver's readings are checked against the model's
true values (within the simulated meter's accuracy), and outlet switching must change the model.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from rackval.core.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.capabilities import Identity
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.pdu import apc
from rackval.drivers.pdu.apc import ApcRpdu2Pdu
from rackval.drivers.transport.snmp import SnmpTransport
from rackval.sim.model import RackModel
from rackval.sim.snmp_agent import SnmpAgentServer, start_pdu_agent

PDU = "pdu-a"
V3_USER = "rackval"


class Agent:
    """A running simulated PDU and the credentials it was started with."""

    def __init__(self, model: RackModel, pdu: str, **kwargs: object) -> None:
        self.model = model
        self.pdu = pdu
        self.ro = secrets.token_urlsafe(12)
        self.rw = secrets.token_urlsafe(12)
        self.auth = secrets.token_urlsafe(16)
        self.priv = secrets.token_urlsafe(16)
        self.server: SnmpAgentServer = start_pdu_agent(
            model,
            pdu,
            community=self.ro,
            write_community=self.rw,
            v3_user=V3_USER,
            v3_auth_key=self.auth,
            v3_priv_key=self.priv,
            **kwargs,  # type: ignore[arg-type]
        )

    def v2c(self, community: str, *, timeout_s: float = 2.0, **options: object) -> DeviceConfig:
        return DeviceConfig(
            name=self.pdu,
            kind="pdu",
            driver="apc-rpdu2",
            host=self.server.host,
            port=self.server.port,
            credentials=Credentials(snmp_version="2c", community=Secret(community)),
            options={"poll_interval_s": 0.05, **options},
            timeout_s=timeout_s,
        )

    def v3(self, *, auth: str | None = None, timeout_s: float = 2.0, **options: object) -> DeviceConfig:
        return DeviceConfig(
            name=self.pdu,
            kind="pdu",
            driver="apc-rpdu2",
            host=self.server.host,
            port=self.server.port,
            credentials=Credentials(
                snmp_version="3",
                username=V3_USER,
                auth_protocol="SHA256",
                auth_key=Secret(auth or self.auth),
                priv_protocol="AES128",
                priv_key=Secret(self.priv),
            ),
            options={"poll_interval_s": 0.05, **options},
            timeout_s=timeout_s,
        )


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    a = Agent(RackModel(), PDU)
    try:
        yield a
    finally:
        a.server.stop()


@pytest.fixture(autouse=True)
def all_outlets_on(agent: Agent) -> Iterator[None]:
    """Tests switch outlets of the shared model; each starts and ends with every outlet on."""
    for n in agent.model.pdus[PDU].outlets:
        agent.model.set_outlet(PDU, n, True)
    yield
    for n in agent.model.pdus[PDU].outlets:
        agent.model.set_outlet(PDU, n, True)


@pytest.fixture
def pdu(agent: Agent) -> Iterator[ApcRpdu2Pdu]:
    driver = ApcRpdu2Pdu(agent.v2c(agent.rw))
    yield driver
    driver.close()


def test_identify_matches_model(pdu: ApcRpdu2Pdu, agent: Agent) -> None:
    info = agent.model.pdus[PDU].info
    assert pdu.identify() == Identity("APC", info.model, info.serial, info.firmware)


def test_outlets_match_model(pdu: ApcRpdu2Pdu, agent: Agent) -> None:
    model_pdu = agent.model.pdus[PDU]
    outlets = pdu.outlets()
    assert [o.outlet for o in outlets] == sorted(model_pdu.outlets)
    assert [o.name for o in outlets] == [model_pdu.outlets[n].name for n in sorted(model_pdu.outlets)]
    assert all(o.on for o in outlets)
    for o in outlets:
        true_w = agent.model.outlet_power_w(PDU, o.outlet)
        true_a = agent.model.outlet_current_a(PDU, o.outlet)
        assert true_w > 100
        assert o.power_w == pytest.approx(true_w, rel=0.03)
        assert o.current_a == pytest.approx(true_a, rel=0.03, abs=0.06)  # tenths of A on the wire


def test_outlet_names_are_read_once_then_refreshed_periodically(pdu: ApcRpdu2Pdu, agent: Agent) -> None:
    from rackval.drivers.pdu.snmp_pdu import NAME_REFRESH_EVERY

    outlet = agent.model.pdus[PDU].outlets[1]
    original = outlet.name
    try:
        assert pdu.outlets()[0].name == original
        with agent.model.lock:
            outlet.name = "renamed-by-operator"
        assert pdu.outlets()[0].name == original  # a 1 Hz poll does not re-read labels
        for _ in range(NAME_REFRESH_EVERY - 2):
            pdu.outlets()
        assert pdu.outlets()[0].name == "renamed-by-operator"
    finally:
        with agent.model.lock:
            outlet.name = original


def test_power_watts_within_3_percent(pdu: ApcRpdu2Pdu, agent: Agent) -> None:
    assert pdu.power_watts() == pytest.approx(agent.model.pdu_power_w(PDU), rel=0.03)


def test_set_outlet_off_then_on_changes_model_and_readings(pdu: ApcRpdu2Pdu, agent: Agent) -> None:
    outlet = 2
    before_total = pdu.power_watts()
    outlet_w = agent.model.outlet_power_w(PDU, outlet)
    pdu.set_outlet(outlet, False)
    assert agent.model.pdus[PDU].outlets[outlet].on is False
    reading = pdu.outlets()[outlet - 1]
    assert (reading.on, reading.power_w, reading.current_a) == (False, 0.0, 0.0)
    # The node behind the outlet moves to its other PSU (feed B): this PDU loses that outlet's load.
    assert pdu.power_watts() == pytest.approx(before_total - outlet_w, rel=0.03)
    pdu.set_outlet(outlet, True)
    assert agent.model.pdus[PDU].outlets[outlet].on is True
    reading = pdu.outlets()[outlet - 1]
    assert reading.on and reading.power_w is not None and reading.power_w > 100


def test_control_command_reads_with_opposite_polarity(agent: Agent) -> None:
    agent.model.set_outlet(PDU, 3, False)
    with SnmpTransport(agent.v2c(agent.ro)) as t:
        cmd = f"{apc.OUTLET_SWITCHED_CONTROL_COMMAND}.3"
        state = f"{apc.OUTLET_SWITCHED_STATUS_STATE}.3"
        values = t.get([cmd, state, f"{apc.OUTLET_SWITCHED_STATUS_STATE}.1"])
    assert values[cmd] == apc.CMD_IMMEDIATE_OFF and values[state] == apc.STATE_OFF
    assert values[f"{apc.OUTLET_SWITCHED_STATUS_STATE}.1"] == apc.STATE_ON


def test_v3_auth_priv_reads_and_switches(agent: Agent) -> None:
    driver = ApcRpdu2Pdu(agent.v3())
    try:
        assert driver.identify().serial == agent.model.pdus[PDU].info.serial
        driver.set_outlet(1, False)
        assert agent.model.pdus[PDU].outlets[1].on is False
        driver.set_outlet(1, True)
        assert agent.model.pdus[PDU].outlets[1].on is True
    finally:
        driver.close()


def test_v3_wrong_auth_key_is_refused(agent: Agent) -> None:
    with (
        SnmpTransport(agent.v3(auth="definitely-wrong-key", timeout_s=0.5, retries=0)) as t,
        pytest.raises(DeviceAuthError) as info,
    ):
        t.get(["1.3.6.1.2.1.1.5.0"])
    assert "definitely-wrong-key" not in str(info.value)


def test_read_only_community_cannot_set(agent: Agent) -> None:
    driver = ApcRpdu2Pdu(agent.v2c(agent.ro))
    try:
        assert driver.outlets()[0].on  # it can read
        with pytest.raises(DeviceError, match="noAccess") as info:
            driver.set_outlet(1, False)
        assert not isinstance(info.value, DeviceTimeout)
        assert agent.model.pdus[PDU].outlets[1].on is True
    finally:
        driver.close()


def test_write_community_cannot_write_outside_outlet_control(agent: Agent) -> None:
    with SnmpTransport(agent.v2c(agent.rw)) as t:
        with pytest.raises(DeviceError, match=r"noAccess|notWritable"):
            t.set("1.3.6.1.2.1.1.5.0", "renamed")
        assert t.get(["1.3.6.1.2.1.1.5.0"])["1.3.6.1.2.1.1.5.0"] == PDU


def test_invalid_control_values_are_rejected(agent: Agent) -> None:
    cmd = f"{apc.OUTLET_SWITCHED_CONTROL_COMMAND}.1"
    with SnmpTransport(agent.v2c(agent.rw)) as t:
        with pytest.raises(DeviceError, match="wrongValue"):
            t.set(cmd, apc.CMD_DELAYED_OFF)
        with pytest.raises(DeviceError, match="wrongType"):
            t.set(cmd, "off")
    assert agent.model.pdus[PDU].outlets[1].on is True


def test_usm_table_is_not_readable_over_v2c(agent: Agent) -> None:
    with SnmpTransport(agent.v2c(agent.ro)) as t:
        assert t.walk("1.3.6.1.6.3.15") == []
        with pytest.raises(DeviceProtocolError, match="noSuchObject"):
            t.get(["1.3.6.1.6.3.15.1.1.1.0"])  # usmStatsUnsupportedSecLevels
        served = [oid for oid, _ in t.walk("1.3")]
    assert served, "the agent serves something"
    assert all(oid.startswith(("1.3.6.1.2.1.1.", "1.3.6.1.4.1.318.")) for oid in served)


def test_concurrent_devices_share_the_transport_loop(agent: Agent) -> None:
    model = agent.model
    other = Agent(model, "pdu-b")
    drivers = [ApcRpdu2Pdu(agent.v2c(agent.ro)), ApcRpdu2Pdu(other.v3())]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda i: drivers[i % 2].power_watts(), range(20)))
        for i, watts in enumerate(results):
            pdu_name = (PDU, "pdu-b")[i % 2]
            assert watts == pytest.approx(model.pdu_power_w(pdu_name), rel=0.03)
    finally:
        for d in drivers:
            d.close()
        other.server.stop()


def test_reboot_command_cycles_the_outlet() -> None:
    model = RackModel()
    agent = Agent(model, "pdu-b", reboot_duration_s=0.3)
    try:
        with SnmpTransport(agent.v2c(agent.rw)) as t:
            t.set(f"{apc.OUTLET_SWITCHED_CONTROL_COMMAND}.2", apc.CMD_IMMEDIATE_REBOOT)
            assert model.pdus["pdu-b"].outlets[2].on is False
            pending = f"{apc.OUTLET_SWITCHED_STATUS_COMMAND_PENDING}.2"
            assert t.get([pending])[pending] == apc.COMMAND_PENDING
            deadline = time.monotonic() + 5
            while not model.pdus["pdu-b"].outlets[2].on and time.monotonic() < deadline:
                time.sleep(0.05)
            assert model.pdus["pdu-b"].outlets[2].on is True
            assert t.get([pending])[pending] == apc.COMMAND_NONE_PENDING
    finally:
        agent.server.stop()


def test_stop_is_idempotent_and_closes_the_port() -> None:
    agent = Agent(RackModel(), PDU)
    cfg = agent.v2c(agent.ro, timeout_s=0.3, retries=0)
    with SnmpTransport(cfg) as t:
        assert t.get(["1.3.6.1.2.1.1.5.0"])
        agent.server.stop()
        agent.server.stop()
        assert not agent.server._thread.is_alive()
        with pytest.raises(DeviceTimeout):
            t.get(["1.3.6.1.2.1.1.5.0"])


def test_agent_refuses_non_loopback_and_half_v3() -> None:
    model = RackModel()
    with pytest.raises(ValueError, match="loopback"):
        start_pdu_agent(model, PDU, host="0.0.0.0", community="c")
    with pytest.raises(ValueError, match="together"):
        start_pdu_agent(model, PDU, community="c", v3_user="u")
    with pytest.raises(KeyError):
        start_pdu_agent(model, "no-such-pdu", community="c")
