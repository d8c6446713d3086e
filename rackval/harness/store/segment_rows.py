"""The rows of the segment sample store, written through a cursor: series, segments, and the
fold of a pre-segment store's ``samples`` rows into segments (the schema step that introduced
segments runs it, in its own transaction).

Two tables (``rackval.harness.store.schema``): ``sample_series`` names each (run, channel,
device, unit) once and gives it a number; ``sample_segments`` holds, per series, segments of up
to ``SEGMENT_SAMPLES`` samples (``rackval.harness.store.sample_codec``) with their span and
statistics. Kept apart from the store classes so the schema step can use them on a bare cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from rackval.harness.store.sample_codec import CODEC_VERSION, EncodedSegment, segments_of

SeriesKey = tuple[str, str, str, str]  # (run_id, channel, device, unit)
Sql = Callable[[str], str]  # the dialect's placeholder rewrite

SELECT_SERIES = "SELECT series_id FROM sample_series WHERE run_id = ? AND channel = ? AND device = ? AND unit = ?"
INSERT_SERIES = "INSERT INTO sample_series(run_id, channel, device, unit) VALUES (?,?,?,?) RETURNING series_id"
INSERT_SEGMENT = (
    "INSERT INTO sample_segments(series_id, t_first, t_last, n_samples, n_values, vmin, vmax, vsum, codec, times,"
    " vals) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)


def series_id(cur: Any, sql: Sql, key: SeriesKey) -> int:
    """The number of a series, created if new (inside the caller's transaction)."""
    cur.execute(sql(SELECT_SERIES), key)
    row = cur.fetchone()
    if row is None:
        cur.execute(sql(INSERT_SERIES), key)
        row = cur.fetchone()
    return int(row["series_id"] if isinstance(row, dict) else row[0])


def segment_rows(series: int, segments: Iterable[EncodedSegment]) -> list[tuple[Any, ...]]:
    """The INSERT_SEGMENT parameters of segments of one series."""
    return [
        (series, s.t_first, s.t_last, s.count, s.n_values, s.vmin, s.vmax, s.vsum, CODEC_VERSION, s.times, s.values)
        for s in segments
    ]


def insert_segments(cur: Any, sql: Sql, series: int, segments: Iterable[EncodedSegment]) -> int:
    """Insert segments of one series; returns the samples they hold."""
    rows = segment_rows(series, segments)
    if rows:
        cur.executemany(sql(INSERT_SEGMENT), rows)
    return sum(r[3] for r in rows)


def fold_legacy_samples(cur: Any, sql: Sql) -> int:
    """Move every row of the old ``samples`` table into segments, then drop the table (the
    schema step's migration, inside its transaction). Returns the samples moved."""
    cur.execute("SELECT DISTINCT run_id, channel, device, unit FROM samples")
    keys = [(r["run_id"], r["channel"], r["device"], r["unit"]) for r in cur.fetchall()]
    moved = 0
    for key in sorted(keys):
        cur.execute(sql("SELECT t, value FROM samples WHERE run_id = ? AND channel = ? AND device = ? AND unit = ?"
                        " ORDER BY t"), key)  # fmt: skip
        rows = cur.fetchall()
        t = np.array([r["t"] for r in rows], dtype=np.float64)
        v = np.array([np.nan if r["value"] is None else r["value"] for r in rows], dtype=np.float64)
        moved += insert_segments(cur, sql, series_id(cur, sql, key), segments_of(t, v))
    cur.execute("DROP TABLE samples")
    return moved
