"""What one poll of a driver costs: the requests it sends and its median wall time (bench helper).

Used by bench_modbus.py and bench_equipment_redfish.py, which compare one driver's poll under
two settings of the same device.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def poll_cost(driver: Any, request: str, poll: Callable[[Any], Any], polls: int) -> tuple[int, float]:
    """(requests one poll sends, median seconds a poll takes): ``request`` names the method of
    ``driver._transport`` that sends one request, counted from the second poll on (the first
    logs in and finds what it needs once). Closes the driver."""
    sent = 0
    real = getattr(driver._transport, request)

    def counted(*args: Any) -> Any:
        nonlocal sent
        sent += 1
        return real(*args)

    setattr(driver._transport, request, counted)
    try:
        poll(driver)
        first = sent
        poll(driver)
        per_poll = sent - first
        times = []
        for _ in range(polls):
            started = time.perf_counter()
            poll(driver)
            times.append(time.perf_counter() - started)
    finally:
        driver.close()
    return per_poll, statistics.median(times)
