"""The safety gate's core: who may act, the refusals, the one path every action takes, and the undo.

``GateCore`` holds what every destructive action shares, whatever it switches
(``rackval.harness.safety.actions`` has the catalogue of actions built on it):

- **refusal**: an action is refused before anything is touched when the rack does not allow
  destructive actions, or when the device, the outlet, or a device of the same node (BMC and
  host) or powered by the outlet is ``protected`` in the rack file (``DestructiveActionRefused``
  names device, outlet and every reason); ``refusal()`` lets a plan skip instead of fail;
- **capability**: an action needs its driver to have the capability (a
  ``rackval.drivers.capabilities`` Protocol); a driver without it is a DeviceError naming
  device, address and operation, before anything is read or recorded;
- **the one path** (``_perform``): the undo is pushed, the action is recorded in the results
  store (``record_action``, undo ``pending``), and only then is it done; an action refused with
  ``DeviceDown`` (the run knows the device is down: nothing was sent) has its undo dropped and
  recorded ``skipped``;
- **undo**: newest first, by ``undo_all()`` (session end, Ctrl-C, or the atexit hook as a last
  resort) or at the end of a ``with gate.scoped():`` block; each undo re-reads the device and
  restores only what differs from the found state, one failing undo never stops the others, and
  each outcome is recorded ``done`` / ``failed`` in the store.

Threads: the gate may be used from fan-out threads; the stack is guarded by a lock, and
actions and undos themselves run outside it (each device's driver is used one call at a time
by the plan that owns it).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from rackval.core.errors import ConfigError, DeviceDown, DeviceError
from rackval.harness.inventory import Inventory
from rackval.harness.safety.feeds import FeedSwitcher
from rackval.harness.store.records import ActionRecord

log = logging.getLogger(__name__)

Capability = TypeVar("Capability")

NOT_ALLOWED = (
    "destructive actions are not allowed for this rack "
    "(set rack.allow_destructive: true in the rack file or run with --allow-destructive)"
)


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


@dataclass(eq=False)  # entries are compared by identity on the stack
class _Undo:
    """One entry of the undo stack. ``restore`` re-reads the device, restores what differs from
    the found state and returns what it did in words."""

    device: str
    text: str
    restore: Callable[[], str]
    action_id: int | None = None
    scope: int = 0


class GateCore:
    """Permissions, refusals, the action path and the undo stack of ``SafetyGate`` (see the module docstring).

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

    def _driver_with(self, device: str, capability: type[Capability], operation: str) -> Capability:
        """``device``'s driver if it has ``capability`` (a capabilities Protocol), else a DeviceError
        naming device, address and operation: before anything is read, recorded or switched."""
        drv = self.rack.driver(device)
        if not isinstance(drv, capability):
            raise DeviceError(
                device,
                self._address(device),
                operation,
                f"driver {type(drv).__name__} lacks the {capability.__name__} capability",
            )
        return drv

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
        try:
            act()
        except DeviceDown as exc:  # refused before anything was sent: there is nothing to undo
            with self._lock:
                if entry in self._stack:
                    self._stack.remove(entry)
            self._record_undo(action_id, "skipped", f"not done: {exc}")
            raise
        return action_id

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
            self._record_undo(entry.action_id, outcome, message)
        return UndoResult(entry.action_id, entry.device, entry.text, outcome, message)

    def _record_undo(self, action_id: int, outcome: str, message: str) -> None:
        try:
            self.store.record_undo(action_id, outcome, message)
        except Exception as exc:  # the store is gone: the rack matters more than the log
            log.error("cannot record undo of action %s: %s", action_id, exc)

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
    def scoped(self) -> Iterator[Self]:
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
