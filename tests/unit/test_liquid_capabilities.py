"""The liquid-cooling and power-shelf contract: Protocols found by the conformance checker, records
that say "not reported" as None (never 0), and isinstance telling a CDU from a node from a shelf."""

from __future__ import annotations

import dataclasses

from rackval.drivers import capabilities
from rackval.drivers.capabilities import (
    BatteryState,
    CoolantReading,
    CoolingUnit,
    DcOutput,
    Device,
    FeedReading,
    FilterState,
    Identity,
    LeakDetection,
    LeakDetectorState,
    LiquidCooledNode,
    PowerShelf,
    PumpControl,
    PumpState,
    RectifierState,
    RedundancyGroup,
    ReservoirState,
    ShelfControl,
)
from tests.unit.test_capabilities_conformance import CAPABILITIES, conformance_problems, protocol_methods

NEW = (CoolingUnit, PumpControl, LeakDetection, LiquidCooledNode, PowerShelf, ShelfControl)


class _Cdu(Device, CoolingUnit, PumpControl, LeakDetection):
    name = "cdu"

    def identify(self) -> Identity:
        return Identity("v", "m", "s", "f")

    def close(self) -> None:
        pass

    def cooling_mode(self) -> str:
        return "Enabled"

    def pumps(self) -> list[PumpState]:
        return [PumpState("1", "Enabled", "OK", 40.0)]

    def pump_redundancy(self) -> RedundancyGroup:
        return RedundancyGroup("NPlusM", 1, 2, ("1", "2"))

    def filters(self) -> list[FilterState]:
        return []

    def reservoirs(self) -> list[ReservoirState]:
        return []

    def loops(self) -> list[CoolantReading]:
        return []

    def set_pump(self, pump: str, on: bool) -> None:
        pass

    def set_pump_speed(self, pump: str, percent: float) -> None:
        pass

    def leak_detectors(self) -> list[LeakDetectorState]:
        return []


def test_the_new_protocols_are_capabilities_with_documented_methods() -> None:
    for protocol in NEW:
        assert protocol in CAPABILITIES, protocol
        assert protocol_methods(protocol)
        assert protocol.__name__ in capabilities.__all__


def test_a_conforming_cdu_passes_and_is_not_a_node_or_a_shelf() -> None:
    assert conformance_problems(_Cdu) == []
    cdu = _Cdu()
    assert isinstance(cdu, CoolingUnit) and isinstance(cdu, LeakDetection) and isinstance(cdu, PumpControl)
    assert not isinstance(cdu, LiquidCooledNode) and not isinstance(cdu, PowerShelf)


def test_a_drifted_pump_control_is_reported() -> None:
    class Drifted(_Cdu):
        def set_pump_speed(self, pump: str, speed: float) -> None:
            pass

    assert conformance_problems(Drifted) == [
        "Drifted.set_pump_speed (PumpControl): parameter 2 is 'speed', the Protocol's is 'percent'"
    ]


def test_unreported_fields_are_none_never_zero() -> None:
    pump = PumpState("2", "", "", None)
    assert pump.running is None  # no speed, no state: unknown, not stopped
    assert PumpState("2", "UnavailableOffline", "Critical", 0.0).running is False
    assert PumpState("1", "Enabled", "OK", 38.5).running is True
    assert PumpState("1", "Enabled", "", None).running is True
    assert LeakDetectorState("Moisture", "").dry is None
    assert LeakDetectorState("Moisture", "OK").dry is True
    assert LeakDetectorState("Tray3", "Critical").dry is False
    for record in (CoolantReading, FeedReading, RectifierState, DcOutput, BatteryState, ReservoirState, FilterState):
        optional = [f for f in dataclasses.fields(record) if "None" in str(f.type)]
        assert optional, record
        for field in optional:  # a field a device may lack has no numeric default
            assert field.default in (dataclasses.MISSING, None), (record, field.name)
