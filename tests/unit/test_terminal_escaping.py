"""Device text reaches the terminal escaped: ``printable`` and every place that prints device text.

A device that names itself ``"\\x1b[2J\\x1b[HPASS\\n"`` must not clear the engineer's screen or
forge a line of output: not in ``rackval probe``'s table or JSON (driven here end to end, through
the Redfish driver, against a scripted BMC on 127.0.0.1), not in a DeviceError, not in a
measurement's description, not in a plan's failure message.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from rackval.core.errors import DeviceProtocolError
from rackval.core.printable import printable
from rackval.drivers.capabilities import Identity
from rackval.harness.measure import Measurement
from rackval.harness.probe import main as probe_main
from tests.support.scripted_peers import Peer, ScriptedTcpServer

HOSTILE = "Contoso\x1b[2J\x1b[H\r\nPASS \u202eevil\u2066\x85\x9b31m\x7f"
UNSAFE = ("\x1b", "\r", "\u202e", "\u2066", "\x85", "\x9b", "\x7f")


def no_unsafe_characters(text: str) -> None:
    for char in UNSAFE:
        assert char not in text, repr(char)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, é, 中文, 🙂", "plain text, é, 中文, 🙂"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("line\r\nforged\tcell", "line\\r\\nforged\\tcell"),
        ("\x85\x9b\x7f\x00", "\\x85\\x9b\\x7f\\x00"),
        ("\u202eevil\u2066\u200b\u2028", "\\u202eevil\\u2066\\u200b\\u2028"),
        ("C:\\path\\x1b", "C:\\path\\x1b"),  # backslashes are left alone: escaped text stays as it is
    ],
)
def test_printable_escapes_what_a_terminal_acts_on(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(printable(raw)) == printable(raw)


def test_device_error_message_is_escaped_and_detail_kept_raw() -> None:
    err = DeviceProtocolError("bmc1", "10.0.0.1:443", "GET /redfish/v1", f"Manufacturer {HOSTILE}")
    no_unsafe_characters(str(err))
    assert "\n" not in str(err) and "\\x1b[2J" in str(err)
    assert err.detail.endswith(HOSTILE)


def test_measurement_description_is_escaped() -> None:
    m = Measurement.judged("fan speed", 1200, "rpm", device="bmc1", channel=f"fan {HOSTILE}")
    no_unsafe_characters(m.describe())
    assert "\n" not in m.describe() and "fan Contoso\\x1b[2J" in m.describe()


def _plan(name: str) -> object:
    path = Path(__file__).resolve().parents[2] / "test_plans" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_plan_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_identity_plan_failure_message_is_escaped() -> None:
    plan = _plan("test_identity")
    rack = SimpleNamespace(identity=lambda name: Identity(HOSTILE, "M1", "S1", "F1"))
    expect = SimpleNamespace(vendor="Contoso", model="", serial="", firmware="")
    inventory = SimpleNamespace(spec_of=lambda name: SimpleNamespace(expect=expect))
    with pytest.raises(AssertionError) as info:
        plan.test_device_answers_with_expected_identity("bmc1", rack, inventory, lambda *a, **k: None)
    message = str(info.value).splitlines()[0]
    no_unsafe_characters(message)
    assert message.startswith("bmc1: vendor: rack file says 'Contoso', device says 'Contoso\\x1b[2J")


def test_lldp_plan_failure_message_is_escaped() -> None:
    plan = _plan("test_network_health")
    neighbour = SimpleNamespace(local_port="Ethernet0", remote_system=HOSTILE, remote_port="eth0")
    rack = SimpleNamespace(driver=lambda name: SimpleNamespace(lldp_neighbors=lambda: [neighbour]))
    nics = {"eth0": SimpleNamespace(switch="tor1", port="Ethernet0")}
    inventory = SimpleNamespace(data=SimpleNamespace(nodes={"node01": SimpleNamespace(nics=nics)}))
    with pytest.raises(AssertionError) as info:
        plan.test_lldp_neighbors_match_cabling("tor1", rack, inventory, lambda *a, **k: None)
    message = str(info.value).splitlines()[0]
    no_unsafe_characters(message)
    assert "LLDP sees Contoso\\x1b[2J\\x1b[H\\r\\nPASS" in message


# ---- rackval probe, end to end -------------------------------------------------------------------------
SYSTEM = "/redfish/v1/Systems/1"
MANAGER = "/redfish/v1/Managers/1"


def _hostile_bmc(peer: Peer) -> None:
    docs = {
        SYSTEM: {"Manufacturer": HOSTILE, "Model": "M1\nforged line", "SerialNumber": "S1", "PowerState": "On"},
        MANAGER: {"FirmwareVersion": "1.0\x1b]0;title\x07"},
    }
    while True:
        line, _, _ = peer.read_http_request()
        doc = docs.get(line.split(" ")[1])
        body = json.dumps(doc if doc is not None else {"error": {"message": f"no \x1b[31m{line}"}}).encode()
        status = "200 OK" if doc is not None else "404 Not Found"
        peer.send(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)


@pytest.fixture
def rack_file(tmp_path: Path) -> Iterator[Path]:
    with ScriptedTcpServer(_hostile_bmc) as srv:
        (tmp_path / "pw").write_text("escaping-secret\n")
        rack = {
            "rack": {"name": "escape-test"},
            "credentials": {"bmc": {"username": "admin", "password": {"file": "pw"}}},
            "devices": {
                "bmc1": {
                    "kind": "bmc", "driver": "redfish", "host": "127.0.0.1", "port": srv.port, "credentials": "bmc",
                    "timeout_s": 2, "expect": {"vendor": "Contoso"},
                    "options": {"scheme": "http", "auth": "basic", "system_id": "1", "manager_id": "1",
                                "chassis_id": "1"},
                },
            },
        }  # fmt: skip
        path = tmp_path / "rack.yaml"
        path.write_text(yaml.safe_dump(rack))
        yield path


def test_probe_table_escapes_device_text(rack_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probe_main(["--rack", str(rack_file)])
    out = capsys.readouterr().out
    no_unsafe_characters(out)
    assert "\x07" not in out and "escaping-secret" not in out
    row = next(line for line in out.splitlines() if line.startswith("bmc1 "))
    assert "Contoso\\x1b[2J\\x1b[H\\r\\nPASS \\u202eevil" in row and "M1\\nforged line" in row
    assert not any(line.startswith(("PASS", "forged")) for line in out.splitlines())


def test_probe_json_escapes_device_text_and_keeps_it(rack_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probe_main(["--rack", str(rack_file), "--json"])
    out = capsys.readouterr().out
    no_unsafe_characters(out)
    assert "\x07" not in out and "\n" not in "".join(line for line in out.splitlines())
    (device,) = json.loads(out)
    assert device["identity"]["vendor"] == HOSTILE  # the JSON still carries the device's exact text
