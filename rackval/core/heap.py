"""Giving freed heap memory back to the operating system after a large, short-lived read.

Why this exists: a plan's summary of a long soak reads hours of samples back from the store
(``Sampler.summary``: 20 channels x 24 h = 14 MB of values), uses them, and frees them. glibc's
malloc raises its mmap threshold after such frees (the "dynamic threshold"), so the next
arrays of that size come from the heap, and freed heap pages stay in the process: measured with
``bench/bench_samples.py --parts soak``, a 24-hour virtual soak with an hourly summary grew the
RSS by +24 % although nothing was kept, and by +1 % with the threshold fixed. ``malloc_trim``
returns the free pages at the moment we know a large read is over; on a C library without it
(musl, macOS) this does nothing, which costs only the memory glibc would have kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = _libc.malloc_trim
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _trim = None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the OS; True if the C library could be asked."""
    if _trim is None:
        return False
    _trim(0)
    return True
