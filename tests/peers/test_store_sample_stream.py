"""Streamed telemetry survives a SIGKILL on both backends: every tick whose ``append`` returned
is in the store after the next open, exactly once, including a writer killed between committing
its segments and deleting its journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rackval.harness.store import RunInfo, open_store

CHANNELS = 40

SOAK = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from rackval.harness.store import journal, open_store
    store = open_store(sys.argv[1])
    if sys.argv[2] == "die-at-removal":  # killed after a fold's COMMIT, before its journal is deleted
        real = journal.Journal.remove
        def remove(self):
            if self.path.name.endswith(".sample-journal") and self.records > 1:
                os.kill(os.getpid(), signal.SIGKILL)
            real(self)
        journal.Journal.remove = remove
    stream = store.sample_stream(sys.argv[3], [(f"node/ch{i}", "node", "W") for i in range(CHANNELS)])
    k = 0
    while True:
        stream.append(float(k), np.arange(CHANNELS) + k / 10)
        print(k, flush=True)  # after append returned: this tick is durable
        k += 1
    """
).replace("CHANNELS", str(CHANNELS))


pytestmark = pytest.mark.usefixtures("journal_dir")  # tests/conftest.py: journals under tmp_path


def _soak_then_kill(url: str, mode: str, ticks: int, run_id: str = "soak") -> int:
    """Run the soak in a child; SIGKILL it once it says ``ticks`` ticks are durable (or let it
    die on its own, in ``die-at-removal``). Returns the last tick it said was durable."""
    with open_store(url) as store:
        store.start_run(RunInfo("soak", 1.0))
    proc = subprocess.Popen([sys.executable, "-c", SOAK, url, mode, run_id], stdout=subprocess.PIPE, text=True)
    last = -1
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            last = int(line)
            if last + 1 >= ticks and mode == "kill":
                os.kill(proc.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "the soak child did not get far enough in 60 s"
    finally:
        if proc.poll() is None and mode != "kill":
            proc.wait(timeout=60)
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return last


def _assert_every_tick_once(url: str, at_least: int) -> int:
    with open_store(url) as store:
        channels = store.sample_channels("soak")
        assert len(channels) == CHANNELS
        t, v = store.sample_arrays("soak", "node/ch7")
        count = t.size
        assert count >= at_least + 1  # nothing durable lost
        assert t.tolist() == [float(k) for k in range(count)]  # no gap, no tick twice
        assert np.array_equal(v, 7 + t / 10)
        assert {c.count for c in channels} == {count}
    return count


@pytest.mark.parametrize("ticks", [3, 1500])  # before any segment closed; after one closed and folded
def test_sigkill_mid_soak_loses_no_journaled_tick(store_url: str, ticks: int, tmp_path: Path) -> None:
    last = _soak_then_kill(store_url, "kill", ticks)
    count = _assert_every_tick_once(store_url, last)
    assert _assert_every_tick_once(store_url, last) == count  # a second open replays nothing again
    leftovers = [p.name for p in tmp_path.rglob("*") if "sample-journal" in p.name]
    assert leftovers == []


def test_killed_between_commit_and_removing_its_journal_is_folded_once(store_url: str) -> None:
    last = _soak_then_kill(store_url, "die-at-removal", 0)
    assert last + 1 >= 1024  # the first segments closed (SEGMENT_SAMPLES ticks) and committed
    _assert_every_tick_once(store_url, last)


def test_a_journal_of_an_unknown_run_is_set_aside_not_replayed_forever(store_url: str, tmp_path: Path) -> None:
    last = _soak_then_kill(store_url, "kill", 5, run_id="no-such-run")
    assert last >= 4
    with open_store(store_url) as store:  # opens, sets the journal aside, does not fail
        assert store.sample_channels("no-such-run") == []
    assert [p.name for p in tmp_path.rglob("*.sample-journal")] == []
    assert len([p for p in tmp_path.rglob("*.failed") if "samples" in p.name or p.parent.name.startswith("pg-")]) == 1


def test_a_fold_the_database_refuses_stays_journaled_for_the_next_open(
    store_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database gone while a soak runs (a server restart): the ticks of the segments that
    could not be committed stay in their journal, and the next store opened replays them."""
    store = open_store(store_url)
    store.start_run(RunInfo("soak", 1.0))
    stream = store.sample_stream("soak", [(f"node/ch{i}", "node", "W") for i in range(CHANNELS)])
    real = store.write_segments
    calls: list[int] = []

    def refuse_once(*args: object, **kw: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            from rackval.harness.store import StoreError

            raise StoreError("results store: fold: server closed the connection")
        real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "write_segments", refuse_once)
    for k in range(1500):  # the first segments (900 s of clock) are refused, the rest folds at close
        stream.append(float(k), np.arange(CHANNELS) + k / 10)
    stream.close()
    assert "kept in the sample journal" in caplog.text
    t, _ = store.sample_arrays("soak", "node/ch7")
    refused = 1500 - t.size
    assert refused > 0 and t.tolist() == [float(k) for k in range(refused, 1500)]  # the refused ones not in yet
    store.close()
    _assert_every_tick_once(store_url, 1499)  # the next open replayed them
