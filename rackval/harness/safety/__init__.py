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

Where things are: ``gate`` (``GateCore``: permissions, refusals, the action path, the undo stack
and teardown; the errors and undo records), ``actions`` (``SafetyGate``: the catalogue of
actions, each measuring what it finds and defining its undo; pumps, rectifiers and shelf feeds
in ``equipment``), ``feeds`` (dropping a whole feed
at the feed: ``FeedSwitcher``, ``SimFeedSwitcher`` for the simulated rack), ``undo_messages``
(undo messages for people: a script quoted in many of them is shown once).
"""

from __future__ import annotations

from rackval.harness.safety.actions import SafetyGate
from rackval.harness.safety.feeds import FeedSwitcher, SimFeedSwitcher
from rackval.harness.safety.gate import (
    NOT_ALLOWED,
    DestructiveActionRefused,
    UndoError,
    UndoResult,
    UndoSummary,
)

__all__ = [
    "NOT_ALLOWED",
    "DestructiveActionRefused",
    "FeedSwitcher",
    "SafetyGate",
    "SimFeedSwitcher",
    "UndoError",
    "UndoResult",
    "UndoSummary",
]
