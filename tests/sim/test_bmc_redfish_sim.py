"""RedfishBmc + RedfishTransport against the simulated BMC, which reads the shared RackModel."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from rackval.core.errors import DeviceAuthError, DeviceError
from rackval.drivers.bmc.redfish import RedfishBmc
from rackval.drivers.capabilities import Bmc, Device, PowerMeter
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.transport.redfish import RedfishTransport
from rackval.sim.model import RackModel, RackSize
from rackval.sim.redfish_server import RedfishServer, start_bmc_redfish

NODE = "node01"
USER = "admin"
PASSWORD = "sim-bmc-pw-1234"


@pytest.fixture
def model() -> RackModel:
    return RackModel(RackSize(nodes=2))


@pytest.fixture
def server(model: RackModel) -> Iterator[RedfishServer]:
    srv = start_bmc_redfish(model, NODE, username=USER, password=PASSWORD)
    yield srv
    srv.stop()


def _config(server: RedfishServer, *, password: str = PASSWORD, **options: object) -> DeviceConfig:
    return DeviceConfig(
        name=f"bmc-{NODE}",
        kind="bmc",
        driver="redfish",
        host=server.host,
        port=server.port,
        credentials=Credentials(username=USER, password=Secret(password)),
        options={"scheme": "http", "backoff_s": 0.01, "backoff_max_s": 0.02, **options},
        timeout_s=5.0,
    )


@pytest.fixture
def bmc(server: RedfishServer) -> Iterator[RedfishBmc]:
    drv = RedfishBmc(_config(server))
    yield drv
    drv.close()


def test_driver_implements_capabilities(bmc: RedfishBmc) -> None:
    assert isinstance(bmc, Device) and isinstance(bmc, Bmc) and isinstance(bmc, PowerMeter)
    assert bmc.name == f"bmc-{NODE}"


def test_one_session_reused_and_deleted_on_close(bmc: RedfishBmc, server: RedfishServer) -> None:
    assert server.open_sessions == 0
    bmc.identify()
    bmc.power_state()
    bmc.temperatures()
    assert server.open_sessions == 1
    assert server.request_count("POST") == 1  # one login for all those requests
    bmc.close()
    assert server.open_sessions == 0
    bmc.close()  # idempotent
    assert server.open_sessions == 0


def test_identify_matches_model(bmc: RedfishBmc, model: RackModel) -> None:
    ident = bmc.identify()
    node = model.nodes[NODE]
    assert (ident.vendor, ident.model, ident.serial) == (node.info.vendor, node.info.model, node.info.serial)
    assert ident.firmware == node.bmc_info.firmware


@pytest.mark.parametrize("source", ["auto", "environment", "legacy"])
def test_power_watts_within_bmc_accuracy(server: RedfishServer, model: RackModel, source: str) -> None:
    model.set_utilization(NODE, 0.6)
    bmc = RedfishBmc(_config(server, power_source=source))
    try:
        true_w = model.node_input_power_w(NODE)
        for _ in range(3):
            assert bmc.power_watts() == pytest.approx(true_w, rel=0.08)
    finally:
        bmc.close()


def test_temperatures_inlet_gpu_exhaust(bmc: RedfishBmc, model: RackModel) -> None:
    model.set_utilization(NODE, 1.0)
    temps = bmc.temperatures()
    gpus = model.nodes[NODE].gpus
    assert set(temps) == {"Inlet Temp", "Exhaust Temp"} | {f"GPU{i} Temp" for i in range(gpus)}
    assert temps["Inlet Temp"] == pytest.approx(model.ambient_c, abs=0.05)
    assert temps["GPU0 Temp"] == pytest.approx(model.gpu_temperature_c(NODE), abs=0.05)
    assert temps["Exhaust Temp"] == pytest.approx(model.node_outlet_temperature_c(NODE), abs=0.05)
    assert temps["Exhaust Temp"] > temps["Inlet Temp"]


def test_reset_force_off_then_on(bmc: RedfishBmc, model: RackModel) -> None:
    assert bmc.power_state() == "On"
    bmc.reset("ForceOff")
    assert not model.node_is_up(NODE)
    assert bmc.power_state() == "Off"
    bmc.reset("On")
    assert model.node_is_up(NODE)
    assert bmc.power_state() == "On"


def test_reset_type_not_allowed_by_bmc_is_refused_before_post(
    bmc: RedfishBmc, server: RedfishServer, model: RackModel
) -> None:
    with pytest.raises(DeviceError, match="not allowed by this BMC") as info:
        bmc.reset("PowerCycle")  # a Redfish ResetType, but not in this BMC's AllowableValues
    assert "ForceOff" in str(info.value)
    assert server.request_count("POST") == 1  # the login only: no reset was posted
    assert model.node_is_up(NODE)


def test_unknown_reset_type_is_refused_before_any_request(
    bmc: RedfishBmc, server: RedfishServer, model: RackModel
) -> None:
    with pytest.raises(DeviceError, match="unknown ResetType") as info:
        bmc.reset("ForceOf")
    assert info.value.device == f"bmc-{NODE}"
    assert server.request_count() == 0
    assert model.node_is_up(NODE)


def test_wrong_password_is_auth_error(server: RedfishServer) -> None:
    bad = "not-the-password"
    bmc = RedfishBmc(_config(server, password=bad))
    try:
        with pytest.raises(DeviceAuthError) as info:
            bmc.identify()
        err = info.value
        assert err.device == f"bmc-{NODE}" and err.address == f"{server.host}:{server.port}"
        assert "log in" in err.operation
        assert bad not in str(err) and bad not in repr(err)
        assert server.request_count("POST") == 1  # a refused login is not retried
    finally:
        bmc.close()
    assert server.open_sessions == 0


def test_unauthenticated_get_is_401_but_service_root_is_open(server: RedfishServer) -> None:
    base = f"http://{server.host}:{server.port}"
    with httpx.Client(base_url=base, timeout=5.0, trust_env=False) as client:
        assert client.get("/redfish/v1").status_code == 200
        resp = client.get("/redfish/v1/Systems/1")
        assert resp.status_code == 401
        assert resp.json()["error"]["code"].endswith("NoValidSession")
        assert client.get("/redfish/v1/Chassis/1/Power", headers={"X-Auth-Token": "forged"}).status_code == 401
        assert client.get("/redfish/v1/Systems/1", auth=(USER, PASSWORD)).status_code == 200
        assert client.get("/redfish/v1/Nope", auth=(USER, PASSWORD)).status_code == 404
        assert client.delete("/redfish/v1/Systems/1", auth=(USER, PASSWORD)).status_code == 405


def test_basic_auth_option_opens_no_session(server: RedfishServer, model: RackModel) -> None:
    bmc = RedfishBmc(_config(server, auth="basic"))
    try:
        assert bmc.identify().serial == model.nodes[NODE].info.serial
        assert server.open_sessions == 0
        assert server.request_count("POST") == 0
    finally:
        bmc.close()


def test_expired_session_logs_in_again_once(bmc: RedfishBmc, server: RedfishServer) -> None:
    assert bmc.power_state() == "On"
    server.drop_sessions()  # BMC rebooted / session timed out
    assert bmc.power_state() == "On"
    assert server.request_count("POST") == 2
    assert server.open_sessions == 1


def test_session_exhaustion_backs_off_then_reports(model: RackModel) -> None:
    srv = start_bmc_redfish(model, NODE, username=USER, password=PASSWORD, max_sessions=1)
    holder = RedfishBmc(_config(srv))
    late = RedfishBmc(_config(srv, retries_503=2))
    try:
        holder.power_state()
        assert srv.open_sessions == 1
        with pytest.raises(DeviceError, match="503") as info:
            late.power_state()
        assert "log in" in info.value.operation
        assert "3 attempt" in str(info.value)
        assert srv.request_count("POST") == 1 + 3  # holder's login + first try + 2 retries
        holder.close()
        assert late.power_state() == "On"  # a freed session is usable at once
        assert srv.open_sessions == 1
    finally:
        holder.close()
        late.close()
        srv.stop()
    assert srv.open_sessions == 0


def test_transport_errors_name_the_operation(server: RedfishServer) -> None:
    transport = RedfishTransport(_config(server))
    try:
        with pytest.raises(DeviceError, match="404") as info:
            transport.get("/redfish/v1/Chassis/9/Power")
        assert info.value.operation == "GET /redfish/v1/Chassis/9/Power"
        assert transport.members("/redfish/v1/Systems") == ["/redfish/v1/Systems/1"]
        assert "sim-bmc" not in repr(transport)
    finally:
        transport.close()


def test_unreachable_bmc_is_a_device_error(server: RedfishServer) -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _config(server)
    config = DeviceConfig(**{**config.__dict__, "port": port, "timeout_s": 2.0})
    bmc = RedfishBmc(config)
    try:
        with pytest.raises(DeviceError, match="cannot connect") as info:
            bmc.power_state()
        assert info.value.address == f"127.0.0.1:{port}"
    finally:
        bmc.close()


def test_server_disables_nagle_on_connections(server: RedfishServer) -> None:
    base = f"http://{server.host}:{server.port}"
    with httpx.Client(base_url=base, timeout=5.0, trust_env=False) as client:
        for _ in range(2):  # second request reuses the keep-alive connection
            assert client.get("/redfish/v1").headers["content-length"].isdigit()
        sockets = server.connection_sockets()
        assert len(sockets) == 1
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)


def test_stop_is_idempotent_and_closes_connections(model: RackModel) -> None:
    srv = start_bmc_redfish(model, NODE, username=USER, password=PASSWORD)
    bmc = RedfishBmc(_config(srv))
    bmc.power_state()
    srv.stop()
    srv.stop()
    assert srv.connection_sockets() == []
    with pytest.raises(DeviceError):
        bmc.power_state()
    bmc.close()  # the logout DELETE fails (server gone): close must not raise
