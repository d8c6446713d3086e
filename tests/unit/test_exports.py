"""CSV and Parquet exports of a run: round trip through pandas, streaming, CLI."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rackval.core.errors import ConfigError
from rackval.harness.measure import Limit, Measurement
from rackval.harness.report import exports
from rackval.harness.report.exports import add_parser, export_run
from rackval.harness.store import RunInfo, Sample, SqliteStore, open_store

T0 = 1_700_000_000.0
HOSTILE_DETAIL = "mean of the last \"449\" s\x00\x1b[2J\r\n<script>alert('x')</script> & \u202e\x7f,;\t"
"""A measurement's free text as a hostile device could make it: NUL, an ESC sequence, CR LF, markup,
quotes of both kinds, a bidi override, DEL, CSV separators and a tab."""
SAMPLES = [
    Sample("node-1.gpu0.temp", "node-1", 0.5, 61.25, "degC"),
    Sample("node-1.gpu0.temp", "node-1", 1.0, None, "degC"),  # the device did not answer
    Sample("node-1.gpu0.temp", "node-1", 1.5, 63.0, ""),  # same channel, unit omitted
    Sample("pdu-a.outlet3.power", "pdu-a", 0.5, 400.0, "W"),
    Sample("pdu-a.outlet3.power", "pdu-a", 1.0, 410.123456789012, "W"),
    Sample('odd,"name"\nwith newline', "pdu-a", 2.0, -1e-300, "W"),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = open_store(tmp_path / "r.sqlite")
    s.start_run(RunInfo(run_id="run-1", started_at=T0, rack_name="rack-A7", rack_serial="SN-42",
                        design_revision="rev-B", station="bench-2"))  # fmt: skip
    tid = s.start_test("run-1", "test_plans/test_power.py::test_outlets", T0 + 1)
    s.record_measurement("run-1", tid, Measurement.judged("outlet_power", 512.25, "W", Limit(high=1000.0, unit="W"),
                                                          device="pdu-a", channel="3", clock_s=1.0,
                                                          detail=HOSTILE_DETAIL))  # fmt: skip
    s.record_measurement("run-1", None, Measurement.judged("fw_age", 12.0, "d"))
    s.record_measurement("run-1", tid, Measurement.judged("lost", math.nan, "W", Limit(high=1.0, unit="W")))
    s.finish_test(tid, "failed", 1.0, "boom")
    s.record_samples("run-1", SAMPLES)
    s.start_run(RunInfo(run_id="other", started_at=T0 + 10))
    s.record_samples("other", [("x", "y", 0.0, 1.0, "V")])
    yield s
    s.close()


def _expected_samples() -> pd.DataFrame:
    rows = sorted(SAMPLES, key=lambda s: (s.channel, s.device, s.t))
    return pd.DataFrame(
        {
            "channel": [s.channel for s in rows],
            "device": [s.device for s in rows],
            "t": [s.t for s in rows],
            "value": [math.nan if s.value is None else s.value for s in rows],
            "unit": [s.unit for s in rows],
        }
    )


def test_csv_and_parquet_round_trip(store: SqliteStore, tmp_path: Path) -> None:
    out = tmp_path / "export"
    written = export_run(store, "run-1", out)
    assert written == [out / "measurements.csv", out / "samples.csv", out / "measurements.parquet",
                       out / "samples.parquet"]  # fmt: skip
    assert not list(out.glob(".*tmp"))  # no temporary file left behind

    expected = _expected_samples()
    csv_samples = pd.read_csv(out / "samples.csv", keep_default_na=False, na_values={"value": [""]})
    pq_samples = pd.read_parquet(out / "samples.parquet")
    assert pq_samples.columns[0] == "run_id" and set(pq_samples.pop("run_id")) == {"run-1"}
    for frame in (csv_samples, pq_samples):
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected, check_dtype=False)
    assert pq_samples["value"].dtype == "float64" and pq_samples["t"].dtype == "float64"

    for path, reader in ((out / "measurements.csv", pd.read_csv), (out / "measurements.parquet", pd.read_parquet)):
        frame = reader(path)
        assert list(frame["name"]) == ["outlet_power", "fw_age", "lost"]
        assert list(frame["outcome"]) == ["pass", "info", "fail"]
        assert frame.loc[0, "value"] == 512.25 and frame.loc[0, "high"] == 1000.0 and frame.loc[0, "unit"] == "W"
        assert frame.loc[0, "test"] == "test_plans/test_power.py::test_outlets"
        assert math.isnan(frame.loc[1, "test_id"]) and math.isnan(frame.loc[2, "value"])  # NULL -> NaN
        assert math.isnan(frame.loc[1, "low"]) and frame.loc[0, "clock_s"] == 1.0


def test_export_is_deterministic_and_csv_only(store: SqliteStore, tmp_path: Path) -> None:
    a = export_run(store, "run-1", tmp_path / "a", formats=("csv",))
    b = export_run(store, "run-1", tmp_path / "b", formats=["csv"])
    assert [p.name for p in a] == ["measurements.csv", "samples.csv"]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert "410.123456789012" in (tmp_path / "a" / "samples.csv").read_text()  # full precision


class _CountingStore:
    """Delegates to a real store and remembers the pages ``sample_batches`` handed out."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.pages: list[int] = []

    def sample_batches(self, run_id: str, size: int = 100_000) -> Iterator[list[tuple[Any, ...]]]:
        for rows in self.store.sample_batches(run_id, size=size):
            self.pages.append(len(rows))
            yield rows

    def samples(self, *args: Any, **kw: Any) -> Any:
        raise AssertionError("exports read samples in pages, never a whole run or channel at once")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_samples_are_read_once_in_bounded_pages(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.record_samples("run-1", ((f"soak.ch{i % 20}", "node-9", float(i // 20), float(i), "W")
                                   for i in range(4000)))  # fmt: skip
    monkeypatch.setattr(exports, "PARQUET_ROW_GROUP", 700)
    counting = _CountingStore(store)
    export_run(counting, "run-1", tmp_path, formats=("csv", "parquet"))
    total = len(SAMPLES) + 4000
    assert sum(counting.pages) == total and max(counting.pages) == 700  # one pass, bounded pages
    for frame in (pd.read_parquet(tmp_path / "samples.parquet"), pd.read_csv(tmp_path / "samples.csv")):
        assert len(frame) == total
        keys = list(zip(frame["channel"], frame["t"], frame["device"], strict=True))
        assert keys == sorted(keys) and len(set(keys)) == total  # keyset pages lose and repeat nothing


def test_empty_run_and_errors(store: SqliteStore, tmp_path: Path) -> None:
    store.start_run(RunInfo(run_id="empty", started_at=T0))
    export_run(store, "empty", tmp_path / "e")
    assert pd.read_parquet(tmp_path / "e" / "samples.parquet").columns.tolist() == [
        "run_id", "channel", "device", "t", "value", "unit"]  # fmt: skip
    assert pd.read_csv(tmp_path / "e" / "samples.csv").columns.tolist() == ["channel", "device", "t", "value", "unit"]
    assert pd.read_csv(tmp_path / "e" / "measurements.csv").empty
    with pytest.raises(KeyError):
        export_run(store, "no-such-run", tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    with pytest.raises(ConfigError, match="csv, parquet"):
        export_run(store, "run-1", tmp_path / "bad", formats=("xlsx",))


def test_record_artifacts(store: SqliteStore, tmp_path: Path) -> None:
    export_run(store, "run-1", tmp_path, formats=("parquet",), record_artifacts=True)
    assert {(a.name, a.kind) for a in store.artifacts("run-1")} == {
        ("measurements.parquet", "parquet"), ("samples.parquet", "parquet")}  # fmt: skip


def test_cli_export(store: SqliteStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="rackval")
    add_parser(parser.add_subparsers(dest="command", required=True))
    db = str(store.path)
    args = parser.parse_args(["export", "run-1", "--results", db, "--out", str(tmp_path / "o"), "--format", "csv"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "o" / "measurements.csv"), str(tmp_path / "o" / "samples.csv")]
    args = parser.parse_args(["export", "latest", "--results", db])  # default: beside the store, by run id
    assert args.func(args) == 0
    assert (tmp_path / "other" / "samples.parquet").is_file()  # 'latest' is the run started last
    args = parser.parse_args(["export", "nope", "--results", db])
    assert args.func(args) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_measurements_carry_utc_times_and_run_identity(store: SqliteStore, tmp_path: Path) -> None:
    """What pandas sees: an aware UTC datetime column in both formats, identity columns, clock_s."""
    export_run(store, "run-1", tmp_path)
    recorded = [m.recorded_at for _, m in store.measurements("run-1")]
    expected_times = pd.Series(pd.to_datetime(recorded, unit="s", utc=True))
    frames = {
        "parquet": pd.read_parquet(tmp_path / "measurements.parquet"),
        "csv": pd.read_csv(tmp_path / "measurements.csv", parse_dates=["recorded_at"]),
    }
    for fmt, frame in frames.items():
        times = frame["recorded_at"]
        assert str(times.dtype).startswith("datetime64[") and str(times.dt.tz) == "UTC", (fmt, times.dtype)
        assert (times - expected_times).abs().max() <= pd.Timedelta("1us"), fmt  # to the microsecond
        assert frame.columns[:5].tolist() == ["run_id", "rack", "serial", "revision", "station"], fmt
        assert set(frame["run_id"]) == {"run-1"} and set(frame["serial"]) == {"SN-42"}, fmt
        assert set(frame["revision"]) == {"rev-B"} and set(frame["station"]) == {"bench-2"}, fmt
        assert frame.loc[0, "clock_s"] == 1.0, fmt
    assert frames["parquet"]["value"].dtype == "float64" and frames["parquet"]["test_id"].dtype == "float64"
    both = pd.concat(frames.values())  # files of several runs (or formats) concatenate into one frame
    assert str(both["recorded_at"].dtype).endswith("UTC]")


def test_detail_round_trips_unchanged(store: SqliteStore, tmp_path: Path) -> None:
    """The free text beside the key is a column of its own, next to ``channel``, and comes back
    byte for byte from both formats: exports hold data, escaping is for whatever displays it."""
    export_run(store, "run-1", tmp_path)
    frames = {
        "parquet": pd.read_parquet(tmp_path / "measurements.parquet"),
        "csv": pd.read_csv(tmp_path / "measurements.csv", dtype={"detail": str}, keep_default_na=False),
    }
    for fmt, frame in frames.items():
        columns = frame.columns.tolist()
        assert columns[columns.index("channel") + 1] == "detail", fmt
        assert list(frame["detail"]) == [HOSTILE_DETAIL, "", ""], fmt  # none is '', not NaN or None
        assert list(frame["name"]) == ["outlet_power", "fw_age", "lost"], fmt  # the CR LF split no row
    assert str(frames["parquet"]["detail"].dtype) in ("object", "str", "string")
