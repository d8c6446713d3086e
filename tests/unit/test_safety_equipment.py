"""The safety gate's pump, rectifier and shelf-feed actions: refused before anything is touched,
measured first, recorded, undone to the state found (a pump found stopped stays stopped), and
refused when the device does not say what state to restore.

The CDU and shelf are stateful fakes claiming the real capability Protocols (the drivers' own
tests are against DMTF mockups and pymodbus); the rack file, the gate and the store are real.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rackval.core.errors import DeviceError
from rackval.drivers.capabilities import (
    BatteryState,
    CoolantReading,
    CoolingUnit,
    DcOutput,
    Device,
    FeedReading,
    FilterState,
    Identity,
    PowerShelf,
    PumpControl,
    PumpState,
    RectifierState,
    RedundancyGroup,
    ReservoirState,
    ShelfControl,
)
from rackval.harness.inventory import load_inventory
from rackval.harness.safety import DestructiveActionRefused, SafetyGate
from rackval.harness.store import RunInfo, open_store

RACK = """\
rack:
  name: liquid-bench
  allow_destructive: {allow}
devices:
  cdu-1:
    kind: cdu
    driver: modbus-cdu
    host: 10.0.3.1
    protected: {protected}
    options: {{register_map: cdu.yaml}}
  shelf-a:
    kind: power_shelf
    driver: modbus-power-shelf
    host: 10.0.3.2
    options: {{register_map: shelf.yaml}}
"""


class FakeCdu(Device, CoolingUnit, PumpControl):
    name = "cdu-1"

    def __init__(self) -> None:
        self.state = {"P1": PumpState("P1", "Enabled", "OK", 60.0, 60.0, "Automatic"),
                      "P2": PumpState("P2", "Disabled", "OK", 0.0, 60.0, "Automatic")}  # fmt: skip
        self.sent: list[tuple[Any, ...]] = []

    def identify(self) -> Identity:
        return Identity("t", "cdu", "1", "1")

    def close(self) -> None:
        pass

    def cooling_mode(self) -> str:
        return "Enabled"

    def pumps(self) -> list[PumpState]:
        return list(self.state.values())

    def pump_redundancy(self) -> RedundancyGroup:
        return RedundancyGroup("NPlusM", 1, 2, ("P1", "P2"))

    def filters(self) -> list[FilterState]:
        return []

    def reservoirs(self) -> list[ReservoirState]:
        return []

    def loops(self) -> list[CoolantReading]:
        return []

    def set_pump(self, pump: str, on: bool) -> None:
        self.sent.append(("set_pump", pump, on))
        p = self.state[pump]
        self.state[pump] = replace(p, state="Enabled" if on else "Disabled", speed_pct=p.setpoint_pct if on else 0.0)

    def set_pump_speed(self, pump: str, percent: float) -> None:
        self.sent.append(("set_pump_speed", pump, percent))
        self.state[pump] = replace(self.state[pump], setpoint_pct=percent, control_mode="Manual")


class FakeShelf(Device, PowerShelf, ShelfControl):
    name = "shelf-a"

    def __init__(self) -> None:
        self.rect = {"R1": True, "R2": True}
        self.feed = {"A": True, "B": None}
        self.sent: list[tuple[Any, ...]] = []

    def identify(self) -> Identity:
        return Identity("t", "shelf", "1", "1")

    def close(self) -> None:
        pass

    def feeds(self) -> list[FeedReading]:
        return [FeedReading(n, "", "", 230.0, 1.0, 230.0, on=on) for n, on in self.feed.items()]

    def rectifiers(self) -> list[RectifierState]:
        return [RectifierState(n, "Enabled" if on else "Disabled", "OK", True, None, None, None)
                for n, on in self.rect.items()]  # fmt: skip

    def rectifier_redundancy(self) -> RedundancyGroup:
        return RedundancyGroup("NPlusM", 1, 2, ("R1", "R2"))

    def dc_output(self) -> DcOutput:
        return DcOutput("dc", 54.0, 10.0, 540.0)

    def batteries(self) -> list[BatteryState]:
        return []

    def set_rectifier(self, rectifier: str, on: bool) -> None:
        self.sent.append(("set_rectifier", rectifier, on))
        self.rect[rectifier] = on

    def set_feed(self, feed: str, on: bool) -> None:
        self.sent.append(("set_feed", feed, on))
        self.feed[feed] = on


class FakeRack:
    def __init__(self) -> None:
        self.drivers: dict[str, Any] = {"cdu-1": FakeCdu(), "shelf-a": FakeShelf()}
        self.requested: list[str] = []

    def driver(self, name: str) -> Any:
        self.requested.append(name)
        return self.drivers[name]


def _gate(tmp_path: Path, *, allow: bool = True, protected: bool = False) -> tuple[SafetyGate, FakeRack]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "rack.yaml"
    path.write_text(RACK.format(allow=str(allow).lower(), protected=str(protected).lower()))
    inventory = load_inventory(path)
    store = open_store(tmp_path / "results.sqlite")
    store.start_run(RunInfo(run_id="r1", started_at=time.time(), rack_name="liquid-bench"))
    rack = FakeRack()
    return SafetyGate(rack, inventory, store, "r1", allow_destructive=allow), rack


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[tuple[SafetyGate, FakeRack]]:
    gate, rack = _gate(tmp_path)
    yield gate, rack
    gate.store.close()


def test_refused_before_anything_is_touched(tmp_path: Path) -> None:
    for allow, protected, reason in ((False, False, "not allowed"), (True, True, "cdu-1 is protected")):
        gate, rack = _gate(tmp_path / reason.replace(" ", "-"), allow=allow, protected=protected)
        with pytest.raises(DestructiveActionRefused, match=reason):
            gate.pump("cdu-1", "P1", False)
        with pytest.raises(DestructiveActionRefused, match=reason):
            gate.pump_speed("cdu-1", "P1", 80.0)
        assert rack.requested == [] and gate.actions() == []
        gate.store.close()


def test_a_pump_stopped_is_restarted_and_one_found_stopped_stays_stopped(bench: tuple[SafetyGate, FakeRack]) -> None:
    gate, rack = bench
    cdu = rack.drivers["cdu-1"]
    gate.pump("cdu-1", "P1", False)
    gate.pump("cdu-1", "P2", False)  # found stopped already
    assert cdu.state["P1"].running is False
    summary = gate.undo_all()
    assert summary.ok and cdu.state["P1"].running is True and cdu.state["P2"].running is False
    messages = [r.message for r in summary.results]
    assert messages == ["pump P2 is stopped, as found", "pump P1 started again (found running)"]
    assert [a.undo_outcome for a in gate.actions()] == ["done", "done"]


def test_a_pump_speed_is_restored_to_the_set_point_found(bench: tuple[SafetyGate, FakeRack]) -> None:
    gate, rack = bench
    cdu = rack.drivers["cdu-1"]
    gate.pump_speed("cdu-1", "P1", 85.0)
    assert cdu.state["P1"].setpoint_pct == 85.0
    gate.undo_all()
    assert cdu.state["P1"].setpoint_pct == 60.0
    assert gate.actions()[0].detail["found_setpoint_pct"] == 60.0


def test_a_state_the_device_does_not_report_is_refused_unsent(bench: tuple[SafetyGate, FakeRack]) -> None:
    gate, rack = bench
    cdu, shelf = rack.drivers["cdu-1"], rack.drivers["shelf-a"]
    cdu.state["P1"] = PumpState("P1", "", "", None, None)
    with pytest.raises(DeviceError, match="pump P1 reports neither a state nor a speed"):
        gate.pump("cdu-1", "P1", False)
    with pytest.raises(DeviceError, match="pump P1 reports no speed set point to restore"):
        gate.pump_speed("cdu-1", "P1", 50.0)
    with pytest.raises(DeviceError, match="feed B does not say if it is on"):
        gate.shelf_feed("shelf-a", "B", False)
    with pytest.raises(DeviceError, match="the CDU reports no pump 'P9'"):
        gate.pump("cdu-1", "P9", False)
    assert cdu.sent == [] and shelf.sent == [] and gate.actions() == []


def test_rectifier_and_feed_off_then_back(bench: tuple[SafetyGate, FakeRack]) -> None:
    gate, rack = bench
    shelf = rack.drivers["shelf-a"]
    gate.rectifier("shelf-a", "R2", False)
    gate.shelf_feed("shelf-a", "A", False)
    assert shelf.rect["R2"] is False and shelf.feed["A"] is False
    assert gate.undo_all().ok
    assert shelf.rect["R2"] is True and shelf.feed["A"] is True
    assert shelf.sent == [("set_rectifier", "R2", False), ("set_feed", "A", False), ("set_feed", "A", True),
                          ("set_rectifier", "R2", True)]  # fmt: skip


def test_the_wrong_kind_of_device_is_a_config_error(bench: tuple[SafetyGate, FakeRack]) -> None:
    gate, _ = bench
    with pytest.raises(Exception, match="device 'shelf-a' is a power_shelf, not a cdu"):
        gate.pump("shelf-a", "P1", False)
