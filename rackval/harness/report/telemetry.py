"""Telemetry for the report: per-channel statistics and per-pixel min/max envelopes.

A 1-hour soak of a full rack is ~10 M samples; the report must never hold or plot them as
Python objects. The store keeps samples as compressed per-channel segments with their
statistics (``rackval.harness.store.segments``), so the report reads:

* ``channel_stats`` - count, missing, min, mean and max of every channel straight from the
  segments' statistics (``store.sample_channels``: nothing decoded), and p99 from the channel's
  values alone (``store.sample_values``: one query, values decoded one channel at a time, their
  times not at all);
* ``envelope`` - for the few channels a figure plots, min and max per pixel bucket over the
  segments that meet the plotted time range.

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
class Envelope:
    """Min/max per time bucket of one channel; ``t`` is each bucket's centre on the run clock.
    Buckets without a value are left out, so a gap in the data stays a gap."""

    key: ChannelKey
    t: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _summarise(c: SampleChannel, values: np.ndarray) -> ChannelStats:
    finite = values[~np.isnan(values)]
    p99 = None
    if finite.size:  # nearest rank, as np.quantile(method="inverted_cdf"), without its overhead per call
        rank = max(math.ceil(finite.size * 0.99) - 1, 0)
        p99 = float(np.partition(finite, rank)[rank])
    return ChannelStats(c.channel, c.device, c.unit, count=c.count, missing=c.missing, minimum=c.minimum, mean=c.mean,
                        maximum=c.maximum, p99=p99)  # fmt: skip


def channel_stats(store: Any, run_id: str) -> list[ChannelStats]:
    """Every telemetry channel of ``run_id`` with its statistics, ordered by (channel, device, unit)."""
    channels = {(c.channel, c.device, c.unit): c for c in store.sample_channels(run_id)}
    out = [_summarise(channels[key], values) for key, values in store.sample_values(run_id) if key in channels]
    return sorted(out, key=lambda c: c.key)


def time_span(store: Any, run_id: str, keys: list[ChannelKey]) -> tuple[float, float] | None:
    """First and last sample time over ``keys``, from the segments' spans."""
    wanted = set(keys)
    spans = [(c.t_first, c.t_last) for c in store.sample_channels(run_id) if (c.channel, c.device, c.unit) in wanted]
    if not spans:
        return None
    return min(s[0] for s in spans), max(s[1] for s in spans)


def envelope(store: Any, run_id: str, key: ChannelKey, t0: float, t1: float, buckets: int) -> Envelope:
    """Min and max of ``key`` per bucket of ``buckets`` equal slices of [t0, t1]."""
    channel, device, unit = key
    scale = buckets / max(t1 - t0, 1e-9)
    t, v = store.sample_arrays(run_id, channel, device=device, unit=unit, start=t0, end=t1)
    keep = ~np.isnan(v)
    t, v = t[keep], v[keep]
    if not t.size:
        return Envelope(key=key, t=np.zeros(0), low=np.zeros(0), high=np.zeros(0))
    idx = np.minimum(((t - t0) * scale).astype(np.int64), buckets - 1)  # t ascending: idx too
    starts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1])))
    b = idx[starts].astype(float)
    return Envelope(key=key, t=t0 + (b + 0.5) / scale, low=np.minimum.reduceat(v, starts),
                    high=np.maximum.reduceat(v, starts))  # fmt: skip
