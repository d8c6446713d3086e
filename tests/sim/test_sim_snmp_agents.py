"""The simulator's SNMP agents (Raritan / APC PDU, standard-MIB switch) read by the real drivers.

Values are checked against the shared RackModel (within the simulated meter's accuracy), the
switch's LLDP against the model's cabling, and every protocol fault against the error class the
driver raises. The model runs on a frozen SimClock so counters grow only when a test advances it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from rackval.core.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.capabilities import CounterTracker, Identity, LldpNeighbor
from rackval.drivers.pdu import apc, raritan
from rackval.drivers.pdu.apc import ApcRpdu2Pdu
from rackval.drivers.pdu.raritan import RaritanPdu2Pdu
from rackval.drivers.pdu.servertech import ServerTechSentry4Pdu
from rackval.drivers.switch import mibs
from rackval.drivers.switch.snmp_switch import SnmpSwitch
from rackval.drivers.transport.snmp import SnmpTransport
from rackval.sim.clock import SimClock
from rackval.sim.faults import make_fault
from rackval.sim.model import RackModel
from rackval.sim.snmp_agent import start_pdu_agent
from rackval.sim.snmp_switch_agent import IF_INDEX_BASE, PORT_POWER_W, start_switch_snmp_agent
from tests.support.sim_snmp_agents import Agent

SWITCH, RARITAN_PDU, APC_PDU = "tor1", "pdu-a", "pdu-b"
FAST_FAIL = {"timeout_s": 0.3, "retries": 0}


class Rack:
    def __init__(self) -> None:
        self.clock = SimClock(time_scale=0)
        self.model = RackModel(clock=self.clock)
        self.switch = Agent(self.model, SWITCH, "switch")
        self.raritan = Agent(self.model, RARITAN_PDU, "pdu", mib="raritan", reboot_duration_s=0.2)
        self.apc = Agent(self.model, APC_PDU, "pdu")

    def stop(self) -> None:
        for a in (self.switch, self.raritan, self.apc):
            a.stop()


@pytest.fixture(scope="module")
def rack() -> Iterator[Rack]:
    r = Rack()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def inject(rack: Rack) -> Iterator[Callable[..., str]]:
    """Inject faults for one test; all are cleared afterwards."""
    ids: list[str] = []

    def _inject(kind: str, device: str, component: str | None = None, **params: object) -> str:
        fid = rack.model.inject(make_fault(kind, device, component, **params))
        ids.append(fid)
        return fid

    yield _inject
    for fid in ids:
        if any(f.id == fid for f in rack.model.injected_faults()):
            rack.model.clear_fault(fid)


@pytest.fixture(autouse=True)
def outlets_on(rack: Rack) -> Iterator[None]:
    yield
    for pdu in (RARITAN_PDU, APC_PDU):
        for n in rack.model.pdus[pdu].outlets:
            rack.model.set_outlet(pdu, n, True)


@pytest.fixture
def raritan_pdu(rack: Rack) -> Iterator[RaritanPdu2Pdu]:
    d = RaritanPdu2Pdu(rack.raritan.v2c(rack.raritan.rw))
    yield d
    d.close()


@pytest.fixture
def switch(rack: Rack) -> Iterator[SnmpSwitch]:
    d = SnmpSwitch(rack.switch.v2c())
    yield d
    d.close()


def fast(agent: Agent, community: str | None = None) -> SnmpTransport:
    return SnmpTransport(agent.v2c(community, timeout_s=0.3, retries=0))


# ---- Raritan PDU2-MIB ------------------------------------------------------------------------------
def test_raritan_identity_outlets_and_inlet_match_model(raritan_pdu: RaritanPdu2Pdu, rack: Rack) -> None:
    model = rack.model
    info = model.pdus[RARITAN_PDU].info
    assert raritan_pdu.identify() == Identity(info.vendor, info.model, info.serial, info.firmware)
    outlets = raritan_pdu.outlets()
    model_pdu = model.pdus[RARITAN_PDU]
    assert [o.outlet for o in outlets] == sorted(model_pdu.outlets)
    assert [o.name for o in outlets] == [model_pdu.outlets[n].name for n in sorted(model_pdu.outlets)]
    for o in outlets:
        true_w = model.outlet_power_w(RARITAN_PDU, o.outlet)
        assert o.on
        assert o.power_w == pytest.approx(true_w, rel=0.03, abs=1.0)
        assert o.current_a == pytest.approx(model.outlet_current_a(RARITAN_PDU, o.outlet), rel=0.03, abs=0.002)
    assert sum(1 for o in outlets if o.power_w and o.power_w > 100) == len(rack.model.nodes)
    assert raritan_pdu.power_watts() == pytest.approx(model.pdu_power_w(RARITAN_PDU), rel=0.03)
    inlet, *poles = raritan_pdu.inlet_readings()
    assert inlet.pole is None and [p.pole for p in poles] == [1, 2, 3]
    assert inlet.voltage_v == pytest.approx(model.pdus[RARITAN_PDU].voltage_v, rel=0.02)
    assert sum(p.power_w or 0 for p in poles) == pytest.approx(inlet.power_w, rel=0.03, abs=3)
    for p in poles:
        assert p.current_a == pytest.approx(model.pdu_phase_current_a(RARITAN_PDU, p.pole or 0), rel=0.03, abs=0.01)


def test_raritan_values_carry_decimal_digits(rack: Rack) -> None:
    current = f"{raritan.OUTLET_SENSOR_VALUE}.1.1.{raritan.RMS_CURRENT}"
    digits = f"{raritan.OUTLET_SENSOR_DECIMAL_DIGITS}.1.1.{raritan.RMS_CURRENT}"
    with fast(rack.raritan) as t:
        values = t.get([current, digits])
    assert values[digits] == 3
    raw = values[current]
    assert isinstance(raw, int)
    assert raw / 1000 == pytest.approx(rack.model.outlet_current_a(RARITAN_PDU, 1), rel=0.03)


def test_raritan_switching_and_stuck_relay(raritan_pdu: RaritanPdu2Pdu, rack: Rack, inject: Callable[..., str]) -> None:
    raritan_pdu.set_outlet(2, False)
    assert rack.model.pdus[RARITAN_PDU].outlets[2].on is False
    assert raritan_pdu.outlets()[1].power_w == 0.0
    raritan_pdu.set_outlet(2, True)
    assert rack.model.pdus[RARITAN_PDU].outlets[2].on is True
    inject("outlet_relay_stuck", RARITAN_PDU, "3")
    stuck = RaritanPdu2Pdu(rack.raritan.v2c(rack.raritan.rw, confirm_timeout_s=0.2))
    try:
        with pytest.raises(DeviceTimeout, match="still reports on") as info:
            stuck.set_outlet(3, False)
        assert info.value.device == RARITAN_PDU
    finally:
        stuck.close()
    assert rack.model.pdus[RARITAN_PDU].outlets[3].on is True


def test_raritan_cycle_turns_the_outlet_back_on(rack: Rack) -> None:
    with fast(rack.raritan, rack.raritan.rw) as t:
        t.set(f"{raritan.SWITCHING_OPERATION}.1.4", raritan.OP_CYCLE)
        assert rack.model.pdus[RARITAN_PDU].outlets[4].on is False
        deadline = time.monotonic() + 5
        while not rack.model.pdus[RARITAN_PDU].outlets[4].on and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rack.model.pdus[RARITAN_PDU].outlets[4].on is True
        with pytest.raises(DeviceError, match="wrongValue"):
            t.set(f"{raritan.SWITCHING_OPERATION}.1.4", 7)


def test_raritan_read_only_community_cannot_switch(rack: Rack) -> None:
    with fast(rack.raritan) as t, pytest.raises(DeviceError, match="noAccess"):
        t.set(f"{raritan.SWITCHING_OPERATION}.1.1", raritan.OP_OFF)
    assert rack.model.pdus[RARITAN_PDU].outlets[1].on is True


# ---- APC phases and feed loss -------------------------------------------------------------------
def test_apc_phase_readings_sum_to_the_pdu_total(rack: Rack) -> None:
    phases = (1, 2, 3)
    wanted = [f"{apc.PHASE_STATUS_POWER}.{p}" for p in phases] + [f"{apc.PHASE_STATUS_CURRENT}.{p}" for p in phases]
    wanted += [f"{apc.DEVICE_STATUS_POWER}.1", f"{apc.DEVICE_NUM_PHASES}.1"]
    with fast(rack.apc) as t:
        v = t.get(wanted)
    assert v[f"{apc.DEVICE_NUM_PHASES}.1"] == 3
    phase_w = [10 * int(v[f"{apc.PHASE_STATUS_POWER}.{p}"]) for p in phases]  # type: ignore[call-overload]
    total_w = 10 * int(v[f"{apc.DEVICE_STATUS_POWER}.1"])  # type: ignore[call-overload]
    true_total = rack.model.pdu_power_w(APC_PDU)
    assert total_w == pytest.approx(true_total, rel=0.03)
    # each phase is rounded to 10 W on the wire, and each reading has the meter's 1 % accuracy
    assert sum(phase_w) == pytest.approx(total_w, rel=0.03, abs=15)
    for p, watts in zip(phases, phase_w, strict=True):
        assert watts == pytest.approx(rack.model.pdu_phase_power_w(APC_PDU, p), rel=0.03, abs=10)
        amps = int(v[f"{apc.PHASE_STATUS_CURRENT}.{p}"]) / 10  # type: ignore[call-overload]
        assert amps == pytest.approx(rack.model.pdu_phase_current_a(APC_PDU, p), rel=0.03, abs=0.06)


def test_feed_loss_makes_the_pdu_silent(rack: Rack, inject: Callable[..., str]) -> None:
    feed = rack.model.pdus[APC_PDU].feed
    other_feed_pdu = RARITAN_PDU
    assert rack.model.pdus[other_feed_pdu].feed != feed
    fid = inject("feed_loss", feed)
    dead = ApcRpdu2Pdu(rack.apc.v2c(**FAST_FAIL))
    alive = RaritanPdu2Pdu(rack.raritan.v2c(**FAST_FAIL))
    try:
        with pytest.raises(DeviceTimeout) as info:
            dead.power_watts()
        assert info.value.device == APC_PDU and APC_PDU in str(info.value)
        assert alive.identify().serial == rack.model.pdus[other_feed_pdu].info.serial
        rack.model.clear_fault(fid)
        assert dead.power_watts() > 0
    finally:
        dead.close()
        alive.close()


# ---- switch: identity, ports, LLDP, counters, sensors -------------------------------------------
def test_switch_identity_and_ports_match_model(switch: SnmpSwitch, rack: Rack) -> None:
    info = rack.model.switches[SWITCH].info
    assert switch.identify() == Identity(info.vendor, info.model, info.serial, info.firmware)
    ports = switch.ports()
    model_ports = rack.model.switches[SWITCH].ports
    assert [p.name for p in ports] == [p.name for p in model_ports]
    for got, want in zip(ports, model_ports, strict=True):
        assert (got.oper_up, got.admin_up, got.speed_mbps, got.alias) == (
            want.oper_up,
            want.admin_up,
            want.speed_mbps,
            want.alias,
        )
    assert any(p.oper_up for p in ports) and any(not p.oper_up for p in ports)


def expected_neighbors(model: RackModel) -> list[LldpNeighbor]:
    return [
        LldpNeighbor(p.name, p.peer[0], p.peer[1])
        for p in sorted(model.switches[SWITCH].ports, key=lambda p: p.index)
        if p.peer is not None and model.port_oper_up(SWITCH, p.name)
    ]


def test_switch_lldp_matches_cabling(switch: SnmpSwitch, rack: Rack) -> None:
    neighbors = switch.lldp_neighbors()
    assert neighbors == expected_neighbors(rack.model)
    assert len(neighbors) == len(rack.model.nodes)


def test_lldp_local_port_numbers_are_not_if_indexes(rack: Rack) -> None:
    with fast(rack.switch) as t:
        if_names = {int(o.rsplit(".", 1)[1]): v for o, v in t.walk(mibs.IF_NAME.oid)}
        loc_ids = {int(o.rsplit(".", 1)[1]): v for o, v in t.walk(mibs.LLDP_LOC_PORT_ID.oid)}
        rem_rows = [tuple(int(x) for x in o.split(".")[-3:]) for o, _ in t.walk(mibs.LLDP_REM_SYS_NAME.oid)]
    ports = {p.index: p.name for p in rack.model.switches[SWITCH].ports}
    assert if_names == {IF_INDEX_BASE + i: name for i, name in ports.items()}
    assert loc_ids == ports
    assert not set(if_names) & set(loc_ids)
    assert rem_rows and all(time_mark == 0 and rem == 1 and local in ports for time_mark, local, rem in rem_rows)


def test_counters_grow_with_the_clock_and_link_errors(
    switch: SnmpSwitch, rack: Rack, inject: Callable[..., str]
) -> None:
    model = rack.model
    node, port = "node01", next(p.name for p in model.switches[SWITCH].ports if p.peer == ("node01", "eth0"))
    model.set_utilization(node, 1.0)
    try:
        tracker = CounterTracker()
        assert tracker.update(switch.counters()) == {}
        rack.clock.advance(10)
        deltas = tracker.update(switch.counters())
        d = deltas[port]
        assert not d.reset
        speed_bps = model.switches[SWITCH].ports[0].speed_mbps * 1e6
        expected = model.params.network.load_fraction * speed_bps * 10 / 8
        assert d.out_octets == pytest.approx(expected, rel=0.02)
        assert d.in_octets and d.in_octets > 0.9 * expected
        assert d.in_errors == 0
        inject("link_errors", SWITCH, port, ber=1e-6, uncorrectable_fraction=1e-3)
        rack.clock.advance(10)
        d = tracker.update(switch.counters())[port]
        assert d.in_errors is not None and d.in_errors > 100
        truth = model.port_counters(SWITCH, port)["in_errors"]
        assert [c.in_errors for c in switch.counters() if c.name == port] == [truth % 2**32]
    finally:
        model.set_utilization(node, 0.0)


def test_link_down_shows_oper_down_and_drops_the_neighbor(
    switch: SnmpSwitch, rack: Rack, inject: Callable[..., str]
) -> None:
    port = rack.model.switches[SWITCH].ports[1].name
    power_before = {s.name: s.value for s in switch.sensors()}["PSU1 power"]
    index_before = rack.switch.server.index
    switch.ports()
    assert rack.switch.server.index is index_before  # no topology change: the index is reused
    inject("link_down", SWITCH, port)
    status = {p.name: p for p in switch.ports()}[port]
    assert status.admin_up and not status.oper_up
    assert port not in [n.local_port for n in switch.lldp_neighbors()]
    assert switch.lldp_neighbors() == expected_neighbors(rack.model)
    power_after = {s.name: s.value for s in switch.sensors()}["PSU1 power"]
    assert power_before is not None and power_after == pytest.approx(power_before - PORT_POWER_W / 2, abs=0.5)
    assert rack.switch.server.index is not index_before


def test_miscabled_ports_swap_lldp_neighbors(switch: SnmpSwitch, rack: Rack, inject: Callable[..., str]) -> None:
    a, b = (p.name for p in rack.model.switches[SWITCH].ports[:2])
    before = {n.local_port: n.remote_system for n in switch.lldp_neighbors()}
    inject("miscabled_port", SWITCH, a, other_port=b)
    after = {n.local_port: n.remote_system for n in switch.lldp_neighbors()}
    assert (after[a], after[b]) == (before[b], before[a])


def test_switch_sensors_are_plausible(switch: SnmpSwitch) -> None:
    sensors = {s.name: s for s in switch.sensors()}
    temp = sensors["ASIC temperature"]
    assert temp.kind == "temperature" and temp.unit == "C" and temp.status == "ok"
    assert temp.value is not None and 30 < temp.value < 90 and round(temp.value, 1) == temp.value
    psu = sensors["PSU1 power"]
    assert psu.kind == "power" and psu.value is not None and 100 < psu.value < 1000
    fans = [s for s in sensors.values() if s.kind == "fan"]
    assert len(fans) == 4 and all(s.value is not None and 3000 < s.value < 25000 for s in fans)


def test_switch_over_v3(rack: Rack) -> None:
    d = SnmpSwitch(rack.switch.v3())
    try:
        assert d.identify().serial == rack.model.switches[SWITCH].info.serial
    finally:
        d.close()


# ---- security ------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["switch", "raritan"])
def test_usm_table_is_not_readable_over_v2c(rack: Rack, which: str) -> None:
    agent: Agent = getattr(rack, which)
    with fast(agent) as t:
        assert t.walk("1.3.6.1.6.3.15") == []
        with pytest.raises(DeviceProtocolError, match="noSuchObject"):
            t.get(["1.3.6.1.6.3.15.1.1.1.0"])
        served = [oid for oid, _ in t.walk("1.3", 64)]
    assert served
    assert all(oid.startswith(tuple(".".join(map(str, s)) + "." for s in agent.server.read_subtrees)) for oid in served)


def test_switch_cannot_be_written(rack: Rack) -> None:
    alias = f"{mibs.IF_ALIAS.oid}.{IF_INDEX_BASE + 1}"
    with fast(rack.switch) as t:
        with pytest.raises(DeviceError, match="noAccess") as info:
            t.set(alias, "renamed")
        assert not isinstance(info.value, DeviceTimeout)
        assert t.get([alias])[alias] == rack.model.switches[SWITCH].ports[0].alias
    with SnmpTransport(rack.switch.v3(timeout_s=0.5, retries=0)) as t3, pytest.raises(DeviceError, match="noAccess"):
        t3.set(alias, "renamed")


# ---- protocol faults -------------------------------------------------------------------------------
def test_device_silent_times_out_naming_the_device(rack: Rack, inject: Callable[..., str]) -> None:
    fid = inject("device_silent", SWITCH)
    d = SnmpSwitch(rack.switch.v2c(**FAST_FAIL))
    try:
        with pytest.raises(DeviceTimeout) as info:
            d.identify()
        assert info.value.device == SWITCH
        rack.model.clear_fault(fid)
        assert d.identify().serial == rack.model.switches[SWITCH].info.serial
    finally:
        d.close()


def test_device_slow_delays_without_blocking_other_agents(rack: Rack, inject: Callable[..., str]) -> None:
    inject("device_slow", SWITCH, delay_s=0.6)
    sysname = "1.3.6.1.2.1.1.5.0"
    with (
        SnmpTransport(rack.switch.v2c(timeout_s=2.0, retries=0)) as slow,
        fast(rack.apc) as quick,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        started = time.monotonic()
        pending = pool.submit(slow.get, [sysname])
        time.sleep(0.05)
        quick_started = time.monotonic()
        assert quick.get([sysname])[sysname] == APC_PDU
        assert time.monotonic() - quick_started < 0.3
        assert pending.result(timeout=5)[sysname] == SWITCH
        assert time.monotonic() - started >= 0.55
    with fast(rack.switch) as t, pytest.raises(DeviceTimeout):
        t.get([sysname])


def test_snmp_no_such_object(rack: Rack, raritan_pdu: RaritanPdu2Pdu, inject: Callable[..., str]) -> None:
    inject("snmp_no_such_object", RARITAN_PDU, oid_prefix=raritan.OUTLET_SWITCHING_STATE)
    with pytest.raises(DeviceProtocolError, match="noSuchObject") as info:
        raritan_pdu.outlets()
    assert info.value.device == RARITAN_PDU and "outletSwitchingState" in str(info.value)
    inject("snmp_no_such_object", SWITCH, oid_prefix=".1.3.6.1.2.1.31")  # the whole ifMIB (ifXTable)
    d = SnmpSwitch(rack.switch.v2c())
    try:  # walks skip the missing table: names from ifDescr, the 32-bit octet counters
        counters = d.counters()
        assert {c.octet_bits for c in counters} == {32}
        assert [c.name for c in counters] == [p.name for p in rack.model.switches[SWITCH].ports]
    finally:
        d.close()


def test_snmp_wrong_type(rack: Rack, raritan_pdu: RaritanPdu2Pdu, inject: Callable[..., str]) -> None:
    inject("snmp_wrong_type", RARITAN_PDU, oid_prefix=raritan.OUTLET_SENSOR_VALUE)
    with pytest.raises(DeviceProtocolError, match="not a number"):
        raritan_pdu.outlets()
    inject("snmp_wrong_type", SWITCH, oid_prefix=mibs.IF_OPER_STATUS.oid)
    d = SnmpSwitch(rack.switch.v2c())
    try:
        with pytest.raises(DeviceProtocolError, match="expected an integer") as info:
            d.ports()
        assert info.value.device == SWITCH
    finally:
        d.close()


def test_auth_failure_v2c_is_silent_and_v3_is_refused(rack: Rack, inject: Callable[..., str]) -> None:
    fid = inject("auth_failure", SWITCH)
    v2 = SnmpSwitch(rack.switch.v2c(**FAST_FAIL))
    v3 = SnmpSwitch(rack.switch.v3(**FAST_FAIL))
    try:
        with pytest.raises(DeviceTimeout):
            v2.identify()
        with pytest.raises(DeviceAuthError) as info:
            v3.identify()
        assert info.value.device == SWITCH and rack.switch.auth not in str(info.value)
        rack.model.clear_fault(fid)
        assert v3.identify().serial == v2.identify().serial == rack.model.switches[SWITCH].info.serial
    finally:
        v2.close()
        v3.close()


def test_malformed_replies(rack: Rack, inject: Callable[..., str]) -> None:
    fid = inject("malformed_reply", APC_PDU, mode="truncate")
    d = ApcRpdu2Pdu(rack.apc.v2c(**FAST_FAIL))
    try:
        # v2c: the lean codec keeps waiting for a good answer, then says what was wrong with the bytes
        with pytest.raises(DeviceProtocolError, match="malformed SNMP response: truncated") as info:
            d.identify()
        assert info.value.device == APC_PDU and "read identity" in str(info.value)
        rack.model.clear_fault(fid)
        fid = inject("malformed_reply", APC_PDU, mode="garbage")
        with pytest.raises(DeviceProtocolError, match="malformed SNMP response"):
            d.identify()
        rack.model.clear_fault(fid)
        inject("malformed_reply", APC_PDU, mode="wrong_length")
        with pytest.raises(DeviceProtocolError, match="response lacks") as info:
            d.identify()
        assert info.value.device == APC_PDU
    finally:
        d.close()


def test_start_arguments_are_checked() -> None:
    model = RackModel()
    with pytest.raises(ValueError, match="loopback"):
        start_switch_snmp_agent(model, SWITCH, host="0.0.0.0", community="c")
    with pytest.raises(KeyError):
        start_switch_snmp_agent(model, "no-such-switch", community="c")
    with pytest.raises(ValueError, match="mib"):
        start_pdu_agent(model, RARITAN_PDU, community="c", mib="nonsense")


def test_servertech_sentry4_agent_read_and_switched() -> None:
    model = RackModel(clock=SimClock(time_scale=0))
    agent = Agent(model, RARITAN_PDU, "pdu", mib="servertech")
    d = ServerTechSentry4Pdu(agent.v2c(agent.rw))
    try:
        info = model.pdus[RARITAN_PDU].info
        assert d.identify() == Identity("ServerTech", info.model, info.serial, info.firmware)
        outlets = d.outlets()
        assert [o.name for o in outlets] == [o.name for _, o in sorted(model.pdus[RARITAN_PDU].outlets.items())]
        for o in outlets:
            assert o.power_w == pytest.approx(model.outlet_power_w(RARITAN_PDU, o.outlet), rel=0.03, abs=1)
        assert d.power_watts() == pytest.approx(model.pdu_power_w(RARITAN_PDU), rel=0.03)
        poles = [r for r in d.inlet_readings() if r.pole is not None]
        assert [r.pole for r in poles] == [1, 2, 3]
        assert sum(r.power_w or 0 for r in poles) == pytest.approx(model.pdu_power_w(RARITAN_PDU), rel=0.03, abs=3)
        d.set_outlet(1, False)
        assert model.pdus[RARITAN_PDU].outlets[1].on is False
        d.set_outlet(1, True)
        assert model.pdus[RARITAN_PDU].outlets[1].on is True
    finally:
        d.close()
        agent.stop()
