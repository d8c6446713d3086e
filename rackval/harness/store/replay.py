"""Replaying dead writers' measurement journals into the database, exactly once.

A killed run's journal is replayed into the database by the next store opened on it (on the same
station: the journal is a local file), first thing, exactly once: the journal's mark in the
database says how many of its records a batch already wrote. Such a run stays ``running`` in the
runs table and ``run_status`` returns ``("running", None)``; the report reads that as incomplete.
"""

from __future__ import annotations

import logging
import os
from contextlib import suppress
from pathlib import Path

from rackval.harness.store import journal as journals
from rackval.harness.store.journaled import JournaledSql
from rackval.harness.store.sql import MEASUREMENT_APPENDED, UPSERT_META, WIDTH, StoreError

log = logging.getLogger("rackval.store")


class JournalReplay(JournaledSql):
    """Opening the journals: replay those of dead writers, then create this store's own."""

    def _open_journals(self) -> None:
        """At open (backends call this once migrated): replay dead writers' journals, create ours."""
        self._replay_journals()
        self._start_journal(at_open=True)

    def _replay_journals(self) -> list[str]:
        """Write the measurements of dead writers' journals into the database.

        Returns the ids of the journals replayed. A journal that cannot be replayed (not a
        journal, rows the database refuses) is renamed ``*.failed``, kept for a person, and
        logged; opening the store goes on."""
        directory = self._journal_directory
        if directory is None:
            return []
        replayed: list[str] = []
        try:
            self._replay_each(directory, replayed)
        except OSError as exc:  # an unreadable journal directory must not keep the store shut
            log.warning("results store %s: cannot replay the journals in %s: %s", self.path, directory, exc)
        if not self._journal_prefix:
            journals.remove_if_empty(directory)
        return replayed

    def _replay_each(self, directory: Path, replayed: list[str]) -> None:
        for found in journals.dead_journals(directory, self._journal_prefix, WIDTH, appended=MEASUREMENT_APPENDED):
            if isinstance(found, Path):
                with suppress(OSError):
                    os.rename(found, found.with_suffix(journals.FAILED_SUFFIX))
                log.warning("results store %s: %s is not a measurement journal: set aside", self.path, found)
                continue
            try:
                with self._lock:
                    written = self._replay(found)
                    found.remove()
                    self._delete_mark(found.journal_id, "replay journal")
            except StoreError as exc:
                if isinstance(exc.__cause__, self._transient_errors) or self._broken():
                    log.warning("results store %s: journal %s not replayed yet: %s", self.path, found.path, exc)
                else:  # the database refuses its rows: retrying would fail forever
                    target = found.set_aside()
                    log.warning("results store %s: journal %s not replayed, kept as %s: %s", self.path, found.path,
                                target, exc)  # fmt: skip
                continue
            finally:
                found.release()
            replayed.append(found.journal_id)
            log.info(
                "results store %s: replayed %d measurement(s) of dead writer %s%s", self.path, written,
                found.journal_id, f" ({found.torn_bytes} torn bytes at its end ignored)" if found.torn_bytes else "",
            )  # fmt: skip

    def _replay(self, found: journals.DeadJournal) -> int:
        """The rows of ``found`` not yet in the database, inserted with its mark, in one transaction."""
        operation = f"replay journal {found.path}"
        cur = self._connection_or_fail(operation).cursor()
        try:
            cur.execute(self.dialect.begin)
            cur.execute(self._sql("SELECT value FROM meta WHERE key = ?"), (journals.mark_key(found.journal_id),))
            row = cur.fetchone()
            rows = found.rows[int(row["value"]) if row else 0 :]
            if rows:
                self._insert_measurements(cur, [value for r in rows for value in r])
                cur.execute(self._sql(UPSERT_META), (journals.mark_key(found.journal_id), str(len(found.rows))))
            cur.execute("COMMIT")
            return len(rows)
        except self._db_errors as exc:
            self._rollback(cur)
            raise StoreError(f"results store {self.path}: {operation} failed: {exc}") from exc
        except BaseException:
            self._rollback(cur)
            raise
        finally:
            self._close_cursor(cur)
