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
* ``envelope`` - for the few channels a figure plots, min and max per pixel bucket, grouped in
  SQL through the index, so a figure costs the same for 3,600 or 3.6 M samples.

p99 is nearest-rank (numpy ``inverted_cdf`` = PostgreSQL ``percentile_disc``): a value that was
actually recorded. On SQLite the values cross as text with 15 significant digits, below what the
report prints. Peak memory on SQLite is ~30 bytes per sample of the run (~300 MB for 10.8 M);
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


@dataclass(frozen=True)
class Envelope:
    """Min/max per time bucket of one channel; ``t`` is each bucket's centre on the run clock.
    Buckets without a value are left out, so a gap in the data stays a gap."""

    key: ChannelKey
    t: np.ndarray
    low: np.ndarray
    high: np.ndarray


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


def _parse_chunk(
    row: dict[str, Any], index: dict[str, int], code_chunks: list[np.ndarray], value_chunks: list[np.ndarray]
) -> None:
    """One scan chunk's key and value strings -> channel codes (shared ``index``) and values."""
    n = int(row["n"] or 0)
    if not n:
        return
    local_codes, uniques = pd.factorize(np.array(row["k"].split(_ROW_SEP), dtype=object))
    remap = np.array([index.setdefault(u, len(index)) for u in uniques], dtype=np.int32)
    values = np.fromstring(row["v"], sep=",")
    if values.size != n:  # a spelling fromstring does not know: slow but exact
        values = np.array([float(v) for v in row["v"].split(",")], dtype=float)
    code_chunks.append(remap[local_codes])
    value_chunks.append(values)


def _sqlite_readers(store: Any) -> Callable[[], Any] | None:
    """A factory of extra read-only connections to the store's file, so two scans run on two
    cores (WAL lets readers run beside the writer of a live run); None if there is no file."""
    path = getattr(store, "path", None)
    if not isinstance(path, Path) or not path.is_file():
        return None

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)

    return connect


def _stats_sqlite_exact(store: Any, run_id: str) -> list[ChannelStats]:
    """Keys every row by (channel, device, unit) in the scan: exact in every case, ~2x slower."""
    bounds = store._query(
        "SELECT MIN(rowid) AS lo, MAX(rowid) AS hi FROM samples WHERE run_id = ?", (run_id,), "locate telemetry"
    )
    lo, hi = bounds[0]["lo"], bounds[0]["hi"]
    if lo is None:
        return []
    index: dict[str, int] = {}  # key text -> code, in order of first appearance
    code_chunks: list[np.ndarray] = []
    value_chunks: list[np.ndarray] = []
    sql = (
        "SELECT group_concat(channel || char(31) || device || char(31) || unit, char(30)) AS k,"
        " group_concat(ifnull(value, 'nan')) AS v, COUNT(*) AS n"
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
            k, v, n = conn.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"results store {store.path}: summarise telemetry of run {run_id!r}: {exc}") from exc
        return {"k": k, "v": v, "n": n}

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
                _parse_chunk(row, index, code_chunks, value_chunks)
    finally:
        for conn in opened:
            conn.close()
    if not code_chunks:
        return []
    codes = np.concatenate(code_chunks)
    values = np.concatenate(value_chunks)
    del code_chunks, value_chunks
    order = np.argsort(codes, kind="stable")
    codes, values = codes[order], values[order]
    del order
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], codes.size]
    keys = list(index)
    out = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        channel, device, unit = keys[int(codes[s])].split(_KEY_SEP)
        out.append(_summarise((channel, device, unit), values[s:e]))
    return sorted(out, key=lambda c: c.key)


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


def _stats_sqlite(store: Any, run_id: str) -> list[ChannelStats]:
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
        "SELECT group_concat(ifnull(value, 'nan')) AS v, COUNT(*) AS n"
        " FROM samples NOT INDEXED WHERE rowid BETWEEN ? AND ? AND run_id = ?"
    )

    def fetch(start: int) -> np.ndarray:
        text, n = readers.row(sql, (start, min(hi, start + SCAN_CHUNK_ROWS - 1), run_id), "summarise telemetry")
        if not n:
            return np.empty(0)
        values = np.fromstring(text, sep=",")
        if values.size != n:  # a spelling fromstring does not know: slow but exact
            values = np.array([float(v) for v in text.split(",")], dtype=float)
        return values

    try:
        with ThreadPoolExecutor(max_workers=readers.workers, thread_name_prefix="report-telemetry") as pool:
            chunks = list(pool.map(fetch, range(lo, hi + 1, SCAN_CHUNK_ROWS)))
    finally:
        readers.close()
    values = np.concatenate(chunks) if chunks else np.empty(0)
    del chunks
    if values.size != codes.size:
        return _stats_sqlite_exact(store, run_id)

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
            return _stats_sqlite_exact(store, run_id)
        identity.append(ends[0])

    order = np.argsort(codes, kind="stable")
    values = values[order]
    del order
    bounds = np.r_[0, np.cumsum(sizes)]
    out = [_summarise((name, *identity[i]), values[bounds[i] : bounds[i + 1]]) for i, name in enumerate(names)]
    return sorted(out, key=lambda c: c.key)


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


def _stats_generic(store: Any, run_id: str) -> list[ChannelStats]:
    out = []
    channels: list[SampleChannel] = store.sample_channels(run_id)
    for c in channels:
        _, values = _values(store.samples(run_id, c.channel, device=c.device), c.unit)
        out.append(_summarise((c.channel, c.device, c.unit), values))
    return sorted(out, key=lambda c: c.key)


def channel_stats(store: Any, run_id: str) -> list[ChannelStats]:
    """Every telemetry channel of ``run_id`` with its statistics, ordered by (channel, device, unit)."""
    dialect = _dialect(store)
    if dialect == "sqlite":
        return _stats_sqlite(store, run_id)
    if dialect == "postgresql":
        return _stats_postgres(store, run_id)
    return _stats_generic(store, run_id)


def time_span(store: Any, run_id: str, keys: list[ChannelKey]) -> tuple[float, float] | None:
    """First and last sample time over ``keys``: two index probes per channel on the SQL stores."""
    firsts, lasts = [], []
    dialect = _dialect(store)
    for channel, device, unit in keys:
        if dialect:
            where = "run_id = ? AND channel = ? AND device = ? AND unit = ?"
            args = (run_id, channel, device, unit)
            lo = store._query(f"SELECT MIN(t) AS t FROM samples WHERE {where}", args, "read telemetry span")[0]["t"]
            hi = store._query(f"SELECT MAX(t) AS t FROM samples WHERE {where}", args, "read telemetry span")[0]["t"]
        else:
            t, _ = _values(store.samples(run_id, channel, device=device), unit)
            lo, hi = (float(t.min()), float(t.max())) if t.size else (None, None)
        if lo is not None and hi is not None:
            firsts.append(float(lo))
            lasts.append(float(hi))
    if not firsts:
        return None
    return min(firsts), max(lasts)


def envelope(store: Any, run_id: str, key: ChannelKey, t0: float, t1: float, buckets: int) -> Envelope:
    """Min and max of ``key`` per bucket of ``buckets`` equal slices of [t0, t1]."""
    channel, device, unit = key
    span = max(t1 - t0, 1e-9)
    scale = buckets / span
    dialect = _dialect(store)
    if dialect:
        bucket = "CAST((t - ?) * ? AS INTEGER)" if dialect == "sqlite" else "FLOOR((t - ?) * ?)"
        rows = store._query(
            f"SELECT {bucket} AS b, MIN(value) AS lo, MAX(value) AS hi FROM samples"
            " WHERE run_id = ? AND channel = ? AND device = ? AND unit = ? AND t >= ? AND t <= ?"
            " GROUP BY b ORDER BY b",
            (t0, scale, run_id, channel, device, unit, t0, t1),
            f"read telemetry envelope of {channel}",
        )
        rows = [r for r in rows if r["lo"] is not None]
        b = np.minimum(np.array([float(r["b"]) for r in rows], dtype=float), buckets - 1)
        low = np.array([float(r["lo"]) for r in rows], dtype=float)
        high = np.array([float(r["hi"]) for r in rows], dtype=float)
    else:
        t, v = _values(store.samples(run_id, channel, device=device, start=t0, end=t1), unit)
        keep = ~np.isnan(v)
        t, v = t[keep], v[keep]
        idx = np.minimum(((t - t0) * scale).astype(np.int64), buckets - 1)
        b = np.unique(idx).astype(float)
        low = np.array([v[idx == i].min() for i in b.astype(np.int64)], dtype=float)
        high = np.array([v[idx == i].max() for i in b.astype(np.int64)], dtype=float)
    # the SQL path may split the last bucket in two (t == t1 exactly): merge duplicates
    if b.size > 1 and np.any(b[1:] == b[:-1]):
        uniq, inverse = np.unique(b, return_inverse=True)
        merged_low = np.full(uniq.size, np.inf)
        merged_high = np.full(uniq.size, -np.inf)
        np.minimum.at(merged_low, inverse, low)
        np.maximum.at(merged_high, inverse, high)
        low, high, b = merged_low, merged_high, uniq
    return Envelope(key=key, t=t0 + (b + 0.5) / scale, low=low, high=high)
