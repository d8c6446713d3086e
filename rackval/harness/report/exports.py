"""Exports of one run for analysis outside rackval: measurements and telemetry as CSV and Parquet.

Why both: CSV opens anywhere (a spreadsheet on the bench PC); Parquet keeps types and is ~10x
smaller and faster for pandas/polars/DuckDB on a 10 M-sample soak. The files are written from
the store, so any run (finished, live or killed) can be exported again later.

Every measurement row carries the run's identity (``run_id``, ``rack``, ``serial``, ``revision``,
``station``), so files of many runs concatenate into one frame. Beside the measurement's key
(``requirement`` or ``name``, ``device``, ``channel``) is its free text (``detail``: "mean of the
last 449 s"), written as stored: a reader gets the text unchanged, control characters and all
(escaping is the job of whatever displays it). ``recorded_at`` is a UTC timestamp (Parquet
``timestamp[us, UTC]``, CSV ISO 8601 with ``+00:00``) and ``clock_s`` the run clock (the
simulator's virtual time; on a real rack monotonic seconds), the time base of the samples' ``t``.
``samples.parquet`` also carries ``run_id``; ``samples.csv`` does not (its directory names the
run, and 10 M rows of a repeated id would add ~200 MB of text).

Exports are optional (``pytest --export``, or this command after the run): a 30-minute soak's
samples.csv is ~90 MB.

Telemetry is read once, in pages of ``PARQUET_ROW_GROUP`` rows (``store.sample_batches``), and
each page is written to every format as it is read, so memory stays at one page however long
the run was. Every file is written under a
temporary name and renamed, so a reader never sees half an export.

``rackval export RUN [--results URL] [--out DIR] [--format csv,parquet]`` is the command line;
``add_parser`` registers it on the ``rackval`` CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rackval.core.errors import ConfigError
from rackval.harness.cliutil import add_results_option, default_out_dir, open_results, resolve_run

FORMATS = ("csv", "parquet")

RUN_COLUMNS = ("run_id", "rack", "serial", "revision", "station")
MEASUREMENT_COLUMNS = (
    *RUN_COLUMNS, "test_id", "test", "name", "requirement", "device", "channel", "detail", "value", "unit", "low",
    "high", "margin", "outcome", "recorded_at", "clock_s",
)  # fmt: skip
SAMPLE_COLUMNS = ("channel", "device", "t", "value", "unit")
PARQUET_ROW_GROUP = 250_000
"""Samples per page read from the store, and per Parquet row group."""


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ConfigError(f"export format must be one or more of {', '.join(FORMATS)}, not {','.join(formats)!r}")
    return chosen


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()


def _measurement_rows(store: Any, run_id: str) -> list[dict[str, Any]]:
    """One dict per measurement; ``recorded_at`` as an aware UTC datetime."""
    run = store.run(run_id)
    identity = dict(zip(RUN_COLUMNS, (run.run_id, run.rack_name, run.rack_serial, run.design_revision, run.station),
                        strict=True))  # fmt: skip
    labels = {t.test_id: t.nodeid for t in store.tests(run_id)}
    rows = []
    for test_id, m in store.measurements(run_id):
        rows.append(
            {
                **identity, "test_id": test_id, "test": labels.get(test_id, "") if test_id is not None else "",
                "name": m.name, "requirement": m.requirement, "device": m.device, "channel": m.channel,
                "detail": m.detail, "value": m.value, "unit": m.unit, "low": m.low, "high": m.high, "margin": m.margin,
                "outcome": m.outcome.value, "recorded_at": datetime.fromtimestamp(m.recorded_at, tz=UTC),
                "clock_s": m.clock_s,
            }
        )  # fmt: skip
    return rows


def _csv_cell(value: Any) -> Any:
    """None is an empty cell (pandas reads it back as NaN); floats keep full precision via repr."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def _write_csv(path: Path, columns: Sequence[str], rows: Iterator[Sequence[Any]]) -> None:
    with _atomic(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row])


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency; this names the fix
        raise ConfigError("Parquet export needs pyarrow: pip install pyarrow (or export --format csv)") from exc
    return pa, pq


def _measurement_schema(pa: Any) -> Any:
    f64, text = pa.float64(), pa.string()
    types = {"test_id": pa.int64(), "value": f64, "low": f64, "high": f64, "margin": f64,
             "recorded_at": pa.timestamp("us", tz="UTC"), "clock_s": f64}  # fmt: skip
    return pa.schema([(c, types.get(c, text)) for c in MEASUREMENT_COLUMNS])


def _sample_schema(pa: Any) -> Any:
    return pa.schema(
        [("channel", pa.string()), ("device", pa.string()), ("t", pa.float64()), ("value", pa.float64()),
         ("unit", pa.string())]
    )  # fmt: skip


def _with_run_id(pa: Any, table: Any, run_id: str) -> Any:
    """``table`` with a leading ``run_id`` column, dictionary-encoded (one string per row group)."""
    ids = pa.DictionaryArray.from_arrays(pa.array([0] * table.num_rows, type=pa.int32()), pa.array([run_id]))
    return table.add_column(0, pa.field("run_id", pa.dictionary(pa.int32(), pa.string())), ids)


def _write_samples(store: Any, run_id: str, paths: dict[str, Path]) -> int:
    """Samples into every format of ``paths`` ({"csv": ..., "parquet": ...}) in ONE pass over the
    store: each page of rows becomes an Arrow table, written as a Parquet row group and as CSV
    rows by Arrow's C++ writers (the Python csv module and a read per format cost 30 s for a
    30-minute soak of 800 channels; this is a few seconds)."""
    pa, pq = _pyarrow()
    import pyarrow.csv as pacsv

    schema = _sample_schema(pa)
    total = 0
    with contextlib.ExitStack() as stack:
        writers: list[tuple[Any, bool]] = []  # (writer, with the run_id column)
        if "parquet" in paths:
            tmp = stack.enter_context(_atomic(paths["parquet"]))
            pq_schema = _with_run_id(pa, _table(pa, schema, []), run_id).schema
            writers.append((stack.enter_context(pq.ParquetWriter(str(tmp), pq_schema, compression="zstd")), True))
        if "csv" in paths:
            tmp = stack.enter_context(_atomic(paths["csv"]))
            writers.append((stack.enter_context(pacsv.CSVWriter(str(tmp), schema)), False))
        pages = store.sample_batches(run_id, size=PARQUET_ROW_GROUP)
        for rows in itertools.chain(pages, [[]]):
            if rows or total == 0:  # an empty run still gets its header / schema
                table = _table(pa, schema, rows)
                for writer, tagged in writers:
                    writer.write_table(_with_run_id(pa, table, run_id) if tagged else table)
            total += len(rows)
    return total


def _table(pa: Any, schema: Any, rows: list[tuple[Any, ...]]) -> Any:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema.names]
    return pa.table([pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)],
                    schema=schema)  # fmt: skip


def export_run(
    store: Any,
    run_id: str,
    out_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    *,
    record_artifacts: bool = False,
) -> list[Path]:
    """Write ``measurements.<fmt>`` and ``samples.<fmt>`` of ``run_id`` into ``out_dir``.

    Returns the files written. Raises KeyError for an unknown run (before writing anything) and
    ConfigError for an unknown format. With ``record_artifacts`` each file is also recorded in
    the store as an artifact of the run (the plugin does this at the end of a run; the CLI does
    not, so re-exporting an old run leaves its record alone).
    """
    chosen = check_formats(formats)
    store.run(run_id)  # KeyError for an unknown run, before any file exists
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    measurements = _measurement_rows(store, run_id)
    written: list[Path] = []
    for fmt in chosen:
        m_path = out / f"measurements.{fmt}"
        if fmt == "csv":
            _write_csv(m_path, MEASUREMENT_COLUMNS, ([r[c] for c in MEASUREMENT_COLUMNS] for r in measurements))
        else:
            pa, pq = _pyarrow()
            schema = _measurement_schema(pa)
            table = pa.table([pa.array([r[f.name] for r in measurements], type=f.type) for f in schema], schema=schema)
            with _atomic(m_path) as tmp:
                pq.write_table(table, str(tmp), compression="zstd")
        written += [m_path, out / f"samples.{fmt}"]
    _write_samples(store, run_id, {fmt: out / f"samples.{fmt}" for fmt in chosen})
    if record_artifacts:
        for path in written:
            store.record_artifact(run_id, path.name, path, kind=path.suffix.lstrip("."))
    return written


# ---- command line -------------------------------------------------------------------------------
def _cmd_export(args: argparse.Namespace) -> int:
    formats = check_formats(args.format.split(","))
    store = open_results(args.results)
    try:
        run_id = resolve_run(store, args.run)
        if run_id is None:
            print(f"rackval export: no run {args.run!r} in {store.path}", file=sys.stderr)
            return 2
        out = Path(args.out) if args.out else default_out_dir(args.results, run_id)
        for path in export_run(store, run_id, out, formats):
            print(path)
    finally:
        store.close()
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rackval export`` on the CLI's subparsers (``argparse`` ``add_subparsers()`` result)."""
    exp = subparsers.add_parser("export", help="export a stored run's measurements and telemetry as CSV/Parquet")
    exp.add_argument("run", help="run id, or 'latest'")
    add_results_option(exp)
    exp.add_argument("--out", help="output directory (default: beside the store, named by run id)")
    exp.add_argument("--format", default="csv,parquet", help="comma-separated: csv, parquet (default both)")
    exp.set_defaults(func=_cmd_export)
    return exp
