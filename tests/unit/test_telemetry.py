"""The telemetry sampler: fixed-rate ticks in virtual and real time, grouped polling, errors
kept per device, batched storage, and the summaries plans assert on.

Synthetic tests use fake devices whose readings are known functions of a fake clock; the
simulated-rack tests cross the real protocols on 127.0.0.1 with a frozen simulator clock that
only the sampler advances.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.harness.clock import RealClock
from rackval.harness.health import DeviceHealth
from rackval.harness.measure import Limit
from rackval.harness.rack import Rack
from rackval.harness.store import RunInfo, open_store
from rackval.harness.telemetry import (
    Channel,
    Progress,
    Sampler,
    analyzer_channels,
    bmc_channels,
    gpu_channels,
    pdu_channels,
    rack_channels,
    sampler_factory,
    switch_counter_channels,
)
from tests.support.telemetry_fakes import FakeClock, FakeDevice, FakeRack, channels_of
from tests.support.telemetry_sim import SimBench, start_sim

# ---- synthetic data -----------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[object]:
    s = open_store(tmp_path / "results.sqlite")
    s.start_run(RunInfo(run_id="run-1", started_at=0.0))
    yield s
    s.close()


def test_progress_line_says_eta_and_what_the_plan_watches(store: object) -> None:
    clock = FakeClock(start=0.0)
    dev = FakeDevice("dev-a", clock, lambda t: {"power_w": 1000.0 + t})
    seen: list[Progress] = []

    def highlights(sampler: Sampler) -> str:
        _, v = sampler.series("dev-a/power_w")
        return f"peak {max(v):.0f} W"

    sampler = Sampler(FakeRack([dev]), clock, store, "run-1", channels_of(dev, {"power_w": "W"}), virtual=True,
                      progress=seen.append, highlights=highlights)  # fmt: skip
    sampler.run(20.0)
    last = seen[-1]
    assert last.highlights == "peak 1019 W" and last.line().endswith("; peak 1019 W")
    assert last.eta_wall_s == 0.0 and ", ETA 0 s wall:" in last.line()
    halfway = Progress(elapsed_s=600, total_s=1800, ticks=600, samples=6000, missed_ticks=0, errors=0, wall_s=30)
    assert halfway.eta_wall_s == pytest.approx(60.0)  # 1200 s of clock left at 20 clock s per wall s

    def broken(sampler: Sampler) -> str:
        raise KeyError("no such channel")

    seen.clear()
    Sampler(FakeRack([dev]), clock, store, "run-1", channels_of(dev, {"power_w": "W"}), virtual=True,
            progress=seen.append, highlights=broken).run(3.0)  # fmt: skip
    assert seen and "(highlights failed: KeyError)" in seen[-1].line()  # the soak goes on


def test_virtual_ticks_on_grid_and_summaries_exact(store: object) -> None:
    clock = FakeClock(start=100.0)
    ramp = FakeDevice("dev-a", clock, lambda t: {"ramp": t - 100.0, "sq": (t - 100.0) ** 2, "na": None})
    channels = channels_of(ramp, {"ramp": "W", "sq": "W", "na": "degC"})
    seen: list[Progress] = []
    sampler = Sampler(FakeRack([ramp]), clock, store, "run-1", channels, rate_hz=2.0, virtual=True,
                      progress=seen.append)  # fmt: skip
    stats = sampler.run(50.0)
    assert stats.ticks == 100 and stats.missed_ticks == 0 and stats.errors == 0
    assert ramp.calls == 100  # one read per device per tick, however many channels it gives
    assert clock.now() == pytest.approx(150.0)  # the sampler moved the clock by the whole duration
    assert clock.sleeps == [0.5] * 100  # exactly one period per tick on a frozen clock
    t, _ = sampler.series("dev-a/ramp")
    assert t[0] == 100.0 and t[-1] == pytest.approx(149.5)
    s = sampler.summary("dev-a/ramp")
    assert (s.count, s.missing, s.min, s.max, s.first, s.last) == (100, 0, 0.0, 49.5, 0.0, 49.5)
    assert s.mean == pytest.approx(24.75)
    # nearest rank: values 0, 0.5, ... 49.5 -> 50th, 95th, 99th smallest
    assert (s.p50, s.p95, s.p99) == (24.5, 47.0, 49.0)
    na = sampler.summary("dev-a/na")
    assert (na.count, na.missing, na.max) == (100, 100, None)  # unavailable, not an error
    pooled = sampler.summary("dev-a/[rs]*")
    assert pooled.count == 200 and pooled.max == 49.5**2 and pooled.first is None
    # storage: every sample, batched; unavailable values as NULL
    rows = store.samples("run-1")  # type: ignore[attr-defined]
    assert stats.stored == len(rows) == 300
    ramp_rows = [r for r in rows if r.channel == "dev-a/ramp"]
    assert [r.value for r in ramp_rows][:3] == [0.0, 0.5, 1.0] and ramp_rows[0].unit == "W"
    assert {r.device for r in rows} == {"dev-a"}
    assert all(r.value is None for r in rows if r.channel == "dev-a/na")
    assert seen and seen[-1].ticks == 100 and seen[-1].elapsed_s == pytest.approx(50.0)
    assert "100 ticks" in seen[-1].line()


def test_time_above_settling_and_growth() -> None:
    clock = FakeClock(start=0.0)

    def values(t: float) -> dict[str, float | None]:
        return {
            "step": 10.0 if t < 20 else 30.0,
            "lag": 50.0 - 20.0 * math.exp(-t / 30.0),
            "late": 5.0 if t < 99 else 9.0,  # leaves the band on the last sample
            "ctr": float((2**32 - 50 + 10 * t) % 2**32),  # wraps once at 32 bits
        }

    dev = FakeDevice("d", clock, values)
    channels = channels_of(dev, {"step": "W", "lag": "degC", "late": "W"})
    channels += channels_of(dev, {"ctr": "count"}, wrap_bits=32)
    sampler = Sampler(FakeRack([dev]), clock, None, "r", channels, virtual=True)
    sampler.run(100.0)
    assert sampler.time_above("d/step", 20.0) == pytest.approx(80.0)  # t = 20..99, last holds 1 s
    assert sampler.time_above("d/step", Limit(low=5, high=25, unit="W")) == pytest.approx(80.0)
    assert sampler.time_above("d/step", Limit(low=15, unit="W")) == pytest.approx(20.0)  # below low
    assert sampler.time_above("d/st*", 5.0) == pytest.approx(100.0)
    # first order lag, tau 30 s: inside +-1 of 50 once 20 exp(-t/30) <= 1 -> t >= 89.87 s
    assert sampler.settling_time("d/lag", 50.0, 1.0) == pytest.approx(90.0)
    assert sampler.settling_time("d/lag", 50.0, 1.0, after=60.0) == pytest.approx(30.0)
    assert sampler.settling_time("d/step", 30.0, 0.5, after=25.0) == 0.0
    assert sampler.settling_time("d/late", 5.0, 1.0) is None
    assert sampler.growth("d/ctr") == pytest.approx(990.0)  # 99 intervals x 10, across the wrap
    assert sampler.rate("d/ctr") == pytest.approx(10.0)
    assert sampler.growth("d/step") == 20.0  # gauge: last - first
    with pytest.raises(KeyError):
        sampler.summary("nope/*")


def test_counter_reset_is_not_counted_as_growth() -> None:
    clock = FakeClock(start=0.0)
    seq = [100.0, 110.0, 120.0, 3.0, 13.0]
    dev = FakeDevice("sw", clock, lambda t: {"p/in_errors": seq[int(t)]})
    sampler = Sampler(FakeRack([dev]), clock, None, "r", channels_of(dev, {"p/in_errors": "count"}, wrap_bits=64),
                      virtual=True)  # fmt: skip
    sampler.run(5.0)
    assert sampler.growth("sw/p/in_errors") == 30.0  # 10 + 10 + (reset: 0) + 10


def test_failing_device_counted_alone_and_stored_as_gaps(store: object) -> None:
    clock = FakeClock(start=0.0)
    good = FakeDevice("good", clock, lambda t: {"x": t, "y": 1.0})
    bad = FakeDevice("bad", clock, lambda t: {"x": t, "y": 2.0, "z": 3.0}, fail=lambda t: 10 <= t < 15)
    channels = channels_of(good, {"x": "W", "y": "W"}) + channels_of(bad, {"x": "W", "y": "W", "z": "W"})
    sampler = Sampler(FakeRack([good, bad]), clock, store, "run-1", channels, virtual=True)
    stats = sampler.run(30.0)
    assert stats.ticks == 30 and stats.error_ticks == 5
    assert stats.errors_by_device == {"bad": 5} and stats.errors == 15
    assert "no answer at t=14" in stats.last_error["bad"] and "DeviceTimeout" in stats.last_error["bad"]
    assert sampler.errors_of("good/*") == 0 and sampler.errors_of("bad/x") == 5
    assert sampler.summary("good/x").missing == 0 and sampler.summary("good/x").count == 30
    assert sampler.summary("bad/z").missing == 5 and sampler.summary("bad/z").count == 30
    rows = store.samples("run-1")  # type: ignore[attr-defined]
    assert len(rows) == stats.ticks * len(channels)
    assert sum(r.value is not None for r in rows) == stats.ticks * len(channels) - stats.errors
    assert {r.t for r in rows if r.value is None} == {10.0, 11.0, 12.0, 13.0, 14.0}
    assert [(t, d) for t, d, _ in stats.error_events] == [(float(t), "bad") for t in range(10, 15)]


def test_real_time_slow_device_counts_missed_ticks() -> None:
    clock = RealClock()
    slow = FakeDevice("slow", clock, lambda t: {"v": 1.0}, delay_s=0.13)
    sampler = Sampler(FakeRack([slow]), clock, None, "r", channels_of(slow, {"v": "W"}), rate_hz=20.0)
    start = time.monotonic()
    stats = sampler.run(1.0)
    assert time.monotonic() - start == pytest.approx(1.0, abs=0.4)
    assert stats.missed_ticks > 0 and stats.ticks > 0
    assert stats.ticks + stats.missed_ticks == 20  # every slot is run or counted missed
    t, _ = sampler.series("slow/v")
    assert (t[1:] - t[:-1]).min() >= 0.13  # never squeezed in after a slow tick
    assert slow.max_concurrent == 1


def test_real_time_hung_device_does_not_stall_others() -> None:
    clock = RealClock()
    hung = FakeDevice("hung", clock, lambda t: {"v": 1.0}, delay_s=0.6)
    fast = FakeDevice("fast", clock, lambda t: {"v": 2.0})
    channels = channels_of(hung, {"v": "W"}) + channels_of(fast, {"v": "W"})
    rack = FakeRack([hung, fast], timeout_s=0.05)
    with Sampler(rack, clock, None, "r", channels, rate_hz=5.0, grace_s=0.05) as sampler:
        sampler.start()
        time.sleep(1.5)
        stats = sampler.stop()
    assert stats.missed_ticks <= 1 and stats.ticks >= 6
    assert sampler.summary("fast/v").missing == 0
    assert sampler.errors_of("hung/v") >= stats.ticks - 3
    assert hung.max_concurrent == 1  # a hung driver is never called from a second thread
    assert "no answer" in stats.last_error["hung"] or "still running" in stats.last_error["hung"]


def test_start_refused_on_virtual_clock_and_bad_rate() -> None:
    clock = FakeClock()
    dev = FakeDevice("d", clock, lambda t: {"v": 1.0})
    sampler = Sampler(FakeRack([dev]), clock, None, "r", channels_of(dev, {"v": "W"}), virtual=True)
    with pytest.raises(RuntimeError, match="run"):
        sampler.start()
    with pytest.raises(Exception, match="rate_hz"):
        Sampler(FakeRack([dev]), clock, None, "r", [], rate_hz=0)
    dup = channels_of(dev, {"v": "W"}) * 2
    with pytest.raises(Exception, match="twice"):
        Sampler(FakeRack([dev]), clock, None, "r", dup)


def test_single_channel_and_on_tick() -> None:
    clock = FakeClock(start=0.0)
    dev = FakeDevice("m", clock, lambda t: {"v": 2 * t})
    ch = Channel.single("m/power_w", "m", "W", lambda d: d.read()["v"])
    ticks: list[tuple[int, float]] = []
    sampler = Sampler(FakeRack([dev]), clock, None, "r", [ch], virtual=True)
    sampler.run(3.0, on_tick=lambda k, t: ticks.append((k, t)))
    assert ticks == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert sampler.summary("m/power_w").last == 4.0


# ---- the simulated rack -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimBench]:
    bench = start_sim(tmp_path_factory.mktemp("sim"), nodes=2, timeouts={"bmc-node01": 0.4})
    yield bench
    bench.close()


def test_builders_name_channels_of_every_kind(sim: SimBench) -> None:
    rack = sim.rack
    names = {c.name: c for c in rack_channels(rack)}
    assert {"pdu-a/outlet1/power_w", "pdu-a/outlet1/current_a", "pdu-a/power_w"} <= set(names)
    assert {"analyzer/power_w", "analyzer/voltage_v", "bmc-node01/power_w"} <= set(names)
    assert "bmc-node01/inlet_temp/temperature_c" in names
    assert {"node02/gpu7/temperature_c", "node02/gpu7/event_reasons", "tor1/Ethernet8/in_errors"} <= set(names)
    assert names["tor1/Ethernet8/in_errors"].wrap_bits == 64 and names["tor1/Ethernet8/in_errors"].unit == "count"
    assert all(c.name.startswith(c.device + "/") for c in names.values())  # the report labels by device
    kinds = {"pdu": pdu_channels, "analyzer": analyzer_channels, "bmc": bmc_channels, "node": gpu_channels,
             "switch": switch_counter_channels}  # fmt: skip
    for name in rack.names():
        kind = sim.inventory.configs[name].kind
        assert [c.name for c in kinds[kind](rack, name)] == [c.name for c in names.values() if c.device == name]
    # one shared reader per device call: gpus() once per node, counters() once per switch
    assert len({id(c.read) for c in names.values() if c.device == "node01"}) == 1
    assert len({id(c.read) for c in names.values() if c.device == "tor1"}) == 1


def test_virtual_soak_with_gpu_load(sim: SimBench, tmp_path: Path) -> None:
    store = open_store(tmp_path / "soak.sqlite")
    try:
        store.start_run(RunInfo(run_id="soak", started_at=0.0))
        channels = gpu_channels(sim.rack, "node01") + analyzer_channels(sim.rack, "analyzer")
        node = sim.rack.driver("node01")
        t_start = sim.clock.now()
        load_at: list[float] = []

        def on_tick(k: int, t: float) -> None:
            if k == 9:  # load from the 11th tick on: ten idle samples first
                node.start_load(1.0)
                load_at.append(t)

        wall = time.monotonic()
        sampler = Sampler(sim.rack, sim.clock, store, "soak", channels, rate_hz=1.0)
        try:
            stats = sampler.run(600.0, on_tick=on_tick)
        finally:
            node.stop_load()
        wall = time.monotonic() - wall
        assert stats.ticks == 600 and stats.missed_ticks == 0 and stats.errors == 0
        assert stats.clock_s == pytest.approx(599.0, abs=0.01)
        assert sim.clock.now() - t_start == pytest.approx(600.0, abs=0.01)
        assert 600.0 / wall > 10  # virtual time runs far ahead of the wall clock
        temp = sampler.summary("node01/gpu0/temperature_c")
        assert temp.first is not None and temp.max is not None and temp.last is not None
        assert temp.max > temp.first + 15.0  # a loaded GPU heats up like a first-order lag...
        _, v = sampler.series("node01/gpu0/temperature_c")
        assert abs(v[9] - v[0]) < 1.0  # idle before the load
        assert v[70] - v[10] > v[-1] - v[-61]  # ...fast at first, then flattening
        settle = sampler.settling_time("node01/gpu0/temperature_c", temp.last, 1.5, after=load_at[0])
        assert settle is not None and 20.0 < settle < 580.0
        assert sampler.summary("node01/gpu*/utilization_pct").p50 == pytest.approx(100.0, abs=5)
        power = sampler.summary("analyzer/power_w")
        assert power.max is not None and power.first is not None and power.max > power.first + 1000
        assert len(store.samples("soak")) == stats.ticks * len(channels) - stats.errors
    finally:
        store.close()


def test_silent_bmc_counted_for_that_device_only(sim: SimBench, tmp_path: Path) -> None:
    """A BMC that goes silent costs one timeout, then is down (gaps with the cause, no polling)
    until the background re-check finds it answering again; the other devices never notice."""
    store = open_store(tmp_path / "silent.sqlite")
    fault: list[str] = []
    rack = Rack(sim.inventory, health=DeviceHealth(recheck_s=0.2, recheck=lambda name: rack.recheck(name)))
    try:
        store.start_run(RunInfo(run_id="silent", started_at=0.0))
        channels = bmc_channels(rack, "bmc-node01") + bmc_channels(rack, "bmc-node02")
        channels += pdu_channels(rack, "pdu-a")

        def on_tick(k: int, t: float) -> None:
            if k == 1:
                fault.append(sim.control.inject("device_silent", "bmc-node01"))
            if k == 4:
                sim.control.clear(fault.pop())
            if k == 5:  # the fault is gone: ask (bounded) until a re-check has seen it answer
                deadline = time.monotonic() + 10.0
                while rack.health.consult("bmc-node01") is not None and time.monotonic() < deadline:
                    time.sleep(0.05)

        sampler = Sampler(rack, sim.clock, store, "silent", channels, rate_hz=1.0, health=rack.health)
        stats = sampler.run(8.0, on_tick=on_tick)
        n_bmc1 = len([c for c in channels if c.device == "bmc-node01"])
        assert stats.ticks == 8 and stats.missed_ticks == 0
        assert stats.errors_by_device == {"bmc-node01": 4}  # tick 2 timed out; 3, 4, 5 were down
        assert stats.errors == 4 * n_bmc1 and stats.error_ticks == 4
        assert "bmc-node01" in stats.last_error["bmc-node01"]
        assert list(stats.down) == ["bmc-node01"] and "bmc-node01 stopped answering" in stats.down["bmc-node01"]
        assert sum("DeviceDown: down since bmc-node01 stopped answering" in m for _, _, m in stats.error_events) == 3
        assert sampler.errors_of("bmc-node02/*") == 0 and sampler.errors_of("pdu-a/*") == 0
        assert sampler.summary("bmc-node02/power_w").missing == 0
        p1 = sampler.summary("bmc-node01/power_w")
        assert p1.missing == 4 and p1.last is not None  # it came back after the fault cleared
        _, v = sampler.series("bmc-node01/power_w")
        assert [math.isnan(x) for x in v] == [False, False, True, True, True, True, False, False]
        rows = store.samples("silent")
        assert len(rows) == stats.ticks * len(channels)
        assert sum(r.value is not None for r in rows) == stats.ticks * len(channels) - stats.errors
    finally:
        for fault_id in fault:
            sim.control.clear(fault_id)
        rack.close()
        store.close()


def test_factory_samples_whole_rack(sim: SimBench) -> None:
    make = sampler_factory(sim.rack, sim.clock, None, "f")
    sampler = make(kinds=("pdu", "analyzer"))
    assert sampler.skipped == {} and len(sampler.channels) > 10
    stats = sampler.run(3.0)
    assert stats.ticks == 3 and stats.samples == 3 * len(sampler.channels)
    make.close_all()  # type: ignore[attr-defined]


def test_absent_meters_get_no_channels_and_never_read_as_zero() -> None:
    """An outlet without a meter has no power channel (not one that reads 0 W); a device without a
    total power meter (NotAvailable) has no power channel; the rest of the device still has its."""
    from rackval.core.errors import NotAvailable
    from rackval.drivers.capabilities import Device, Identity, OutletReading, OutletSwitch, PowerMeter
    from rackval.harness.readers import channels_of

    class HalfMeteredPdu(Device, PowerMeter, OutletSwitch):
        name = "pdu-x"

        def identify(self) -> Identity:
            return Identity("APC", "AP7902B", "", "")

        def close(self) -> None:
            pass

        def power_watts(self) -> float:
            raise NotAvailable("pdu-x", "127.0.0.1:161", "read total power", "it reads -1 (not available)")

        def outlets(self) -> list[OutletReading]:
            return [OutletReading(1, "a", True, 120.0, 0.5), OutletReading(2, "b", True, None, None)]

        def set_outlet(self, outlet: int, on: bool) -> None:
            raise AssertionError("telemetry never switches")

    pdu = HalfMeteredPdu()
    channels = channels_of(pdu, "pdu-x")
    names = [c.name for c in channels]
    assert names == ["pdu-x/outlet1/power_w", "pdu-x/outlet1/current_a", "pdu-x/outlet1/on", "pdu-x/outlet2/on"]
    values = channels[0].read(pdu)
    assert values["pdu-x/outlet2/power_w"] is None  # read as "no value", never 0.0


def test_summaries_mid_soak_read_closed_and_open_segments_and_memory_stays_flat(store: object) -> None:
    """The sampler keeps no history of its own: mid-soak, a series is the store's closed segments
    plus the open ones, in time order, and nothing the sampler holds grows with the ticks."""
    clock = FakeClock(start=0.0)
    dev = FakeDevice("dev-a", clock, lambda t: {"v": t * 2, "w": None if int(t) % 7 == 0 else 1.0})
    sampler = Sampler(FakeRack([dev]), clock, store, "run-1", channels_of(dev, {"v": "W", "w": "W"}), virtual=True)
    seen: dict[int, tuple[list[float], float | None, int]] = {}
    held: list[int] = []

    def at(k: int, t: float) -> None:
        if k in (10, 1000, 1999):
            times, values = sampler.series("dev-a/v")
            assert values.tolist() == [2 * x for x in times.tolist()]
            seen[k] = (times.tolist(), sampler.summary("dev-a/v").last, sampler.summary("dev-a/w").missing)
            held.append(sum(a.nbytes for a in vars(sampler).values() if hasattr(a, "nbytes")))

    sampler.run(2000.0, on_tick=at)
    for k in (10, 1000, 1999):
        times, last, missing = seen[k]
        assert times == [float(i) for i in range(k + 1)]  # closed segments (900 s each) + the open one
        assert last == 2.0 * k and missing == len(range(0, k + 1, 7))
    assert held[0] == held[-1]  # the sampler's own arrays: the same size after 10 and 2,000 ticks
    assert sampler.stats.stored == 4000


def test_a_second_sampler_on_the_same_channels_sees_only_its_own_ticks(store: object) -> None:
    """A plan samples feed power twice in one run (feed A dropped, then feed B): the second
    sampler's series and summaries are its own ticks, not the first one's as well, although both
    write the same channels of the same run (the report still sees both)."""
    clock = FakeClock(start=0.0)
    level = {"now": 100.0}
    dev = FakeDevice("an-a", clock, lambda t: {"power_w": level["now"]})
    channels = channels_of(dev, {"power_w": "W"})
    first = Sampler(FakeRack([dev]), clock, store, "run-1", channels, virtual=True)
    first.run(1000.0)  # closes a 900 s segment and folds the rest at the end
    level["now"] = 5.0
    second = Sampler(FakeRack([dev]), clock, store, "run-1", channels, virtual=True)
    mid: list[tuple[int, float | None]] = []
    second.run(
        20.0,
        on_tick=lambda k, t: (
            mid.append((second.summary("an-a/power_w").count, second.summary("an-a/power_w").max)) if k == 9 else None
        ),
    )
    times, values = second.series("an-a/power_w")
    assert times.tolist() == [1000.0 + i for i in range(20)] and set(values.tolist()) == {5.0}
    s = second.summary("an-a/power_w")
    assert (s.count, s.max, s.mean) == (20, 5.0, 5.0)
    assert mid == [(10, 5.0)]  # mid-run: its open segment only, not the first sampler's segments
    assert first.summary("an-a/power_w").count == 1000  # the first one's summaries still reach back
    assert len(store.samples("run-1", "an-a/power_w")) == 1020  # type: ignore[attr-defined]


def test_a_summary_of_a_long_history_gives_the_freed_heap_back(store: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big summary frees its arrays and asks the C library to return the pages (glibc keeps
    them otherwise: +24 % RSS over a 24-hour soak in bench_samples); a small one does not ask."""
    from rackval.core import heap
    from rackval.harness.telemetry import series

    assert heap.release_freed_memory() is True  # glibc here and in CI (Debian)
    asked: list[int] = []
    monkeypatch.setattr(series, "release_freed_memory", lambda: asked.append(1) or True)
    clock = FakeClock(start=0.0)
    dev = FakeDevice("dev-a", clock, lambda t: {"v": t})
    sampler = Sampler(FakeRack([dev]), clock, store, "run-1", channels_of(dev, {"v": "W"}), virtual=True)
    sampler.run(100.0)
    monkeypatch.setattr(series, "TRIM_AFTER_VALUES", 101)
    assert sampler.summary("dev-a/v").count == 100 and asked == []
    monkeypatch.setattr(series, "TRIM_AFTER_VALUES", 100)
    assert sampler.summary("dev-a/v").max == 99.0 and asked == [1]
