"""The safety layer: every destructive action on the rack goes through one gate, and is undone.

Switching an outlet, resetting a host, capping power, dropping a feed or loading GPUs changes a
prototype rack that other people may be using. ``SafetyGate`` is the only way plans do those
things, so that each one is

1. **refused before anything is touched** when the rack does not allow destructive actions
   (rack file ``rack.allow_destructive`` or ``--allow-destructive``), or when the device, the
   outlet or a device the outlet powers is marked ``protected`` in the rack file
   (``DestructiveActionRefused`` names device, outlet and every reason);
2. **measured first**: the state the gate *found* (outlet on/off, host PowerState, power
   limit, feed up, ...) is read and kept, so the undo returns the rack to what it was, not to a
   default ("outlet found off stays off");
3. **logged before it happens**: the action and its undo go to the results store
   (``record_action``), so a run killed half-way still shows what it changed and that the undo
   never ran (``pending``);
4. done; and
5. **undone** later, last action first, by ``undo_all()`` (session end, Ctrl-C) or at the end of
   a ``with gate.scoped():`` block (between steps of a plan).

Undo is built for being called from a teardown after anything went wrong: the undo is on the
stack *before* the action is sent, each undo re-reads the device and restores only what
differs from the found state (so an action interrupted half-way, or undone twice, is harmless),
one failing undo never stops the others (each outcome is recorded ``done`` / ``failed`` in the
store), and ``undo_all()`` is idempotent. SIGKILL or a power cut of the test station leaves
actions ``pending`` in the store; the report shows them, and the engineer restores by hand.

Threads: the gate may be used from fan-out threads; the stack is guarded by a lock, and
actions and undos themselves run outside it (each device's driver is used one call at a time
by the plan that owns it).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from rackval.core.errors import ConfigError, DeviceError
from rackval.harness.inventory import Inventory
from rackval.harness.store.records import ActionRecord

log = logging.getLogger(__name__)

NOT_ALLOWED = (
    "destructive actions are not allowed for this rack "
    "(set rack.allow_destructive: true in the rack file or run with --allow-destructive)"
)
POWER_LIMIT_TOLERANCE_W = 0.5  # a read-back limit within this of the found one counts as restored
_ON_STATES = frozenset({"On", "PoweringOn"})  # Redfish PowerState values that mean "host is on"
_OFF_STATES = frozenset({"Off", "PoweringOff"})


class DestructiveActionRefused(DeviceError):
    """The gate refused a destructive action; nothing was read, recorded or switched.

    ``reasons`` lists every reason (not allowed for this rack, device protected, outlet
    protected, outlet powers a protected device); ``outlet`` is the outlet concerned, if any.
    """

    def __init__(
        self, device: str, address: str, operation: str, reasons: list[str], outlet: int | None = None
    ) -> None:
        self.reasons = list(reasons)
        self.outlet = outlet
        super().__init__(device, address, operation, "refused: " + "; ".join(reasons) + " (nothing was touched)")


class UndoError(Exception):
    """Some undos failed; the rack may be left changed. Lists every failure."""

    def __init__(self, summary: UndoSummary) -> None:
        self.summary = summary
        lines = [f"{len(summary.failed)} of {len(summary.results)} undos failed; the rack may be left changed:"]
        lines += [f"  action {r.action_id} on {r.device}: {r.undo}: {r.message}" for r in summary.failed]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class UndoResult:
    """What one undo did: ``outcome`` is ``done`` or ``failed``; ``message`` says what was found
    and what was sent (or why it failed)."""

    action_id: int | None
    device: str
    undo: str
    outcome: str
    message: str


@dataclass(frozen=True)
class UndoSummary:
    """Every undo run by one ``undo_all()`` / scope exit, in the order they ran (newest action first)."""

    results: tuple[UndoResult, ...] = ()

    @property
    def failed(self) -> tuple[UndoResult, ...]:
        return tuple(r for r in self.results if r.outcome == "failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    def raise_for_failures(self) -> None:
        if self.failed:
            raise UndoError(self)


class FeedSwitcher(Protocol):
    """Something that can drop and restore a whole power feed (the simulator's control channel,
    or a facility breaker controller). Without one, the gate switches the feed's PDU outlets."""

    def feed_up(self, feed: str) -> bool: ...

    def set_feed(self, feed: str, up: bool) -> None: ...


class SimFeedSwitcher:
    """Feed loss on a simulated rack through its control channel (``feed_loss`` faults).

    A feed is down while an active ``feed_loss`` fault names it; restoring it clears every such
    active fault (scheduled, not yet active ones are left alone).
    """

    def __init__(self, control: Any) -> None:
        self._control = control  # rackval.sim.control.ControlClient

    def _active_losses(self, feed: str) -> list[str]:
        return [
            str(f["id"])
            for f in self._control.faults()
            if f.get("kind") == "feed_loss" and f.get("device") == feed and f.get("active")
        ]

    def feed_up(self, feed: str) -> bool:
        return not self._active_losses(feed)

    def set_feed(self, feed: str, up: bool) -> None:
        if not up:
            if not self._active_losses(feed):
                self._control.inject("feed_loss", feed)
            return
        for fault_id in self._active_losses(feed):
            self._control.clear(fault_id)


@dataclass(eq=False)  # entries are compared by identity on the stack
class _Undo:
    """One entry of the undo stack. ``restore`` re-reads the device, restores what differs from
    the found state and returns what it did in words."""

    device: str
    text: str
    restore: Callable[[], str]
    action_id: int | None = None
    scope: int = 0


class SafetyGate:
    """The one door for destructive actions on a rack (see the module docstring).

    ``rack`` is a ``rackval.harness.rack.Rack`` (``rack.driver(name)``), ``store`` a results store with a
    started run ``run_id``. ``allow_destructive`` is the rack file's ``allow_destructive`` OR the
    ``--allow-destructive`` flag. ``test_id_of()`` returns the store's id of the test running
    now (or None), so each action is attributed to its test. ``feed_switcher`` drops feeds on a
    simulated rack (``SimFeedSwitcher``); without it, ``feed()`` switches every outlet of the
    feed's PDUs.
    """

    def __init__(
        self,
        rack: Any,
        inventory: Inventory,
        store: Any,
        run_id: str,
        *,
        allow_destructive: bool,
        test_id_of: Callable[[], int | None] | None = None,
        feed_switcher: FeedSwitcher | None = None,
    ) -> None:
        self.rack = rack
        self.inventory = inventory
        self.store = store
        self.run_id = run_id
        self.allow_destructive = bool(allow_destructive)
        self._test_id_of = test_id_of
        self._feed_switcher = feed_switcher
        self._stack: list[_Undo] = []
        self._action_ids: list[int] = []
        self._lock = threading.RLock()
        self._scopes = 0
        self._atexit = False

    # ---- refusal ------------------------------------------------------------------------------
    def _address(self, device: str) -> str:
        cfg = self.inventory.configs.get(device)
        return cfg.address if cfg is not None else "-"

    def _spec(self, device: str, kind: str) -> Any:
        spec = self.inventory.data.devices.get(device)
        if spec is None:
            raise ConfigError(f"rack {self.inventory.path}: no device named {device!r}")
        if spec.kind != kind:
            raise ConfigError(f"rack {self.inventory.path}: device {device!r} is a {spec.kind}, not a {kind}")
        return spec

    def _node_group(self, device: str) -> list[str]:
        """Nodes whose BMC or host is ``device``: a BMC action hits the node and vice versa."""
        return [n for n, s in self.inventory.data.nodes.items() if device in (s.bmc, s.host)]

    def _protected_in_node(self, node: str) -> list[str]:
        spec = self.inventory.data.nodes[node]
        devices = self.inventory.data.devices
        return [d for d in (spec.bmc, spec.host) if d is not None and devices[d].protected]

    def _outlet_reasons(self, pdu: str, outlet: int) -> list[str]:
        spec = self.inventory.data.devices[pdu]
        reasons = []
        if spec.protected:
            reasons.append(f"device {pdu} is protected in the rack file")
        if outlet in spec.protected_outlets:
            reasons.append(f"outlet {outlet} of {pdu} is protected in the rack file (protected_outlets)")
        for node, nspec in self.inventory.data.nodes.items():
            for psu, link in nspec.psus.items():
                if (link.pdu, link.outlet) == (pdu, outlet):
                    for dev in self._protected_in_node(node):
                        reasons.append(f"outlet {outlet} of {pdu} powers {node} {psu}, and {dev} is protected")
        return reasons

    def _node_reasons(self, device: str) -> list[str]:
        reasons = []
        if self.inventory.data.devices[device].protected:
            reasons.append(f"device {device} is protected in the rack file")
        for node in self._node_group(device):
            others = [d for d in self._protected_in_node(node) if d != device]
            reasons += [f"{d} (same node {node}) is protected in the rack file" for d in others]
        return reasons

    def _refuse_if(self, device: str, operation: str, reasons: list[str], outlet: int | None = None) -> None:
        if not self.allow_destructive:
            reasons = [NOT_ALLOWED, *reasons]
        if reasons:
            exc = DestructiveActionRefused(device, self._address(device), operation, reasons, outlet)
            log.warning("%s", exc)
            raise exc

    def refusal(self, device: str, outlet: int | None = None) -> list[str]:
        """Why an action on ``device`` (or that PDU outlet) would be refused; empty = allowed.

        Lets a plan skip (rather than fail) a destructive step on a rack that forbids it.
        """
        reasons = [] if self.allow_destructive else [NOT_ALLOWED]
        spec = self.inventory.data.devices.get(device)
        if spec is None:
            raise ConfigError(f"rack {self.inventory.path}: no device named {device!r}")
        if spec.kind == "pdu" and outlet is not None:
            return reasons + self._outlet_reasons(device, outlet)
        return reasons + self._node_reasons(device)

    # ---- the one path every action takes ------------------------------------------------------
    def _perform(
        self,
        device: str,
        operation: str,
        undo_text: str,
        detail: dict[str, Any],
        act: Callable[[], None],
        restore: Callable[[], str],
    ) -> int:
        """Push the undo, record the action, then act: whatever interrupts this, the undo is
        already on the stack (and re-reads before restoring), and the store says it is pending."""
        test_id = self._test_id_of() if self._test_id_of is not None else None
        entry = _Undo(device, undo_text, restore)
        with self._lock:
            entry.scope = self._scopes
            self._stack.append(entry)
        try:
            action_id = self.store.record_action(
                self.run_id,
                ActionRecord(device=device, operation=operation, undo=undo_text, test_id=test_id, detail=detail),
            )
        except BaseException:
            with self._lock:  # not recorded, so not done: never act without a record
                if entry in self._stack:
                    self._stack.remove(entry)
            raise
        with self._lock:
            entry.action_id = action_id
            self._action_ids.append(action_id)
        log.info("%s: %s (undo: %s) [action %d]", device, operation, undo_text, action_id)
        act()
        return action_id

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
    def _capable(self, device: str, method: str, operation: str) -> Any:
        drv = self.rack.driver(device)
        if not callable(getattr(drv, method, None)):
            raise DeviceError(
                device, self._address(device), operation, f"driver {type(drv).__name__} has no {method}()"
            )
        return drv

    def host_power(self, bmc: str, reset_type: str) -> int:
        """Reset / power the host behind ``bmc`` (Redfish ResetType: On, ForceOff, ForceRestart...).

        The undo brings the host back to the power state found (On -> ResetType On, Off ->
        ForceOff) if it differs then; it returns when the BMC accepted the request (hosts take
        seconds to a minute: poll ``power_state()`` where it matters).
        """
        self._spec(bmc, "bmc")
        operation = f"reset host ({reset_type})"
        self._refuse_if(bmc, operation, self._node_reasons(bmc))
        drv = self._capable(bmc, "reset", operation)
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
        drv = self._capable(bmc, "set_power_limit", operation)
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
        drv = self._capable(node, "start_load", operation)
        running = getattr(drv, "load_running", None)
        if callable(running) and running():
            raise DeviceError(node, self._address(node), operation, "a load is already running")

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
        errors are collected and raised together, naming every node that could not start.
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
            raise DeviceError(names, "-", "start GPU load", "; ".join(str(e) for e in errors))

    # ---- feeds --------------------------------------------------------------------------------
    def feed_pdus(self, feed: str) -> list[str]:
        """The PDUs the rack file puts on ``feed`` (their ``feeds`` list names it)."""
        return [n for n, d in self.inventory.data.devices.items() if d.kind == "pdu" and feed in d.feeds]

    def feed(self, feed: str, up: bool) -> int:
        """Drop (``up=False``) or restore a whole power feed; the undo returns it to the state found.

        Refused as a whole if any PDU on the feed is protected, or any of their outlets is
        protected or powers a protected device. With a ``feed_switcher`` (simulated rack) the
        feed itself is switched; otherwise every outlet of the feed's PDUs is switched and the
        undo restores each outlet to the state found.
        """
        pdus = self.feed_pdus(feed)
        operation = f"{'restore' if up else 'drop'} feed {feed}"
        if not pdus:
            raise ConfigError(f"rack {self.inventory.path}: no PDU lists feed {feed!r} under 'feeds'")
        reasons: list[str] = []
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
        address = ", ".join(pdus)
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
                {"feed": feed, "up": up, "found_up": found, "pdus": pdus},
                lambda: switcher.set_feed(feed, up),
                restore_feed,
            )
        found_outlets = {pdu: {r.outlet: bool(r.on) for r in self.rack.driver(pdu).outlets()} for pdu in pdus}

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

    # ---- undo ---------------------------------------------------------------------------------
    def _run_undo(self, entry: _Undo) -> UndoResult:
        try:
            message = entry.restore()
            outcome = "done"
        except Exception as exc:  # a failed undo is recorded, and the next one still runs
            message = f"{type(exc).__name__}: {exc}"
            outcome = "failed"
            log.error("undo of action %s on %s failed: %s", entry.action_id, entry.device, message)
        if entry.action_id is not None:
            try:
                self.store.record_undo(entry.action_id, outcome, message)
            except Exception as exc:  # the store is gone: the rack matters more than the log
                log.error("cannot record undo of action %s: %s", entry.action_id, exc)
        return UndoResult(entry.action_id, entry.device, entry.text, outcome, message)

    def _undo_from(self, keep: Callable[[_Undo], bool]) -> UndoSummary:
        results: list[UndoResult] = []
        while True:
            with self._lock:
                todo = [e for e in self._stack if not keep(e)]
                if not todo:
                    break
                entry = todo[-1]
            result = self._run_undo(entry)  # a Ctrl-C here leaves this entry (and older ones) stacked
            with self._lock:
                if entry in self._stack:
                    self._stack.remove(entry)
            results.append(result)
        return UndoSummary(tuple(results))

    def undo_all(self) -> UndoSummary:
        """Undo every action still on the stack, newest first; never stops at a failure.

        Each outcome is recorded in the store; the summary lists them (``raise_for_failures()``
        turns failures into an ``UndoError``). Idempotent: a second call finds nothing to do. If
        interrupted, the undos not yet run stay on the stack for the next call.
        """
        return self._undo_from(lambda e: False)

    @contextlib.contextmanager
    def scoped(self) -> Iterator[SafetyGate]:
        """Undo, on leaving the block, exactly the actions made inside it (newest first).

        For restoring between the steps of a plan (one PSU off at a time). Failed undos raise
        ``UndoError`` at the end of the block unless the block itself raised (that error wins;
        the failures are logged and in the store). Scopes nest (LIFO, per gate: one plan thread
        at a time should open them).
        """
        with self._lock:
            self._scopes += 1
            level = self._scopes
        failed: UndoSummary | None = None
        try:
            yield self
        finally:
            with self._lock:
                self._scopes -= 1
            summary = self._undo_from(lambda e: e.scope < level)
            if not summary.ok:
                failed = summary
        if failed is not None:
            failed.raise_for_failures()

    def pending(self) -> int:
        """How many actions have an undo that has not run yet."""
        with self._lock:
            return len(self._stack)

    def actions(self) -> list[ActionRecord]:
        """This gate's actions as the store holds them (with undo outcome), in order: for the report."""
        with self._lock:
            ids = set(self._action_ids)
        return [a for a in self.store.actions(self.run_id) if a.action_id in ids]

    def register_atexit(self) -> None:
        """Last resort: run ``undo_all`` at interpreter exit if nothing else did (idempotent).

        pytest turns Ctrl-C into KeyboardInterrupt and still runs sessionfinish, which is where
        the plugin undoes; this covers an exit that skips it (an internal error, ``os._exit``
        does not count: nothing runs then, and the store keeps the actions pending).
        """
        with self._lock:
            if self._atexit:
                return
            self._atexit = True
        atexit.register(self._atexit_undo)

    def _atexit_undo(self) -> None:
        if self.pending():
            summary = self.undo_all()
            for r in summary.failed:
                log.error("undo at exit failed: action %s on %s: %s", r.action_id, r.device, r.message)

    def close(self) -> UndoSummary:
        """Undo everything and drop the atexit hook: what the plugin calls at session end."""
        summary = self.undo_all()
        with self._lock:
            if self._atexit:
                atexit.unregister(self._atexit_undo)
                self._atexit = False
        return summary
