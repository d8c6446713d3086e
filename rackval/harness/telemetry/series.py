"""The summaries plans assert on over a fixed list of sampled channels (statistics, time above a
limit, settling time, counter growth), computed from the channels' history on demand.

A ``Recording`` keeps no samples: only counts (ticks, errors per channel, first and last stamp).
Each summary reads the history of the channels it needs from where the samples are kept
(``_history``: for the ``Sampler``, the results store's segments plus the open ones), as float64
with NaN where the sample is missing (a device error or a value the device reports as
unavailable). So a 24-hour soak costs the sampler no more memory than its first minute, and
summaries can be asked at any time, also while it samples in the background.

Counters. Switch counters are stored *raw* (cumulative, as the device reports them), never as
deltas or rates: a raw series keeps every fact (resets, wraps, the exact growth between any two
instants) and a rate is a division any summary can do. ``growth()`` and ``rate()`` undo wraps
(``Channel.wrap_bits``) and skip intervals where the counter went backwards beyond a wrap (a
reset). Values are float64 (the store's column is REAL too): exact up to 2**53.
"""

from __future__ import annotations

import fnmatch
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rackval.core.errors import ConfigError
from rackval.core.heap import release_freed_memory
from rackval.harness.measure import Limit
from rackval.harness.readers import Channel

TRIM_AFTER_VALUES = 500_000
"""A summary that read at least this many values (4 MB) returns the freed heap to the OS after
it (``rackval.core.heap``): a long soak's hourly summaries would otherwise grow the RSS."""


@dataclass(frozen=True)
class ChannelSummary:
    """Statistics of one channel (or of every channel a pattern matched, pooled). ``count`` is
    samples taken including ``missing`` ones (error or no value); the rest are over values.
    ``first``/``last`` are the first and last values (pooled: None unless one channel)."""

    count: int
    missing: int
    min: float | None
    max: float | None
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    first: float | None
    last: float | None


class Recording:
    """Summaries of ``channels`` (sampled every ``period`` clock seconds); a subclass says where
    their history is (``_history``) and counts each tick (``_count_tick``).

    ``channel_errors`` counts, per channel, the samples lost to device errors. ``_lock`` guards
    the history and the counts (and a subclass's own) against summaries asked from another thread."""

    def __init__(self, channels: Iterable[Channel], period: float) -> None:
        self.channels: list[Channel] = list(channels)
        self.period = period
        self._index: dict[str, int] = {}
        for i, ch in enumerate(self.channels):
            if ch.name in self._index:
                raise ConfigError(f"telemetry: channel {ch.name!r} is listed twice")
            self._index[ch.name] = i
        self._names = [c.name for c in self.channels]
        self.channel_errors = np.zeros(len(self.channels), dtype=np.int64)
        self._recorded = 0  # ticks so far
        self._span: tuple[float, float] | None = None  # first and last tick stamp
        self._lock = threading.Lock()

    def _count_tick(self, t: float) -> None:
        """One more tick, stamped ``t``. The caller holds ``_lock``."""
        self._recorded += 1
        self._span = (t, t) if self._span is None else (self._span[0], t)

    def _history(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) of channel ``row`` so far. The caller holds ``_lock``."""
        raise NotImplementedError

    def _history_values(self, row: int) -> np.ndarray:
        """The values of channel ``row`` so far, in time order (a subclass may skip the times)."""
        return self._history(row)[1]

    # ---- what plans ask -------------------------------------------------------------------------
    def names(self, pattern: str = "*") -> list[str]:
        """Channel names matching ``pattern`` (exact name, or fnmatch glob), in channel order."""
        if pattern in self._index:
            return [pattern]
        return [n for n in self._names if fnmatch.fnmatchcase(n, pattern)]

    def _rows(self, pattern: str) -> list[int]:
        rows = [self._index[n] for n in self.names(pattern)]
        if not rows:
            raise KeyError(f"telemetry: no channel matches {pattern!r}")
        return rows

    def series(self, channel: str) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) of one channel, copies; NaN where the sample is missing."""
        (row,) = self._rows_one(channel)
        with self._lock:
            return self._history(row)

    def _rows_one(self, channel: str) -> list[int]:
        rows = self._rows(channel)
        if len(rows) != 1:
            raise KeyError(f"telemetry: {channel!r} matches {len(rows)} channels; this needs exactly one")
        return rows

    def errors_of(self, pattern: str) -> int:
        """Samples lost to device errors over the matching channels."""
        return int(self.channel_errors[self._rows(pattern)].sum())

    @staticmethod
    def _pooled(parts: list[np.ndarray]) -> np.ndarray:
        """The parts in one array, each part released as soon as it is copied: the values are
        held about once at the peak, not twice as ``np.concatenate`` holds them."""
        out = np.empty(sum(p.size for p in parts))
        at = 0
        while parts:
            part = parts.pop(0)
            out[at : at + part.size] = part
            at += part.size
            del part
        return out

    def summary(self, channel_or_pattern: str) -> ChannelSummary:
        """Statistics of one channel, or pooled over every channel a glob pattern matches.

        Memory: the values of the matching channels about once (a 24-hour soak of 20 channels
        at 1 Hz: ~14 MB while this runs), never their times."""
        rows = self._rows(channel_or_pattern)
        count = 0
        present: list[np.ndarray] = []
        with self._lock:
            for r in rows:
                values = self._history_values(r)
                count += values.size
                present.append(values[~np.isnan(values)])
                del values
        first = last = None
        if len(rows) == 1 and present[0].size:
            first, last = float(present[0][0]), float(present[0][-1])
        finite = present[0] if len(present) == 1 else self._pooled(present)
        del present
        if finite.size == 0:
            return ChannelSummary(count, count, None, None, None, None, None, None, first, last)
        low, high, mean = float(finite.min()), float(finite.max()), float(finite.mean())
        # nearest rank, as np.quantile(method="inverted_cdf"), in place: no copy of the values
        ranks = [max(math.ceil(finite.size * q) - 1, 0) for q in (0.5, 0.95, 0.99)]
        finite.partition(ranks)
        p50, p95, p99 = (float(finite[k]) for k in ranks)
        present_n = finite.size
        del finite
        if present_n >= TRIM_AFTER_VALUES:  # a long history was read and is freed: give it back
            release_freed_memory()
        return ChannelSummary(count=count, missing=count - present_n, min=low, max=high, mean=mean, p50=p50,
                              p95=p95, p99=p99, first=first, last=last)  # fmt: skip

    def time_above(self, channel_or_pattern: str, limit: float | Limit) -> float:
        """Clock seconds the value was above ``limit`` (a number; or outside a ``Limit``'s
        low/high in the channel's own unit). Each sample holds until the next one; the last
        holds one period; missing samples count as not above. A pattern gives the worst channel."""
        worst = 0.0
        for name in self.names(channel_or_pattern) or self._rows(channel_or_pattern):
            t, v = self.series(name)
            if t.size == 0:
                continue
            if isinstance(limit, Limit):
                lim = limit.in_unit(self.channels[self._index[name]].unit) if limit.unit else limit
                over = np.zeros(v.shape, dtype=bool)
                with np.errstate(invalid="ignore"):
                    if lim.high is not None:
                        over |= v > lim.high
                    if lim.low is not None:
                        over |= v < lim.low
            else:
                with np.errstate(invalid="ignore"):
                    over = v > float(limit)
            held = np.append(np.diff(t), self.period)
            worst = max(worst, float(held[over].sum()))
        return worst

    def settling_time(
        self, channel: str, target: float, tolerance: float, *, after: float | None = None
    ) -> float | None:
        """Clock seconds from ``after`` (default: the first sample) until the value entered
        ``target +- tolerance`` for good (every later value inside, missing ones ignored).
        0 if it was inside from the start; None if the last value is outside or none exists."""
        t, v = self.series(channel)
        start = t[0] if after is None and t.size else after
        if start is None:
            return None
        keep = (t >= start) & ~np.isnan(v)
        t, v = t[keep], v[keep]
        if t.size == 0:
            return None
        outside = np.abs(v - target) > tolerance
        if outside[-1]:
            return None
        if not outside.any():
            return 0.0
        last_out = int(np.flatnonzero(outside)[-1])
        return float(t[last_out + 1] - start)

    def growth(self, channel_or_pattern: str) -> float:
        """How much a counter grew (last - first, undoing wraps at ``2**wrap_bits``; intervals
        where it went backwards beyond a wrap are counter resets and add nothing). Summed over the
        channels a pattern matches (e.g. ``tor1/*/in_errors``). Gauges: plain last - first."""
        total = 0.0
        for name in self.names(channel_or_pattern) or self._rows(channel_or_pattern):
            _, v = self.series(name)
            v = v[~np.isnan(v)]
            if v.size < 2:
                continue
            d = np.diff(v)
            bits = self.channels[self._index[name]].wrap_bits
            if bits is not None:
                neg = d < 0
                wrapped = d + float(2**bits)
                # a true wrap leaves a plausible small growth; otherwise it is a reset: count 0
                ok_wrap = neg & (wrapped >= 0) & (wrapped < float(2 ** (bits - 1)))
                d = np.where(neg, np.where(ok_wrap, wrapped, 0.0), d)
            total += float(d.sum())
        return total

    def rate(self, channel_or_pattern: str) -> float | None:
        """Average growth per clock second over the run (counters), summed over a pattern's
        channels; None with fewer than two ticks."""
        with self._lock:
            span = self._span[1] - self._span[0] if self._span is not None and self._recorded >= 2 else 0.0
        if span <= 0:
            return None
        return self.growth(channel_or_pattern) / span
