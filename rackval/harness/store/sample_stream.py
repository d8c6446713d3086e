"""Telemetry streamed into the store: every tick journaled when it is taken, folded into segments
in the background, and a killed run's ticks replayed into segments exactly once.

A sampler opens one ``SampleStream`` for its channels (``store.sample_stream(run_id, keys)``) and
appends each tick's values (``append(t, values)``): one record in the stream's journal, the same
machinery as the measurement journal (``rackval.harness.store.journal``: a ``MAP_SHARED`` file,
flock liveness, ``.sample-journal`` files beside the measurement journals), so a SIGKILL loses
no tick whose ``append`` returned. The stream also keeps the ticks of its open segments in one
preallocated matrix. A segment closes for every channel of the stream at once after
``SEGMENT_SAMPLES`` ticks, ``SEGMENT_SECONDS`` of clock, or ``OPEN_VALUES`` samples held (a
30,000-channel stream closes its segments every ~140 ticks, so its memory stays bounded): the
ticks go to a background thread that encodes them and commits the segments together with the
journal's mark (how many of its ticks are in the database), then deletes the journal. The next
tick already goes to a fresh journal and matrix; at most one fold is in flight per stream.

Replay: the next store opened on the database (on this station) finds journals whose writer is
gone, skips the ticks their mark says are in, and folds the rest, in one transaction with the
mark, so a writer killed between its commit and deleting its journal is not folded twice.

Where no journal can be had (an in-memory store, a read-only directory) the stream still folds
its segments; they are then durable when they close, not when taken.
"""

from __future__ import annotations

import logging
import marshal
import os
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import numpy as np

from rackval.harness.store import journal as journals
from rackval.harness.store.sample_codec import SEGMENT_SAMPLES, encode_block, stamp
from rackval.harness.store.segment_rows import SeriesKey
from rackval.harness.store.segments import Arrays, SampleSegments
from rackval.harness.store.sql import StoreError

SEGMENT_SECONDS = 900.0  # clock seconds a segment spans at most
OPEN_VALUES = 1 << 22  # samples a stream holds in its open segments at most (32 MB of float64)
_HEADER = "series"

log = logging.getLogger("rackval.store")


class SampleStream:
    """The open segments of one sampler's channels; see the module docstring. Not thread-safe:
    one sampler thread appends."""

    def __init__(self, store: SampleStreams, run_id: str, keys: list[tuple[str, str, str]]) -> None:
        self.store, self.run_id = store, run_id
        self.keys: list[SeriesKey] = [(run_id, str(c), str(d), str(u)) for c, d, u in keys]
        self.capacity = max(1, min(SEGMENT_SAMPLES, OPEN_VALUES // max(len(keys), 1)))
        self._header = marshal.dumps(
            (_HEADER, run_id, *(tuple(k[i] for k in self.keys) for i in (1, 2, 3))), journals.MARSHAL_VERSION
        )
        self._times, self._values, self._ticks = self._buffers()
        self._journal = self._new_journal()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rackval-sample-fold")
        self._folding: Future[None] | None = None
        self._kept: list[journals.Journal] = []  # journals whose fold failed: replayed at the next open
        self.folded = 0  # samples committed as segments so far
        self._first_t: float | None = None  # this stream's first and last tick: its history's span
        self._last_t = 0.0

    def _buffers(self) -> tuple[np.ndarray, np.ndarray, int]:
        return np.empty(self.capacity), np.empty((self.capacity, len(self.keys))), 0

    def _new_journal(self) -> journals.Journal | None:
        directory = self.store._journal_directory
        if directory is None:
            return None
        try:
            journal = journals.Journal(directory, self.store._sample_prefix, str(self.store.path), journals.SAMPLES)
            journal.append(self._header)
        except OSError as exc:
            log.warning("results store %s: no sample journal in %s (%s): samples are durable when their"
                        " segments close", self.store.path, directory, exc)  # fmt: skip
            return None
        return journal

    def append(self, t: float, values: np.ndarray) -> None:
        """One tick: ``values`` in the order of the stream's keys, NaN where missing. Durable
        (journaled) when this returns."""
        row = np.ascontiguousarray(values, dtype=np.float64)
        if row.shape != (len(self.keys),):
            raise ValueError(f"telemetry: a tick of {len(self.keys)} channels, not of shape {row.shape}")
        t = stamp(t)
        if self._journal is not None:
            self._journal.append(marshal.dumps((t, row.tobytes()), journals.MARSHAL_VERSION))
        if self._first_t is None:
            self._first_t = t
        self._last_t = t
        k = self._ticks
        self._times[k] = t
        self._values[k] = row
        self._ticks = k + 1
        if self._ticks == self.capacity or t - self._times[0] >= SEGMENT_SECONDS:
            self._close_segments()

    def _close_segments(self) -> None:
        """Hand the open segments to the background fold; start new ones (and a new journal)."""
        if not self._ticks:
            return
        times, values, ticks, journal = self._times, self._values, self._ticks, self._journal
        self._wait()  # one fold in flight at most: memory stays bounded
        self._times, self._values, self._ticks = self._buffers()
        self._journal = self._new_journal()
        self._folding = self._pool.submit(self._fold, times[:ticks], values[:ticks], journal)

    def _fold(self, times: np.ndarray, values: np.ndarray, journal: journals.Journal | None) -> None:
        try:
            operation = f"fold {times.size} ticks of {len(self.keys)} channels"
            self.store._fold_ticks(self.keys, times, values, journal, operation)
        except Exception as exc:  # a database gone: the ticks stay journaled, for the next open
            log.warning("%s (kept in the sample journal for the next open)", exc)
            if journal is not None:
                self._kept.append(journal)
            return
        self.folded += times.size * len(self.keys)

    def history(self, index: int) -> Arrays:
        """(t, values) of the stream's channel ``index`` so far: its committed segments, then the
        open ones (for the sampler's summaries; call from the thread that appends, or hold its
        lock). Only this stream's ticks: another sampler of the same run on the same channel, before
        or after this one (a plan sampling feed power in two steps), wrote segments outside this
        stream's span, and those are left out. (Two samplers of one channel at the same time
        would share a span: the plans never do that.)"""
        self._wait()
        if self._first_t is None:
            return np.zeros(0), np.zeros(0)
        run_id, channel, device, unit = self.keys[index]
        t, v = self.store.sample_arrays(
            run_id, channel, device=device, unit=unit, start=self._first_t, end=self._last_t
        )
        k = self._ticks
        if not k:
            return t, v
        return np.concatenate((t, self._times[:k])), np.concatenate((v, self._values[:k, index]))

    def history_values(self, index: int) -> np.ndarray:
        """The values alone of ``history(index)``, in time order (their times not decoded): the
        segments this stream wrote begin within its span."""
        self._wait()
        if self._first_t is None:
            return np.zeros(0)
        run_id, channel, device, unit = self.keys[index]
        found = self.store.sample_values(
            run_id, channel, device=device, unit=unit, segments_within=(self._first_t, self._last_t)
        )
        parts = [v for _, v in found]
        parts.append(self._values[: self._ticks, index])
        return np.concatenate(parts)

    def _wait(self) -> None:
        if self._folding is not None:
            folding, self._folding = self._folding, None
            folding.result()

    def flush(self) -> None:
        """Close the open segments now and wait until every tick so far is in the database
        (a segment closed early is only shorter)."""
        self._close_segments()
        self._wait()

    def close(self) -> None:
        """Flush, delete the empty journal, stop the fold thread; idempotent. Journals whose
        fold failed are left for the next open to replay."""
        try:
            self.flush()
        finally:
            if self._journal is not None:
                self._journal.remove()  # holds only the header: everything is folded
                self._journal = None
            for journal in self._kept:
                journal.release()
            self._kept = []
            self._pool.shutdown(wait=True)


class SampleStreams(SampleSegments):
    """The store's side of sample streams: folding ticks with their journal's mark, and
    replaying the sample journals of dead writers when the store opens."""

    _sample_prefix = ""  # of sample journal file names (set by the backend, as the measurement prefix)

    def sample_stream(self, run_id: str, keys: list[tuple[str, str, str]]) -> SampleStream:
        """A stream for the (channel, device, unit) ``keys`` of ``run_id`` (see SampleStream)."""
        return SampleStream(self, run_id, keys)

    def _fold_ticks(self, keys: list[SeriesKey], times: np.ndarray, values: np.ndarray,
                    journal: journals.Journal | None, operation: str) -> None:  # fmt: skip
        """Ticks (ascending) of ``keys`` as one segment per key, committed with the journal's
        mark; then the journal and its mark are deleted."""
        mark = (journals.mark_key(journal.id), str(times.size)) if journal is not None else None
        segments = encode_block(times, values)
        self.write_segments({key: [segment] for key, segment in zip(keys, segments, strict=True)}, operation, mark)
        if journal is not None:
            journal.remove()
            with self._lock:
                if not self._closed:
                    self._delete_mark(journal.id, operation)

    def _open_journals(self) -> None:
        super()._open_journals()
        directory = self._journal_directory
        if directory is None:
            return
        try:
            for found in journals.dead_journals(directory, self._sample_prefix, None, journals.SAMPLES):
                if isinstance(found, Path):
                    with suppress(OSError):
                        os.rename(found, found.with_suffix(journals.FAILED_SUFFIX))
                    log.warning("results store %s: %s is not a sample journal: set aside", self.path, found)
                    continue
                try:
                    self._replay_samples(found)
                finally:
                    found.release()
        except OSError as exc:
            log.warning("results store %s: cannot replay the sample journals in %s: %s", self.path, directory, exc)

    def _replay_samples(self, found: journals.DeadJournal) -> None:
        header, ticks = (found.rows[0], found.rows[1:]) if found.rows else ((), [])
        if len(header) != 5 or header[0] != _HEADER:
            target = found.set_aside()
            log.warning("results store %s: sample journal %s has no header: kept as %s", self.path, found.path, target)
            return
        _, run_id, channels, devices, units = header
        width = 8 * len(channels)
        whole = [r for r in ticks if len(r) == 2 and isinstance(r[1], bytes) and len(r[1]) == width]
        operation = f"replay sample journal {found.path}"
        done = self._query("SELECT value FROM meta WHERE key = ?", (journals.mark_key(found.journal_id),), operation)
        todo = whole[int(done[0]["value"]) if done else 0 :]
        try:
            if todo:
                times = np.array([r[0] for r in todo], dtype=np.float64)
                values = np.frombuffer(b"".join(r[1] for r in todo), dtype=np.float64).reshape(len(todo), -1)
                arrays = {(run_id, c, d, u): (times, values[:, i])
                          for i, (c, d, u) in enumerate(zip(channels, devices, units, strict=True))}  # fmt: skip
                self.write_series(arrays, operation, (journals.mark_key(found.journal_id), str(len(whole))))
        except StoreError as exc:
            if isinstance(exc.__cause__, self._transient_errors) or self._broken():
                log.warning("results store %s: sample journal %s not replayed yet: %s", self.path, found.path, exc)
            else:  # the database refuses its rows (an unknown run): retrying would fail forever
                target = found.set_aside()
                log.warning("results store %s: sample journal %s not replayed, kept as %s: %s", self.path,
                            found.path, target, exc)  # fmt: skip
            return
        found.remove()
        with self._lock:
            self._delete_mark(found.journal_id, operation)
        log.info("results store %s: replayed %d tick(s) of %d channel(s) of dead writer %s", self.path, len(todo),
                 len(channels), found.journal_id)  # fmt: skip
