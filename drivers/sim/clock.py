"""The simulator's clock: virtual time that can jump, or real time scaled by a factor.

The model reads time only through this clock, so a 30-minute soak can run in seconds of wall
time while every sample still crosses the real protocol.
"""

from __future__ import annotations

import threading
import time


class SimClock:
    """Virtual seconds since the simulated rack started.

    ``time_scale`` > 0 lets virtual time run with the wall clock (1.0 = real time, 10.0 = ten
    times faster); 0 freezes it so that only ``advance`` moves it (what tests want).
    """

    def __init__(self, time_scale: float = 1.0, start: float = 0.0) -> None:
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {time_scale}")
        self._lock = threading.Lock()
        self._scale = time_scale
        self._base_virtual = start
        self._base_wall = time.monotonic()

    def now(self) -> float:
        with self._lock:
            return self._base_virtual + (time.monotonic() - self._base_wall) * self._scale

    def advance(self, seconds: float) -> float:
        """Jump virtual time forward; returns the new virtual time."""
        if seconds < 0:
            raise ValueError(f"cannot advance the clock backwards ({seconds} s)")
        with self._lock:
            wall = time.monotonic()
            self._base_virtual += (wall - self._base_wall) * self._scale + seconds
            self._base_wall = wall
            return self._base_virtual

    @property
    def time_scale(self) -> float:
        return self._scale
