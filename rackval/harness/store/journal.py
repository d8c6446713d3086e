"""The measurement journal: what makes a measurement durable the moment it is recorded.

Committing every measurement to the database costs more than the rest of the measuring put
together (~15 us for a bare SQLite INSERT + COMMIT, a network round trip for PostgreSQL), so the
store batches measurements into the database, and before ``record_measurement`` returns it
appends the measurement to this journal. The journal file is extended (sparse) and mapped
``MAP_SHARED``: appending is a memory copy into the kernel's page-cache pages of the file, which
belong to the kernel, not to the process, so a SIGKILLed process loses nothing, exactly as after
a ``write()`` syscall, at a third of its cost (~0.2 us against ~0.6 us here). Same durability
class as SQLite's WAL with ``synchronous=NORMAL``: survives any death of the process, not a
power cut. Filling a mapped page of a file system with no room left raises SIGBUS instead of an
error, so the journal maps only while the file system has ``MIN_FREE`` bytes free beyond the
mapping, and appends with ``pwrite()`` otherwise (or where mapping fails); a ``fallocate``
would rule SIGBUS out but costs more than all the appends of a run (it makes unlinking the
file slow, too). The next store opened on the same database (on the same station: the journal
is a local file) replays the journals of dead writers into it.

One journal file per open store: ``<prefix><id>.journal`` in the store's journal directory,
where ``<id>`` is ``<host>-<pid>-<random>`` (a SQLite store keeps them next to its file,
``results.sqlite-measurements.<id>.journal``; a PostgreSQL store in a directory of its own per
database, with no prefix). The store creates it when it opens (as SQLite creates its ``-wal``
file), so a run's first measurement does not pay for creating a file. The file is a header
record followed by one record per measurement, each a ``marshal`` dump (version 4) of a tuple
of str/int/float/None (~5x cheaper to encode than a JSON line; the reader accepts nothing but
such tuples), then zeros up to the mapped size (a zero byte is no marshal type code: the
records end there).

Liveness: the writer holds ``flock(LOCK_EX)`` on its journal for as long as the store is open.
The kernel drops the lock when the process dies however it dies, so "can I lock it?" means "its
writer is gone" without trusting pids (which get reused). A journal is created under a
``.journal-new`` name and renamed once locked, so a replayer never sees an unlocked live journal.

Exactly once: every batch committed to the database also stores, in the same transaction, how
many of the journal's records are in the database (``meta`` key ``journal:<id>``). Replay skips
that many records, so a writer killed between its commit and removing its journal is not
replayed twice; the same count lets a batch whose COMMIT answer was lost be retried safely.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import marshal
import mmap
import os
import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAILED_SUFFIX = ".failed"
VERSION = 1
MARSHAL_VERSION = 4
PREALLOCATE = 128 * 1024  # bytes mapped at first (~1000 measurements); doubled when full
MIN_FREE = 64 * 1024 * 1024  # free space the file system must keep beyond a mapping

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Kind:
    """What a journal holds: its header's format name and its file names' endings (so a scan for
    one kind never takes the other's files for foreign ones)."""

    format: str
    suffix: str
    new_suffix: str


MEASUREMENTS = Kind("rackval-measurement-journal", ".journal", ".journal-new")
SAMPLES = Kind("rackval-sample-journal", ".sample-journal", ".sample-journal-new")  # see sample_stream


def mark_key(journal_id: str) -> str:
    """The ``meta`` key holding how many of a journal's records are in the database."""
    return f"journal:{journal_id}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text)[:64] or "_"


class Journal:
    """An open journal this process writes (and holds locked) while its store is open."""

    def __init__(self, directory: Path, prefix: str, store_name: str, kind: Kind = MEASUREMENTS) -> None:
        """Create and lock a new journal in ``directory`` (created 0700 if missing).

        Raises OSError when the directory or file cannot be created."""
        self.id = f"{_safe(socket.gethostname())}-{os.getpid()}-{secrets.token_hex(4)}"
        self.directory = directory
        self.path = directory / f"{prefix}{self.id}{kind.suffix}"
        temporary = directory / f"{prefix}{self.id}{kind.new_suffix}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(temporary, flags, 0o600)
        except FileNotFoundError:  # no directory yet (or another store removed the empty one)
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(temporary, flags, 0o600)
        self.fd = fd
        self.pid = os.getpid()  # a forked child inherits this object, never the journal
        self.records = 0  # measurement records written (the header is not counted)
        self._map: mmap.mmap | None = None
        self._size = 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it
            header = marshal.dumps((kind.format, VERSION, self.id, store_name), MARSHAL_VERSION)
            self._end = os.write(fd, header)
            self._map_file(PREALLOCATE)
            os.rename(temporary, self.path)
        except BaseException:
            self.release()
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def _map_file(self, size: int) -> None:
        """Extend the file to ``size`` bytes and map them; short of room, or where mapping
        fails, appends use ``pwrite()`` from here on."""
        try:
            room = os.fstatvfs(self.fd)
            if room.f_bavail * room.f_frsize < size + MIN_FREE:
                raise OSError("file system nearly full")
            os.ftruncate(self.fd, size)
            mapped = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError):
            self._unmap()
            return
        self._unmap()
        self._map, self._size = mapped, size

    def _unmap(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map, self._size = None, 0

    def append(self, data: bytes) -> None:
        """Append one encoded record; it survives this process's death once this returns.

        Raises OSError (disk full, ...); a short write counts as one, since the record is torn."""
        end = self._end + len(data)
        if end > self._size and self._map is not None:
            self._map_file(max(2 * self._size, end + PREALLOCATE))
        mapped = self._map
        if mapped is not None:
            # The first byte last: until it lands, the record reads as the zeros that end the
            # journal, so a process killed in mid-copy leaves no half record to replay.
            start = self._end
            mapped[start + 1 : end] = data[1:]
            mapped[start] = data[0]
        else:
            written = os.pwrite(self.fd, data, self._end)
            if written != len(data):
                raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
        self._end = end
        self.records += 1

    def remove(self) -> None:
        """Delete the journal (everything in it is in the database) and release it; idempotent."""
        if self.fd < 0 or self.pid != os.getpid():
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # while still locked: no replayer can open it in between
        finally:
            self.release()

    def remove_if_unused(self) -> None:
        """Delete the journal if no measurement was ever written to it, else leave it locked
        until this process ends (then the next store replays it); for a store never closed."""
        if self.records == 0:
            self.remove()

    def release(self) -> None:
        """Close without deleting: the journal is left for the next store to replay."""
        self._unmap()
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)  # drops the lock


def remove_if_empty(directory: Path) -> None:
    """Leave no empty journal directory behind (one per PostgreSQL database would pile up);
    only for a directory that holds nothing but journals."""
    with contextlib.suppress(OSError):
        directory.rmdir()


def encode(row: Row) -> bytes:
    """One measurement row as a journal record (raises ValueError for a non-plain value)."""
    return marshal.dumps(row, MARSHAL_VERSION)


@dataclass
class DeadJournal:
    """A journal whose writer is gone, locked by us while it is replayed."""

    path: Path
    journal_id: str
    store_name: str
    rows: list[Row]
    torn_bytes: int  # bytes after the last whole record (a torn write: only after a power cut)
    fd: int

    def remove(self) -> None:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        finally:
            self.release()

    def set_aside(self) -> Path:
        """Rename to ``*.failed`` (kept for a person, never replayed again) and release."""
        target = self.path.with_suffix(FAILED_SUFFIX)
        try:
            os.rename(self.path, target)
        finally:
            self.release()
        return target

    def release(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _read(path: Path, fd: int, width: int | None, kind: Kind, appended: Row = ()) -> DeadJournal | None:
    data = b""
    with os.fdopen(os.dup(fd), "rb") as f:
        data = f.read()
    stream = io.BytesIO(data)
    try:
        header = marshal.load(stream)
    except (EOFError, ValueError, TypeError):
        header = None
    if not (isinstance(header, tuple) and len(header) == 4 and header[0] == kind.format and header[1] == VERSION):
        return None
    rows: list[Row] = []
    end = stream.tell()
    while end < len(data) and data[end] != 0:  # zeros: the preallocated, unwritten rest
        try:
            row = marshal.load(stream)
        except (EOFError, ValueError, TypeError):
            break
        if appended and width is not None and isinstance(row, tuple) and len(row) == width - len(appended):
            row = (*row, *appended)  # written before the last columns were appended
        if not (isinstance(row, tuple) and (width is None or len(row) == width)):
            break
        rows.append(row)
        end = stream.tell()
    return DeadJournal(path, str(header[2]), str(header[3]), rows, len(data[end:].rstrip(b"\0")), fd)


def _remove_abandoned(path: Path) -> None:
    """A journal whose writer died while creating it holds no measurement: delete it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            os.unlink(path)
    except OSError:
        pass  # being created right now (locked), or gone already
    finally:
        os.close(fd)


def dead_journals(
    directory: Path, prefix: str, width: int | None, kind: Kind = MEASUREMENTS, appended: Row = ()
) -> Iterator[DeadJournal | Path]:
    """The journals of ``kind`` (``<prefix>*.journal``) in ``directory`` whose writer is gone,
    each locked until released; ``width`` is the length of every record (None: any). Records
    ``len(appended)`` values short were written before the last columns were appended: they are
    completed with ``appended`` (replayed, not lost).

    Yields a ``DeadJournal`` per replayable journal, and the path of a journal that is not one
    (a foreign or unreadable file: the caller sets it aside). Journals of live writers (locked)
    are skipped; a missing directory yields nothing."""
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        if name.endswith(kind.new_suffix):
            _remove_abandoned(directory / name)
            continue
        if not name.endswith(kind.suffix):
            continue
        path = directory / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # replayed and removed by someone else meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Locked; but was it replayed and unlinked between our open and our lock?
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(path)
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)  # a live writer (or another replayer) holds it, or it is gone
            continue
        except BaseException:
            os.close(fd)
            raise
        journal = _read(path, fd, width, kind, appended)
        if journal is None:
            os.close(fd)
            yield path
        else:
            yield journal
