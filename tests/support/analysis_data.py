"""Known design-loop data for the compare and trend tests: two design revisions, three serials
each, two stations, with planted changes whose classification is known in advance.

Baseline rev-A: S-101 (run twice: the older run must be superseded), S-102, S-103.
Candidate rev-B: S-201, S-202, S-203 (plus a later S-203 run that was killed: must be left out).
rev-C: one killed run only (a revision with nothing to compare).

Planted, by requirement (the worst unit decides, see rackval.harness.analysis.compare):
  PWR-1  rack power <= 5000 W        worst 4010 -> 4610: margin shrank 12 % of 5000 (regression)
  TMP-1  inlet temp <= 35 degC       worst 31 -> 25.5: margin grew 15.7 % (improvement)
  FAN-1  fan speed 3000..9000 rpm    worst 5800 -> 2500 on S-201: new failure
  V-1    outlet voltage 220..240 V   worst 231.5 -> 239.5: new marginal (margin 0.5 < 5 % of 20)
  LNK-1  link speed >= 100 Gb/s      400 -> 400 (unchanged)
  hostile name on a hostile device   1 -> 1 (unchanged), every name an injection attempt
  BOOT   bmc boot time, no limits    30 -> 28 s (no limits)
  OLD-1  only in the baseline; NEW-1 only in the candidate (passing)
  IDLE-1 idle power <= 1500 W        ~1000 W on every unit, S-203 at 1025: the trend's outlier,
                                     and 1.4 % of 1500 worse than rev-A's worst (unchanged)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rackval.harness.measure import Limit, Measurement
from rackval.harness.store import RunInfo, SqlStore

T0 = 1_763_000_000.0
HOUR = 3600.0
HOSTILE_REQ = '<script>alert("x")</script>'
HOSTILE_DEVICE = "<img src=x onerror=alert(1)>"
HOSTILE_CHANNEL = "a|b *c*"
HOSTILE_SAMPLE_CHANNEL = "<b>inlet</b> & $x$"
OUTLIER_SERIAL = "S-203"


@dataclass(frozen=True)
class Planned:
    run_id: str
    serial: str
    revision: str
    station: str
    hours: float
    values: dict[str, float]
    finished: bool = True
    extra: dict[str, float] = field(default_factory=dict)


# requirement -> (name, limit or None, device, channel)
REQUIREMENTS: dict[str, tuple[str, Limit | None, str, str]] = {
    "PWR-1": ("rack power", Limit(high=5000, unit="W", requirement="PWR-1"), "an1", ""),
    "TMP-1": ("inlet temp", Limit(high=35, unit="degC", requirement="TMP-1"), "node-1", ""),
    "FAN-1": ("fan speed", Limit(low=3000, high=9000, unit="rpm", requirement="FAN-1"), "node-1", "fan 2"),
    "V-1": ("outlet voltage", Limit(low=220, high=240, unit="V", requirement="V-1"), "pdu-a", "outlet 3"),
    "LNK-1": ("link speed", Limit(low=100, unit="Gb/s", requirement="LNK-1"), "leaf-1", "Ethernet0"),
    HOSTILE_REQ: (HOSTILE_REQ, Limit(high=10, unit="count", requirement=HOSTILE_REQ), HOSTILE_DEVICE, HOSTILE_CHANNEL),
    "BOOT": ("bmc boot time", None, "bmc-1", ""),
    "OLD-1": ("legacy check", Limit(high=1, unit="count", requirement="OLD-1"), "node-1", ""),
    "NEW-1": ("leak sensor", Limit(high=0.5, unit="count", requirement="NEW-1"), "node-1", ""),
    "IDLE-1": ("idle power", Limit(high=1500, unit="W", requirement="IDLE-1"), "an1", ""),
}
UNITS = {"PWR-1": "W", "TMP-1": "degC", "FAN-1": "rpm", "V-1": "V", "LNK-1": "Gb/s", HOSTILE_REQ: "count",
         "BOOT": "s", "OLD-1": "count", "NEW-1": "count", "IDLE-1": "W"}  # fmt: skip


def _a(pwr: float, tmp: float, fan: float, volt: float, idle: float) -> dict[str, float]:
    return {"PWR-1": pwr, "TMP-1": tmp, "FAN-1": fan, "V-1": volt, "LNK-1": 400, HOSTILE_REQ: 1, "BOOT": 30,
            "OLD-1": 0, "IDLE-1": idle}  # fmt: skip


def _b(pwr: float, tmp: float, fan: float, volt: float, idle: float) -> dict[str, float]:
    return {"PWR-1": pwr, "TMP-1": tmp, "FAN-1": fan, "V-1": volt, "LNK-1": 400, HOSTILE_REQ: 1, "BOOT": 28,
            "NEW-1": 0, "IDLE-1": idle}  # fmt: skip


PLAN: tuple[Planned, ...] = (
    # the older S-101 run: its failing fan must NOT be the baseline (a later complete run supersedes it)
    Planned("a1-old", "S-101", "rev-A", "bench-1", 0, _a(4000, 30, 2000, 230, 1001)),
    Planned("a1", "S-101", "rev-A", "bench-1", 1, _a(4000, 30, 6000, 230, 1000)),
    Planned("a2", "S-102", "rev-A", "bench-2", 2, _a(4010, 31, 6050, 231.5, 1004)),
    Planned("a3", "S-103", "rev-A", "bench-1", 3, _a(3990, 30.5, 5800, 229, 998)),
    Planned("b1", "S-201", "rev-B", "bench-2", 4, _b(4600, 25, 2500, 235, 1002)),
    Planned("b2", "S-202", "rev-B", "bench-1", 5, _b(4610, 25.5, 6000, 239.5, 996)),
    Planned("b3", "S-203", "rev-B", "bench-2", 6, _b(4590, 24, 6000, 234, 1025)),
    # killed half-way: never finished, and its hot inlet must not reach the candidate
    Planned("b3-killed", "S-203", "rev-B", "bench-2", 7, {"TMP-1": 80}, finished=False),
    # a revision whose only run never finished: cannot be compared as a revision
    Planned("c1-killed", "S-301", "rev-C", "bench-1", 8, {"TMP-1": 30}, finished=False),
)
SAMPLED = {"a1", "a2", "b1"}


def build(store: SqlStore) -> None:
    """Write ``PLAN`` (runs, measurements, telemetry) into an empty store."""
    for p in PLAN:
        started = T0 + p.hours * HOUR
        store.start_run(
            RunInfo(
                p.run_id, started, rack_name=f"rack-{p.serial}", rack_serial=p.serial, design_revision=p.revision,
                spec_name="gb200-acceptance", spec_version="1.0", station=p.station, simulated=True,
            )
        )  # fmt: skip
        test_id = store.start_test(p.run_id, "test_plans/test_design.py::test_all", started_at=started + 1)
        for n, (req, value) in enumerate(p.values.items()):
            name, limit, device, channel = REQUIREMENTS[req]
            m = Measurement.judged(name, value, UNITS[req], limit, device=device, channel=channel, clock_s=10.0 + n)
            store.record_measurement(p.run_id, test_id, Measurement(**{**m.__dict__, "recorded_at": started + 10 + n}))
        if p.run_id in SAMPLED:
            level = 4000.0 if p.revision == "rev-A" else 4600.0
            rows = [("rack.power", "an1", i * 0.5, level + i, "W") for i in range(40)]
            rows += [(HOSTILE_SAMPLE_CHANNEL, "node-1", i * 0.5, 20.0 + i / 10, "degC") for i in range(20)]
            if p.run_id == "a1":
                rows += [("baseline.only", "an1", i * 1.0, 1.0, "W") for i in range(5)]
            store.record_samples(p.run_id, rows)
        if p.finished:
            store.finish_test(test_id, "passed", 60.0)
            store.finish_run(p.run_id, "passed", started + 600)
