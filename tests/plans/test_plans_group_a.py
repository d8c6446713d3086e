"""The inventory/firmware, power-map, network-health and BMC-health plans, both ways round.

Each plan must pass on a healthy simulated rack and fail, naming the device and the cause, on a
rack with the matching fault. The plans run as an engineer runs them (pytest in a subprocess
against a 4-node simulated rack). To keep CI time down, one faulted rack carries every fault at
once (each fault breaks a different device, so each failure is attributable), and one run of
the power map against a rack file that forbids destructive actions proves the skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.drivers.bmc.redfish import RedfishBmc
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.harness.inventory import load_inventory
from rackval.harness.rack import Rack
from rackval.harness.simproc import SimProcess
from rackval.sim.faults import make_fault
from rackval.sim.model import RackModel, RackSize
from rackval.sim.redfish_server import start_bmc_redfish
from tests.support import plan_runs
from tests.support.plan_runs import (
    actions,
    control_of,
    failed_tests,
    failure_text,
    measurements,
    write_rack_variants,
)
from tests.support.static_http import StaticRedfishServer


def run_plans(report_dir, *args, plans=plan_runs.GROUP_A_PLANS, timeout=180):
    """The group's plans by default (see tests/support/plan_runs.py)."""
    return plan_runs.run_plans(report_dir, *args, plans=plans, timeout=timeout)


# One fault per plan, each on its own device (given at start, as --sim-faults does). link_errors:
# the plans watch an idle rack, so the error ratio is set high enough to show at idle traffic
# (~1 Mb/s) within the 60 s window.
FAULTS = """
- {kind: firmware_off_baseline, device: bmc-node02}
- {kind: link_errors, device: tor1, component: Ethernet16, params: {ber: 1.0e-3, uncorrectable_fraction: 0.5}}
- {kind: link_down, device: tor2, component: Ethernet24}
- {kind: gpu_overheat, device: node04, component: GPU3, params: {delta_c: 80.0}}
"""
# Injected after start through the control channel: `rackval sim` writes the rack file's cabling
# from the model after start-up faults, so a miscabling given at start would be in the rack file
# too (the rack file would agree with the swapped cables and LLDP would see no mismatch).
LATE_FAULTS = (("miscabled_port", "tor2", "Ethernet0", {"other_port": "Ethernet8"}),)
WARM_UP_S = 600  # virtual seconds the faulted rack runs before the plans: the GPU heats up


def test_healthy_rack_passes_and_power_map_leaves_it_as_found(tmp_path: Path) -> None:
    result = run_plans(tmp_path / "reports", "--sim-nodes", "4")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "SKIPPED" not in out and " passed" in out, out
    results = tmp_path / "reports" / "results.sqlite"
    # the power map really switched: 16 PSUs, each seen losing input, none cut another
    losses = measurements(results, "PSU input loss reported after")
    assert len(losses) == 16 and all(o in ("pass", "marginal") for *_, o in losses), losses
    assert {v for *_, v, _ in measurements(results, "power map mismatch")} == {0.0}
    done = actions(results)
    assert len(done) == 16 and all(op.startswith("switch outlet") and undo == "done" for _, op, undo in done), done
    # every figure is judged per unit: per port speed, per sensor temperature, per node firmware
    assert len(measurements(results, "port speed")) == 8
    assert len(measurements(results, "temperature")) == 4 * 10
    assert len(measurements(results, "firmware versions differing from the other nodes")) == 4


@pytest.fixture(scope="module")
def faulted_rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    base = tmp_path_factory.mktemp("faulted")
    faults = base / "faults.yaml"
    faults.write_text(FAULTS)
    sim = SimProcess(base / "sim", nodes=4, faults=faults)
    try:
        control = control_of(sim.rack_file)
        try:
            for kind, device, component, params in LATE_FAULTS:
                control.inject(kind, device, component, **params)
            control.advance(WARM_UP_S)
        finally:
            control.close()
        yield sim
    finally:
        sim.stop()


def test_faulted_rack_fails_exactly_the_matching_plans(tmp_path: Path, faulted_rack: SimProcess) -> None:
    miswired, _ = write_rack_variants(faulted_rack.rack_file)
    result = run_plans(tmp_path / "reports", "--rack", str(miswired))
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert failed_tests(out) == {
        "test_device_firmware_matches_baseline[bmc-node02]",
        "test_node_firmware_consistent_across_nodes[node02]",
        "test_psu_outlets_match_rack_file[node01]",
        "test_psu_outlets_match_rack_file[node02]",
        "test_lldp_neighbors_match_cabling[tor2]",
        "test_cabled_ports_up_at_rated_speed[tor2]",
        "test_port_errors_do_not_grow[tor1]",
        "test_sel_has_no_critical_entries[bmc-node04]",
        "test_temperatures_within_limits[bmc-node04]",
    }, out

    def msg(test: str) -> str:
        return failure_text(out, test)

    firmware = msg("test_device_firmware_matches_baseline[bmc-node02]")
    assert "bmc-node02" in firmware and "'2.18.0-offbaseline', baseline 'bmc' says '2.18.0'" in firmware
    odd = msg("test_node_firmware_consistent_across_nodes[node02]")
    assert odd.startswith("AssertionError: node02: ") and (
        "BMC firmware '2.18.0-offbaseline' differs from the other nodes ('2.18.0' on 3)" in odd
    )
    assert (
        "node01 PSU1: rack file says pdu-a outlet 3, actual outlet is pdu-a outlet 1 "
        "(switching pdu-a outlet 3 off cut node02 PSU1)" in msg("test_psu_outlets_match_rack_file[node01]")
    )
    assert "node02 PSU1: rack file says pdu-a outlet 1, actual outlet is pdu-a outlet 3" in out
    lldp = msg("test_lldp_neighbors_match_cabling[tor2]")
    assert "tor2: Ethernet0: expected node01 eth1, LLDP sees node02 eth1" in lldp
    assert "Ethernet8: expected node02 eth1, LLDP sees node01 eth1" in lldp
    assert "tor2: cabled ports not up: Ethernet24" in msg("test_cabled_ports_up_at_rated_speed[tor2]")
    errors = msg("test_port_errors_do_not_grow[tor1]")
    assert "tor1: Ethernet16: errors grew by" in errors and "in_errors +" in errors
    assert "Ethernet0" not in errors and "Ethernet8" not in errors  # only the bad port is named
    sel = msg("test_sel_has_no_critical_entries[bmc-node04]")
    assert "bmc-node04: 1 Critical SEL entries" in sel and "GPU3 temperature" in sel
    assert "bmc-node04: temperature out of limits: GPU3 Temp" in msg("test_temperatures_within_limits[bmc-node04]")

    # the power map put the rack back as found: every outlet on, every PSU with input, all undos done
    results = tmp_path / "reports" / "results.sqlite"
    assert actions(results) and all(undo == "done" for *_, undo in actions(results))
    rack = Rack(load_inventory(faulted_rack.rack_file))
    try:
        for pdu in rack.names("pdu"):
            assert all(o.on for o in rack.driver(pdu).outlets()), pdu
        for bmc in rack.names("bmc"):
            assert all(s.input_ok for s in rack.driver(bmc).power_supplies().values()), bmc
    finally:
        rack.close()


def test_power_map_is_skipped_with_the_reason_when_destructive_actions_are_not_allowed(
    tmp_path: Path, faulted_rack: SimProcess
) -> None:
    _, locked = write_rack_variants(faulted_rack.rack_file)
    result = run_plans(tmp_path / "reports", "--rack", str(locked), plans=("test_plans/test_power_map.py",))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "4 skipped" in out and "passed" not in out and "failed" not in out, out
    assert "node03: power map not checked, outlet switching refused: destructive actions are not allowed" in out
    assert not actions(tmp_path / "reports" / "results.sqlite")  # nothing was switched


# ---- the RedfishBmc methods the plans added: PSU input state and sensor thresholds ----------------
def _bmc_config(name: str, host: str, port: int) -> DeviceConfig:
    return DeviceConfig(
        name=name, kind="bmc", driver="redfish", host=host, port=port,
        credentials=Credentials(username="admin", password=Secret("sim-bmc-pw-1234")),
        options={"scheme": "http", "backoff_s": 0.01, "backoff_max_s": 0.02}, timeout_s=5.0,
    )  # fmt: skip


@pytest.fixture
def sim_bmc() -> Iterator[tuple[RackModel, RedfishBmc]]:
    model = RackModel(RackSize(nodes=2, psus_per_node=4))
    server = start_bmc_redfish(model, "node01", username="admin", password="sim-bmc-pw-1234")
    bmc = RedfishBmc(_bmc_config("bmc-node01", server.host, server.port))
    try:
        yield model, bmc
    finally:
        bmc.close()
        server.stop()


def test_power_supplies_tell_lost_input_from_a_failed_psu(sim_bmc: tuple[RackModel, RedfishBmc]) -> None:
    model, bmc = sim_bmc
    psus = bmc.power_supplies()
    assert sorted(psus) == ["PSU1", "PSU2", "PSU3", "PSU4"]
    assert all(p.input_ok and p.health == "OK" and (p.input_voltage or 0) > 200 for p in psus.values()), psus
    psu1 = model.nodes["node01"].psus[0]
    model.set_outlet(psu1.pdu, psu1.outlet, False)
    lost = bmc.power_supplies()["PSU1"]
    assert lost.input_ok is False and lost.state == "UnavailableOffline" and lost.input_voltage == 0
    assert all(bmc.power_supplies()[p].input_ok for p in ("PSU2", "PSU3", "PSU4"))
    model.set_outlet(psu1.pdu, psu1.outlet, True)
    model.inject(make_fault("psu_failure", "node01", "PSU2"))
    failed = bmc.power_supplies()["PSU2"]
    assert failed.input_ok is True and failed.health == "Critical"  # failed, but it has input


def test_sensor_thresholds_match_temperature_names(sim_bmc: tuple[RackModel, RedfishBmc]) -> None:
    _, bmc = sim_bmc
    limits = bmc.sensor_thresholds()
    assert set(limits) == set(bmc.temperatures())
    assert limits["Inlet Temp"].caution == 35.0 and limits["Inlet Temp"].critical == 40.0


def _write(root: Path, path: str, doc: dict) -> None:
    target = root / path.removeprefix("/redfish/v1").strip("/") / "index.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"@odata.id": path, **doc}))


def test_power_supplies_from_power_subsystem_without_legacy_power(tmp_path: Path) -> None:
    base = "/redfish/v1/Chassis/1"
    supplies = f"{base}/PowerSubsystem/PowerSupplies"
    _write(tmp_path, "/redfish/v1", {"Chassis": {"@odata.id": "/redfish/v1/Chassis"}})
    _write(tmp_path, "/redfish/v1/Chassis", {"Members": [{"@odata.id": base}]})
    _write(tmp_path, base, {"PowerSubsystem": {"@odata.id": f"{base}/PowerSubsystem"}})
    _write(tmp_path, f"{base}/PowerSubsystem", {"PowerSupplies": {"@odata.id": supplies}})
    _write(tmp_path, supplies, {"Members": [{"@odata.id": f"{supplies}/0"}, {"@odata.id": f"{supplies}/1"}]})
    _write(tmp_path, f"{supplies}/0", {
        "Id": "0", "Name": "PSU A", "Status": {"State": "Enabled", "Health": "OK"}, "LineInputStatus": "Normal",
        "Metrics": {"@odata.id": f"{supplies}/0/Metrics"},
    })  # fmt: skip
    _write(tmp_path, f"{supplies}/0/Metrics", {"InputVoltage": {"Reading": 229.5}, "InputPowerWatts": {"Reading": 410}})
    _write(tmp_path, f"{supplies}/1", {
        "Id": "1", "Name": "PSU B", "Status": {"State": "Enabled", "Health": "Warning"},
        "LineInputStatus": "LossOfInput",
    })  # fmt: skip
    server = StaticRedfishServer(tmp_path)
    bmc = RedfishBmc(_bmc_config("bmc-static", server.host, server.port))
    try:
        psus = bmc.power_supplies()
    finally:
        bmc.close()
        server.stop()
    assert psus["PSU A"].input_ok is True and psus["PSU A"].input_voltage == 229.5 and psus["PSU A"].input_watts == 410
    assert psus["PSU B"].input_ok is False and psus["PSU B"].health == "Warning" and psus["PSU B"].input_voltage is None
