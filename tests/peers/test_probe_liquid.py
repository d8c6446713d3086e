"""``rackval probe`` and telemetry on the new device kinds: a CDU and a power shelf (DMTF mockups)
say what answered and what they lack, and an air-cooled BMC says its coolant readings are "not
available" while its other readings answer; the telemetry channels are those the device has."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rackval.drivers.bmc.redfish import RedfishBmc
from rackval.drivers.config import Credentials, DeviceConfig, Secret
from rackval.drivers.cooling.redfish_cdu import RedfishCdu
from rackval.drivers.power_shelf.redfish_shelf import RedfishPowerShelf
from rackval.harness.probe import ANSWERED, NOT_AVAILABLE, DeviceProbe, probe_driver
from rackval.harness.readers import channels_of, readings_text
from tests.support.static_http import StaticRedfishServer

MOCKUPS = Path(__file__).resolve().parents[1] / "data" / "redfish" / "mockups"


@pytest.fixture
def serve() -> Iterator[list[StaticRedfishServer]]:
    servers: list[StaticRedfishServer] = []
    yield servers
    for server in servers:
        server.stop()


def _driver(serve: list[StaticRedfishServer], cls: type, mockup: str, kind: str) -> object:
    server = StaticRedfishServer(MOCKUPS / mockup)
    serve.append(server)
    return cls(
        DeviceConfig(
            name=f"{kind}-1", kind=kind, driver="x", host=server.host, port=server.port,
            credentials=Credentials(username="admin", password=Secret("mockup-pw")),
            options={"scheme": "http"}, timeout_s=5.0,
        )
    )  # fmt: skip


def _probe(driver: object, kind: str) -> DeviceProbe:
    return probe_driver(driver, DeviceProbe(f"{kind}-1", kind, "x", "127.0.0.1"))


def test_a_cdu_probe_says_what_answered(serve: list[StaticRedfishServer]) -> None:
    probe = _probe(_driver(serve, RedfishCdu, "public-cooling-unit", "cdu"), "cdu")
    steps = ("identify", "cooling_mode", "pumps", "coolant_loops", "leaks")
    assert [probe.steps[s] for s in steps] == [ANSWERED] * len(steps)
    assert probe.errors == []
    text = readings_text(probe.readings, probe.not_available)
    assert "mode Enabled" in text and "pumps 1/2 running (1 38 %, 2 0 %)" in text
    assert "primary 30.0 C->40.0 C 42.0 L/min" in text and "leak detectors 2: dry" in text


def test_a_power_shelf_probe_says_batteries_are_not_available(serve: list[StaticRedfishServer]) -> None:
    probe = _probe(_driver(serve, RedfishPowerShelf, "public-power-shelf", "power_shelf"), "power_shelf")
    assert [probe.steps[s] for s in ("power", "feeds", "rectifiers", "dc_output")] == [ANSWERED] * 4
    assert probe.steps["batteries"] == NOT_AVAILABLE and probe.errors == []
    text = readings_text(probe.readings, probe.not_available)
    assert "DC 48.45 V 816.5 W" in text and "batteries: not available on this device" in text
    assert "rectifiers 1/6 ok" in text  # one PSU enabled and OK, one absent bay and four others in the mockup


def test_an_air_cooled_bmc_has_no_coolant_readings_but_the_rest(serve: list[StaticRedfishServer]) -> None:
    probe = _probe(_driver(serve, RedfishBmc, "public-rackmount1", "bmc"), "bmc")
    assert [probe.steps[s] for s in ("coolant", "node_pumps", "leaks")] == [NOT_AVAILABLE] * 3
    assert probe.steps["temperatures"] == ANSWERED
    text = readings_text(probe.readings, probe.not_available)
    assert "coolant: not available on this device" in text and "leaks: not available on this device" in text


def test_telemetry_channels_are_what_the_device_has(serve: list[StaticRedfishServer]) -> None:
    cdu = _driver(serve, RedfishCdu, "public-cooling-unit", "cdu")
    names = {c.name for c in channels_of(cdu, "cdu-1")}
    assert {"cdu-1/primary/supply_temp_c", "cdu-1/secondary/flow_lpm", "cdu-1/pump_1/speed_pct",
            "cdu-1/leak_moisture/dry"} <= names  # fmt: skip
    values = {}
    for channel in channels_of(cdu, "cdu-1"):
        values |= channel.read(cdu)
    assert values["cdu-1/secondary/return_temp_c"] == 48 and values["cdu-1/leak_overflow/dry"] == 1.0
    shelf = _driver(serve, RedfishPowerShelf, "public-power-shelf", "power_shelf")
    shelf_names = {c.name for c in channels_of(shelf, "shelf-1")}
    assert {"shelf-1/power_w", "shelf-1/feed_ac1/power_w", "shelf-1/rectifier_bay1/output_power_w",
            "shelf-1/dc/voltage_v"} <= shelf_names  # fmt: skip
    assert not [n for n in shelf_names if "/battery_" in n]  # no batteries: no channels, never 0
    assert "shelf-1/rectifier_bay2/output_power_w" not in shelf_names  # an absent bay reports nothing
    bmc = _driver(serve, RedfishBmc, "public-rackmount1", "bmc")
    assert not [c.name for c in channels_of(bmc, "bmc-1") if "coolant" in c.name or "leak" in c.name]
