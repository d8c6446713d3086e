"""The simulated rack's physics: readings from different devices agree within their accuracy."""

from __future__ import annotations

import pytest

from rackval.sim.clock import SimClock
from rackval.sim.model import RackModel, RackSize, psu_efficiency


def test_efficiency_curve_is_interpolated_and_clamped() -> None:
    assert psu_efficiency(0.5) == pytest.approx(0.96)
    assert psu_efficiency(0.35) == pytest.approx((0.94 + 0.96) / 2)
    assert psu_efficiency(2.0) == pytest.approx(0.94)


def test_power_flows_add_up() -> None:
    m = RackModel(RackSize(nodes=3))
    node_in = sum(m.node_input_power_w(n) for n in m.nodes)
    outlets = sum(m.outlet_power_w(p, o) for p, d in m.pdus.items() for o in d.outlets)
    assert outlets == pytest.approx(node_in)
    assert m.feed_power_w("A") + m.feed_power_w("B") == pytest.approx(node_in + 2 * 12.0)
    # input exceeds DC load by the PSU losses
    assert node_in > sum(m.node_dc_power_w(n) for n in m.nodes)


def test_losing_one_psu_moves_its_load_to_the_other() -> None:
    m = RackModel()
    before_dc = m.node_dc_power_w("node01")
    psu_a, psu_b = m.nodes["node01"].psus
    m.set_outlet(psu_a.pdu, psu_a.outlet, False)
    assert m.psu_input_power_w("node01", psu_a.name) == 0.0
    assert m.node_is_up("node01")
    assert m.psu_input_power_w("node01", psu_b.name) * psu_efficiency(before_dc / psu_b.rated_w) == pytest.approx(
        before_dc
    )
    m.set_outlet(psu_b.pdu, psu_b.outlet, False)
    assert not m.node_is_up("node01") and m.node_input_power_w("node01") == 0.0


def test_load_raises_power_and_gpu_temperature() -> None:
    m = RackModel()
    idle_p, idle_t = m.node_input_power_w("node01"), m.gpu_temperature_c("node01")
    m.set_utilization("node01", 1.0)
    assert m.node_input_power_w("node01") > idle_p + 8 * 600
    assert m.gpu_temperature_c("node01") > idle_t + 30
    with pytest.raises(ValueError):
        m.set_utilization("node01", 1.5)


def test_device_readings_within_their_accuracy_and_reproducible() -> None:
    a, b = RackModel(RackSize(seed=7)), RackModel(RackSize(seed=7))
    true_total = a.feed_power_w("A") + a.feed_power_w("B")
    for _ in range(200):
        assert abs(a.pdu_reading_total_w("pdu-a") / a.pdu_power_w("pdu-a") - 1) <= 0.01
        assert abs(a.analyzer_reading("analyzer")[2] / true_total - 1) <= 0.001
        assert abs(a.bmc_reading_power_w("node01") / a.node_input_power_w("node01") - 1) <= 0.03

    # same seed, same readings (runs are reproducible); another seed, other serials and noise
    c, d = RackModel(RackSize(seed=7)), RackModel(RackSize(seed=8))
    assert [c.bmc_reading_power_w("node02") for _ in range(5)] == [b.bmc_reading_power_w("node02") for _ in range(5)]
    assert c.nodes["node02"].info.serial == b.nodes["node02"].info.serial != d.nodes["node02"].info.serial
    assert c.bmc_reading_power_w("node03") != d.bmc_reading_power_w("node03")


def test_virtual_clock_advances_only_when_told_with_scale_zero() -> None:
    clock = SimClock(time_scale=0.0)
    t0 = clock.now()
    assert clock.now() == t0
    assert clock.advance(1800) == pytest.approx(t0 + 1800)
    with pytest.raises(ValueError):
        clock.advance(-1)
