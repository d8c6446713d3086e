"""The simulated reference rack's dynamic physics, with numbers: power sharing, thermal lags,
throttling, capping, inrush, boot sequencing, counters, event log and every physical fault kind.

All tests run the full dynamic model (``REFERENCE_PARAMS``) on a frozen virtual clock, so time
moves only when a test advances it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rackval.core.errors import ConfigError
from rackval.sim.clock import SimClock
from rackval.sim.fault_file import load_faults
from rackval.sim.faults import CATALOGUE, PHYSICAL_KINDS, PROTOCOL_KINDS, make_fault
from rackval.sim.model import (
    COUNTER_WRAP,
    REASON_HW_THERMAL,
    REASON_SW_POWER_CAP,
    REASON_SW_THERMAL,
    RackModel,
    RackSize,
    psu_efficiency,
)
from rackval.sim.reference import REFERENCE_PARAMS, REFERENCE_SIZE, load_model_params

REPO = Path(__file__).resolve().parents[2]
P = REFERENCE_PARAMS
TAU = P.thermal.gpu_tau_s


def make(nodes: int = 2) -> tuple[RackModel, SimClock]:
    clock = SimClock(time_scale=0.0)
    return RackModel(RackSize(nodes=nodes), clock, REFERENCE_PARAMS), clock


def gpu_steady_c(watts: float, ambient: float = P.ambient_c) -> float:
    return ambient + P.thermal.gpu_r_th_c_per_w * watts


# ---- power ------------------------------------------------------------------------------------
def test_feed_loss_moves_its_power_to_the_other_feed() -> None:
    m, _ = make(nodes=3)
    for n in m.nodes:
        m.set_utilization(n, 0.3)  # 2522 W DC per node: one 3300 W PSU can carry it
    dc = {n: m.node_dc_power_w(n) for n in m.nodes}
    rack_before = m.feed_power_w("A") + m.feed_power_w("B")

    m.set_feed("A", False)
    assert m.feed_power_w("A") == 0.0 and m.pdu_power_w("pdu-a") == 0.0
    rated = P.psu.rated_w
    # every node now runs on its feed-B PSU alone, at that PSU's (different) efficiency
    expected_b = sum(w / psu_efficiency(w / rated) for w in dc.values()) + P.pdu_self_power_w
    assert m.feed_power_w("B") == pytest.approx(expected_b)
    for n in m.nodes:
        assert m.node_is_up(n) and m.node_dc_power_w(n) == pytest.approx(dc[n])
        assert m.psu_status(n, "PSU1") == "NoInput" and m.psu_status(n, "PSU2") == "OK"
        assert m.sel(n)[-1].message_id.endswith("PowerSupplyInputLost")
    # the rack total changes only by the PSU efficiency difference and pdu-a's own consumption
    expected_change = (
        sum(w / psu_efficiency(w / rated) - w / psu_efficiency(w / 2 / rated) for w in dc.values()) - P.pdu_self_power_w
    )
    assert m.feed_power_w("B") - rack_before == pytest.approx(expected_change)
    assert abs(expected_change) < 0.01 * rack_before

    m.set_feed("A", True)  # restoring the feed charges every PSU on it at once
    assert m.outlet_inrush_peak_a("pdu-a", 1) == P.psu.inrush_peak_a
    assert m.psu_status("node01", "PSU1") == "OK"
    assert m.feed_power_w("A") + m.feed_power_w("B") == pytest.approx(rack_before)


def test_lost_redundancy_trips_an_overloaded_node() -> None:
    m, _ = make()
    m.set_utilization("node01", 1.0)  # 6050 W DC: needs both 3300 W PSUs
    m.inject(make_fault("psu_failure", "node01", "PSU2", id="psu2"))
    assert m.psu_status("node01", "PSU2") == "Failed"
    assert m.host_state("node01") == "Off" and not m.node_is_up("node01")
    assert m.node_dc_power_w("node01") == P.power.standby_w  # the BMC stays up on PSU1
    severities = [(e.severity, e.message_id.rsplit(".", 1)[-1]) for e in m.sel("node01")]
    assert ("Critical", "PowerSupplyFailed") in severities
    assert ("Critical", "PowerSupplyOverload") in severities
    assert m.node_is_up("node02")


def test_per_gpu_utilisation_and_phase_totals() -> None:
    m, _ = make()
    m.set_gpu_utilization("node01", 3, 1.0)
    powers = [m.gpu_power_w("node01", i) for i in range(8)]
    assert powers[3] == P.power.gpu_max_w and powers.count(P.power.gpu_idle_w) == 7
    assert m.node_dc_power_w("node01") == pytest.approx(P.power.base_w + 700 + 7 * 70)
    m.set_utilization("node01", 0.5)
    assert m.gpu_power_w("node01", 0) == pytest.approx(70 + 0.5 * 630)
    assert m.gpu_power_w("node01", 3) == 700  # the override still wins

    outlets = m.pdus["pdu-a"].outlets
    assert [o.phase for o in outlets.values()] == [(i - 1) % 3 + 1 for i in outlets]
    phases = [m.pdu_phase_power_w("pdu-a", ph) for ph in (1, 2, 3)]
    assert sum(phases) == pytest.approx(m.pdu_power_w("pdu-a"))
    assert phases[0] == pytest.approx(m.outlet_power_w("pdu-a", 1) + P.pdu_self_power_w / 3)


def test_power_cap_settles_within_five_time_constants() -> None:
    m, clock = make()
    m.set_utilization("node01", 1.0)
    uncapped = m.node_input_power_w("node01")
    cap = 4500.0
    m.set_power_cap("node01", cap, correction_ms=1000)  # tau = 0.2 s
    assert m.node_input_power_w("node01") == pytest.approx(uncapped)  # no instant jump
    clock.advance(0.2)
    one_tau = m.node_input_power_w("node01")
    assert cap < one_tau < uncapped
    clock.advance(0.8)
    settled = m.node_input_power_w("node01")
    assert settled <= cap and settled == pytest.approx(cap * (1 - P.timing.power_cap_margin), rel=0.01)
    # first-order approach: after one tau the excess fell to about 1/e
    target = cap * (1 - P.timing.power_cap_margin)
    assert (one_tau - target) / (uncapped - target) == pytest.approx(math.exp(-1), abs=0.05)
    assert all(m.gpu_event_reasons("node01", i) & REASON_SW_POWER_CAP for i in range(8))
    assert m.sel("node01")[-1].message_id.endswith("PowerLimitApplied")
    m.set_power_cap("node01", None)
    clock.advance(2.0)  # 10 tau: the release follows the same lag
    assert m.node_input_power_w("node01") == pytest.approx(uncapped, rel=1e-4)
    assert not m.gpu_event_reasons("node01", 0) & REASON_SW_POWER_CAP


def test_power_cap_slow_fault_stretches_the_response_by_its_factor() -> None:
    m, clock = make()
    m.set_utilization("node01", 1.0)
    cap = 4500.0
    fid = m.inject(make_fault("power_cap_slow", "node01", factor=10.0))
    m.set_power_cap("node01", cap, correction_ms=1000)  # advertised: met within 1 s
    clock.advance(1.0)
    assert m.node_input_power_w("node01") > cap * 1.05  # the BMC is nowhere near its own promise
    clock.advance(9.0)  # 10 x 1 s
    assert m.node_input_power_w("node01") <= cap
    m.clear_fault(fid)
    m.set_power_cap("node01", None)
    clock.advance(1.0)  # without the fault the loop is fast again
    m.set_power_cap("node01", cap, correction_ms=1000)
    clock.advance(1.0)
    assert m.node_input_power_w("node01") <= cap
    with pytest.raises(ValueError, match=r"power_cap_slow on node02: params\.factor: must be > 0, got 0\.0"):
        m.inject(make_fault("power_cap_slow", "node02", factor=0.0))


def test_bmc_slow_boot_delays_bmc_ready_on_a_power_cycle() -> None:
    m, clock = make()
    m.inject(make_fault("bmc_slow_boot", "node01", extra_s=50.0))
    assert m.bmc_ready("node01")  # a running BMC is not affected
    boot = P.timing.bmc_boot_s
    psus = [psu for node in ("node01", "node02") for psu in m.nodes[node].psus]
    for psu in psus:
        m.set_outlet(psu.pdu, psu.outlet, False)
    clock.advance(1.0)
    for psu in psus:
        m.set_outlet(psu.pdu, psu.outlet, True)
    clock.advance(boot + 1.0)
    assert m.bmc_ready("node02") and not m.bmc_ready("node01")
    clock.advance(50.0)
    assert m.bmc_ready("node01")


# ---- thermal ----------------------------------------------------------------------------------
def test_gpu_temperature_reaches_63_percent_of_a_step_after_one_time_constant() -> None:
    m, clock = make()
    start = m.gpu_temperature_c("node01", 0)
    assert start == pytest.approx(gpu_steady_c(P.power.gpu_idle_w))  # the rack starts settled
    m.set_utilization("node01", 0.8)
    final = gpu_steady_c(70 + 0.8 * 630)
    assert m.gpu_temperature_c("node01", 0) == start  # no jump
    clock.advance(TAU)
    assert (m.gpu_temperature_c("node01", 0) - start) / (final - start) == pytest.approx(1 - math.exp(-1), abs=1e-9)
    clock.advance(10 * TAU)
    assert m.gpu_temperature_c("node01", 0) == pytest.approx(final, abs=1e-3)


def test_one_big_jump_equals_many_small_steps_and_costs_nothing() -> None:
    a, clock_a = make()
    b, clock_b = make()
    for m in (a, b):
        m.set_utilization("node01", 1.0)
        m.inject(make_fault("gpu_overheat", "node01", "GPU2", r_th_factor=2.5))
        m.set_power_cap("node02", 3000)
        m.set_utilization("node02", 1.0)
    for _ in range(300):  # b is read every virtual second, a only at the end
        clock_b.advance(1.0)
        b.gpu_temperature_c("node01", 2)
    wall = time.perf_counter()
    clock_a.advance(300.0)
    ta = a.gpu_temperature_c("node01", 2)
    elapsed = time.perf_counter() - wall
    assert ta == pytest.approx(b.gpu_temperature_c("node01", 2), abs=1e-9)
    assert a.node_input_power_w("node02") == pytest.approx(b.node_input_power_w("node02"), rel=1e-9)
    assert a.sel("node01")[-1].created_s == pytest.approx(b.sel("node01")[-1].created_s, abs=1e-9)
    assert elapsed < 0.05


def test_thirty_virtual_minutes_advance_instantly() -> None:
    m, clock = make()
    m.set_utilization("node01", 1.0)
    before = m.port_counters("tor1", "Ethernet0")["out_octets"]
    wall = time.perf_counter()
    clock.advance(1800.0)
    temp = m.gpu_temperature_c("node01")
    octets = m.port_counters("tor1", "Ethernet0")["out_octets"] - before
    assert time.perf_counter() - wall < 0.1
    assert temp == pytest.approx(gpu_steady_c(700))
    rate_bps = P.network.idle_rate_bps + P.network.load_fraction * 400e9
    assert octets == pytest.approx(rate_bps / 8 * 1800, rel=1e-9)
    assert m.now() == pytest.approx(1800.0)


def test_thermal_throttling_holds_the_limit_and_sets_reason_bits() -> None:
    m, clock = make()
    m.inject(make_fault("gpu_overheat", "node01", "GPU1", r_th_factor=2.5, id="hot"))
    r = P.thermal.gpu_r_th_c_per_w * 2.5
    t0 = m.gpu_temperature_c("node01", 1)
    m.set_utilization("node01", 1.0)
    unthrottled = P.ambient_c + r * 700  # 130 C: far above the 87 C limit
    t_hit = TAU * math.log((unthrottled - t0) / (unthrottled - 87.0))
    clock.advance(t_hit - 0.5)
    assert m.gpu_event_reasons("node01", 1) & REASON_SW_THERMAL == 0
    assert m.gpu_power_w("node01", 1) == 700
    clock.advance(600)
    assert m.gpu_temperature_c("node01", 1) == pytest.approx(87.0)
    assert m.gpu_power_w("node01", 1) == pytest.approx((87.0 - P.ambient_c) / r)  # 413 W
    assert m.gpu_event_reasons("node01", 1) & REASON_SW_THERMAL
    assert not m.gpu_event_reasons("node01", 0) & REASON_SW_THERMAL  # only the sick GPU
    entry = next(e for e in m.sel("node01") if "slowdown limit" in e.message)
    assert entry.severity == "Warning" and entry.created_s == pytest.approx(t_hit, abs=1e-6)
    # even minimum power too hot: the hardware slowdown
    m.clear_fault("hot")
    m.inject(make_fault("gpu_overheat", "node01", "GPU1", r_th_factor=1.0, delta_c=65.0))
    clock.advance(600)
    assert m.gpu_power_w("node01", 1) == P.power.gpu_min_w
    assert m.gpu_temperature_c("node01", 1) == pytest.approx(P.ambient_c + 65 + 0.06 * 100)
    assert m.gpu_event_reasons("node01", 1) & (REASON_SW_THERMAL | REASON_HW_THERMAL) == 0x60
    assert m.sel("node01")[-1].severity == "Critical"


def test_fans_follow_the_hottest_gpu_and_cool_the_exhaust() -> None:
    m, clock = make()
    idle_duty = m.fan_speed_percent("node01")
    m.set_utilization("node01", 1.0)
    clock.advance(600)
    busy_duty = m.fan_speed_percent("node01")  # hottest GPU 67 C on the curve (50,40)-(70,70)
    assert busy_duty == pytest.approx(40 + (67 - 50) * 30 / 20) and busy_duty > idle_duty
    assert m.fan_rpm("node01", 1) == round(P.fans.max_rpm * busy_duty / 100)
    airflow = P.fans.max_airflow_m3_s * busy_duty / 100
    exhaust = P.ambient_c + m.node_dc_power_w("node01") / (airflow * 1.2 * 1005)
    assert m.node_outlet_temperature_c("node01") == pytest.approx(exhaust)


# ---- sequencing -------------------------------------------------------------------------------
def test_power_on_sequence_bmc_boot_host_and_os() -> None:
    m, clock = make()
    for psu in m.nodes["node01"].psus:
        m.set_outlet(psu.pdu, psu.outlet, False)
    assert m.bmc_state("node01") == "Off" and m.node_dc_power_w("node01") == 0.0
    m.set_outlet("pdu-a", 1, True)
    m.set_outlet("pdu-b", 1, True)  # both PSUs: one alone could not carry the full load below
    assert m.outlet_inrush_peak_a("pdu-a", 1) == P.psu.inrush_peak_a
    assert m.outlet_current_a("pdu-a", 1) == pytest.approx(P.psu.inrush_peak_a)  # at the instant of switching
    clock.advance(0.1)  # ten inrush time constants later only the standby draw is left
    assert m.outlet_current_a("pdu-a", 1) < 1.0
    assert m.bmc_state("node01") == "Booting" and not m.bmc_ready("node01")
    assert m.node_dc_power_w("node01") == P.power.standby_w
    clock.advance(P.timing.bmc_boot_s - 0.2)
    assert not m.bmc_ready("node01")
    clock.advance(0.2)  # BMC ready; LastState: the host was on, so it powers on again
    assert m.bmc_ready("node01") and m.host_state("node01") == "PoweringOn"
    assert m.node_dc_power_w("node01") == P.power.standby_w + P.power.powering_on_w
    clock.advance(P.timing.host_power_on_s)
    assert m.host_state("node01") == "On" and m.node_is_up("node01") and not m.os_up("node01")
    m.set_utilization("node01", 1.0)
    assert m.gpu_utilization("node01", 0) == 0.0  # no workload before the OS is up
    clock.advance(P.timing.os_boot_s)
    assert m.os_up("node01") and m.gpu_utilization("node01", 0) == 1.0

    m.host_power_off("node01")
    assert m.host_state("node01") == "Off" and not m.os_up("node01")
    m.host_power_on("node01")
    assert m.host_state("node01") == "PoweringOn"


def test_pdu_all_on_staggers_outlets_by_the_inrush_guard_delay() -> None:
    m, clock = make()
    m.pdu_all_off("pdu-b")
    clock.advance(10)
    plan = m.pdu_all_on("pdu-b")
    assert list(plan.values()) == [10.0 + k * P.timing.pdu_sequence_delay_s for k in range(len(plan))]
    assert m.pdus["pdu-b"].outlets[1].on and not m.pdus["pdu-b"].outlets[2].on
    clock.advance(0.5)
    assert not m.pdus["pdu-b"].outlets[2].on
    clock.advance(0.5)
    assert m.pdus["pdu-b"].outlets[2].on
    assert m.outlet_last_on_s("pdu-b", 2) == pytest.approx(11.0)


# ---- network ----------------------------------------------------------------------------------
def test_counters_grow_with_traffic_and_wrap_at_64_bits() -> None:
    m, clock = make()
    start = COUNTER_WRAP - 1000
    m.set_port_counters("tor1", "Ethernet0", in_octets=start)
    clock.advance(1.0)
    value = m.port_counters("tor1", "Ethernet0")["in_octets"]
    assert 0 <= value < 1_000_000  # wrapped past 2**64
    assert (value - start) % COUNTER_WRAP == pytest.approx(P.network.idle_rate_bps / 8 * 0.98, abs=1)
    m.inject(make_fault("link_errors", "tor1", "Ethernet8", ber=1e-6, uncorrectable_fraction=0.01))
    m.set_utilization("node02", 1.0)
    clock.advance(10.0)
    c = m.port_counters("tor1", "Ethernet8")
    bits = (P.network.idle_rate_bps + 0.3 * 400e9) * 10
    assert c["fec_corrected"] == pytest.approx(bits * 1e-6 * 0.99, abs=1)  # whole counts
    assert c["fec_uncorrected"] == c["in_errors"] == pytest.approx(bits * 1e-6 * 0.01, abs=1)
    assert m.port_counters("tor1", "Ethernet0")["fec_uncorrected"] == 0  # healthy link


# ---- events -----------------------------------------------------------------------------------
def test_sel_records_a_psu_failure_at_its_virtual_time() -> None:
    m, clock = make()
    m.inject(make_fault("psu_failure", "node02", "PSU1", start_at=120.0, id="f1"))
    clock.advance(100)
    assert m.sel("node02") == [] and m.psu_status("node02", "PSU1") == "OK"
    clock.advance(100)
    (entry,) = m.sel("bmc-node02")
    assert (entry.id, entry.created_s, entry.severity) == (1, 120.0, "Critical")
    assert entry.message_id == "Power.1.0.PowerSupplyFailed" and "PSU1" in entry.message
    m.clear_fault("f1")
    assert m.psu_status("node02", "PSU1") == "OK" and m.sel("node02")[-1].severity == "OK"


# ---- faults -----------------------------------------------------------------------------------
def _stuck_outlet_follows_commands(m: RackModel) -> bool:
    m.set_outlet("pdu-a", 1, False)
    followed = not m.pdus["pdu-a"].outlets[1].on
    m.set_outlet("pdu-a", 1, True)
    return followed


_N1 = {"device": "node01"}
_ETH0 = {"device": "tor1", "component": "Ethernet0"}
OBSERVE: dict[str, tuple[dict[str, str], Callable[[RackModel], object]]] = {
    "psu_failure": ({**_N1, "component": "PSU1"}, lambda m: m.psu_status("node01", "PSU1")),
    "fan_failure": (
        {**_N1, "component": "Fan2"},
        lambda m: (m.fan_rpm("node01", 2), m.fan_speed_percent("node01")),
    ),
    "gpu_overheat": ({**_N1, "component": "GPU0"}, lambda m: round(m.gpu_temperature_c("node01", 0), 3)),
    "outlet_relay_stuck": ({"device": "pdu-a", "component": "1"}, _stuck_outlet_follows_commands),
    "link_down": (_ETH0, lambda m: m.port_oper_up("tor1", "Ethernet0")),
    "miscabled_port": ({**_ETH0, "other_port": "Ethernet8"}, lambda m: m.switches["tor1"].ports[0].peer),
    "link_errors": (_ETH0, lambda m: m.port_counters("tor1", "Ethernet0")["fec_corrected"] > 10),
    "firmware_off_baseline": (_N1, lambda m: (m.firmware("node01")["BIOS"], m.nodes["node01"].info.firmware)),
    "feed_loss": ({"device": "A"}, lambda m: m.feed_power_w("A")),
    # the physics of a slow cap: test_power_cap_slow_fault_stretches_the_response_by_its_factor
    "power_cap_slow": (_N1, lambda m: m.nodes["node01"].cap_slowdown),
    # the boot itself: test_bmc_slow_boot_delays_bmc_ready_on_a_power_cycle
    "bmc_slow_boot": (_N1, lambda m: m.nodes["node01"].bmc_boot_extra_s),
}


# Faults of liquid-cooling and power-shelf equipment need a design that has it: observed the same
# way on the liquid reference design in tests/sim/test_sim_liquid.py.
EQUIPMENT_KINDS = frozenset({
    "pump_failure", "pump_degraded", "cold_plate_clogged", "coolant_leak", "supply_temperature_drift",
    "rectifier_failure", "bbu_capacity_reduced",
})  # fmt: skip


@pytest.mark.parametrize("kind", sorted(PHYSICAL_KINDS - EQUIPMENT_KINDS))
def test_each_physical_fault_kind_is_observable_and_clears(kind: str) -> None:
    m, clock = make()
    args, observe = OBSERVE[kind]
    kwargs = dict(args)
    device, component = kwargs.pop("device"), kwargs.pop("component", None)
    clock.advance(60)
    healthy = observe(m)
    fid = m.inject(make_fault(kind, device, component, start_at=100, **kwargs))
    assert observe(m) == healthy and m.active_faults() == []  # not started yet
    clock.advance(60)
    assert [f.id for f in m.active_faults(str(device))] == [fid]
    faulty = observe(m)
    assert faulty != healthy
    m.clear_fault(fid)
    clock.advance(600)  # let thermal state settle back
    if kind == "link_errors":
        m.set_port_counters("tor1", "Ethernet0", fec_corrected=0)
        clock.advance(60)
    assert observe(m) == healthy and m.active_faults() == []


def test_catalogue_has_every_kind_and_protocol_faults_are_recorded_per_device() -> None:
    physical = {
        "psu_failure", "fan_failure", "gpu_overheat", "outlet_relay_stuck", "link_down",
        "miscabled_port", "link_errors", "firmware_off_baseline", "feed_loss", "power_cap_slow",
        "bmc_slow_boot", *EQUIPMENT_KINDS,
    }  # fmt: skip
    protocol = {
        "device_silent", "device_slow", "malformed_reply", "auth_failure", "session_exhaustion",
        "snmp_no_such_object", "snmp_wrong_type", "scpi_error", "ssh_disconnect",
    }  # fmt: skip
    assert (physical, protocol) == (PHYSICAL_KINDS, PROTOCOL_KINDS)
    m, clock = make()
    before = m.node_input_power_w("node01")
    slow = m.inject(make_fault("device_slow", "pdu-a", start_at=10, duration_s=5, delay_s=2.5))
    m.inject(make_fault("auth_failure", "bmc-node01"))
    assert [f.kind for f in m.active_faults("bmc-node01")] == ["auth_failure"]
    assert m.active_faults("pdu-a") == []
    clock.advance(12)
    (f,) = m.active_faults("pdu-a")
    assert (f.id, f.param("delay_s"), f.param("jitter_s")) == (slow, 2.5, 0.0)
    clock.advance(5)
    assert m.active_faults("pdu-a") == []  # duration over
    assert m.node_input_power_w("node01") == before  # protocol faults change no physics
    # a cleared fault's pending start does not fire for a new fault with the same id
    m.inject(make_fault("link_down", "tor1", "Ethernet0", start_at=30, id="again"))
    m.clear_fault("again")
    m.inject(make_fault("link_down", "tor1", "Ethernet0", start_at=60, id="again"))
    clock.advance(20)  # t = 37
    assert m.port_oper_up("tor1", "Ethernet0")
    clock.advance(30)
    assert not m.port_oper_up("tor1", "Ethernet0")
    with pytest.raises(ValueError, match="no PSU 'PSU9'"):
        m.inject(make_fault("psu_failure", "node01", "PSU9"))
    with pytest.raises(ValueError, match="unknown parameter"):
        make_fault("device_slow", "pdu-a", delay=1)
    assert set(CATALOGUE) == PHYSICAL_KINDS | PROTOCOL_KINDS


@pytest.mark.parametrize(
    ("kind", "device", "component", "params", "message"),
    [
        ("link_errors", "tor1", "Ethernet0", {"ber": float("nan")}, r"params\.ber: must be a finite number, got nan"),
        ("device_slow", "pdu-a", None, {"delay_s": float("inf")}, r"params\.delay_s: must be a finite number, got inf"),
        ("link_errors", "tor1", "Ethernet0", {"ber": 2.0}, r"params\.ber: must be <= 1, got 2\.0"),
        ("bmc_slow_boot", "node01", None, {"extra_s": -5}, r"params\.extra_s: must be >= 0, got -5"),
        ("gpu_overheat", "node01", None, {"r_th_factor": 0}, r"params\.r_th_factor: must be > 0, got 0"),
        ("malformed_reply", "pdu-a", None, {"mode": "sideways"}, r"params\.mode: must be one of 'truncate', "),
        ("outlet_relay_stuck", "pdu-a", "1", {"state": "half"}, r"params\.state: must be one of '', 'on', 'off'"),
        ("snmp_wrong_type", "pdu-a", None, {"oid_prefix": "ifXTable"}, r"params\.oid_prefix: must be a numeric OID"),
        ("session_exhaustion", "bmc-node01", None, {"max_sessions": True}, r"params\.max_sessions: must be int"),
        ("psu_failure", "node01", "PSU1", {"start_at": float("nan")}, r"start_at: must be a finite number"),
        ("feed_loss", "A", None, {"duration_s": 0}, r"duration_s: must be > 0"),
    ],
)
def test_fault_values_are_refused_naming_the_fault_the_field_and_the_value(
    kind: str, device: str, component: str | None, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=rf"^fault {kind} on {device}: {message}"):
        make_fault(kind, device, component, **params)  # type: ignore[arg-type]


def test_faults_are_checked_against_the_rack_when_injected() -> None:
    m, _ = make()
    ports = r"\(have Ethernet0, Ethernet8, Ethernet16, Ethernet24, \.\.\., Ethernet248 \(32 in all\)\)"
    cases = [
        (make_fault("psu_failure", "pdu-a", "PSU1"), r"device: no node 'pdu-a' \(have node01, node02\)"),
        (make_fault("fan_failure", "node01", "Fan9"), r"component: node01 has no fan 'Fan9' \(have Fan1, .*, Fan6\)"),
        (make_fault("gpu_overheat", "node01", "GPU8"), r"component: node01 has no GPU 'GPU8' \(have GPU0, .*, GPU7\)"),
        (make_fault("outlet_relay_stuck", "pdu-a", "99"), r"component: pdu-a has no outlet '99' \(have 1, 2\)"),
        (make_fault("link_down", "tor1", "Ethernet1"), rf"component: tor1 has no port 'Ethernet1' {ports}"),
        (
            make_fault("miscabled_port", "tor1", "Ethernet0", other_port="Ethernet0"),
            r"params\.other_port: must be another port of tor1, got 'Ethernet0'",
        ),
        (
            make_fault("firmware_off_baseline", "pdu-a", "BIOS"),
            r"component: pdu-a has no firmware component 'BIOS' \(have AOS\)",
        ),
        (make_fault("feed_loss", "C"), r"device: no feed 'C' \(have A, B\)"),
        (make_fault("device_silent", "nowhere"), r"device: no device 'nowhere' \(have analyzer, .*, tor1\)"),
    ]
    for fault, message in cases:
        with pytest.raises(ValueError, match=rf"^fault {fault.id} \({fault.kind}\): {message}$"):
            m.inject(fault)
    assert m.injected_faults() == []


def test_every_physical_kind_declares_its_effect_and_every_parameter_a_valid_default() -> None:
    for kind in CATALOGUE.values():
        assert (kind.apply is not None) == (kind.name in PHYSICAL_KINDS), kind.name
        assert kind.description and kind.target in ("node", "pdu", "switch", "feed", "cdu", "power_shelf", "device"), (
            kind.name
        )
        for name, spec in kind.params.items():
            assert spec.required or spec.problem(spec.default) is None, (kind.name, name)


def test_fault_file_loads_and_errors_name_file_line_and_field(tmp_path: Path) -> None:
    good = tmp_path / "faults.yaml"
    good.write_text(
        "- id: p1\n  kind: psu_failure\n  device: node01\n  component: PSU1\n  start_at: 60\n"
        "- kind: device_slow\n  device: pdu-a\n  params: {delay_s: 3}\n"
    )
    m, clock = make()
    faults = load_faults(good, rack=m)
    assert [(f.id, f.kind, f.start_at) for f in faults] == [
        ("p1", "psu_failure", 60.0),
        ("faults-2", "device_slow", 0.0),
    ]
    assert faults[1].params == {"delay_s": 3, "jitter_s": 0.0}
    for f in faults:
        m.inject(f)
    clock.advance(61)
    assert m.psu_status("node01", "PSU1") == "Failed"
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("faults:\n  - kind: link_down\n    device: tor1\n    component: Ethernet0\n")
    assert load_faults(mapping)[0].component == "Ethernet0"

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "faults:\n"
        "  - kind: psu_failur\n"  # line 2: unknown kind
        "    device: node01\n"
        "  - kind: link_errors\n"
        "    device: tor1\n"
        "    component: Ethernet0\n"
        "    params:\n"
        "      ber: high\n"  # line 8: wrong type
        "  - kind: link_down\n"
        "    device: tor9\n"  # line 10: unknown device
        "    colour: red\n"  # line 11: unknown field
    )
    with pytest.raises(ConfigError) as info:
        load_faults(bad, rack=m)
    text = str(info.value)
    assert f"{bad}:2: faults.0.kind: unknown fault kind 'psu_failur'" in text
    assert f"{bad}:8: faults.1.params.ber: must be float, got 'high'" in text
    assert f"{bad}:11: faults.2.colour: unknown field" in text
    assert f"{bad}:10: faults.2.device: no device 'tor9'" in text
    bad.write_text(
        text_list := "- kind: link_errors\n  device: tor1\n  component: Ethernet0\n  params:\n    ber: high\n"
    )
    with pytest.raises(ConfigError, match=rf"{bad}:5: 0\.params\.ber: must be float"):
        load_faults(bad)
    bad.write_text(text_list.replace("tor1", "tor9").replace("high", "1e-5"))
    with pytest.raises(ConfigError, match=rf"{bad}:2: 0\.device: no device 'tor9'"):
        load_faults(bad, rack=m)
    bad.write_text(text_list.replace("high", ".nan"))
    with pytest.raises(ConfigError, match=rf"{bad}:5: 0\.params\.ber: must be a finite number, got nan"):
        load_faults(bad)
    bad.write_text("- kind: link_down\n  device: tor1\n")
    with pytest.raises(ConfigError, match=rf"{bad}:1: 0\.component: link_down needs a component"):
        load_faults(bad)
    bad.write_text("- kind: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{bad}:\d+: fault file is not valid YAML"):
        load_faults(bad)


def test_fault_file_checked_against_the_rack_is_one_line_per_problem(tmp_path: Path) -> None:
    """What ``RackModel.inject`` would refuse (no such outlet or port, a device of the wrong kind)
    is refused when the file loads, naming file, line and field; a single problem is one line."""
    m, _ = make()
    bad = tmp_path / "bad.yaml"
    cases = [
        ("- kind: outlet_relay_stuck\n  device: pdu-a\n  component: 999\n",
         "3: 0.component: pdu-a has no outlet '999' (have "),
        ("- kind: link_down\n  device: tor1\n  component: Ethernet999\n",
         "3: 0.component: tor1 has no port 'Ethernet999' (have Ethernet0, "),
        ("- kind: psu_failure\n  device: tor1\n  component: PSU1\n",
         "2: 0.device: no node 'tor1' (have node01, node02)"),
        ("- kind: miscabled_port\n  device: tor1\n  component: Ethernet0\n  params: {other_port: Ethernet0}\n",
         "4: 0.params.other_port: must be another port of tor1, got 'Ethernet0'"),
        ("- kind: psu_failure\n  device: nod01\n  component: PSU1\n",
         "2: 0.device: no device 'nod01' in the simulated rack (did you mean 'node01'?)"),
        ("- kind: device_slow\n  device: pdu-a\n  params: {delay: 2}\n",
         "3: 0.params.delay: unknown parameter of device_slow (did you mean 'delay_s'?)"),
        ("- kind: psu_failure\n  device: node01\n  componnet: PSU1\n",
         "3: 0.componnet: unknown field (did you mean 'component'?)"),
        ("- kind: link_down\n  device: tor1\n  component: Ethernet0\n  device: tor2\n",
         "4: 'device' is given twice (first on line 2); the second would silently win"),
    ]  # fmt: skip
    for text, expected in cases:
        bad.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_faults(bad, rack=m)
        assert str(info.value).startswith(f"{bad}:{expected}") and "\n" not in str(info.value), str(info.value)
    bad.write_text(cases[0][0] + cases[1][0])  # two problems: a heading and a line each
    with pytest.raises(ConfigError) as info:
        load_faults(bad, rack=m)
    assert str(info.value).splitlines()[0] == f"invalid fault file {bad} (2 problems):"
    assert str(info.value).splitlines()[2].startswith(f"  {bad}:6: 1.component: tor1 has no port")
    assert m.injected_faults() == []  # checking injects nothing
    bad.write_text(cases[0][0])
    assert load_faults(bad)[0].component == "999"  # without a rack only the catalogue is checked


# ---- clock and parameters ---------------------------------------------------------------------
def test_clock_sleep_advances_virtual_time_or_waits_scaled_wall_time() -> None:
    frozen = SimClock(time_scale=0.0)
    wall = time.perf_counter()
    frozen.sleep(1800)
    assert frozen.now() == 1800.0 and time.perf_counter() - wall < 0.05
    fast = SimClock(time_scale=200.0)
    t0, wall = fast.now(), time.perf_counter()
    fast.sleep(4.0)  # 20 ms of wall time
    assert 0.015 < time.perf_counter() - wall < 1.0 and fast.now() - t0 >= 4.0
    readings = [fast.now() for _ in range(1000)]
    assert readings == sorted(readings)
    with pytest.raises(ValueError):
        frozen.sleep(-1)


def test_params_file_documents_the_reference_defaults(tmp_path: Path) -> None:
    size, params = load_model_params(REPO / "racks" / "sim-model-params.yaml")
    assert (size, params) == (REFERENCE_SIZE, REFERENCE_PARAMS)
    quasi = RackModel(RackSize(nodes=1))  # the default: every transition immediate
    quasi.set_utilization("node01", 1.0)
    assert quasi.gpu_temperature_c("node01") == pytest.approx(gpu_steady_c(700))
    bad = tmp_path / "params.yaml"
    bad.write_text("params:\n  thermal:\n    gpu_tau: 10\n  timing:\n    restore_policy: Sometimes\n")
    with pytest.raises(ConfigError, match=rf"{bad}:3: params\.thermal\.gpu_tau"):
        load_model_params(bad)
    bad.write_text("params:\n  timing:\n    restore_policy: Sometimes\n")
    with pytest.raises(ConfigError, match=r":3: params\.timing\.restore_policy: must be one of"):
        load_model_params(bad)
