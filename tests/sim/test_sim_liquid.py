"""The liquid-cooled, busbar-fed reference design's physics, with numbers: the CDU's loop (pump
curves, flow split, coolant temperatures, energy balance), cold-plate GPU temperatures, leaks, the
power shelves (load sharing, N+1, BBU holdup and recharge) and every fault kind of that equipment.

All tests run the full dynamic model of ``racks/sim-liquid-params.yaml`` on a frozen virtual clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from rackval.core.errors import ConfigError
from rackval.sim.clock import SimClock
from rackval.sim.faults import PHYSICAL_KINDS, make_fault
from rackval.sim.model import REASON_SW_THERMAL, RackModel, RackSize
from rackval.sim.physics.cooling import coolant
from rackval.sim.physics.devices import psu_efficiency
from rackval.sim.reference import REFERENCE_PARAMS, load_model_params
from tests.sim.test_sim_physics import EQUIPMENT_KINDS

REPO = Path(__file__).resolve().parents[2]
LIQUID = REPO / "racks" / "sim-liquid-params.yaml"
SIZE, PARAMS = load_model_params(LIQUID)
C = PARAMS.cooling
PS = PARAMS.power_shelves


def make(utilization: float = 1.0) -> tuple[RackModel, SimClock]:
    clock = SimClock(time_scale=0.0)
    m = RackModel(SIZE, clock, PARAMS)
    for n in m.nodes:
        m.set_utilization(n, utilization)
    clock.advance(300.0)
    return m, clock


def flows(m: RackModel) -> dict[str, float]:
    return {n: m.cooling.node_flow_lpm(n) for n in m.cooling.liquid_nodes()}


# ---- the design ---------------------------------------------------------------------------------
def test_air_cooled_reference_has_no_cdu_no_shelves_and_its_nodes_on_pdus() -> None:
    m = RackModel(RackSize(nodes=2), SimClock(time_scale=0.0), REFERENCE_PARAMS)
    assert m.cooling.cdus() == [] and m.cooling.liquid_nodes() == []
    assert m.shelves.shelves() == [] and m.shelves.busbar_nodes() == []
    assert m.cooling.node("node01") is None
    assert all(p.pdu for n in m.nodes.values() for p in n.psus)


def test_liquid_design_builds_cdu_cold_plates_shelves_and_no_pdus() -> None:
    m, _ = make()
    assert m.cooling.cdus() == ["cdu1"]
    assert len(m.cooling.liquid_nodes()) == 18 and m.nodes["node01"].gpus == 4
    assert m.shelves.shelves() == [f"shelf{i}" for i in range(1, 9)]
    assert m.pdus == {} and set(m.shelves.busbar_nodes()) == set(m.nodes)
    r = m.shelves.reading("shelf1")
    assert [x.feed for x in r.rectifiers] == ["A", "B"] * 3


def test_params_file_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "design.yaml"
    bad.write_text("params:\n  cooling:\n    mode: liquid\n    pump_head: 3\n")
    with pytest.raises(ConfigError, match=r"design\.yaml:4: .*pump_head"):
        load_model_params(bad)
    bad.write_text("params:\n  cooling:\n    mode: immersion\n")
    with pytest.raises(ConfigError, match=r"design\.yaml:3: params\.cooling\.mode: Input should be 'air' or 'liquid'"):
        load_model_params(bad)
    bad.write_text("params:\n  cooling:\n    mode: liquid\n    pumps: 2\n    pumps_needed: 3\n")
    with pytest.raises(ConfigError, match=r"design\.yaml:2: params\.cooling: .*pumps_needed \(3\) must be at most"):
        load_model_params(bad)
    bad.write_text("params:\n  power_shelves:\n    count: 8\n    bbu_capacity_wh: -5\n")
    with pytest.raises(ConfigError, match=r"design\.yaml:4: params\.power_shelves\.bbu_capacity_wh: .*greater than 0"):
        load_model_params(bad)


# ---- hydraulics ---------------------------------------------------------------------------------
def test_flow_splits_by_resistance_and_branches_add_up_to_the_loop_flow() -> None:
    m, _ = make()
    cdu = m.cooling.cdu("cdu1")
    per_node = flows(m)
    assert max(per_node.values()) == pytest.approx(min(per_node.values()))  # identical plates
    assert sum(per_node.values()) + cdu.switch_flow_lpm == pytest.approx(cdu.flow_lpm)
    assert sum(p.flow_lpm for p in cdu.pumps) == pytest.approx(cdu.flow_lpm)
    # the operating point lies on the system curve: head = (k_loop + k_par) Q^2
    k_loop = C.loop_dp_kpa / C.loop_rated_flow_lpm**2
    plate = m._parts.state.cold_plates["node01"]
    assert cdu.head_kpa == pytest.approx(k_loop * cdu.flow_lpm**2 + plate.dp_kpa)
    # ... and on the pump curve: H = s^2 H0 - a (Q / 2)^2 for two equal pumps
    s = C.pump_speed_percent / 100
    assert cdu.head_kpa == pytest.approx(
        s**2 * C.pump_shutoff_head_kpa - C.pump_curve_kpa_per_lpm2 * (cdu.flow_lpm / 2) ** 2
    )
    assert 1.2 <= per_node["node01"] / (m.node_dc_power_w("node01") / 1000) <= 1.6  # L/min per kW


def test_affinity_law_flow_scales_with_pump_speed() -> None:
    m, _ = make()
    before = m.cooling.cdu("cdu1").flow_lpm
    for pump in ("Pump1", "Pump2"):
        m.cooling.set_pump_speed("cdu1", pump, C.pump_speed_percent / 2)
    assert m.cooling.cdu("cdu1").flow_lpm == pytest.approx(before / 2)
    m.cooling.set_pump_speed("cdu1", "Pump2", C.pump_speed_percent)  # one slow pump: its check valve closes
    assert m.cooling.cdu("cdu1").pumps[0].flow_lpm == 0.0
    with pytest.raises(ValueError, match="pump speed"):
        m.cooling.set_pump_speed("cdu1", "Pump1", 0.0)
    with pytest.raises(KeyError, match="cdu1 has no pump 'Pump7'"):
        m.cooling.set_pump_speed("cdu1", "Pump7", 50.0)


def test_pump_failure_with_n_plus_1_keeps_every_node_above_minimum_flow_and_cool() -> None:
    m, clock = make()
    before, hot_before = flows(m), m.gpu_temperature_c("node01")
    m.inject(make_fault("pump_failure", "cdu1", "Pump1"))
    clock.advance(120.0)
    reading = m.cooling.reading("cdu1")
    assert [p.status for p in reading.pumps] == ["Failed", "OK"]
    assert reading.pumps[0].flow_lpm == 0.0
    after = flows(m)
    assert all(after[n] < before[n] for n in after)
    assert min(after.values()) > C.min_node_flow_lpm
    assert m.gpu_temperature_c("node01") > hot_before
    assert all(m.gpu_event_reasons("node01", g) & REASON_SW_THERMAL == 0 for g in range(4))


def test_both_pumps_stopped_starve_the_plates_and_the_gpus_throttle() -> None:
    m, clock = make()
    m.cooling.set_pump("cdu1", "Pump1", False)
    m.cooling.set_pump("cdu1", "Pump2", False)
    clock.advance(60.0)
    assert m.cooling.cdu("cdu1").flow_lpm == 0.0 and flows(m)["node05"] == 0.0
    assert m.gpu_event_reasons("node05", 0) & REASON_SW_THERMAL
    assert [p.status for p in m.cooling.reading("cdu1").pumps] == ["Stopped", "Stopped"]


def test_degraded_pump_gives_less_flow_than_healthy_more_than_failed() -> None:
    healthy, _ = make()
    weak, _ = make()
    weak.inject(make_fault("pump_degraded", "cdu1", "Pump2", head_factor=0.8))
    failed, _ = make()
    failed.inject(make_fault("pump_failure", "cdu1", "Pump2"))
    q = [x.cooling.cdu("cdu1").flow_lpm for x in (healthy, weak, failed)]
    assert q[0] > q[1] > q[2]
    pumps = weak.cooling.cdu("cdu1").pumps
    assert pumps[1].flow_lpm < pumps[0].flow_lpm
    # below the other pump's head its check valve closes: it delivers nothing, but no backflow
    weak.inject(make_fault("pump_degraded", "cdu1", "Pump2", head_factor=0.1))
    assert weak.cooling.cdu("cdu1").pumps[1].flow_lpm == 0.0
    assert weak.cooling.cdu("cdu1").flow_lpm == pytest.approx(q[2])


def test_clogged_cold_plate_drops_that_nodes_flow_and_heats_its_gpus() -> None:
    m, clock = make(utilization=0.8)
    before, t_before = flows(m), m.gpu_temperature_c("node03", 0)
    fault = m.inject(make_fault("cold_plate_clogged", "node03", factor=10.0))
    clock.advance(120.0)
    after = flows(m)
    assert after["node03"] == pytest.approx(before["node03"] / math.sqrt(10), rel=0.05)
    assert after["node04"] > before["node04"]  # the others get a little more
    assert m.gpu_temperature_c("node03", 0) > t_before + 10
    assert m.gpu_temperature_c("node04", 0) < t_before
    connector = m.cooling.node("node03")
    assert connector is not None and connector.flow_lpm == pytest.approx(after["node03"], rel=0.05)
    m.clear_fault(fault)
    assert flows(m)["node03"] == pytest.approx(before["node03"])


def test_badly_clogged_plate_throttles_its_gpus() -> None:
    m, clock = make()
    m.inject(make_fault("cold_plate_clogged", "node07", factor=400.0))
    clock.advance(120.0)
    assert m.gpu_event_reasons("node07", 0) & REASON_SW_THERMAL
    assert m.gpu_event_reasons("node08", 0) & REASON_SW_THERMAL == 0


# ---- heat ---------------------------------------------------------------------------------------
def test_gpu_temperature_is_supply_plus_cold_plate_resistance_times_power() -> None:
    m, _ = make()
    rho, cp = coolant(PARAMS)
    q = m.cooling.node_flow_lpm("node01")
    r = C.cold_plate_r_c_per_w * (0.5 + 0.5 * (C.cold_plate_rated_flow_lpm / q) ** 0.8)
    r += 1 / (2 * rho * q / 4 / 60_000 * cp)
    assert m.gpu_temperature_c("node01", 0) == pytest.approx(C.supply_setpoint_c + r * PARAMS.power.gpu_max_w)


def test_energy_balance_heat_in_coolant_matches_node_power_and_return_temperatures() -> None:
    m, _ = make()
    rho, cp = coolant(PARAMS)
    nodes_w = sum(m.node_dc_power_w(n) for n in m.nodes)
    expected = C.liquid_fraction * nodes_w + C.switch_trays * C.switch_tray_heat_w
    cooling = m._parts.cooling
    assert cooling.heat_w() == pytest.approx(expected)
    cdu = m.cooling.cdu("cdu1")
    m_dot = rho * cdu.flow_lpm / 60_000
    assert cooling.return_c() - cdu.supply_c == pytest.approx(expected / (m_dot * cp))
    reading = m.cooling.reading("cdu1")
    measured = rho * reading.flow_lpm / 60_000 * cp * (reading.return_c - reading.supply_c)
    assert measured == pytest.approx(expected, rel=0.1)  # through the CDU's 2 % sensors
    assert 8.0 < reading.return_c - reading.supply_c < 15.0  # a typical secondary-loop delta T
    assert reading.primary_return_c > reading.primary_supply_c
    # only the heat the plates do not take reaches the exhaust air
    assert m.node_outlet_temperature_c("node01") - m.ambient_c < 10.0


def test_supply_drift_moves_supply_with_the_controls_time_constant() -> None:
    m, clock = make()
    gpu_before = m.gpu_temperature_c("node01", 0)
    m.inject(make_fault("supply_temperature_drift", "cdu1", offset_c=8.0))
    clock.advance(C.supply_tau_s)
    r = m.cooling.reading("cdu1")
    assert m.cooling.cdu("cdu1").supply_c == pytest.approx(C.supply_setpoint_c + 8.0 * (1 - math.exp(-1)), abs=0.01)
    assert r.setpoint_c == C.supply_setpoint_c
    clock.advance(20 * C.supply_tau_s)
    assert m.cooling.cdu("cdu1").supply_c == pytest.approx(C.supply_setpoint_c + 8.0, abs=0.01)
    assert m.gpu_temperature_c("node01", 0) == pytest.approx(gpu_before + 8.0, abs=0.05)


# ---- leaks --------------------------------------------------------------------------------------
def test_node_leak_wets_that_trays_detector_drains_the_reservoir_and_runs_the_pumps_dry() -> None:
    m, clock = make()
    fault = m.inject(make_fault("coolant_leak", "node02", rate_lpm=2.0))
    leaks = {name: state for name, _, state in m.cooling.reading("cdu1").leaks}
    assert leaks["node02-tray"] == "Critical"
    assert {k for k, v in leaks.items() if v != "OK"} == {"node02-tray"}
    connector = m.cooling.node("node02")
    assert connector is not None and connector.leak == "Critical"
    clock.advance(60.0)
    assert m.cooling.reading("cdu1").reservoir_l == pytest.approx(C.reservoir_l - 2.0)
    clock.advance(C.reservoir_l / 2.0 * 60.0)  # past the moment it runs dry
    assert m.cooling.cdu("cdu1").flow_lpm == 0.0
    m.clear_fault(fault)
    assert m.cooling.cdu("cdu1").flow_lpm > 100.0
    assert all(state == "OK" for _, _, state in m.cooling.reading("cdu1").leaks)


def test_cdu_leak_wets_the_cdu_detector() -> None:
    m, _ = make()
    m.inject(make_fault("coolant_leak", "cdu1"))
    leaks = {name: state for name, _, state in m.cooling.reading("cdu1").leaks}
    assert leaks["CDU-Moisture"] == "Critical" and leaks["node01-tray"] == "OK"


def test_cooling_faults_on_an_air_cooled_rack_name_what_is_missing() -> None:
    m = RackModel(RackSize(nodes=2), SimClock(time_scale=0.0), REFERENCE_PARAMS)
    with pytest.raises(ValueError, match=r"node01 has no cold plate \(the design is not liquid cooled\)"):
        m.inject(make_fault("cold_plate_clogged", "node01"))
    with pytest.raises(ValueError, match=r"no cdu 'cdu1' \(have none\)"):
        m.inject(make_fault("pump_failure", "cdu1", "Pump1"))
    with pytest.raises(ValueError, match=r"pdu-a has no coolant to leak"):
        m.inject(make_fault("coolant_leak", "pdu-a"))
    liquid, _ = make()
    with pytest.raises(ValueError, match=r"cdu1 has no pump 'Pump9' \(have Pump1, Pump2\)"):
        liquid.inject(make_fault("pump_failure", "cdu1", "Pump9"))


# ---- power shelves ------------------------------------------------------------------------------
def test_rectifiers_share_the_busbar_load_equally_at_their_efficiency() -> None:
    m, _ = make()
    sh = m._parts.shelves
    load = sh.load_w()
    expected_load = sum(m.node_input_power_w(n) for n in m.nodes) + C.switch_trays * C.switch_tray_heat_w
    assert load == pytest.approx(expected_load)
    assert 110_000 < load < 130_000  # the NVL72 class
    r = m.shelves.reading("shelf1")
    share = load / (PS.count * PS.psus_per_shelf)
    assert all(x.output_w == pytest.approx(share, rel=0.05) for x in r.rectifiers)
    ac = load / psu_efficiency(share / PS.psu_rated_w, PS.efficiency_curve)
    assert m.feed_power_w("A") + m.feed_power_w("B") == pytest.approx(ac)
    assert m.shelves.busbar_voltage_v() == PS.busbar_v
    assert all(b.mode == "Idle" and b.soc == 1.0 for b in r.bbus)


def test_rectifier_failure_the_others_carry_the_load() -> None:
    m, _ = make()
    m.inject(make_fault("rectifier_failure", "shelf2", "PSU3"))
    r = m.shelves.reading("shelf2")
    assert r.rectifiers[2].status == "Failed" and r.rectifiers[2].output_w == 0.0
    live = [x.output_w for x in r.rectifiers if x.status == "OK"]
    share = m._parts.shelves.load_w() / (PS.count * PS.psus_per_shelf - 1)
    assert all(w == pytest.approx(share, rel=0.05) for w in live)
    assert m.shelves.busbar_up() and all(m.node_is_up(n) for n in m.nodes)
    m.shelves.set_rectifier("shelf2", "PSU4", False)
    assert m.shelves.reading("shelf2").rectifiers[3].status == "Off"


def test_one_feed_lost_the_other_feeds_rectifiers_carry_the_rack() -> None:
    m, _ = make()
    m.set_feed("A", False)
    assert m.feed_power_w("A") == 0.0
    r = m.shelves.reading("shelf1")
    assert [x.status for x in r.rectifiers] == ["NoInput", "OK"] * 3
    assert r.mains[0][1] == 0.0 and r.mains[1][3] > 0
    assert all(b.mode == "Idle" for b in r.bbus) and all(m.node_is_up(n) for n in m.nodes)


def test_bbus_hold_the_busbar_through_the_holdup_time_then_the_nodes_lose_power() -> None:
    m, clock = make(utilization=0.5)
    estimate = m.shelves.reading("shelf1").holdup_s  # what the BBUs would carry at this load
    m.set_feed("A", False)
    m.set_feed("B", False)
    r = m.shelves.reading("shelf1")
    assert all(b.mode == "Discharging" for b in r.bbus)
    holdup = r.holdup_s
    load = m._parts.shelves.load_w()
    usable = PS.count * PS.bbus_per_shelf * PS.bbu_capacity_wh * (1 - PS.bbu_soc_floor) * PS.bbu_discharge_efficiency
    assert holdup == pytest.approx(usable * 3600 / load) == pytest.approx(estimate)
    assert 100 < holdup < 400  # minutes, not hours, at half load
    assert m.shelves.busbar_voltage_v() < PS.busbar_v + 3.5
    clock.advance(holdup - 5.0)
    assert all(m.node_is_up(n) for n in m.nodes) and m.shelves.busbar_up()
    left = PS.bbu_soc_floor + (1 - PS.bbu_soc_floor) * 5.0 / holdup  # 5 s of charge above the floor
    assert m.shelves.reading("shelf1").bbus[0].soc == pytest.approx(left, rel=1e-6)
    clock.advance(10.0)
    assert not m.shelves.busbar_up()
    assert not any(m.node_is_up(n) for n in m.nodes) and m.bmc_state("node01") == "Off"
    # input back: the busbar returns, the BBUs recharge, the nodes boot as their policy says
    m.set_feed("A", True)
    clock.advance(600.0)
    r = m.shelves.reading("shelf1")
    assert m.shelves.busbar_up() and all(b.mode == "Charging" for b in r.bbus)
    assert r.bbus[0].soc > PS.bbu_soc_floor + 0.1
    assert m.host_state("node01") == "On"
    clock.advance(3 * 3600.0)
    assert all(b.soc == 1.0 and b.mode == "Idle" for b in m.shelves.reading("shelf1").bbus)


def test_reduced_bbu_capacity_shortens_the_holdup() -> None:
    m, _ = make(utilization=0.5)
    m.set_feed("A", False)
    m.set_feed("B", False)
    full = m.shelves.reading("shelf1").holdup_s
    for shelf in m.shelves.shelves():
        m.inject(make_fault("bbu_capacity_reduced", shelf, state_of_health=0.25))
    reduced = m.shelves.reading("shelf1")
    assert reduced.holdup_s == pytest.approx(full * 0.25)
    assert all(b.state_of_health == 0.25 for b in reduced.bbus)


def test_too_few_rectifiers_the_bbus_make_up_the_deficit_or_the_busbar_trips() -> None:
    m, _ = make()
    for shelf in m.shelves.shelves():
        for i in range(1, PS.psus_per_shelf):
            m.shelves.set_rectifier(shelf, f"PSU{i}", False)  # one rectifier per shelf left: 44 kW
    r = m.shelves.reading("shelf1")
    assert m.shelves.busbar_up() and all(b.mode == "Discharging" for b in r.bbus)
    assert r.rectifiers[-1].output_w == pytest.approx(PS.psu_rated_w, rel=0.05)
    # BBUs rated below the deficit: the shelves' overcurrent latch drops the busbar ...
    weak = dataclasses.replace(PARAMS, power_shelves=dataclasses.replace(PS, bbu_rated_w=1000.0))
    clock = SimClock(time_scale=0.0)
    m2 = RackModel(SIZE, clock, weak)
    for n in m2.nodes:
        m2.set_utilization(n, 1.0)
    for shelf in m2.shelves.shelves():
        for i in range(1, PS.psus_per_shelf):
            m2.shelves.set_rectifier(shelf, f"PSU{i}", False)
    assert not m2.shelves.busbar_up() and not m2.node_is_up("node01")
    clock.advance(600.0)
    assert not m2.shelves.busbar_up()  # ... and it stays down (no restart loop) ...
    m2.shelves.set_rectifier("shelf1", "PSU1", True)  # ... until the input capacity grows
    assert m2.shelves.busbar_up()


# ---- every equipment fault kind: observable, and gone when cleared ------------------------------
OBSERVE: dict[str, tuple[dict[str, object], Callable[[RackModel], object]]] = {
    "pump_failure": ({"device": "cdu1", "component": "Pump1"}, lambda m: m.cooling.cdu("cdu1").flow_lpm),
    "pump_degraded": ({"device": "cdu1", "component": "Pump2"}, lambda m: m.cooling.cdu("cdu1").pumps[1].flow_lpm),
    "cold_plate_clogged": ({"device": "node02"}, lambda m: round(m.gpu_temperature_c("node02", 0), 3)),
    "coolant_leak": ({"device": "node02"}, lambda m: m.cooling.reading("cdu1").leaks[1][2]),
    "supply_temperature_drift": ({"device": "cdu1"}, lambda m: round(m.cooling.cdu("cdu1").supply_c, 3)),
    "rectifier_failure": (
        {"device": "shelf1", "component": "PSU1"}, lambda m: m.shelves.reading("shelf1").rectifiers[0].status
    ),
    "bbu_capacity_reduced": ({"device": "shelf1"}, lambda m: m.shelves.reading("shelf1").bbus[0].state_of_health),
}  # fmt: skip


def test_equipment_fault_kinds_are_the_ones_observed_here() -> None:
    assert set(OBSERVE) == EQUIPMENT_KINDS <= PHYSICAL_KINDS


@pytest.mark.parametrize("kind", sorted(EQUIPMENT_KINDS))
def test_each_equipment_fault_kind_is_observable_and_clears(kind: str) -> None:
    m, clock = make(utilization=0.7)
    args, observe = OBSERVE[kind]
    kwargs = dict(args)
    device, component = str(kwargs.pop("device")), kwargs.pop("component", None)
    healthy = observe(m)
    fid = m.inject(make_fault(kind, device, component and str(component), start_at=400, **kwargs))
    assert observe(m) == healthy and m.active_faults() == []  # not started yet
    clock.advance(300)
    assert [f.id for f in m.active_faults(device)] == [fid]
    assert observe(m) != healthy
    m.clear_fault(fid)
    clock.advance(3600)  # let temperatures settle back
    assert observe(m) == healthy and m.active_faults() == []
