"""The segment sample store on both backends: awkward values back exactly, statistics without
decoding, time ranges that decode only their segments, old ``samples`` rows folded in on
migration, and a corrupt segment reported in one line."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import psycopg
import pytest

from rackval.harness.store import SCHEMA_VERSION, RunInfo, Sample, StoreError, open_store
from rackval.harness.store import segments as segments_module
from rackval.harness.store.schema import META_DDL, POSTGRESQL, SQLITE, STEPS

pytestmark = pytest.mark.usefixtures("journal_dir")  # tests/conftest.py: journals under tmp_path


def _execute(url: str, statements: list[str], args: list[tuple[object, ...]] | None = None) -> None:
    """Write behind the store's back, on either backend."""
    args = args or [()] * len(statements)
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        for statement, a in zip(statements, args, strict=True):
            db.execute(statement, a)
        db.close()
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement, a in zip(statements, args, strict=True):
                conn.execute(statement.replace("?", "%s"), a)


AWKWARD = [np.nan, math.inf, -math.inf, -0.0, 1e-300, 5e-324, 412.3, 2.0**60 + 1024, 0.1 + 0.2]


def test_awkward_values_and_irregular_times_come_back_exactly(store_url: str) -> None:
    store = open_store(store_url)
    store.start_run(RunInfo("r", 1.0))
    times = [0.0, 0.25, 0.251, 7.0, 3600.5, 3601.0, 99999.123, 100000.0, 200000.0]  # gaps, irregular (to the ms)
    rows = [("odd", "dev", t, v, "W") for t, v in zip(times, AWKWARD, strict=True)]
    rows.append(("single", "dev", 5.0, 1.5, "V"))
    assert store.record_samples("r", reversed(rows)) == len(rows)  # any order in
    back = store.samples("r", "odd")
    assert [s.t for s in back] == times
    got = [math.nan if s.value is None else s.value for s in back]
    assert np.array_equal(np.array(got).view(np.uint64)[1:], np.array(AWKWARD).view(np.uint64)[1:])
    assert back[0].value is None  # NaN is a missing sample, as it always was
    assert store.samples("r", "single") == [Sample("single", "dev", 5.0, 1.5, "V")]
    t, v = store.sample_arrays("r", "odd", start=0.25, end=7.0)
    assert t.tolist() == [0.25, 0.251, 7.0] and v.tolist() == [math.inf, -math.inf, -0.0]
    store.close()


def test_channel_statistics_come_from_segments_without_decoding(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(store_url)
    store.start_run(RunInfo("r", 1.0))
    values = [None if i % 10 == 3 else float(i % 17) - 4.0 for i in range(3000)]  # spans several segments
    store.record_samples("r", [("pdu/power_w", "pdu", float(i), v, "W") for i, v in enumerate(values)])
    store.record_samples("r", [("pdu/power_w", "pdu", 5000.0, 1000.0, "kW")])  # same channel, other unit
    for name in ("decode_values", "decode_values_many", "decode_times"):
        monkeypatch.setattr(segments_module, name, _forbidden)
    (w, kw) = sorted(store.sample_channels("r"), key=lambda c: c.unit)  # "W" < "kW"
    present = [v for v in values if v is not None]
    assert (w.count, w.missing, w.minimum, w.maximum, w.t_first, w.t_last) == (3000, 300, -4.0, 12.0, 0.0, 2999.0)
    assert w.mean == pytest.approx(sum(present) / len(present))
    assert (kw.count, kw.missing, kw.minimum, kw.maximum, kw.mean) == (1, 0, 1000.0, 1000.0, 1000.0)
    store.close()


def _forbidden(blob: object) -> np.ndarray:
    raise AssertionError("decoded a segment")


def test_a_time_range_decodes_only_the_segments_it_meets(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(store_url)
    store.start_run(RunInfo("r", 1.0))
    store.record_samples("r", [(f"ch{c}", "d", float(i), float(i), "V") for i in range(5000) for c in range(3)],
                         batch_size=100_000)  # fmt: skip
    decoded: list[int] = []
    real = segments_module.decode_values_many

    def counting(blobs: list[bytes]) -> list[np.ndarray]:
        out = real(blobs)
        decoded.extend(a.size for a in out)
        return out

    monkeypatch.setattr(segments_module, "decode_values_many", counting)
    t, v = store.sample_arrays("r", "ch1", start=2000.0, end=2010.0)
    assert t.tolist() == v.tolist() == [float(i) for i in range(2000, 2011)]
    assert len(decoded) == 1  # one segment of one channel, of 15
    assert [s.t for s in store.samples("r", "ch2", start=4999.0)] == [4999.0]
    store.close()


def test_a_corrupt_segment_is_one_line_naming_the_channel(store_url: str) -> None:
    store = open_store(store_url)
    store.start_run(RunInfo("r", 1.0))
    store.record_samples("r", [("gpu0/temp", "node1", float(i), 40.0, "degC") for i in range(10)])
    store.close()
    _execute(store_url, ["UPDATE sample_segments SET vals = ?"], [(b"\x01\x0a\x00\x00\x00not zstd",)])
    store = open_store(store_url)
    with pytest.raises(StoreError) as caught:
        store.samples("r")
    message = str(caught.value)
    assert "\n" not in message and "'gpu0/temp' of 'node1'" in message and "t=0.0" in message
    assert store.sample_channels("r")[0].count == 10  # the statistics still read
    store.close()


def test_a_read_of_every_series_can_go_on_past_a_bad_segment(store_url: str) -> None:
    """A damaged values blob (one channel) and a damaged time blob (another): told of, left out,
    every other series read in full; without a handler the read stops with the one line."""
    store = open_store(store_url)
    store.start_run(RunInfo("r", 1.0))
    rows = [(f"ch{c}", "node1", float(i), float(i + c), "W") for i in range(3000) for c in range(6)]
    store.record_samples("r", rows, batch_size=100_000)  # ch2 and ch4 get their own time blobs below
    store.record_samples("r", [("ch4", "node2", float(i), 1.0, "W") for i in range(5)])
    store.close()
    _execute(store_url, [
        "UPDATE sample_segments SET vals = ? WHERE t_first = 1024.0 AND series_id IN"
        " (SELECT series_id FROM sample_series WHERE channel = 'ch2')",
        "UPDATE sample_segments SET times = ? WHERE series_id IN"
        " (SELECT series_id FROM sample_series WHERE channel = 'ch4' AND device = 'node2')",
    ], [(b"\x01\x0a\x00\x00\x00not zstd",), (b"\x02garbage",)])  # fmt: skip
    store = open_store(store_url)
    told: list[tuple[tuple[str, str, str], str]] = []
    read = {key: (t, v) for key, t, v in store.sample_series("r", lambda key, message: told.append((key, message)))}
    assert [key for key, _ in told] == [("ch2", "node1", "W"), ("ch4", "node2", "W")]
    assert all("\n" not in m and "unreadable" in m for _, m in told)
    assert "t=1024.0" in told[0][1]
    assert sorted(read) == [(f"ch{c}", "node1", "W") for c in (0, 1, 3, 4, 5)]
    for c in (0, 1, 3, 4, 5):
        t, v = read[(f"ch{c}", "node1", "W")]
        assert t.tolist() == [float(i) for i in range(3000)] and v.tolist() == [float(i + c) for i in range(3000)]
    with pytest.raises(StoreError, match="'ch2' of 'node1'"):
        list(store.sample_series("r"))
    store.close()


def _write_v3_store_with_samples(url: str) -> list[tuple[object, ...]]:
    """A store as schema version 3 left it, with telemetry rows in its ``samples`` table."""
    dialect = SQLITE if url.startswith("sqlite:///") else POSTGRESQL
    statements = [META_DDL] + [s for step in STEPS[:3] for s in dialect.ddl(step)]  # type: ignore[arg-type]
    statements += [
        "INSERT INTO meta(key, value) VALUES ('schema_version', '3')",
        "INSERT INTO runs(run_id, started_at) VALUES ('v3-run', 100.0)",
        "INSERT INTO runs(run_id, started_at) VALUES ('v3-other', 200.0)",
    ]
    rows: list[tuple[object, ...]] = [
        ("v3-run", "pdu-a/power_w", "pdu-a", 100.0 + i, None if i == 4 else 4000.0 + i / 10, "W") for i in range(2500)
    ]
    rows += [("v3-run", "node1/temp", "node1", 101.5, 38.25, "degC"), ("v3-run", "node1/temp", "node1", 101.5, 38.25,
             "degC"), ("v3-other", "x", "", 1.0, -0.0, "")]  # fmt: skip
    insert = "INSERT INTO samples(run_id, channel, device, t, value, unit) VALUES (?,?,?,?,?,?)"
    _execute(url, statements + [insert] * len(rows), [()] * len(statements) + rows)
    return rows


def test_a_v3_store_has_its_samples_folded_into_segments(store_url: str) -> None:
    rows = _write_v3_store_with_samples(store_url)
    store = open_store(store_url)
    assert store.schema_version() == SCHEMA_VERSION
    got = store.samples("v3-run")
    mine = [Sample(str(c), str(d), float(t), v, str(u)) for r, c, d, t, v, u in rows if r == "v3-run"]  # type: ignore[arg-type]
    want = sorted(mine, key=lambda s: (s.channel, s.t))
    assert got == want
    assert [(s.channel, s.t, s.value) for s in store.samples("v3-other")] == [("x", 1.0, 0.0)]
    power = next(c for c in store.sample_channels("v3-run") if c.channel == "pdu-a/power_w")
    assert (power.count, power.missing, power.minimum, power.maximum) == (2500, 1, 4000.0, 4249.9)
    store.close()
    again = open_store(store_url)  # reopening migrates nothing twice
    assert len(again.samples("v3-run")) == 2502
    again.close()
    with pytest.raises((sqlite3.OperationalError, psycopg.errors.UndefinedTable)):
        _execute(store_url, ["SELECT * FROM samples"])
    if store_url.startswith("sqlite:///"):  # the dropped table's pages went back to the file system
        db = sqlite3.connect(store_url[len("sqlite:///") :])
        assert db.execute("PRAGMA freelist_count").fetchone() == (0,)
        db.close()


def test_a_fresh_sqlite_store_has_pages_that_hold_several_segments(tmp_path: Path) -> None:
    with open_store(tmp_path / "fresh.sqlite") as store:
        assert store._query("PRAGMA page_size", (), "read the page size")[0]["page_size"] == 16384
