"""Gated actions on the rack's facility equipment: a CDU pump stopped, a power-shelf rectifier off.

Why a module of its own: the catalogue in ``actions`` switches what every rack has (outlets,
hosts, caps, loads, feeds); a liquid-cooled, busbar-fed rack adds a coolant distribution unit and
power shelves, whose redundancy is tested by taking one pump or one rectifier away under load.
The recipe is the gate's (``GateCore``): refuse (rack not allowed, device protected), check the
capability (``PumpControl``, ``ShelfControl``), read the state found (``CoolingUnit.pumps()``,
``PowerShelf.rectifiers()``), record, act; the undo re-reads and restores only what differs, so a
pump found stopped stays stopped.
"""

from __future__ import annotations

from rackval.core.errors import DeviceError
from rackval.drivers.capabilities import CoolingUnit, PowerShelf, PumpControl, ShelfControl
from rackval.harness.safety.gate import GateCore

PUMP_OFF_STATES = frozenset({"Disabled", "StandbyOffline"})  # Status.State of a pump commanded off
RECTIFIER_OFF_STATES = frozenset({"Disabled", "StandbyOffline"})  # ... of a rectifier switched off


class EquipmentActions(GateCore):
    """Pump and rectifier actions (mixed into ``SafetyGate``); each returns its action id."""

    def _pump_on(self, cdu: str, pump: str, operation: str) -> bool:
        drv = self._driver_with(cdu, CoolingUnit, operation)
        for p in drv.pumps():
            if p.name == pump:
                return p.state not in PUMP_OFF_STATES
        raise DeviceError(cdu, self._address(cdu), operation, f"the CDU reports no pump {pump!r}")

    def pump(self, cdu: str, pump: str, on: bool) -> int:
        """Start or stop one pump of ``cdu``; the undo returns it to the state found."""
        self._spec(cdu, "cdu")
        verb = "start" if on else "stop"
        operation = f"{verb} pump {pump}"
        self._refuse_if(cdu, operation, self._node_reasons(cdu))
        drv = self._driver_with(cdu, PumpControl, operation)
        found = self._pump_on(cdu, pump, f"read pump {pump} before {verb}ping it")
        was = "running" if found else "stopped"

        def restore() -> str:
            if self._pump_on(cdu, pump, f"read pump {pump} to undo") == found:
                return f"pump {pump} is {was}, as found"
            self.rack.driver(cdu).set_pump(pump, found)
            return f"pump {pump} {'started' if found else 'stopped'} again ({was} as found)"

        return self._perform(
            cdu, operation, f"{'start' if found else 'stop'} pump {pump} again ({was} as found)",
            {"pump": pump, "on": on, "found_on": found}, lambda: drv.set_pump(pump, on), restore,
        )  # fmt: skip

    def _rectifier_on(self, shelf: str, rectifier: str, operation: str) -> bool:
        drv = self._driver_with(shelf, PowerShelf, operation)
        for r in drv.rectifiers():
            if r.name == rectifier:
                return r.state not in RECTIFIER_OFF_STATES
        raise DeviceError(shelf, self._address(shelf), operation, f"the shelf reports no rectifier {rectifier!r}")

    def rectifier(self, shelf: str, rectifier: str, on: bool) -> int:
        """Switch one rectifier of power shelf ``shelf`` on or off; the undo returns it to the state found."""
        self._spec(shelf, "power_shelf")
        verb = "on" if on else "off"
        operation = f"switch rectifier {rectifier} {verb}"
        self._refuse_if(shelf, operation, self._node_reasons(shelf))
        drv = self._driver_with(shelf, ShelfControl, operation)
        found = self._rectifier_on(shelf, rectifier, f"read rectifier {rectifier} before switching it {verb}")
        was = "on" if found else "off"

        def restore() -> str:
            if self._rectifier_on(shelf, rectifier, f"read rectifier {rectifier} to undo") == found:
                return f"rectifier {rectifier} is {was}, as found"
            self.rack.driver(shelf).set_rectifier(rectifier, found)
            return f"rectifier {rectifier} switched back {was}"

        return self._perform(
            shelf, operation, f"switch rectifier {rectifier} back {was} (as found)",
            {"rectifier": rectifier, "on": on, "found_on": found}, lambda: drv.set_rectifier(rectifier, on), restore,
        )  # fmt: skip
