"""How a whole power feed is dropped and restored when the rack has a way to do it at the feed.

A feed drop (one of two utility feeds, an upstream breaker) is the test a redundant rack exists
for. On a simulated rack the simulator's control channel drops the feed itself; a real facility
may offer a breaker controller. Either is a ``FeedSwitcher`` given to the gate; without one the
gate switches every outlet of the feed's PDUs instead (``SafetyGate.feed``).
"""

from __future__ import annotations

from typing import Any, Protocol


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
