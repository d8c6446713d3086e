"""The clock plans wait on. Plans call ``clock.sleep()``, never ``time.sleep()``, so that the
simulated rack can later run a 30-minute soak in seconds without the plans knowing."""

from __future__ import annotations

import time


class RealClock:
    """Wall-clock time for real racks (and, for now, the simulated one)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
