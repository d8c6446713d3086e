"""Telemetry in the results store: samples written as compressed per-channel segments, read back
by channel, device and time range, summarised from the segments' statistics.

A segment (``rackval.harness.store.sample_codec``) holds up to ``SEGMENT_SAMPLES`` samples of one
series (run, channel, device, unit) in ~1-2 bytes each, with its time span and statistics
(samples, values, min, max, sum) in plain columns (``rackval.harness.store.segment_rows``). So:

* ``sample_channels`` summarises every channel of a run (count, missing, min, max, mean, span)
  from those columns alone, decoding nothing;
* ``samples``, ``sample_arrays`` and ``sample_batches`` decode only the segments of the asked
  channel (and device) whose span meets the asked time range;
* a read of many series (``sample_series``, ``sample_values``) decodes their value segments
  ``DECODE_BATCH`` at a time in one vector pass, and the time blobs a stream's channels share
  once: a 10 M-sample report reads 12,000 segments, where per-segment calls would cost more
  than the arithmetic.

``record_samples`` takes samples in any order and number (a bulk import, a test); the sampler
streams them through a journal instead (``rackval.harness.store.sample_stream``). A missing value
(``None``) is stored as NaN and read back as ``None``; times are kept to the millisecond
(``sample_codec.TIME_RESOLUTION_S``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import Any

import numpy as np

from rackval.harness.store.records import Sample, SampleChannel
from rackval.harness.store.replay import JournalReplay
from rackval.harness.store.sample_codec import (
    CodecError,
    EncodedSegment,
    decode_times,
    decode_values,
    decode_values_many,
    segments_of,
)
from rackval.harness.store.segment_rows import INSERT_SEGMENT, SeriesKey, segment_rows, series_id
from rackval.harness.store.sql import UPSERT_META, StoreError

SAMPLE_BATCH = 5000  # samples per record_samples transaction at most

SampleRow = Sample | tuple[Any, ...]
Unreadable = Callable[[tuple[str, str, str], str], None]  # (series key, one-line message)
Arrays = tuple[np.ndarray, np.ndarray]  # (t, value): float64, NaN where a value is missing


def _sample_row(row: SampleRow) -> tuple[str, str, str, float, float]:
    """(channel, device, unit, t, value) of one given sample; ValueError for a malformed one."""
    if isinstance(row, Sample):
        channel, device, t, value, unit = row.channel, row.device, row.t, row.value, row.unit
    elif len(row) == 5:
        channel, device, t, value, unit = row
    elif len(row) == 4:
        (channel, device, t, value), unit = row, ""
    else:
        raise ValueError(f"a telemetry sample is (channel, device, t, value[, unit]), not {row!r}")
    return str(channel), str(device), str(unit), float(t), math.nan if value is None else float(value)


SHARED_TIME_BLOBS = 256  # decoded time blobs one read keeps for the channels that share them
DECODE_BATCH = 256  # value segments decoded in one vector pass (~2 MB of samples at 1,024 a segment)


class SampleSegments(JournalReplay):
    """Writing and reading telemetry segments (both backends)."""

    def __init__(self) -> None:
        super().__init__()
        self._series_ids: dict[SeriesKey, int] = {}  # committed series, so a stream looks each up once

    # ---- writing --------------------------------------------------------------------------------
    def record_samples(self, run_id: str, rows: Iterable[SampleRow], *, batch_size: int = SAMPLE_BATCH) -> int:
        """Telemetry: ``Sample``s or ``(channel, device, t, value[, unit])`` tuples, any number.

        Committed every ``batch_size`` rows (each batch all or nothing, as segments of its
        channels), so other threads' records get in between batches. Returns the number of rows
        written. ``rows`` may be a generator: it is consumed batch by batch."""
        total = 0
        batch: dict[tuple[str, str, str], tuple[list[float], list[float]]] = {}
        pending = 0
        for row in rows:
            channel, device, unit, t, value = _sample_row(row)
            times, values = batch.setdefault((channel, device, unit), ([], []))
            times.append(t)
            values.append(value)
            pending += 1
            if pending >= batch_size:
                total += self._write_batch(run_id, batch)
                batch, pending = {}, 0
        if pending:
            total += self._write_batch(run_id, batch)
        return total

    def _write_batch(self, run_id: str, batch: dict[tuple[str, str, str], tuple[list[float], list[float]]]) -> int:
        arrays = {
            (run_id, *key): (np.array(t, dtype=np.float64), np.array(v, dtype=np.float64))
            for key, (t, v) in batch.items()
        }
        count = sum(t.size for t, _ in arrays.values())
        self.write_series(arrays, f"record {count} telemetry samples for run {run_id!r}")
        return count

    def write_series(
        self, arrays: dict[SeriesKey, Arrays], operation: str, mark: tuple[str, str] | None = None
    ) -> None:
        """Samples of several series (any order), as segments, in one transaction; see ``write_segments``."""
        self.write_segments({key: segments_of(t, v) for key, (t, v) in arrays.items() if t.size}, operation, mark)

    def write_segments(
        self, encoded: dict[SeriesKey, list[EncodedSegment]], operation: str, mark: tuple[str, str] | None = None
    ) -> None:
        """Encoded segments of several series in one transaction; ``mark`` (a ``meta`` key and
        value) is written in the same transaction (a sample journal's exactly-once count)."""
        created: dict[SeriesKey, int] = {}
        with self._tx(operation) as cur:
            rows = []
            for key, segments in encoded.items():
                number = self._series_ids.get(key)
                if number is None:
                    number = created[key] = series_id(cur, self._sql, key)
                rows += segment_rows(number, segments)
            if rows:
                cur.executemany(self._sql(INSERT_SEGMENT), rows)
            if mark is not None:
                cur.execute(self._sql(UPSERT_META), mark)
        self._series_ids.update(created)  # only once committed: a rolled back id names nothing

    # ---- reading --------------------------------------------------------------------------------
    def _segments(
        self,
        run_id: str,
        channel: str | None,
        device: str | None,
        unit: str | None,
        start: float | None,
        end: float | None,
    ) -> list[tuple[Any, ...]]:
        """(channel, device, unit, times blob, values blob, t_first) of the segments that may hold
        samples of the filter, by channel, device, unit and time."""
        where, args = ["s.run_id = ?"], [run_id]
        for clause, value in (
            ("s.channel = ?", channel), ("s.device = ?", device), ("s.unit = ?", unit),
            ("g.t_last >= ?", start), ("g.t_first <= ?", end),
        ):  # fmt: skip
            if value is not None:
                where.append(clause)
                args.append(value)
        return self._query(
            "SELECT s.channel, s.device, s.unit, g.times, g.vals, g.t_first FROM sample_segments g"
            f" JOIN sample_series s ON s.series_id = g.series_id WHERE {' AND '.join(where)}"
            " ORDER BY s.channel, s.device, s.unit, g.t_first",
            tuple(args),
            "read telemetry samples",
            tuples=True,
        )

    def _series_arrays(
        self, run_id: str, channel: str | None, device: str | None, unit: str | None,
        start: float | None, end: float | None, unreadable: Unreadable | None = None,
    ) -> Iterator[tuple[tuple[str, str, str], np.ndarray, np.ndarray]]:  # fmt: skip
        """Each matching series' (key, t, values) in time order, cut to [start, end]. Uncut, series
        with the same time blobs (a stream's channels) get the same ``t`` array, read-only.
        ``unreadable``: told of each series a bad segment makes unreadable, which is then left
        out (without it, the read stops there with a StoreError)."""
        rows = self._segments(run_id, channel, device, unit, start, end)
        blobs: dict[bytes, np.ndarray] = {}  # a stream's channels share each fold's time blob
        axes: dict[tuple[bytes, ...], tuple[np.ndarray, np.ndarray | None]] = {}  # and so their joined times
        for key, part, v in self._values_by_series(rows, 4, unreadable):
            try:
                t, order = self._axis(part, blobs, axes)
                if t.size != v.size:
                    channel, device, *_, t_first = part[0]
                    raise StoreError(
                        f"results store {self.path}: read telemetry {channel!r} of {device!r}: the"
                        f" segments from t={t_first} have {t.size} times for {v.size} values"
                    )
            except StoreError as exc:
                if unreadable is None:
                    raise
                unreadable(key, str(exc))
                continue
            if order is not None:  # overlapping segments (separate writes)
                v = v[order]
            if start is not None or end is not None:
                keep = np.ones(t.size, dtype=bool)
                if start is not None:
                    keep &= t >= start
                if end is not None:
                    keep &= t <= end
                t, v = t[keep], v[keep]
            yield key, t, v

    def _values_by_series(
        self, rows: list[tuple[Any, ...]], at: int, unreadable: Unreadable | None = None
    ) -> Iterator[tuple[tuple[str, str, str], list[tuple[Any, ...]], np.ndarray]]:
        """(key, its rows, its values joined) per series of ``rows`` (ordered by series; each row
        (channel, device, unit, ...) with its values blob at ``at`` and its t_first last). Values
        are decoded ``DECODE_BATCH`` segments at a time (``decode_values_many``), so memory holds
        one batch, not the run. A batch with a bad segment: a StoreError, or with ``unreadable``,
        its series decoded one at a time and the bad ones reported and left out."""
        i = 0
        while i < len(rows):
            series: list[tuple[tuple[str, str, str], int, int]] = []
            j = i
            while j < len(rows) and (j - i < DECODE_BATCH or not series):
                key, k = rows[j][:3], j
                while k < len(rows) and rows[k][:3] == key:
                    k += 1
                series.append((key, j, k))
                j = k
            decoded: list[list[np.ndarray] | None]
            try:
                batch = self._decode_values(rows[i:j], at)
                decoded = [batch[first - i : stop - i] for _, first, stop in series]
            except StoreError:
                if unreadable is None:
                    raise
                decoded = [self._decode_series(rows[first:stop], at, unreadable) for _, first, stop in series]
            for (key, first, stop), parts in zip(series, decoded, strict=True):
                if parts is not None:
                    yield key, rows[first:stop], parts[0] if len(parts) == 1 else np.concatenate(parts)
            i = j

    def _decode_series(self, rows: list[tuple[Any, ...]], at: int, unreadable: Unreadable) -> list[np.ndarray] | None:
        try:
            return self._decode_values(rows, at)
        except StoreError as exc:
            unreadable(rows[0][:3], str(exc))
            return None

    def _decode_values(self, rows: list[tuple[Any, ...]], at: int) -> list[np.ndarray]:
        try:
            return decode_values_many([bytes(r[at]) for r in rows])
        except CodecError:  # name the segment: decode one at a time up to the one that fails
            for r in rows:
                try:
                    decode_values(bytes(r[at]))
                except CodecError as exc:
                    raise self._unreadable_segment(r[0], r[1], r[-1], exc) from exc
            raise

    def _unreadable_segment(self, channel: str, device: str, t_first: float, exc: CodecError) -> StoreError:
        return StoreError(f"results store {self.path}: read telemetry {channel!r} of {device!r}: the segment from"
                          f" t={t_first} is unreadable ({exc})")  # fmt: skip

    def _axis(
        self, rows: list[tuple[Any, ...]], blobs: dict[bytes, np.ndarray],
        axes: dict[tuple[bytes, ...], tuple[np.ndarray, np.ndarray | None]],
    ) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
        """The rows' times decoded, joined and in order (read-only), and the order that sorted
        them (None: already in order). ``blobs`` and ``axes``: what this read decoded so far;
        every channel a stream folded at once has the same time blobs, decoded and joined once."""
        key = tuple(bytes(r[3]) for r in rows)
        found = axes.get(key)
        if found is not None:
            return found
        times = []
        for (channel, device, _, _, _, t_first), blob in zip(rows, key, strict=True):
            decoded = blobs.get(blob)
            if decoded is None:
                try:
                    decoded = decode_times(blob)
                except CodecError as exc:
                    raise self._unreadable_segment(channel, device, t_first, exc) from exc
                if len(blobs) >= SHARED_TIME_BLOBS:
                    blobs.clear()
                blobs[blob] = decoded
            times.append(decoded)
        t = times[0].copy() if len(times) == 1 else np.concatenate(times)
        order = None
        if len(times) > 1 and np.any(np.diff(t) < 0):
            order = np.argsort(t, kind="stable")
            t = t[order]
        t.flags.writeable = False
        if len(axes) >= SHARED_TIME_BLOBS:
            axes.clear()
        axes[key] = (t, order)
        return t, order

    def sample_arrays(
        self,
        run_id: str,
        channel: str,
        *,
        device: str | None = None,
        unit: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> Arrays:
        """(t, values) of one channel as numpy arrays in time order (NaN: missing), for readers of
        many samples (report figures, statistics) that need no ``Sample`` per point."""
        found = [(t, v) for _, t, v in self._series_arrays(run_id, channel, device, unit, start, end)]
        if not found:
            return np.zeros(0), np.zeros(0)
        if len(found) == 1:
            t, v = found[0]
            return (t.copy() if not t.flags.writeable else t), v  # the caller's to change
        t = np.concatenate([f[0] for f in found])
        v = np.concatenate([f[1] for f in found])
        order = np.argsort(t, kind="stable")
        return t[order], v[order]

    def sample_series(
        self, run_id: str, unreadable: Unreadable | None = None
    ) -> Iterator[tuple[tuple[str, str, str], np.ndarray, np.ndarray]]:
        """((channel, device, unit), t, values) of every series of a run in time order, ordered by
        key: one query, one series decoded at a time (the report's figures bucket them all).
        Series sampled together share one read-only ``t`` (the same array object).
        ``unreadable(key, message)``: told of a series a bad segment (corrupt, or written by a
        newer rackval) makes unreadable, and the read goes on without it; without it, StoreError."""
        yield from self._series_arrays(run_id, None, None, None, None, None, unreadable)

    def sample_values(
        self,
        run_id: str,
        channel: str | None = None,
        *,
        device: str | None = None,
        unit: str | None = None,
        segments_within: tuple[float, float] | None = None,
    ) -> Iterator[tuple[tuple[str, str, str], np.ndarray]]:
        """((channel, device, unit), values) of every series of a run (or of the filter), in that
        order, NaN where missing; the values in their segments' order (time order for a series
        written by one stream), their times not decoded: for statistics such as a percentile.
        ``segments_within``: only segments that begin within that clock span (a stream's own
        segments; whole segments, as no time is decoded). One query; memory: the value blobs and
        one series decoded."""
        where, args = ["s.run_id = ?"], [run_id]
        for clause, value in (
            ("s.channel = ?", channel), ("s.device = ?", device), ("s.unit = ?", unit),
            ("g.t_first >= ?", segments_within and segments_within[0]),
            ("g.t_first <= ?", segments_within and segments_within[1]),
        ):  # fmt: skip
            if value is not None:
                where.append(clause)
                args.append(value)
        rows = self._query(
            "SELECT s.channel, s.device, s.unit, g.vals, g.t_first FROM sample_segments g"
            f" JOIN sample_series s ON s.series_id = g.series_id WHERE {' AND '.join(where)}"
            " ORDER BY s.channel, s.device, s.unit, g.t_first",
            tuple(args),
            "read telemetry values",
            tuples=True,
        )
        for key, _, values in self._values_by_series(rows, 3):
            yield key, values

    def samples(
        self,
        run_id: str,
        channel: str | None = None,
        *,
        device: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> list[Sample]:
        """Telemetry ordered by channel then clock time; filter to keep big runs cheap to read
        (``start``/``end`` are inclusive clock seconds)."""
        out: list[Sample] = []
        for (ch, dev, unit), t, v in self._series_arrays(run_id, channel, device, None, start, end):
            out.extend(
                Sample(ch, dev, ti, None if vi != vi else vi, unit)
                for ti, vi in zip(t.tolist(), v.tolist(), strict=True)
            )
        out.sort(key=lambda s: (s.channel, s.t, s.device))  # stable: series order breaks ties
        return out

    def sample_batches(self, run_id: str, size: int = 100_000) -> Iterator[list[tuple[Any, ...]]]:
        """Every sample of a run as (channel, device, t, value, unit) tuples, ordered by channel,
        t, device, ``size`` rows at a time: one pass over a 10 M-sample soak for exports, with
        memory bounded by one channel's samples. The store's lock is held per channel read only,
        never across the caller's work between pages."""
        page: list[tuple[Any, ...]] = []
        for channel in self._channel_names(run_id):
            keys, times, values, seq = [], [], [], []
            for n, (key, t, v) in enumerate(self._series_arrays(run_id, channel, None, None, None, None)):
                keys.append(key)
                times.append(t)
                values.append(v)
                seq.append(np.full(t.size, n))
            if not keys:
                continue
            t, v, s = np.concatenate(times), np.concatenate(values), np.concatenate(seq)
            if len(keys) > 1:
                devices = np.array([k[1] for k in keys])[s]
                order = np.lexsort((devices, t))
                t, v, s = t[order], v[order], s[order]
            values_out = v.astype(object)
            values_out[np.isnan(v)] = None
            if len(keys) == 1:
                channel, device, unit = keys[0]
                page.extend(zip(repeat(channel), repeat(device), t.tolist(), values_out.tolist(), repeat(unit)))
            else:
                of_row = [keys[i] for i in s.tolist()]
                page.extend(
                    (k[0], k[1], ti, vi, k[2])
                    for k, ti, vi in zip(of_row, t.tolist(), values_out.tolist(), strict=True)
                )
            while len(page) >= size:
                yield page[:size]
                del page[:size]
        if page:
            yield page

    def _channel_names(self, run_id: str) -> list[str]:
        rows = self._query(
            "SELECT DISTINCT channel FROM sample_series WHERE run_id = ? ORDER BY channel", (run_id,), "list channels"
        )
        return [r["channel"] for r in rows]

    def sample_channels(self, run_id: str) -> list[SampleChannel]:
        """Every channel of a run with its count, span and statistics, from the segments' columns
        alone (nothing decoded)."""
        rows = self._query(
            "SELECT s.channel, s.device, s.unit, SUM(g.n_samples) AS count, SUM(g.n_values) AS n,"
            " MIN(g.t_first) AS t_first, MAX(g.t_last) AS t_last, MIN(g.vmin) AS lo, MAX(g.vmax) AS hi,"
            " SUM(g.vsum) AS total FROM sample_segments g JOIN sample_series s ON s.series_id = g.series_id"
            " WHERE s.run_id = ? GROUP BY s.channel, s.device, s.unit ORDER BY s.channel, s.device, s.unit",
            (run_id,),
            "summarise telemetry channels",
        )
        out = []
        for r in rows:
            count, present = int(r["count"]), int(r["n"])
            out.append(
                SampleChannel(
                    r["channel"], r["device"], r["unit"], count, float(r["t_first"]), float(r["t_last"]),
                    missing=count - present,
                    minimum=None if r["lo"] is None else float(r["lo"]),
                    maximum=None if r["hi"] is None else float(r["hi"]),
                    mean=float(r["total"]) / present if present else None,
                )
            )  # fmt: skip
        return out
