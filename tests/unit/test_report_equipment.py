"""The report's cooling-loop and power-shelf sections: shown for a rack with a CDU and shelves (loop
temperatures with their limits, per-node flow and energy balance, BBU charge during the holdup,
busbar and rectifier figures), left out for an air-cooled run, device strings escaped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.harness.measure import Limit, Measurement
from rackval.harness.report.html import render_report
from rackval.harness.store import DeviceRecord, RunInfo, SqliteStore, open_store

T0 = 1_700_000_000.0
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = open_store(tmp_path / "r.sqlite")
    yield s
    s.close()


def _run(store: SqliteStore, run_id: str, *kinds: tuple[str, str]) -> int:
    store.start_run(RunInfo(run_id=run_id, started_at=T0, rack_name="rack-L1", spec_name="sim-liquid",
                            spec_version="0.1", simulated=True))  # fmt: skip
    for name, kind in kinds:
        store.record_device(run_id, DeviceRecord(name=name, kind=kind, driver=f"redfish-{kind}", address="127.0.0.1:1"))
    return store.start_test(run_id, "test_plans/test_liquid_cooling.py::test_coolant_loop_under_full_load", T0 + 1)


def _m(store: SqliteStore, run_id: str, test: int, name: str, value: float, unit: str, limit: Limit | None,
       device: str, channel: str = "") -> None:  # fmt: skip
    store.record_measurement(run_id, test, Measurement.judged(name, value, unit, limit, device=device, channel=channel))


def test_liquid_run_shows_the_loop_the_nodes_and_the_bbus(store: SqliteStore, tmp_path: Path) -> None:
    test = _run(store, "liquid", ("cdu1", "cdu"), ("shelf1", "power_shelf"), ("bmc-node01", "bmc"))
    supply = Limit(low=20.0, high=35.0, unit="degC", requirement="cdu_supply_temperature")
    flow = Limit(low=5.0, high=16.0, unit="L/min", requirement="coolant_node_flow")
    balance = Limit(low=65.0, high=100.0, unit="%", requirement="coolant_heat_fraction")
    busbar = Limit(low=45.0, high=54.0, unit="V", requirement="busbar_voltage")
    _m(store, "liquid", test, "CDU secondary supply temperature under full load", 38.0, "degC", supply, "cdu1")
    _m(store, "liquid", test, "node coolant flow under full load", 3.9, "L/min", flow, "bmc-node01", HOSTILE)
    _m(store, "liquid", test, "heat into the coolant / node electrical power", 82.5, "%", balance, "bmc-node01")
    _m(store, "liquid", test, "busbar voltage (feeds A+B dropped)", 51.9, "V", busbar, "shelf1", "lowest sample")
    rows = [("cdu1/secondary/supply_temp_c", "cdu1", T0 + t, 30.0 + t / 100, "degC") for t in range(60)]
    rows += [("shelf1/battery_bbu1/charge_pct", "shelf1", T0 + t, 100.0 - t / 2, "%") for t in range(60)]
    store.record_samples("liquid", rows)
    store.finish_run("liquid", "failed", T0 + 100)

    html = render_report(store, "liquid", tmp_path / "out").read_text()
    cooling = html[html.index('id="cooling"') : html.index('id="shelves"')]
    assert "CDU secondary loop temperatures" in cooling and "<svg" in cooling
    assert "cdu1/secondary/supply_temp_c" in cooling
    assert "bmc-node01" in cooling and "3.9 L/min" in cooling and "82.5 %" in cooling
    assert "row-fail" in cooling  # the starved node's row is marked failed
    shelves = html[html.index('id="shelves"') :]
    assert "BBU state of charge" in shelves and "shelf1/battery_bbu1/charge_pct" in shelves
    assert "busbar voltage (feeds A+B dropped)" in shelves
    assert HOSTILE not in html and "&lt;script&gt;" in html


def test_air_cooled_run_has_neither_section(store: SqliteStore, tmp_path: Path) -> None:
    _run(store, "air", ("pdu-a", "pdu"), ("bmc-node01", "bmc"))
    store.finish_run("air", "passed", T0 + 10)
    html = render_report(store, "air", tmp_path / "out").read_text()
    assert "Cooling loop" not in html and "Power shelves" not in html


def test_a_damaged_loop_channel_leaves_its_line_out_not_the_report(store: SqliteStore, tmp_path: Path) -> None:
    import sqlite3

    test = _run(store, "liquid", ("cdu1", "cdu"), ("shelf1", "power_shelf"))
    supply = Limit(low=20.0, high=35.0, unit="degC", requirement="cdu_supply_temperature")
    _m(store, "liquid", test, "CDU secondary supply temperature under full load", 30.0, "degC", supply, "cdu1")
    rows = [("cdu1/secondary/supply_temp_c", "cdu1", T0 + t, 30.0 + t / 100, "degC") for t in range(60)]
    rows += [("cdu1/secondary/return_temp_c", "cdu1", T0 + t, 40.0 + t / 100, "degC") for t in range(60)]
    store.record_samples("liquid", rows)
    store.finish_run("liquid", "passed", T0 + 100)
    db = sqlite3.connect(store.path, isolation_level=None)
    db.execute("UPDATE sample_segments SET times = ? WHERE series_id IN (SELECT series_id FROM sample_series"
               " WHERE channel = 'cdu1/secondary/supply_temp_c')", (b"\x02damaged",))  # fmt: skip
    db.close()
    html = render_report(store, "liquid", tmp_path / "out").read_text()
    start = html.index('id="cooling"')
    cooling = html[start : html.index("</section>", start)]
    assert "<svg" in cooling and "cdu1/secondary/return_temp_c" in cooling  # the readable line is drawn
    assert "cdu1/secondary/supply_temp_c" not in cooling.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert 'id="telemetry-unreadable"' in html and "cdu1/secondary/supply_temp_c" in html
