"""The ``rackval`` command line: ``--version``, ``runs`` and read commands on a missing store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rackval.harness.cli import main
from rackval.harness.store import RunInfo, open_store

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86_400.0


def _store(path: Path) -> Path:
    store = open_store(path)
    try:
        for run_id, day, rack, serial, rev, station, outcome in (
            ("r1", 0, "rack-a", "SN-1", "rev-A", "bench-1", "pass"),
            ("r2", 1, "rack-a", "SN-1", "rev-B", "bench-2", "pass with marginals"),
            ("r3", 2, "rack-b", "SN-2", "rev-B", "bench-1", "fail"),
            ("r4", 3, "rack-<b>\x1b[31m", "SN-3", "rev-B", "bench-1", None),  # still running (or killed)
        ):
            store.start_run(RunInfo(run_id=run_id, started_at=T0 + day * DAY, rack_name=rack, rack_serial=serial,
                                    design_revision=rev, station=station, operator="j.doe"))  # fmt: skip
            if outcome:
                store.finish_run(run_id, outcome, T0 + day * DAY + 60)
    finally:
        store.close()
    return path


def _runs(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["runs", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("rackval ") and out.split()[1][0].isdigit(), out


def test_runs_table_and_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(_store(tmp_path / "r.sqlite"))
    status, out, _ = _runs(capsys, "--results", db)
    lines = out.splitlines()
    assert status == 0 and lines[0].split()[:3] == ["run_id", "started", "rack"]
    assert [line.split()[0] for line in lines[1:]] == ["r1", "r2", "r3", "r4"]
    assert "2026-01-02T00:00:00Z" in lines[2] and "pass with marginals" in lines[2]
    assert "\x1b" not in out and "\\x1b" in out  # a hostile rack name cannot drive the terminal
    for args, expected in (
        (("--revision", "rev-B"), ["r2", "r3", "r4"]),
        (("--rack", "rack-a", "--station", "bench-2"), ["r2"]),
        (("--serial", "SN-2"), ["r3"]),
        (("--outcome", "PASS-with-marginals"), ["r2"]),
        (("--outcome", "running"), ["r4"]),
        (("--since", "2026-01-02", "--until", "2026-01-03"), ["r2", "r3"]),
    ):
        status, out, _ = _runs(capsys, "--results", db, "--json", *args)
        assert status == 0, args
        assert [r["run_id"] for r in json.loads(out)] == expected, args
    status, out, err = _runs(capsys, "--results", db, "--serial", "SN-9")
    assert status == 1 and out == "" and "no run matches" in err


def test_runs_json_has_every_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(_store(tmp_path / "r.sqlite"))
    _, out, _ = _runs(capsys, "--results", db, "--json", "--serial", "SN-1")
    first = json.loads(out)[0]
    assert first == {"run_id": "r1", "started": "2026-01-01T00:00:00Z", "rack": "rack-a", "serial": "SN-1",
                     "revision": "rev-A", "station": "bench-1", "operator": "j.doe", "outcome": "pass"}  # fmt: skip


def test_runs_bad_dates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(_store(tmp_path / "r.sqlite"))
    with pytest.raises(SystemExit) as exited:
        main(["runs", "--results", db, "--since", "yesterday"])
    assert exited.value.code == 2 and "YYYY-MM-DD" in capsys.readouterr().err
    status, _, err = _runs(capsys, "--results", db, "--since", "2026-02-01", "--until", "2026-01-01")
    assert status == 2 and err.count("\n") == 1 and "--since 2026-02-01 is after --until 2026-01-01" in err


@pytest.mark.parametrize(
    "command",
    [
        ["runs"],
        ["report", "latest"],
        ["export", "latest"],
        ["compare", "--baseline", "rev-A", "--candidate", "rev-B"],
        ["trend", "gpu_temp"],
    ],
)
def test_read_commands_never_create_a_store(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in --results is one line naming the path, and no empty store appears."""
    _store(tmp_path / "results.sqlite")
    typo = tmp_path / "reslts.sqlite"
    for given in (str(typo), f"sqlite:///{typo}"):
        status = main([*command, "--results", given])
        out, err = capsys.readouterr()
        assert status == 2, (command, out, err)
        assert err.count("\n") == 1 and str(typo) in err and "does not exist" in err, err
        assert "Traceback" not in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite"]  # nothing created


def test_read_command_on_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "latest", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a directory" in err and str(tmp_path) in err
