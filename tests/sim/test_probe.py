"""``rackval probe`` against the simulated rack (run in its own process, stopped by PID).

A healthy rack: every device answers, says what the rack file expects and gives plausible
readings, in an aligned table or one JSON document. A rack file where one BMC points at a
closed port and one PDU has the wrong community: those two give no answer (every reading still
attempted, each naming device and address), every other device still reports, exit 1. A broken
rack file: exit 2 naming file:line. With fake drivers: "not available" is an answer, not an
error; an error the device answered is not "no answer"; outlet power totals say how many
outlets are metered.
"""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rackval.core.errors import DeviceError, DeviceTimeout
from rackval.drivers.capabilities import AnalyzerReading, GpuTelemetry, Identity, OutletReading
from rackval.harness.probe import DeviceProbe, add_parser, main, probe_driver, scrub
from rackval.harness.simproc import SimProcess


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    proc = SimProcess(tmp_path_factory.mktemp("probe-sim"), nodes=4)
    try:
        yield proc
    finally:
        proc.stop()
        assert proc.proc.returncode is not None


def _secret_values(sim: SimProcess) -> list[str]:
    return [p.read_text().strip() for p in (sim.state_dir / "secrets").iterdir()]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _devices(path: Path) -> dict[str, dict[str, Any]]:
    return yaml.safe_load(path.read_text())["devices"]


def _of_kind(path: Path, kind: str) -> list[str]:
    return [name for name, d in _devices(path).items() if d["kind"] == kind]


@pytest.fixture(scope="module")
def broken_rack(sim: SimProcess) -> tuple[Path, str, str, int]:
    """The second BMC -> a port nobody listens on; the first PDU -> a wrong community file."""
    rack = yaml.safe_load(sim.rack_file.read_text())
    pdu, bmc = _of_kind(sim.rack_file, "pdu")[0], _of_kind(sim.rack_file, "bmc")[1]
    port = _closed_port()
    rack["devices"][bmc]["port"] = port
    (sim.state_dir / "secrets" / "wrong-community").write_text("not-the-community\n")
    rack["credentials"]["pdu-wrong"] = {"snmp_version": "2c", "community": {"file": "secrets/wrong-community"}}
    rack["devices"][pdu]["credentials"] = "pdu-wrong"
    rack["devices"][pdu]["options"] = {**rack["devices"][pdu].get("options", {}), "retries": 0}  # silence: 1 try
    path = sim.state_dir / "broken.yaml"
    path.write_text(yaml.safe_dump(rack, sort_keys=False))
    return path, pdu, bmc, port


def _check_plausible(kind: str, readings: dict[str, Any]) -> None:
    """One reading per capability of the sim's drivers, each physically plausible."""
    if kind == "pdu":
        assert readings["power"]["w"] > 0
        assert readings["outlets"]["count"] >= 4 and readings["outlets"]["total_w"] > 0
    elif kind == "switch":
        assert 0 < readings["ports"]["up"] <= readings["ports"]["total"]
        assert readings["lldp"]["neighbors"] >= 1
    elif kind == "analyzer":
        a = readings["analyzer"]
        assert 90 < a["v"] < 500 and a["a"] > 0 and a["w"] > 0
    elif kind == "bmc":
        assert readings["power"]["w"] > 0
        assert readings["power_state"]["state"] == "On"
        assert 10 < readings["temperatures"]["max_c"] < 100
    elif kind == "node":
        assert readings["gpus"]["count"] >= 1
    else:  # pragma: no cover - a new kind must get its own check here
        pytest.fail(f"no plausibility check for kind {kind!r}")


def test_healthy_rack_every_device_answers_matches_and_reads(sim: SimProcess, capsys) -> None:
    code, out, err = _run(capsys, "--rack", str(sim.rack_file), "--json")
    assert code == 0, out + err
    devices = json.loads(out)  # stdout is one JSON document and nothing else
    expected = _devices(sim.rack_file)
    assert [d["device"] for d in devices] == list(expected)
    assert {d["kind"] for d in devices} >= {"pdu", "switch", "analyzer", "bmc"}
    for d in devices:
        assert d["answered"] and d["ok"] and d["errors"] == [], d
        assert d["identity_match"] is True, d
        assert d["identity"] == expected[d["device"]]["expect"]
        assert d["address"] == f"127.0.0.1:{expected[d['device']]['port']}"
        assert 0 < d["elapsed_s"] < 10
        _check_plausible(d["kind"], d["readings"])
    assert not any(s in out for s in _secret_values(sim))


def test_table_is_aligned_and_prints_no_secret(sim: SimProcess, capsys) -> None:
    code, out, err = _run(capsys, "--rack", str(sim.rack_file))
    assert code == 0, out + err
    lines = out.splitlines()
    names = list(_devices(sim.rack_file))
    header = next(i for i, line in enumerate(lines) if line.startswith("DEVICE "))
    rows = lines[header + 1 : header + 1 + len(names)]
    assert [r.split()[0] for r in rows] == names
    for column in ("STATUS", "TIME", "VENDOR", "EXPECT", "READINGS"):
        col = lines[header].index(column)
        assert all(r[col - 2 : col] == "  " and r[col] != " " for r in rows), (column, rows)
    assert all(" answered " in r and " match " in r for r in rows)
    assert f"{len(names)} devices, {len(names)} answered, 0 with errors" in lines[0]
    assert not any(s in out for s in _secret_values(sim))


def test_dead_bmc_and_wrong_community_fail_alone(sim: SimProcess, broken_rack, capsys) -> None:
    path, pdu, bmc, dead_port = broken_rack
    code, out, err = _run(capsys, "--rack", str(path), "--json", "--timeout", "1")
    assert code == 1, out + err
    devices = {d["device"]: d for d in json.loads(out)}
    assert list(devices) == list(_devices(path))
    bad_pdu = devices[pdu]
    assert not bad_pdu["answered"] and bad_pdu["identity"] is None and bad_pdu["status"] == "no_answer"
    assert bad_pdu["errors"][0]["kind"] == "DeviceTimeout"
    assert {e["answer"] for e in bad_pdu["errors"]} == {"no_answer"}
    assert bad_pdu["errors"][0]["message"].startswith(f"{pdu} (127.0.0.1:{_devices(path)[pdu]['port']}): ")
    assert "community" in bad_pdu["errors"][0]["message"]
    # --timeout 1 applied, not the rack file's 5 s: identify and both readings, one second each
    assert set(bad_pdu["steps"]) == {"identify", "power", "outlets"} and bad_pdu["elapsed_s"] < 5
    dead = devices[bmc]
    assert not dead["answered"] and dead["errors"]
    assert dead["errors"][0]["message"].startswith(f"{bmc} (127.0.0.1:{dead_port}): ")
    assert "refused" in dead["errors"][0]["message"].lower()
    # every reading attempted all the same (a refused connection costs nothing), each no answer
    # (the Redfish BMC also reads a liquid-cooled node's coolant, pumps and leak detectors)
    readings = ["identify", "power", "power_state", "temperatures", "coolant", "node_pumps", "leaks"]
    assert dead["steps"] == dict.fromkeys(readings, "no_answer")
    assert dead["status"] == "no_answer" and dead["readings"] == {}
    for name, d in devices.items():
        if name not in (pdu, bmc):
            assert d["ok"] and d["identity_match"] is True, d
            _check_plausible(d["kind"], d["readings"])
    assert not any(s in out for s in _secret_values(sim))


def test_dead_devices_in_table_name_device_and_address(sim: SimProcess, broken_rack, capsys) -> None:
    path, pdu, bmc, dead_port = broken_rack
    names = list(_devices(path))
    code, out, _ = _run(capsys, "--rack", str(path), "--timeout", "1")
    assert code == 1
    assert f"{len(names)} devices, {len(names) - 2} answered, 2 with errors" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.split(" ", 1)[0] in names}
    assert set(rows) == set(names)
    assert "NO ANSWER" in rows[pdu] and "NO ANSWER" in rows[bmc]
    assert all(" answered " in row for name, row in rows.items() if name not in (pdu, bmc))
    errors = out.split("\nerrors:\n", 1)[1]
    assert f"[no answer] {bmc} (127.0.0.1:{dead_port}): " in errors
    assert f"{pdu} (127.0.0.1:" in errors


def test_bad_rack_file_exits_2_naming_file_and_line(sim: SimProcess, tmp_path: Path, capsys) -> None:
    text = sim.rack_file.read_text().replace("kind: analyzer", "kind: analyser", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "kind: analyser" in t)
    analyzer = _of_kind(sim.rack_file, "analyzer")[0]
    code, out, err = _run(capsys, "--rack", str(bad))
    assert code == 2
    assert out == ""
    assert f"{bad}:{line}: devices.{analyzer}.kind" in err


def test_add_parser_registers_probe_with_a_handler(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="rackval")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["probe", "--rack", str(tmp_path / "missing.yaml"), "--timeout", "2"])
    assert args.timeout == 2.0 and args.json is False
    assert args.func(args) == 2
    assert "missing.yaml" in capsys.readouterr().err


# ---- read-only, and errors from anything --------------------------------------------------------
class _EverythingDriver:
    """Implements every capability Protocol; destructive methods record that they were called."""

    name = "fake"

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail or {}

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if what in self.fail:
            raise self.fail[what]

    def identify(self) -> Identity:
        self._call("identify")
        return Identity("V", "M", "S", "F")

    def close(self) -> None:
        self._call("close")

    def power_watts(self) -> float:
        self._call("power_watts")
        return 12.5

    def outlets(self) -> list[OutletReading]:
        self._call("outlets")
        return [OutletReading(1, "a", True, 10.0, 0.1), OutletReading(2, "b", False, None, None)]

    def set_outlet(self, outlet: int, on: bool) -> None:
        self._call("set_outlet")

    def ports(self) -> list[Any]:
        self._call("ports")
        return []

    def lldp_neighbors(self) -> list[Any]:
        self._call("lldp_neighbors")
        return []

    def power_state(self) -> str:
        self._call("power_state")
        return "On"

    def temperatures(self) -> dict[str, float]:
        self._call("temperatures")
        return {"a": 30.0, "b": 41.5}

    def read(self) -> AnalyzerReading:
        self._call("read")
        return AnalyzerReading(230.0, 1.0, 230.0, 1.0)

    def gpus(self) -> list[GpuTelemetry]:
        self._call("gpus")
        return [GpuTelemetry(0, "u", 300.0, 700.0, 55.0, 1400.0, 90.0, 0, (), 0)]

    def start_load(self, level: float, duration_s: float | None = None) -> None:
        self._call("start_load")

    def stop_load(self) -> None:
        self._call("stop_load")

    def run_diag(self, level: int) -> Any:
        self._call("run_diag")

    def reset(self, reset_type: str) -> None:
        self._call("reset")

    def set_power_limit(self, watts: float | None) -> None:
        self._call("set_power_limit")


def test_probe_calls_only_readers_and_reads_every_capability() -> None:
    drv = _EverythingDriver()
    probe = probe_driver(drv, DeviceProbe("fake", "node", "x", "10.0.0.1:22", expect={"serial": "S"}))
    # an analyzer's power comes from read(): power_watts is not asked twice
    readers = {"identify", "outlets", "ports", "lldp_neighbors", "power_state", "temperatures", "read", "gpus"}
    assert set(drv.calls) == readers
    assert probe.ok and probe.identity_match is True
    assert probe.readings["outlets"] == {
        "count": 2, "on": 1, "metered": 1, "total_w": 10.0, "states": {"on": "1", "off": "2"},
    }  # fmt: skip
    assert probe.readings["temperatures"]["max_c"] == 41.5
    assert probe.readings["gpus"] == {"count": 1, "max_temp_c": 55.0}


def test_a_failing_reading_does_not_stop_the_others_and_raw_errors_are_named() -> None:
    drv = _EverythingDriver(fail={"ports": KeyError("Ethernet0"), "power_state": ValueError("bad")})
    probe = probe_driver(drv, DeviceProbe("fake", "node", "x", "10.0.0.1:22"))
    assert probe.answered and not probe.ok
    assert {e.step for e in probe.errors} == {"ports", "power_state"}
    assert probe.errors[0].message.startswith("fake (10.0.0.1:22): read ports: KeyError")
    assert {"lldp", "temperatures", "analyzer", "gpus"} <= set(probe.readings)


def test_timeout_on_identify_still_attempts_every_reading() -> None:
    drv = _EverythingDriver(fail={"identify": DeviceTimeout("fake", "10.0.0.1:22", "identify", "no answer")})
    probe = probe_driver(drv, DeviceProbe("fake", "node", "x", "10.0.0.1:22"))
    assert drv.calls[0] == "identify" and "outlets" in drv.calls and "gpus" in drv.calls
    assert probe.answered and probe.status == "answered_with_error"  # the readings did answer
    assert probe.errors[0].answer == "no_answer" and "outlets" in probe.readings


def test_secrets_are_scrubbed_even_from_a_leaky_error() -> None:
    leak = DeviceError("fake", "10.0.0.1:22", "login", "server said: password hunter2 rejected")
    assert scrub(str(leak), ["hunter2"]) == "fake (10.0.0.1:22): login: server said: password *** rejected"
