"""The simulator's clock: virtual time that can jump, or real time scaled by a factor.

The model reads time only through this clock, so a 30-minute soak can run in seconds of wall
time while every sample still crosses the real protocol. The model advances its state lazily
(on each read it integrates from its last update to ``now()``), so jumping the clock costs
nothing until something reads; the clock therefore needs no listeners, only a ``now()`` that
never goes backwards.
"""

from __future__ import annotations

import math
import threading
import time


class SimClock:
    """Virtual seconds since the simulated rack started.

    ``time_scale`` > 0 lets virtual time run with the wall clock (1.0 = real time, 10.0 = ten
    times faster); 0 freezes it so that only ``advance`` (or ``sleep``) moves it (what tests want).
    """

    def __init__(self, time_scale: float = 1.0, start: float = 0.0) -> None:
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {time_scale}")
        self._lock = threading.Lock()
        self._scale = time_scale
        self._base_virtual = start
        self._base_wall = time.monotonic()
        self._last = start

    def now(self) -> float:
        """Virtual seconds; monotonic (never smaller than a value returned before)."""
        with self._lock:
            t = self._base_virtual + (time.monotonic() - self._base_wall) * self._scale
            self._last = max(self._last, t)
            return self._last

    def advance(self, seconds: float) -> float:
        """Jump virtual time forward; returns the new virtual time."""
        if not math.isfinite(seconds) or seconds < 0:  # NaN would freeze the clock for good
            raise ValueError(f"cannot advance the clock by {seconds} s (a finite number >= 0)")
        with self._lock:
            wall = time.monotonic()
            self._base_virtual += (wall - self._base_wall) * self._scale + seconds
            self._base_wall = wall
            self._last = max(self._last, self._base_virtual)
            return self._last

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time, the way a plan waits (``clock.sleep``).

        Frozen clock (scale 0): jump at once. Scaled clock: wait ``seconds / time_scale`` of wall
        time, so a 30 s settle on a 10x clock takes 3 s.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"cannot sleep {seconds} s (a finite number >= 0)")
        if self._scale == 0:
            self.advance(seconds)
        elif seconds > 0:
            time.sleep(seconds / self._scale)

    @property
    def time_scale(self) -> float:
        return self._scale
