"""Telemetry for the report: per-channel statistics and the per-bucket min/max grid.

A 1-hour soak of a full rack is ~10 M samples; the report must never hold or plot them as
Python objects. The store keeps samples as compressed per-channel segments with their
statistics (``rackval.harness.store.segments``), so the report reads:

* ``channel_stats`` - count, missing, min, mean and max of every channel straight from the
  segments' statistics (``store.sample_channels``: nothing decoded), and p99 from the channel's
  values alone (``store.sample_values``: one query, values decoded one channel at a time, their
  times not at all);
* ``summarise`` - those statistics and the **grid**: every channel's minimum and maximum per
  time bucket (``buckets`` equal slices of the run's telemetry span, one per horizontal pixel of
  a figure) and its median sampling interval, from one pass over the decoded series
  (``store.sample_series``; channels sampled together are summarised as one matrix of at most
  ``BLOCK_VALUES`` samples, so memory holds one block, not the run). The report's figures draw
  from the grid alone, so a figure of 256 channels costs no further read of the store.

p99 is nearest-rank (numpy ``inverted_cdf``): a value that was actually recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rackval.harness.store.records import SampleChannel

ChannelKey = tuple[str, str, str]  # (channel, device, unit): one plotted/tabled series


@dataclass(frozen=True)
class ChannelStats:
    """One telemetry channel of a run, summarised. ``count`` includes ``missing`` samples (the
    device did not answer); the statistics are over the values that were recorded."""

    channel: str
    device: str
    unit: str
    count: int
    missing: int
    minimum: float | None
    mean: float | None
    maximum: float | None
    p99: float | None

    @property
    def key(self) -> ChannelKey:
        return (self.channel, self.device, self.unit)


@dataclass(frozen=True)
class Grid:
    """Every channel's minimum and maximum per time bucket: ``buckets`` equal slices of the run's
    telemetry span starting at ``t0`` (NaN: no value in that bucket, so a gap stays a gap), and
    each channel's typical sampling interval (median step, s; NaN with fewer than 2 samples)."""

    t0: float
    width: float
    buckets: int
    low: dict[ChannelKey, np.ndarray]
    high: dict[ChannelKey, np.ndarray]
    interval: dict[ChannelKey, float]

    def centres(self) -> np.ndarray:
        return self.t0 + (np.arange(self.buckets) + 0.5) * self.width


@dataclass(frozen=True)
class Telemetry:
    """What the report reads of a run's telemetry: statistics of every channel and their grid."""

    stats: list[ChannelStats]
    grid: Grid | None
    unreadable: tuple[str, ...] = ()  # one line per channel a bad segment kept out of the grid and p99


def _p99_rank(n: int) -> int:
    """Index of the p99 among ``n`` sorted values: nearest rank, as np.quantile(method="inverted_cdf")."""
    return max(math.ceil(n * 0.99) - 1, 0)


def _p99(values: np.ndarray) -> float | None:
    finite = values[~np.isnan(values)]
    if not finite.size:
        return None
    rank = _p99_rank(finite.size)
    return float(np.partition(finite, rank)[rank])


def _stats(c: SampleChannel, p99: float | None) -> ChannelStats:
    return ChannelStats(c.channel, c.device, c.unit, count=c.count, missing=c.missing, minimum=c.minimum, mean=c.mean,
                        maximum=c.maximum, p99=p99)  # fmt: skip


def channel_stats(store: Any, run_id: str) -> list[ChannelStats]:
    """Every telemetry channel of ``run_id`` with its statistics, ordered by (channel, device, unit)."""
    channels = {(c.channel, c.device, c.unit): c for c in store.sample_channels(run_id)}
    out = [_stats(channels[key], _p99(values)) for key, values in store.sample_values(run_id) if key in channels]
    return sorted(out, key=lambda c: c.key)


SHARED_AXES = 64  # time axes whose bucket boundaries one summary keeps (a sampler's channels share one)


@dataclass(frozen=True)
class _Axis:
    """What one time axis gives every channel sampled on it: the bucket of each run of samples
    (``where``), where those runs start, and the median sampling interval."""

    where: np.ndarray
    starts: np.ndarray
    interval: float


def _axis(t: np.ndarray, t0: float, width: float, buckets: int) -> _Axis:
    slot = np.clip(((t - t0) / width).astype(np.int64), 0, buckets - 1)
    starts = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])
    steps = np.diff(t)
    return _Axis(slot[starts], starts, float(np.median(steps)) if steps.size else math.nan)


def _shared_axis(t: np.ndarray, t0: float, width: float, buckets: int, axes: dict[bytes, _Axis]) -> _Axis:
    key = t.tobytes()
    axis = axes.get(key)
    if axis is None:
        if len(axes) >= SHARED_AXES:
            axes.clear()
        axis = axes[key] = _axis(t, t0, width, buckets)
    return axis


def _bucketed(
    t: np.ndarray, v: np.ndarray, t0: float, width: float, buckets: int, axes: dict[bytes, _Axis]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Min and max of ``v`` per bucket (NaN where a bucket has no value; ``t`` in time order) and
    the median sampling interval over all of ``t``. ``axes``: time axes seen before in this
    summary (a sampler's channels share one: bucketed and measured once)."""
    low, high = np.full(buckets, np.nan), np.full(buckets, np.nan)
    if not t.size:
        return low, high, math.nan
    keep = ~np.isnan(v)
    whole = bool(keep.all())  # no gap: the axis serves the values as they are
    axis = _shared_axis(t, t0, width, buckets, axes)
    interval = axis.interval
    if not whole:
        t, v = t[keep], v[keep]
        if not t.size:
            return low, high, interval
        axis = _axis(t, t0, width, buckets)
    low[axis.where] = np.minimum.reduceat(v, axis.starts)
    high[axis.where] = np.maximum.reduceat(v, axis.starts)
    return low, high, interval


BLOCK_VALUES = 500_000  # samples summarised in one vector pass at most (4 MB)


def summarise(store: Any, run_id: str, buckets: int = 500) -> Telemetry:
    """Every telemetry channel of ``run_id`` with its statistics, ordered by (channel, device,
    unit), and the grid of their minima and maxima in ``buckets`` time buckets.

    Channels sampled together share one time array (``store.sample_series``); those with a value
    at every tick are summarised as one matrix (one partition for their p99, one reduceat per
    bound), as per-channel calls cost more than the arithmetic on a 3,000-channel soak. A channel
    with missing samples is summarised alone."""
    channels = {(c.channel, c.device, c.unit): c for c in store.sample_channels(run_id)}
    if not channels:
        return Telemetry([], None)
    t0 = min(c.t_first for c in channels.values())
    t1 = max(c.t_last for c in channels.values())
    width = max(t1 - t0, 1e-9) / buckets
    stats: list[ChannelStats] = []
    low: dict[ChannelKey, np.ndarray] = {}
    high: dict[ChannelKey, np.ndarray] = {}
    interval: dict[ChannelKey, float] = {}
    axes: dict[bytes, _Axis] = {}
    pending: dict[int, tuple[np.ndarray, list[tuple[ChannelKey, np.ndarray]]]] = {}  # by time array
    held = 0

    def flush() -> None:
        for t, members in pending.values():
            block = np.vstack([v for _, v in members])
            rank = _p99_rank(t.size)
            p99 = np.partition(block, rank, axis=1)[:, rank].tolist()
            axis = _shared_axis(t, t0, width, buckets, axes)
            lows, highs = np.full((len(members), buckets), np.nan), np.full((len(members), buckets), np.nan)
            lows[:, axis.where] = np.minimum.reduceat(block, axis.starts, axis=1)
            highs[:, axis.where] = np.maximum.reduceat(block, axis.starts, axis=1)
            for i, (key, _) in enumerate(members):
                stats.append(_stats(channels[key], p99[i]))
                low[key], high[key], interval[key] = lows[i], highs[i], axis.interval
        pending.clear()

    unreadable: dict[ChannelKey, str] = {}

    def skip(key: ChannelKey, message: str) -> None:
        unreadable[key] = message
        if key in channels:  # its statistics from the segments' columns still stand; no p99, no grid row
            stats.append(_stats(channels[key], None))

    for key, t, v in store.sample_series(run_id, skip):
        if key not in channels:
            continue
        if not t.size or np.isnan(v).any():
            stats.append(_stats(channels[key], _p99(v)))
            low[key], high[key], interval[key] = _bucketed(t, v, t0, width, buckets, axes)
            continue
        pending.setdefault(id(t), (t, []))[1].append((key, v))  # the entry keeps t (and its id) alive
        held += v.size
        if held >= BLOCK_VALUES:
            flush()
            held = 0
    flush()
    stats.sort(key=lambda c: c.key)
    return Telemetry(stats, Grid(t0, width, buckets, low, high, interval), tuple(unreadable.values()))
