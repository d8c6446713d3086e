"""The simulator's SSH shells (GPU node, OpenBMC, SONiC additions) driven by the real drivers,
and the protocol faults the SSH server acts on, each giving the driver the right error class.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.core.errors import DeviceAuthError, DeviceError, DeviceProtocolError, DeviceTimeout
from rackval.drivers.bmc.openbmc import OpenBmcSsh
from rackval.drivers.node.linux import LinuxGpuNode
from rackval.drivers.node.parsers import OLD_REASONS_FIELD, REASONS_FIELD, query_gpu_argv
from rackval.drivers.switch.sonic import parse_table
from rackval.sim.bmc_shell import start_bmc_ssh
from rackval.sim.clock import SimClock
from rackval.sim.faults import make_fault
from rackval.sim.model import REFERENCE_PARAMS, RackModel
from rackval.sim.node_shell import start_node_ssh
from rackval.sim.ssh_server import corrupt_output
from rackval.sim.switch_shell import start_switch_ssh
from tests.support.sim_ssh import SimSsh, sim_ssh

NODE = "node01"
SW_THERMAL = 0x20


@pytest.fixture
def model() -> RackModel:
    return RackModel(clock=SimClock(time_scale=0))


@pytest.fixture
def dyn_model() -> RackModel:
    """The full dynamic model on a frozen clock: time passes only when a test advances it."""
    return RackModel(clock=SimClock(time_scale=0), params=REFERENCE_PARAMS)


@pytest.fixture
def node_srv(model: RackModel, tmp_path: Path) -> Iterator[SimSsh]:
    with sim_ssh(start_node_ssh, model, NODE, tmp_path) as srv:
        yield srv


@pytest.fixture
def bmc_srv(model: RackModel, tmp_path: Path) -> Iterator[SimSsh]:
    with sim_ssh(start_bmc_ssh, model, model.nodes[NODE].bmc, tmp_path) as srv:
        yield srv


@pytest.fixture
def switch_srv(model: RackModel, tmp_path: Path) -> Iterator[SimSsh]:
    with sim_ssh(start_switch_ssh, model, "tor1", tmp_path) as srv:
        yield srv


@pytest.fixture
def drivers() -> Iterator[list]:
    """Drivers a test made; closed afterwards whatever happened."""
    made: list = []
    yield made
    for d in made:
        d.close()


def _node(srv: SimSsh, drivers: list, **kwargs: object) -> LinuxGpuNode:
    node = LinuxGpuNode(srv.config(**kwargs))
    drivers.append(node)
    return node


def _names_device(exc: DeviceError, srv: SimSsh) -> None:
    assert exc.device == srv.device
    assert exc.address == srv.address
    assert srv.device in str(exc) and srv.address in str(exc)


# ---- GPU node -----------------------------------------------------------------------------------


def test_node_identity_from_dmi(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    info = model.nodes[NODE].info
    ident = _node(node_srv, drivers).identify()
    assert (ident.vendor, ident.model, ident.serial) == (info.vendor, info.model, info.serial)
    assert ident.firmware == model.firmware(NODE)["BIOS"]


def test_node_gpus_match_model(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    model.set_gpu_utilization(NODE, 2, 0.5)
    gpus = _node(node_srv, drivers).gpus()
    assert [g.index for g in gpus] == list(range(model.nodes[NODE].gpus))
    assert len({g.uuid for g in gpus}) == len(gpus)
    for g in gpus:
        assert g.power_w == pytest.approx(model.gpu_power_w(NODE, g.index), abs=0.01)
        assert g.temperature_c == round(model.gpu_temperature_c(NODE, g.index))
        assert g.utilization_pct == round(model.gpu_utilization(NODE, g.index) * 100)
        assert g.event_reasons == model.gpu_event_reasons(NODE, g.index)
        assert g.power_limit_w == model.nodes[NODE].gpu_max_w
        assert g.ecc_uncorrected == 0
    assert gpus[2].utilization_pct == 50 and gpus[2].event_reasons == 0
    assert gpus[0].event_reason_names == ("GpuIdle",) and gpus[0].sm_clock_mhz < gpus[2].sm_clock_mhz


def test_node_overheat_shows_sw_thermal_after_time(dyn_model: RackModel, tmp_path: Path, drivers: list) -> None:
    dyn_model.inject(make_fault("gpu_overheat", NODE, "GPU3"))
    with sim_ssh(start_node_ssh, dyn_model, NODE, tmp_path) as srv:
        node = _node(srv, drivers)
        node.start_load(1.0)
        before = node.gpus()[3]
        assert not before.event_reasons & SW_THERMAL  # the GPU has not heated up yet
        dyn_model.clock.advance(600)
        gpus = node.gpus()
        hot = gpus[3]
        assert hot.event_reasons & SW_THERMAL and "SwThermal" in hot.event_reason_names
        assert hot.temperature_c == round(dyn_model.gpu_temperature_c(NODE, 3))
        assert hot.temperature_c > before.temperature_c
        assert hot.power_w == pytest.approx(dyn_model.gpu_power_w(NODE, 3), abs=0.01)
        assert hot.power_w < gpus[0].power_w and hot.sm_clock_mhz < gpus[0].sm_clock_mhz
        assert all(not g.event_reasons & SW_THERMAL for g in gpus if g.index != 3)
        diag = node.run_diag(1)
        assert not diag.passed
        assert {t.gpu for t in diag.tests if t.status == "fail"} == {3}
        node.stop_load()


def test_load_raises_node_and_outlet_power_and_stop_restores(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    psu = model.nodes[NODE].psus[0]
    idle_node, idle_outlet = model.node_input_power_w(NODE), model.outlet_power_w(psu.pdu, psu.outlet)
    node = _node(node_srv, drivers)
    node.start_load(1.0)
    assert node.load_pid is not None
    assert model.nodes[NODE].utilization == 1.0
    assert model.node_input_power_w(NODE) > idle_node + 4000
    assert model.outlet_power_w(psu.pdu, psu.outlet) > idle_outlet + 2000
    assert all(g.utilization_pct == 100 for g in node.gpus())
    with pytest.raises(DeviceError, match="already running as pid"):
        node.start_load(1.0)
    node.stop_load()
    assert node.load_pid is None
    assert model.node_input_power_w(NODE) == pytest.approx(idle_node)
    assert model.outlet_power_w(psu.pdu, psu.outlet) == pytest.approx(idle_outlet)
    node.stop_load()  # idempotent: no pid file any more


def test_partial_load_and_duration_end_the_load(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    node = _node(node_srv, drivers, load_command=["rackval-gpu-load", "--level", "{level}", "--duration", "{duration}"])
    node.start_load(0.4, duration_s=30)
    assert model.nodes[NODE].utilization == pytest.approx(0.4)
    model.clock.advance(31)
    assert node.gpus()[0].utilization_pct == 0  # the tool ended by itself: utilisation back to 0
    assert model.nodes[NODE].utilization == 0.0


def test_unknown_load_tool_fails_like_a_missing_binary(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    node = _node(node_srv, drivers, load_command=["no-such-burner", "{duration}"])
    with pytest.raises(DeviceError, match="No such file or directory"):
        node.start_load(1.0)
    assert model.nodes[NODE].utilization == 0.0


def test_stop_refuses_a_pid_that_runs_another_program(node_srv: SimSsh, drivers: list) -> None:
    sleeper = _node(node_srv, drivers, load_command=["sleep", "{duration}"])
    sleeper.start_load(1.0)
    burner = _node(node_srv, drivers)  # same default pid file, program gpu_burn
    with pytest.raises(DeviceError, match="no longer runs gpu_burn"):
        burner.stop_load()
    sleeper.stop_load()


def test_old_driver_refuses_new_reason_field_and_driver_falls_back(
    model: RackModel, tmp_path: Path, drivers: list
) -> None:
    with sim_ssh(start_node_ssh, model, NODE, tmp_path, old_driver=True) as srv:
        node = _node(srv, drivers)
        raw = node._ssh.run(query_gpu_argv("nvidia-smi", REASONS_FIELD))  # white-box: the driver's transport
        assert raw.exit_status == 2
        assert f'Field "{REASONS_FIELD}" is not a valid field to query.' in raw.stdout
        assert len(node.gpus()) == 8
        assert node._reasons_field == OLD_REASONS_FIELD
    with sim_ssh(start_node_ssh, model, NODE, tmp_path) as srv:  # new driver: the old name is refused
        raw = _node(srv, drivers)._ssh.run(query_gpu_argv("nvidia-smi", OLD_REASONS_FIELD))
        assert raw.exit_status == 2 and OLD_REASONS_FIELD in raw.stdout


def test_nvidia_smi_honours_field_order_and_units(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    ssh = _node(node_srv, drivers)._ssh
    out = ssh.run(["nvidia-smi", "--query-gpu=power.draw,index", "--format=csv", "-i", "1"]).stdout.splitlines()
    assert out[0] == "power.draw [W], index"
    assert out[1] == f"{model.gpu_power_w(NODE, 1):.2f} W, 1"


def test_dcgm_diag_passes_on_a_healthy_node(node_srv: SimSsh, drivers: list) -> None:
    result = _node(node_srv, drivers).run_diag(3)
    assert result.passed
    assert {t.name for t in result.tests} >= {"software", "pcie", "memory", "targeted_power", "diagnostic"}
    assert {t.gpu for t in result.tests} == set(range(8))


def test_node_with_host_off_answers_nothing(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    node = _node(node_srv, drivers, command_timeout_s=0.5)
    node.identify()
    model.host_power_off(NODE)
    with pytest.raises(DeviceTimeout) as info:
        node.gpus()
    _names_device(info.value, node_srv)


# ---- OpenBMC ------------------------------------------------------------------------------------


def test_bmc_identity_and_state(bmc_srv: SimSsh, model: RackModel, drivers: list) -> None:
    bmc = OpenBmcSsh(bmc_srv.config())
    drivers.append(bmc)
    node = model.nodes[NODE]
    assert bmc_srv.device == node.bmc  # the server's device (fault target) is the BMC
    ident = bmc.identify()
    assert (ident.vendor, ident.model, ident.serial) == (node.info.vendor, node.info.model, node.info.serial)
    assert ident.firmware == model.firmware(node.bmc)["BMC"]
    assert bmc.bmc_ready() and bmc.power_state() == "On"
    model.inject(make_fault("firmware_off_baseline", node.bmc, version="2.19.0-rc1"))
    fresh = OpenBmcSsh(bmc_srv.config())
    drivers.append(fresh)
    assert fresh.identify().firmware == "2.19.0-rc1"


def test_bmc_power_off_and_on_change_the_model(bmc_srv: SimSsh, model: RackModel, drivers: list) -> None:
    bmc = OpenBmcSsh(bmc_srv.config())
    drivers.append(bmc)
    bmc.power_off()
    assert model.host_state(NODE) == "Off" and bmc.power_state() == "Off"
    assert bmc.state()["CurrentPowerState"] == "Off"
    bmc.power_on()
    assert model.host_state(NODE) == "On" and bmc.power_state() == "On"
    bmc.reset("ForceOff")  # obmcutil chassisoff
    assert model.host_state(NODE) == "Off"
    result = bmc._transport.run(["obmcutil", "bogus"])  # white-box: the driver's transport
    assert result.exit_status == 1 and "Invalid command" in result.stderr


def test_bmc_shows_powering_on_with_the_dynamic_model(dyn_model: RackModel, tmp_path: Path, drivers: list) -> None:
    dyn_model.host_power_off(NODE)
    with sim_ssh(start_bmc_ssh, dyn_model, dyn_model.nodes[NODE].bmc, tmp_path) as srv:
        bmc = OpenBmcSsh(srv.config())
        drivers.append(bmc)
        assert bmc.power_state() == "Off"
        bmc.power_on()
        assert bmc.power_state() == "PoweringOn"
        dyn_model.clock.advance(REFERENCE_PARAMS.timing.host_power_on_s + 1)
        assert bmc.power_state() == "On"


# ---- SONiC additions ----------------------------------------------------------------------------


def test_sonic_counters_json_parses_and_link_errors_grow_rx_err(
    switch_srv: SimSsh, model: RackModel, drivers: list
) -> None:
    from rackval.drivers.switch.sonic import SonicSwitch

    sw = SonicSwitch(switch_srv.config())
    drivers.append(sw)

    def counters() -> dict[str, object]:
        return {c.name: c for c in sw.counters()}

    first = counters()
    assert list(first)[:3] == ["Ethernet0", "Ethernet8", "Ethernet16"] and len(first) == 32
    doc = json.loads(sw._show(["show", "interfaces", "counters", "-j"]))
    assert doc["Ethernet0"]["STATE"] == "U" and doc["Ethernet104"]["STATE"] == "D"
    assert set(doc["Ethernet0"]) == {"STATE", "RX_OK", "RX_BPS", "RX_UTIL", "RX_ERR", "RX_DRP", "RX_OVR",
                                     "TX_OK", "TX_BPS", "TX_UTIL", "TX_ERR", "TX_DRP", "TX_OVR"}  # fmt: skip
    model.set_utilization(NODE, 1.0)  # node01 is cabled to Ethernet0: traffic carries the errors
    model.inject(make_fault("link_errors", "tor1", "Ethernet0", ber=1e-6))
    model.clock.advance(60)
    later = counters()
    assert later["Ethernet0"].in_errors > first["Ethernet0"].in_errors + 1000
    assert later["Ethernet0"].in_errors == model.port_counters("tor1", "Ethernet0")["in_errors"]
    assert later["Ethernet8"].in_errors == first["Ethernet8"].in_errors
    fec, _ = parse_table(sw._show(["show", "interfaces", "counters", "fec-stats"]), ["iface", "fec_corr"], "fec")
    rows = {r["iface"]: r for r in fec}
    assert int(rows["Ethernet0"]["fec_corr"].replace(",", "")) > 1_000_000
    assert float(rows["Ethernet0"]["fec_pre_ber"]) == pytest.approx(1e-6, rel=0.05)


def test_sonic_counters_text_table_and_bad_option(switch_srv: SimSsh, model: RackModel, drivers: list) -> None:
    from rackval.drivers.switch.sonic import SonicSwitch

    sw = SonicSwitch(switch_srv.config())
    drivers.append(sw)
    rows, _ = parse_table(sw._show(["show", "interfaces", "counters"]), ["iface", "state", "rx_ok", "rx_err"], "c")
    assert len(rows) == 32 and rows[0]["iface"] == "Ethernet0"
    result = sw._ssh.run(["show", "interfaces", "counters", "--bogus"])
    assert result.exit_status == 2 and "No such option: --bogus" in result.stderr


def test_sonic_platform_temperature_and_psus(switch_srv: SimSsh, drivers: list) -> None:
    from rackval.drivers.switch.sonic import SonicSwitch

    sw = SonicSwitch(switch_srv.config())
    drivers.append(sw)
    rows, _ = parse_table(sw._show(["show", "platform", "temperature"]), ["sensor", "temperature"], "temp")
    sensors = {r["sensor"]: r for r in rows}
    assert float(sensors["ASIC"]["temperature"]) < float(sensors["ASIC"]["high th"])
    assert sum(name.startswith("xSFP module") for name in sensors) == 4  # the four cabled links
    psus = json.loads(sw._show(["show", "platform", "psustatus", "--json"]))
    assert [p["name"] for p in psus] == ["PSU 1", "PSU 2"]
    assert all(p["status"] == "OK" and float(p["power"]) > 0 for p in psus)


# ---- protocol faults ----------------------------------------------------------------------------


def test_device_silent_new_connection_is_bounded_error(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    model.inject(make_fault("device_silent", NODE))
    started = time.monotonic()
    with pytest.raises(DeviceError) as info:
        _node(node_srv, drivers, timeout_s=0.5).identify()
    assert time.monotonic() - started < 3.0
    _names_device(info.value, node_srv)


def test_device_silent_on_open_connection_times_out(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    node = _node(node_srv, drivers, command_timeout_s=0.5)
    node.identify()
    fault = model.inject(make_fault("device_silent", NODE))
    with pytest.raises(DeviceTimeout) as info:
        node.gpus()
    _names_device(info.value, node_srv)
    model.clear_fault(fault)
    assert len(node.gpus()) == 8  # the connection survives; the device answers again


def test_device_slow_delays_replies(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    node = _node(node_srv, drivers, command_timeout_s=0.4)
    node.identify()
    fault = model.inject(make_fault("device_slow", NODE, delay_s=0.8))
    with pytest.raises(DeviceTimeout) as info:
        node.gpus()
    _names_device(info.value, node_srv)
    model.clear_fault(fault)
    model.inject(make_fault("device_slow", NODE, delay_s=0.2))
    patient = _node(node_srv, drivers, command_timeout_s=3.0)
    started = time.monotonic()
    assert len(patient.gpus()) == 8
    assert time.monotonic() - started >= 0.2


def test_auth_failure_refuses_the_valid_password(bmc_srv: SimSsh, model: RackModel, drivers: list) -> None:
    fault = model.inject(make_fault("auth_failure", bmc_srv.device))
    bmc = OpenBmcSsh(bmc_srv.config())
    drivers.append(bmc)
    with pytest.raises(DeviceAuthError) as info:
        bmc.state()
    _names_device(info.value, bmc_srv)
    model.clear_fault(fault)
    assert bmc.bmc_ready()


def test_session_exhaustion_refuses_new_connections_only(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    first = _node(node_srv, drivers)
    first.identify()  # holds one session open
    model.inject(make_fault("session_exhaustion", NODE, max_sessions=1))
    with pytest.raises(DeviceProtocolError) as info:
        _node(node_srv, drivers).identify()
    _names_device(info.value, node_srv)
    assert len(first.gpus()) == 8  # the open session keeps working


def test_ssh_disconnect_mid_command_is_bounded_and_reconnects(
    node_srv: SimSsh, model: RackModel, drivers: list
) -> None:
    node = _node(node_srv, drivers, timeout_s=2.0)
    node.identify()
    model.inject(make_fault("ssh_disconnect", NODE, after_commands=1))
    assert len(node.gpus()) == 8  # the one command answered under the fault
    started = time.monotonic()
    with pytest.raises(DeviceError) as info:
        node.gpus()
    assert time.monotonic() - started < 2.0  # dropped, not waited out
    assert not isinstance(info.value, DeviceTimeout)
    # The transport notices the drop either as a lost connection or as a command that ended
    # without an exit status (-1) after part of its output.
    assert "connection lost" in str(info.value) or "exit status -1: " in str(info.value)
    _names_device(info.value, node_srv)
    assert len(node.gpus()) == 8  # a new connection answers again (its first command)


@pytest.mark.parametrize("mode", ["truncate", "garbage", "wrong_length"])
def test_malformed_reply_is_a_protocol_error(node_srv: SimSsh, model: RackModel, drivers: list, mode: str) -> None:
    model.inject(make_fault("malformed_reply", NODE, mode=mode))
    with pytest.raises(DeviceProtocolError) as info:
        _node(node_srv, drivers).gpus()
    _names_device(info.value, node_srv)


def test_bmc_server_started_by_node_name_acts_on_the_bmcs_faults(
    model: RackModel, tmp_path: Path, drivers: list
) -> None:
    model.inject(make_fault("auth_failure", model.nodes[NODE].bmc))
    with sim_ssh(start_bmc_ssh, model, NODE, tmp_path) as srv:
        bmc = OpenBmcSsh(srv.config())
        drivers.append(bmc)
        with pytest.raises(DeviceAuthError):
            bmc.state()


def test_malformed_reply_on_bmc_state(bmc_srv: SimSsh, model: RackModel, drivers: list) -> None:
    model.inject(make_fault("malformed_reply", bmc_srv.device, mode="garbage"))
    bmc = OpenBmcSsh(bmc_srv.config())
    drivers.append(bmc)
    with pytest.raises(DeviceProtocolError) as info:
        bmc.state()
    _names_device(info.value, bmc_srv)


def test_faults_on_other_devices_do_not_apply(node_srv: SimSsh, model: RackModel, drivers: list) -> None:
    model.inject(make_fault("auth_failure", "node02"))
    model.inject(make_fault("device_silent", model.nodes[NODE].bmc))
    assert len(_node(node_srv, drivers).gpus()) == 8


def test_truncation_never_ends_on_a_line_boundary() -> None:
    rng = random.Random(1)
    text = "aaaa\nbbbb\ncccc\ndddd\n"
    cut = corrupt_output(text, "truncate", rng)
    assert text.startswith(cut) and len(cut) < len(text) and not cut.endswith("\n")
    assert corrupt_output(text, "wrong_length", rng).startswith(text)
    assert corrupt_output(text, "garbage", rng) != text
