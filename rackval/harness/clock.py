"""The clock plans wait on. Plans call ``clock.sleep()``, never ``time.sleep()``: on a simulated
rack the wait jumps the simulator's virtual clock, so a 30-minute soak takes a fraction of a
second while every sample still crosses the real protocols."""

from __future__ import annotations

import time
from typing import Protocol

from rackval.sim.control import ControlClient


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    """Wall-clock time, for real racks."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class SimulatorClock:
    """The simulated rack's virtual clock, reached over its control channel."""

    def __init__(self, control: ControlClient) -> None:
        self._control = control

    def now(self) -> float:
        return self._control.now()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._control.advance(seconds)

    def advance(self, seconds: float) -> float:
        """Sleep ``seconds`` and return the clock reading right after, in one round trip (the
        sampler stamps its next tick with it instead of asking ``now()`` again)."""
        return self._control.advance(seconds) if seconds > 0 else self._control.now()
