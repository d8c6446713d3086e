"""The catalogue of destructive actions: outlets, host power, power cap, GPU load and feed drops
(pumps, rectifiers and one shelf feed: ``rackval.harness.safety.equipment``).

Each action follows the same recipe on top of ``GateCore`` (``rackval.harness.safety.gate``):
refuse (rack not allowed, something protected), check the driver has the capability, **measure
first** the state it finds (outlet on/off, host PowerState, power limit, feed up, ...) so that its
undo returns the rack to what it was, not to a default ("outlet found off stays off"), then hand
the action and its undo to ``_perform``. An undo re-reads the device and restores only what
differs from the found state, so an action interrupted half-way, or undone twice, is harmless.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from rackval.core.errors import ConfigError, DeviceDown, DeviceError
from rackval.drivers.capabilities import GpuNode, HostReset, OutletSwitch, PowerLimit, PowerShelf, ShelfControl
from rackval.harness.safety.equipment import EquipmentActions
from rackval.harness.safety.gate import NOT_ALLOWED, DestructiveActionRefused

log = logging.getLogger(__name__)

POWER_LIMIT_TOLERANCE_W = 0.5  # a read-back limit within this of the found one counts as restored
_ON_STATES = frozenset({"On", "PoweringOn"})  # Redfish PowerState values that mean "host is on"
_OFF_STATES = frozenset({"Off", "PoweringOff"})


class SafetyGate(EquipmentActions):
    """The one door for destructive actions on a rack (see ``rackval.harness.safety``).

    Built as ``GateCore`` is (rack, inventory, store, run id, ``allow_destructive``, ...); each
    method below is one action and returns its action id in the results store (pumps,
    rectifiers and shelf feeds: ``rackval.harness.safety.equipment.EquipmentActions``).
    """

    # ---- outlets ------------------------------------------------------------------------------
    def _outlet_on(self, pdu: str, outlet: int, operation: str) -> bool:
        for reading in self.rack.driver(pdu).outlets():
            if reading.outlet == outlet:
                return bool(reading.on)
        raise DeviceError(pdu, self._address(pdu), operation, f"the PDU reports no outlet {outlet}")

    def outlet(self, pdu: str, outlet: int, on: bool) -> int:
        """Switch one PDU outlet; the undo returns it to the state found. Returns the action id."""
        self._spec(pdu, "pdu")
        verb = "on" if on else "off"
        operation = f"switch outlet {outlet} {verb}"
        self._refuse_if(pdu, operation, self._outlet_reasons(pdu, outlet), outlet)
        self._driver_with(pdu, OutletSwitch, operation)
        found = self._outlet_on(pdu, outlet, f"read outlet {outlet} before switching it {verb}")
        was = "on" if found else "off"
        undo_text = (
            f"switch outlet {outlet} back {was} (as found)" if found != on else f"keep outlet {outlet} {was} (as found)"
        )

        def restore() -> str:
            now = self._outlet_on(pdu, outlet, f"read outlet {outlet} to undo")
            if now == found:
                return f"outlet {outlet} is {was}, as found"
            self.rack.driver(pdu).set_outlet(outlet, found)
            return f"outlet {outlet} switched back {was}"

        return self._perform(
            pdu,
            operation,
            undo_text,
            {"outlet": outlet, "on": on, "found_on": found},
            lambda: self.rack.driver(pdu).set_outlet(outlet, on),
            restore,
        )

    # ---- host power ---------------------------------------------------------------------------
    def host_power(self, bmc: str, reset_type: str) -> int:
        """Reset / power the host behind ``bmc`` (Redfish ResetType: On, ForceOff, ForceRestart...).

        The undo brings the host back to the power state found (On -> ResetType On, Off ->
        ForceOff) if it differs then; it returns when the BMC accepted the request (hosts take
        seconds to a minute: poll ``power_state()`` where it matters).
        """
        self._spec(bmc, "bmc")
        operation = f"reset host ({reset_type})"
        self._refuse_if(bmc, operation, self._node_reasons(bmc))
        drv = self._driver_with(bmc, HostReset, operation)
        found_state = str(drv.power_state())
        if found_state not in _ON_STATES | _OFF_STATES:  # Paused, or a BMC's own word: no safe undo
            raise DeviceError(
                bmc, self._address(bmc), operation, f"host PowerState is {found_state!r}: cannot tell what to restore"
            )
        found_on = found_state in _ON_STATES
        want = "On" if found_on else "Off"

        def restore() -> str:
            now = str(self.rack.driver(bmc).power_state())
            if (now in _ON_STATES) == found_on:
                return f"host is {now}, as found ({found_state})"
            self.rack.driver(bmc).reset("On" if found_on else "ForceOff")
            return f"host was {now}; sent ResetType {'On' if found_on else 'ForceOff'} (found {found_state})"

        return self._perform(
            bmc,
            operation,
            f"power host back {want.lower()} (found {found_state})",
            {"reset_type": reset_type, "found_power_state": found_state},
            lambda: drv.reset(reset_type),
            restore,
        )

    # ---- power cap ----------------------------------------------------------------------------
    def power_cap(self, bmc: str, watts: float | None) -> int:
        """Set the chassis power limit (``None`` removes it); the undo restores the limit found."""
        self._spec(bmc, "bmc")
        operation = "remove power limit" if watts is None else f"set power limit to {watts:g} W"
        self._refuse_if(bmc, operation, self._node_reasons(bmc))
        drv = self._driver_with(bmc, PowerLimit, operation)
        found, _ = drv.power_limit()

        def describe(w: float | None) -> str:
            return "no limit" if w is None else f"{w:g} W"

        def same(a: float | None, b: float | None) -> bool:
            return (a is None and b is None) or (
                a is not None and b is not None and math.isclose(a, b, abs_tol=POWER_LIMIT_TOLERANCE_W)
            )

        def restore() -> str:
            now, _ = self.rack.driver(bmc).power_limit()
            if same(now, found):
                return f"power limit is {describe(now)}, as found"
            self.rack.driver(bmc).set_power_limit(found)
            return f"power limit {describe(now)} -> {describe(found)} (as found)"

        return self._perform(
            bmc,
            operation,
            f"restore power limit to {describe(found)} (as found)",
            {"watts": watts, "found_watts": found},
            lambda: drv.set_power_limit(watts),
            restore,
        )

    # ---- GPU load -----------------------------------------------------------------------------
    def gpu_load(self, node: str, level: float, duration_s: float | None = None) -> int:
        """Start the node's GPU load at ``level`` (0..1]; the undo stops it.

        The driver refuses to start a second load, so a load that succeeds found none running;
        ``stop_load`` is idempotent, so the undo is safe after a load that already ended.
        """
        self._spec(node, "node")
        if not (isinstance(level, int | float) and 0.0 < level <= 1.0):
            raise ValueError(f"load level must be in (0, 1], got {level!r}")
        operation = f"start GPU load at {level:.0%}" + ("" if duration_s is None else f" for {duration_s:g} s")
        self._refuse_if(node, operation, self._node_reasons(node))
        drv = self._driver_with(node, GpuNode, operation)

        def restore() -> str:
            self.rack.driver(node).stop_load()
            return "GPU load stopped (stop_load)"

        return self._perform(
            node,
            operation,
            "stop GPU load",
            {"level": level, "duration_s": duration_s},
            lambda: drv.start_load(level, duration_s),
            restore,
        )

    def gpu_load_all(self, nodes: Sequence[str], level: float, duration_s: float | None = None) -> None:
        """Start the GPU load on every node at once (a rack warms up together, not node by node).

        A refusal raises at once; loads that started are undone with everything else. Device
        errors are collected and raised together, naming every node that could not start (as one
        DeviceDown when every node was refused for the same known cause).
        """
        for node in nodes:  # refuse before anything starts
            self._refuse_if(node, f"start GPU load at {level:.0%}", self._node_reasons(node))

        def one(node: str) -> DeviceError | None:
            try:
                self.gpu_load(node, level, duration_s)
            except DestructiveActionRefused:
                raise
            except DeviceError as exc:
                return exc
            return None

        with ThreadPoolExecutor(max_workers=min(32, max(len(nodes), 1)), thread_name_prefix="load") as pool:
            errors = [e for e in pool.map(one, nodes) if e is not None]
        if errors:
            names = ", ".join(e.device for e in errors)
            downs = [e for e in errors if isinstance(e, DeviceDown)]
            if len(downs) == len(errors) and len({e.detail for e in downs}) == 1:  # one cause: say it once
                raise DeviceDown(names, "-", "start GPU load", downs[0].detail, downs[0].cause)
            raise DeviceError(names, "-", "start GPU load", "; ".join(str(e) for e in errors))

    # ---- feeds --------------------------------------------------------------------------------
    def feed_pdus(self, feed: str) -> list[str]:
        """The PDUs the rack file puts on ``feed`` (their ``feeds`` list names it)."""
        return [n for n, d in self.inventory.data.devices.items() if d.kind == "pdu" and feed in d.feeds]

    def feed_shelves(self, feed: str) -> list[str]:
        """The power shelves the rack file puts on ``feed`` (their ``feeds`` list names it)."""
        return [n for n, d in self.inventory.data.devices.items() if d.kind == "power_shelf" and feed in d.feeds]

    def feed(self, feed: str, up: bool) -> int:
        """Drop (``up=False``) or restore a whole power feed; the undo returns it to the state found.

        Refused as a whole if any PDU on the feed is protected, or any of their outlets is
        protected or powers a protected device, or a power shelf on it is protected. With a
        ``feed_switcher`` (simulated rack) the feed itself is switched; otherwise every outlet of
        the feed's PDUs is switched, and every power shelf on it opens that feed's input breaker
        (``ShelfControl``; the shelf's n-th input is the n-th feed of its rack file ``feeds``); the
        undo restores each outlet and breaker to the state found.
        """
        pdus, shelves = self.feed_pdus(feed), self.feed_shelves(feed)
        operation = f"{'restore' if up else 'drop'} feed {feed}"
        if not pdus and not shelves:
            raise ConfigError(f"rack {self.inventory.path}: no PDU or power shelf lists feed {feed!r} under 'feeds'")
        reasons: list[str] = [f"device {s} is protected in the rack file" for s in shelves
                              if self.inventory.data.devices[s].protected]  # fmt: skip
        for pdu in pdus:
            spec = self.inventory.data.devices[pdu]
            if spec.protected:
                reasons.append(f"device {pdu} is protected in the rack file")
            outlets = set(spec.protected_outlets) | {
                link.outlet for n in self.inventory.data.nodes.values() for link in n.psus.values() if link.pdu == pdu
            }
            for outlet in sorted(outlets):
                reasons += [r for r in self._outlet_reasons(pdu, outlet) if not r.startswith(f"device {pdu} ")]
        device = f"feed {feed}"
        address = ", ".join(pdus + shelves)
        if not self.allow_destructive:
            reasons = [NOT_ALLOWED, *reasons]
        if reasons:
            exc = DestructiveActionRefused(device, address, operation, reasons)
            log.warning("%s", exc)
            raise exc
        switcher = self._feed_switcher
        if switcher is not None:
            found = bool(switcher.feed_up(feed))
            was = "up" if found else "down"

            def restore_feed() -> str:
                now = bool(switcher.feed_up(feed))
                if now == found:
                    return f"feed {feed} is {was}, as found"
                switcher.set_feed(feed, found)
                return f"feed {feed} brought back {was}"

            return self._perform(
                device,
                operation,
                f"bring feed {feed} back {was} (as found)",
                {"feed": feed, "up": up, "found_up": found, "pdus": pdus, "shelves": shelves},
                lambda: switcher.set_feed(feed, up),
                restore_feed,
            )
        if shelves:
            if pdus:
                raise DeviceError(device, address, operation, "a feed with both PDUs and power shelves needs a feed "
                                  "switcher (a breaker controller) to drop it at once")  # fmt: skip
            return self._shelf_breakers(feed, up, shelves, operation)
        drivers = {pdu: self._driver_with(pdu, OutletSwitch, operation) for pdu in pdus}
        found_outlets = {pdu: {r.outlet: bool(r.on) for r in drv.outlets()} for pdu, drv in drivers.items()}

        def act() -> None:
            for pdu, states in found_outlets.items():
                for outlet, on in states.items():
                    if on != up:
                        self.rack.driver(pdu).set_outlet(outlet, up)

        def restore_outlets() -> str:
            done, errors = [], []
            for pdu, states in found_outlets.items():
                try:
                    now = {r.outlet: bool(r.on) for r in self.rack.driver(pdu).outlets()}
                    for outlet, on in states.items():
                        if now.get(outlet) != on:
                            self.rack.driver(pdu).set_outlet(outlet, on)
                            done.append(f"{pdu} outlet {outlet} {'on' if on else 'off'}")
                except DeviceError as exc:
                    errors.append(str(exc))
            if errors:
                raise DeviceError(device, address, f"restore feed {feed} outlets", "; ".join(errors))
            return "switched back: " + ", ".join(done) if done else f"every outlet of feed {feed} is as found"

        return self._perform(
            device,
            operation,
            f"switch every outlet of {', '.join(pdus)} back to its found state",
            {
                "feed": feed,
                "up": up,
                "found_outlets": {p: {str(k): v for k, v in s.items()} for p, s in found_outlets.items()},
            },
            act,
            restore_outlets,
        )

    def _shelf_breakers(self, feed: str, up: bool, shelves: list[str], operation: str) -> int:
        """Drop or restore ``feed`` at the input breaker of every power shelf on it: one
        ``shelf_feed`` action each (its own undo), the shelf's n-th input being the n-th feed of its
        rack file ``feeds``. Every shelf is checked before the first breaker opens. Returns the last
        action's id."""
        inputs = {}
        for shelf in shelves:
            self._driver_with(shelf, ShelfControl, operation)
            readings = self._driver_with(shelf, PowerShelf, operation).feeds()
            index = list(self.inventory.data.devices[shelf].feeds).index(feed)
            if index >= len(readings):
                why = f"the shelf reports {len(readings)} input(s); feed {feed} is its input {index + 1}"
                raise DeviceError(shelf, self._address(shelf), operation, why)
            inputs[shelf] = readings[index].name
        return [self.shelf_feed(shelf, name, up) for shelf, name in inputs.items()][-1]
