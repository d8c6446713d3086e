"""Destructive actions on liquid-cooling and busbar-power equipment: pumps, rectifiers, shelf feeds.

Split from ``rackval.harness.safety.actions`` (``SafetyGate`` inherits these), the same recipe on
``GateCore``: refuse (rack not allowed, device protected), check the driver has the capability
(``PumpControl``, ``ShelfControl``), **measure first** what it finds (the pump's state and speed
set point, the rectifier's state, whether the feed is energised), hand the action and its undo
to ``_perform``. An undo re-reads and restores only what differs from the found state. A state
the device does not report (a pump with no state and no speed, a feed that does not say
whether it is energised) leaves nothing to restore to: the action is refused, naming why,
before anything is sent.
"""

from __future__ import annotations

import math

from rackval.core.errors import DeviceError
from rackval.drivers.capabilities import CoolingUnit, PowerShelf, PumpControl, PumpState, ShelfControl
from rackval.harness.safety.gate import GateCore

SPEED_TOLERANCE_PCT = 0.5  # a read-back set point within this of the found one counts as restored


class EquipmentActions(GateCore):
    """Pump, rectifier and shelf-feed actions (``SafetyGate`` has them); each returns its action id."""

    def _pump(self, cdu: str, pump: str, operation: str) -> PumpState:
        drv = self._driver_with(cdu, CoolingUnit, operation)
        for found in drv.pumps():
            if found.name == pump:
                return found
        raise DeviceError(cdu, self._address(cdu), operation, f"the CDU reports no pump {pump!r}")

    def _pump_on(self, cdu: str, pump: str, operation: str) -> bool:
        running = self._pump(cdu, pump, operation).running
        if running is None:
            raise DeviceError(cdu, self._address(cdu), operation, f"pump {pump} reports neither a state nor a speed")
        return running

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
            return f"pump {pump} {'started' if found else 'stopped'} again (found {was})"

        return self._perform(
            cdu, operation, f"leave pump {pump} {was} (as found)", {"pump": pump, "on": on, "found_running": found},
            lambda: drv.set_pump(pump, on), restore,
        )  # fmt: skip

    def pump_speed(self, cdu: str, pump: str, percent: float) -> int:
        """Set one pump's speed set point; the undo restores the set point found (under manual
        control: a pump found in automatic control is left at that set point in manual)."""
        self._spec(cdu, "cdu")
        operation = f"set pump {pump} speed to {percent:g} %"
        self._refuse_if(cdu, operation, self._node_reasons(cdu))
        drv = self._driver_with(cdu, PumpControl, operation)
        state = self._pump(cdu, pump, f"read pump {pump} before setting its speed")
        found = state.setpoint_pct
        if found is None:
            raise DeviceError(cdu, self._address(cdu), operation, f"pump {pump} reports no speed set point to restore")

        def restore() -> str:
            now = self._pump(cdu, pump, f"read pump {pump} to undo").setpoint_pct
            if now is not None and math.isclose(now, found, abs_tol=SPEED_TOLERANCE_PCT):
                return f"pump {pump} set point is {now:g} %, as found"
            self.rack.driver(cdu).set_pump_speed(pump, found)
            return f"pump {pump} set point {now if now is None else f'{now:g}'} -> {found:g} % (as found)"

        return self._perform(
            cdu, operation, f"restore pump {pump} set point to {found:g} % (found {state.control_mode or 'mode ?'})",
            {"pump": pump, "percent": percent, "found_setpoint_pct": found, "found_mode": state.control_mode},
            lambda: drv.set_pump_speed(pump, percent), restore,
        )  # fmt: skip

    # ---- power shelves ----------------------------------------------------------------------------
    def _rectifier_on(self, shelf: str, rectifier: str, operation: str) -> bool:
        drv = self._driver_with(shelf, PowerShelf, operation)
        for found in drv.rectifiers():
            if found.name == rectifier:
                if not found.state:
                    raise DeviceError(shelf, self._address(shelf), operation, f"{rectifier} reports no state")
                return found.state == "Enabled"
        raise DeviceError(shelf, self._address(shelf), operation, f"the shelf reports no rectifier {rectifier!r}")

    def rectifier(self, shelf: str, rectifier: str, on: bool) -> int:
        """Switch one rectifier of ``shelf`` on or off; the undo returns it to the state found."""
        self._spec(shelf, "power_shelf")
        operation = f"switch rectifier {rectifier} {'on' if on else 'off'}"
        self._refuse_if(shelf, operation, self._node_reasons(shelf))
        drv = self._driver_with(shelf, ShelfControl, operation)
        found = self._rectifier_on(shelf, rectifier, f"read rectifier {rectifier} before switching it")
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

    def _feed_on(self, shelf: str, feed: str, operation: str) -> bool:
        drv = self._driver_with(shelf, PowerShelf, operation)
        for found in drv.feeds():
            if found.name == feed:
                if found.on is None:
                    raise DeviceError(shelf, self._address(shelf), operation, f"feed {feed} does not say if it is on")
                return found.on
        raise DeviceError(shelf, self._address(shelf), operation, f"the shelf reports no feed {feed!r}")

    def shelf_feed(self, shelf: str, feed: str, on: bool) -> int:
        """Open (off) or close (on) one input feed of ``shelf``; the undo returns it to the state found."""
        self._spec(shelf, "power_shelf")
        operation = f"switch shelf feed {feed} {'on' if on else 'off'}"
        self._refuse_if(shelf, operation, self._node_reasons(shelf))
        drv = self._driver_with(shelf, ShelfControl, operation)
        found = self._feed_on(shelf, feed, f"read feed {feed} before switching it")
        was = "on" if found else "off"

        def restore() -> str:
            if self._feed_on(shelf, feed, f"read feed {feed} to undo") == found:
                return f"feed {feed} is {was}, as found"
            self.rack.driver(shelf).set_feed(feed, found)
            return f"feed {feed} switched back {was}"

        return self._perform(
            shelf, operation, f"switch feed {feed} back {was} (as found)", {"feed": feed, "on": on, "found_on": found},
            lambda: drv.set_feed(feed, on), restore,
        )  # fmt: skip
