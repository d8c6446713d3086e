"""Telemetry for the report: per-channel statistics and per-pixel min/max envelopes.

A 1-hour soak of a full rack is ~10 M samples; the report must never hold or plot them as
Python objects. So it reads two things only:

* ``channel_stats`` - count, missing, min, mean, max and p99 of every channel.
  SQLite: a sampler writes time-major, so reading channel by channel through the
  (run_id, channel, t) index jumps to another table page for nearly every row (~25 s for
  10.8 M samples here), and SQLite's GROUP BY sorts every row (~13 s). Instead the channel of
  every row comes from the index alone (``group_concat(rowid)`` per channel: no table access, no
  sort), the values from a sequential rowid scan (``group_concat`` text per 500 k-row chunk, on
  two read-only connections at once), and numpy matches them by rowid and groups them. The index
  holds no device or unit, so those are read from each channel's first and last sample; if they
  differ (or the rows changed between the two reads) the exact scan, which keys every row by
  (channel, device, unit) at ~2x the cost, runs instead. A channel whose device or unit changes
  only between its first and last sample is therefore summarised under its first sample's; the
  harness names channels ``<device>/<component>/<quantity>`` and keeps their unit, so this does not arise.
  PostgreSQL: one GROUP BY with ``percentile_disc`` on the server. Any other store (a test
  double) is read channel by channel through the public ``samples`` API.
* ``summarise`` - those statistics and, from the same scan, the **grid**: every channel's
  minimum and maximum per time bucket (``buckets`` equal slices of the run's telemetry span, one
  per horizontal pixel of a figure) and its median sampling interval. The report's figures draw
  from the grid alone, so a figure of 256 channels costs no further read of the store.
  (The SQLite scan reads ``t`` beside ``value``; PostgreSQL groups by bucket on the server.)

p99 is nearest-rank (numpy ``inverted_cdf`` = PostgreSQL ``percentile_disc``): a value that was
actually recorded. On SQLite the values cross as text with 15 significant digits, below what the
report prints. Peak memory on SQLite is ~40 bytes per sample of the run (~450 MB for 10.8 M);
much larger runs want per-channel rollups written by the store at run end (or a covering
index on (run_id, channel, device, unit, t, value)).
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rackval.harness.store import StoreError
from rackval.harness.store.records import Sample, SampleChannel

SCAN_CHUNK_ROWS = 500_000
"""Rowids per SQLite scan chunk: big enough to amortise a query, small enough for ~10 MB strings."""

_KEY_SEP = "\x1f"  # unit separator: between channel, device and unit of one row's key
_ROW_SEP = "\x1e"  # record separator: between rows' keys (neither can occur in a sane channel name)

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


Series = tuple[ChannelKey, np.ndarray, np.ndarray]
"""One channel's samples: its key, times (run clock s) and values (NaN: missed), as numpy views."""


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


def _dialect(store: Any) -> str:
    """'sqlite' or 'postgresql' for the SQL stores this module can query directly, else ''."""
    dialect = getattr(store, "dialect", None)
    name = getattr(dialect, "name", "")
    return name if name in ("sqlite", "postgresql") and callable(getattr(store, "_query", None)) else ""


def _summarise(key: ChannelKey, values: np.ndarray) -> ChannelStats:
    finite = values[~np.isnan(values)]
    missing = int(values.size - finite.size)
    if finite.size == 0:
        return ChannelStats(*key, count=int(values.size), missing=missing, minimum=None, mean=None, maximum=None,
                            p99=None)  # fmt: skip
    return ChannelStats(
        *key,
        count=int(values.size),
        missing=missing,
        minimum=float(finite.min()),
        mean=float(finite.mean()),
        maximum=float(finite.max()),
        p99=float(np.quantile(finite, 0.99, method="inverted_cdf")),
    )


def _numbers(text: str | None, n: int) -> np.ndarray:
    """A ``group_concat`` of ``n`` numbers as an array (``fromstring`` first: fast)."""
    if not n:
        return np.empty(0)
    values = np.fromstring(text or "", sep=",")
    if values.size != n:  # a spelling fromstring does not know: slow but exact
        values = np.array([float(v) for v in (text or "").split(",")], dtype=float)
    return values


def _parse_chunk(row: dict[str, Any], index: dict[str, int], chunks: list[tuple[np.ndarray, ...]]) -> None:
    """One scan chunk's key, time and value strings -> channel codes (shared ``index``), times, values."""
    n = int(row["n"] or 0)
    if not n:
        return
    local_codes, uniques = pd.factorize(np.array(row["k"].split(_ROW_SEP), dtype=object))
    remap = np.array([index.setdefault(u, len(index)) for u in uniques], dtype=np.int32)
    chunks.append((remap[local_codes], _numbers(row["t"], n), _numbers(row["v"], n)))


def _sqlite_readers(store: Any) -> Callable[[], Any] | None:
    """A factory of extra read-only connections to the store's file, so two scans run on two
    cores (WAL lets readers run beside the writer of a live run); None if there is no file."""
    path = getattr(store, "path", None)
    if not isinstance(path, Path) or not path.is_file():
        return None

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)

    return connect


def _series_sqlite_exact(store: Any, run_id: str) -> list[Series]:
    """Keys every row by (channel, device, unit) in the scan: exact in every case, ~2x slower."""
    bounds = store._query(
        "SELECT MIN(rowid) AS lo, MAX(rowid) AS hi FROM samples WHERE run_id = ?", (run_id,), "locate telemetry"
    )
    lo, hi = bounds[0]["lo"], bounds[0]["hi"]
    if lo is None:
        return []
    index: dict[str, int] = {}  # key text -> code, in order of first appearance
    chunks: list[tuple[np.ndarray, ...]] = []
    sql = (
        "SELECT group_concat(channel || char(31) || device || char(31) || unit, char(30)) AS k,"
        " group_concat(t) AS t, group_concat(ifnull(value, 'nan')) AS v, COUNT(*) AS n"
        " FROM samples NOT INDEXED WHERE rowid BETWEEN ? AND ? AND run_id = ?"
    )
    connect = _sqlite_readers(store)
    local = threading.local()
    opened: list[sqlite3.Connection] = []
    opened_lock = threading.Lock()

    def fetch(start: int) -> dict[str, Any]:
        args = (start, start + SCAN_CHUNK_ROWS - 1, run_id)
        if connect is None:
            return store._query(sql, args, "summarise telemetry")[0]
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = connect()
            with opened_lock:
                opened.append(conn)
        try:
            k, t, v, n = conn.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"results store {store.path}: summarise telemetry of run {run_id!r}: {exc}") from exc
        return {"k": k, "t": t, "v": v, "n": n}

    # SQLite releases the GIL while it scans: chunks are read on two connections while numpy parses.
    workers = 2 if connect is not None else 1
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="report-telemetry") as pool:
            starts_iter = iter(range(int(lo), int(hi) + 1, SCAN_CHUNK_ROWS))
            pending = [pool.submit(fetch, s) for s in itertools.islice(starts_iter, workers + 1)]
            while pending:
                row = pending.pop(0).result()
                following = next(starts_iter, None)
                if following is not None:
                    pending.append(pool.submit(fetch, following))
                _parse_chunk(row, index, chunks)
    finally:
        for conn in opened:
            conn.close()
    if not chunks:
        return []
    codes, times, values = (np.concatenate(part) for part in zip(*chunks, strict=True))
    del chunks
    order = np.argsort(codes, kind="stable")
    codes, times, values = codes[order], times[order], values[order]
    del order
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], codes.size]
    keys = list(index)
    out: list[Series] = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        channel, device, unit = keys[int(codes[s])].split(_KEY_SEP)
        out.append(((channel, device, unit), times[s:e], values[s:e]))
    return out


class _Readers:
    """Runs SQL on extra read-only connections to the store's SQLite file, one per worker
    thread, so chunk scans use both cores (WAL lets them read beside a live run's writer).
    Without a file (or for another backend) it goes through the store's own connection."""

    def __init__(self, store: Any) -> None:
        self.store = store
        path = getattr(store, "path", None)
        self.path = path if isinstance(path, Path) and path.is_file() else None
        self.workers = 2 if self.path is not None else 1
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def row(self, sql: str, args: tuple[Any, ...], operation: str) -> tuple[Any, ...]:
        if self.path is None:
            return tuple(self.store._query(sql, args, operation)[0].values())
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        try:
            return tuple(conn.execute(sql, args).fetchone())
        except sqlite3.Error as exc:
            raise StoreError(f"results store {self.path}: {operation} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()


def _series_sqlite(store: Any, run_id: str) -> list[Series]:
    """Channel of every row from the index (no table access, no sort: the index is in channel
    order), values from a sequential rowid scan, matched by rowid; two connections scan at once.

    The index holds the channel but not the device and unit: those are read from each channel's
    first and last sample. When they differ anywhere, or the scan does not line up (rows changed
    under it), the exact scan that keys every row runs instead.
    """
    rows = store._query(
        "SELECT channel, group_concat(rowid) AS r FROM samples WHERE run_id = ? GROUP BY channel ORDER BY channel",
        (run_id,),
        "index telemetry channels",
    )
    if not rows:
        return []
    names = [r["channel"] for r in rows]
    rowid_parts = [np.fromstring(r["r"], sep=",", dtype=np.int64) for r in rows]
    sizes = np.array([a.size for a in rowid_parts])
    rowids = np.concatenate(rowid_parts)
    del rowid_parts
    codes_by_list = np.repeat(np.arange(len(names), dtype=np.int32), sizes)
    lo, hi = int(rowids.min()), int(rowids.max())
    if hi - lo + 1 <= 4 * rowids.size:  # dense: place codes by rowid offset
        slots = np.full(hi - lo + 1, -1, dtype=np.int32)
        slots[rowids - lo] = codes_by_list
        codes = slots[slots >= 0]
        del slots
    else:  # the run's rows are spread thinly among other runs' rows
        codes = codes_by_list[np.argsort(rowids, kind="stable")]
    del rowids, codes_by_list

    readers = _Readers(store)
    sql = (
        "SELECT group_concat(t) AS t, group_concat(ifnull(value, 'nan')) AS v, COUNT(*) AS n"
        " FROM samples NOT INDEXED WHERE rowid BETWEEN ? AND ? AND run_id = ?"
    )

    def fetch(start: int) -> tuple[np.ndarray, np.ndarray]:
        t, v, n = readers.row(sql, (start, min(hi, start + SCAN_CHUNK_ROWS - 1), run_id), "summarise telemetry")
        return _numbers(t, n), _numbers(v, n)

    try:
        with ThreadPoolExecutor(max_workers=readers.workers, thread_name_prefix="report-telemetry") as pool:
            chunks = list(pool.map(fetch, range(lo, hi + 1, SCAN_CHUNK_ROWS)))
    finally:
        readers.close()
    times = np.concatenate([t for t, _ in chunks]) if chunks else np.empty(0)
    values = np.concatenate([v for _, v in chunks]) if chunks else np.empty(0)
    del chunks
    if values.size != codes.size or times.size != codes.size:
        return _series_sqlite_exact(store, run_id)

    identity: list[tuple[str, str]] = []
    for name in names:
        ends = []
        for direction in ("ASC", "DESC"):
            end = store._query(
                f"SELECT device, unit FROM samples WHERE run_id = ? AND channel = ? ORDER BY t {direction} LIMIT 1",
                (run_id, name),
                f"read device and unit of telemetry channel {name}",
            )[0]
            ends.append((end["device"], end["unit"]))
        if ends[0] != ends[1]:
            return _series_sqlite_exact(store, run_id)
        identity.append(ends[0])

    order = np.argsort(codes, kind="stable")
    times, values = times[order], values[order]
    del order
    bounds = np.r_[0, np.cumsum(sizes)]
    return [((name, *identity[i]), times[bounds[i] : bounds[i + 1]], values[bounds[i] : bounds[i + 1]])
            for i, name in enumerate(names)]  # fmt: skip


def _stats_postgres(store: Any, run_id: str) -> list[ChannelStats]:
    rows = store._query(
        "SELECT channel, device, unit, COUNT(*) AS count, COUNT(value) AS n, MIN(value) AS minimum,"
        " AVG(value) AS mean, MAX(value) AS maximum,"
        " percentile_disc(0.99) WITHIN GROUP (ORDER BY value) AS p99"
        " FROM samples WHERE run_id = ? GROUP BY channel, device, unit ORDER BY channel, device, unit",
        (run_id,),
        "summarise telemetry",
    )
    out = []
    for r in rows:
        out.append(
            ChannelStats(
                r["channel"], r["device"], r["unit"], count=int(r["count"]), missing=int(r["count"]) - int(r["n"]),
                minimum=_float(r["minimum"]), mean=_float(r["mean"]), maximum=_float(r["maximum"]),
                p99=_float(r["p99"]),
            )
        )  # fmt: skip
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _values(samples: list[Sample], unit: str) -> tuple[np.ndarray, np.ndarray]:
    chosen = [s for s in samples if s.unit == unit]
    t = np.array([s.t for s in chosen], dtype=float)
    v = np.array([math.nan if s.value is None else s.value for s in chosen], dtype=float)
    return t, v


def _series_generic(store: Any, run_id: str) -> list[Series]:
    channels: list[SampleChannel] = store.sample_channels(run_id)
    out: list[Series] = []
    for c in channels:
        t, v = _values(store.samples(run_id, c.channel, device=c.device), c.unit)
        out.append(((c.channel, c.device, c.unit), t, v))
    return out


def _grid(series: list[Series], buckets: int) -> Grid | None:
    """Min and max per bucket of every channel (``np.minimum.at``: one pass over the samples)."""
    firsts = [float(np.min(t)) for _, t, _ in series if t.size]
    lasts = [float(np.max(t)) for _, t, _ in series if t.size]
    if not firsts:
        return None
    t0, t1 = min(firsts), max(lasts)
    width = max(t1 - t0, 1e-9) / buckets
    low: dict[ChannelKey, np.ndarray] = {}
    high: dict[ChannelKey, np.ndarray] = {}
    interval: dict[ChannelKey, float] = {}
    for key, t, v in series:
        keep = ~np.isnan(v)
        slot = np.minimum(((t[keep] - t0) / width).astype(np.int64), buckets - 1)
        lo = np.full(buckets, np.inf)
        hi = np.full(buckets, -np.inf)
        np.minimum.at(lo, slot, v[keep])
        np.maximum.at(hi, slot, v[keep])
        lo[np.isinf(lo)] = np.nan
        hi[np.isinf(hi)] = np.nan
        low[key], high[key] = lo, hi
        steps = np.diff(t)
        if steps.size and steps.min() < 0:  # written out of time order: sort first (a sampler never does)
            steps = np.diff(np.sort(t))
        interval[key] = float(np.median(steps)) if steps.size else math.nan
    return Grid(t0, width, buckets, low, high, interval)


def _grid_postgres(store: Any, run_id: str, buckets: int) -> Grid | None:
    """The grid grouped on the server: the span, then min/max per (channel, bucket), and the
    median sampling interval of each channel."""
    span = store._query("SELECT MIN(t) AS lo, MAX(t) AS hi FROM samples WHERE run_id = ?", (run_id,),
                        "read telemetry span")[0]  # fmt: skip
    if span["lo"] is None:
        return None
    t0, t1 = float(span["lo"]), float(span["hi"])
    width = max(t1 - t0, 1e-9) / buckets
    rows = store._query(
        "SELECT channel, device, unit, LEAST(FLOOR((t - ?) / ?), ?) AS b, MIN(value) AS lo, MAX(value) AS hi"
        " FROM samples WHERE run_id = ? AND value IS NOT NULL GROUP BY channel, device, unit, b",
        (t0, width, buckets - 1, run_id),
        "read telemetry grid",
    )
    steps = store._query(
        "SELECT channel, device, unit, percentile_disc(0.5) WITHIN GROUP (ORDER BY dt) AS step FROM"
        " (SELECT channel, device, unit, t - LAG(t) OVER (PARTITION BY channel, device, unit ORDER BY t) AS dt"
        " FROM samples WHERE run_id = ?) d WHERE dt IS NOT NULL GROUP BY channel, device, unit",
        (run_id,),
        "read telemetry sampling intervals",
    )
    low: dict[ChannelKey, np.ndarray] = {}
    high: dict[ChannelKey, np.ndarray] = {}
    for r in rows:
        key = (r["channel"], r["device"], r["unit"])
        if key not in low:
            low[key], high[key] = np.full(buckets, np.nan), np.full(buckets, np.nan)
        low[key][int(r["b"])], high[key][int(r["b"])] = float(r["lo"]), float(r["hi"])
    interval = {(r["channel"], r["device"], r["unit"]): float(r["step"]) for r in steps}
    return Grid(t0, width, buckets, low, high, interval)


def summarise(store: Any, run_id: str, buckets: int = 500) -> Telemetry:
    """Every telemetry channel of ``run_id`` with its statistics, ordered by (channel, device,
    unit), and the grid of their minima and maxima in ``buckets`` time buckets."""
    dialect = _dialect(store)
    if dialect == "postgresql":
        return Telemetry(_stats_postgres(store, run_id), _grid_postgres(store, run_id, buckets))
    series = _series_sqlite(store, run_id) if dialect == "sqlite" else _series_generic(store, run_id)
    stats = sorted((_summarise(key, v) for key, _, v in series), key=lambda c: c.key)
    return Telemetry(stats, _grid(series, buckets))


def channel_stats(store: Any, run_id: str) -> list[ChannelStats]:
    """Every telemetry channel of ``run_id`` with its statistics, ordered by (channel, device, unit)."""
    return summarise(store, run_id, 1).stats
