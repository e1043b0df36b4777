"""The embedded store: execution records and feedback in one SQLite file (WAL).

Writes go through a bounded buffer to one writer thread that commits in batches (a full batch, a
flush, a waiting caller, or a partial batch after ``linger_s``); see :mod:`tlm.store.writer` for
what happens when a record or the file cannot be written (nothing is dropped in silence).
Reads see what is committed; :meth:`~ExecutionStore.get`, :meth:`~ExecutionStore.query` and
:meth:`~ExecutionStore.add_feedback` flush pending writes first, so a caller reads its own writes.
Records are keyed by execution id: writing one twice replaces it and keeps its feedback.

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` are applied in order on
open, after an integrity check (:mod:`tlm.store.integrity`). A committed record survives the
process being killed (WAL, ``synchronous=NORMAL``).
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from tlm.errors import StoreError
from tlm.store.failures import describe, is_corruption
from tlm.store.integrity import DEFAULT_CHECK_BUDGET_S, check_integrity, corrupted
from tlm.store.reads import StoreReads
from tlm.store.schema import (
    MIGRATIONS,
    connect,
    migrate,
)
from tlm.store.writer import Ticket
from tlm.telemetry.records import Feedback

__all__ = ("ExecutionStore", "Ticket", "MIGRATIONS", "DEFAULT_DB_NAME", "default_db_path")

DEFAULT_DB_NAME: Final = "tlm.db"
_log = logging.getLogger("tlm.store")


def default_db_path(data_dir: str | os.PathLike[str] = ".tlm") -> Path:
    """``<data_dir>/tlm.db``."""
    return Path(data_dir) / DEFAULT_DB_NAME


class ExecutionStore(StoreReads):
    """Execution records in a SQLite file; thread-safe; one writer thread per store.

    Args:
        path: The database file (created with its directory if missing), e.g.
            :func:`default_db_path`.
        queue_size: Records that may wait for the writer before :meth:`write` blocks.
        batch_size: Most records committed in one transaction.
        linger_s: How long a partial batch may wait for more records before it is committed.
        busy_timeout_s: How long one attempt waits for another connection's write lock (the
            writer then backs off and tries again, for as long as the lock is held).
        check_budget_s: Seconds the integrity check at open may take (0: no check).
        close_timeout_s: How long :meth:`close` keeps retrying a locked file before the
            remaining records go to the fallback file.

    Raises:
        StoreCorrupted: The file is damaged (found by the integrity check).
        StoreError: The file cannot be opened or migrated.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        queue_size: int = 1024,
        batch_size: int = 512,
        linger_s: float = 0.05,
        busy_timeout_s: float = 30.0,
        check_budget_s: float = DEFAULT_CHECK_BUDGET_S,
        close_timeout_s: float = 60.0,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be at least 1")
        self.path = Path(path)
        writer_conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer_conn = connect(self.path, busy_timeout_s=busy_timeout_s)
            check_integrity(writer_conn, self.path, check_budget_s)
            migrate(writer_conn, str(self.path))
            self._reader_conn = connect(self.path, busy_timeout_s=busy_timeout_s)
        except (sqlite3.Error, OSError, StoreError) as exc:
            if writer_conn is not None:
                writer_conn.close()
            if isinstance(exc, StoreError):
                raise
            if is_corruption(exc):
                raise corrupted(self.path, describe(exc)) from exc
            raise StoreError(f"{self.path}: cannot open the execution store: {exc}") from exc
        self._reader_lock = threading.Lock()
        self._start_writer(
            writer_conn,
            queue_size=queue_size,
            batch_size=batch_size,
            linger_s=linger_s,
            close_timeout_s=close_timeout_s,
        )
        self._atexit = _close_at_exit(self)

    # ------------------------------------------------------------------ reading (see StoreReads)

    _mark = "?"

    @property
    def where(self) -> str:
        """The file, for messages."""
        return str(self.path)

    def _rows(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            rows: list[tuple[Any, ...]] = self._reader_conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: read failed: {exc}") from exc
        return rows

    def _feedback_for(self, ids: list[str]) -> dict[str, tuple[Feedback, ...]]:
        found: dict[str, list[Feedback]] = {}
        for start in range(0, len(ids), 500):  # SQLite's bound on parameters per statement
            chunk = ids[start : start + 500]
            for key, entries in self._feedback_rows(
                f"IN ({', '.join('?' * len(chunk))})", chunk
            ).items():
                found.setdefault(key, []).extend(entries)
        return {k: tuple(v) for k, v in found.items()}

    def _run_statement(self, sql: str, args: Sequence[Any]) -> int:
        try:
            cursor = self._reader_conn.execute(sql, args)
            return len(cursor.fetchall()) if cursor.description else cursor.rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record feedback: {exc}") from exc

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Commit everything written, stop the writer and close the file. Idempotent.

        A file still locked after ``close_timeout_s`` gets no more tries: the remaining records
        go to the fallback file and are counted in :attr:`lost`.
        """
        with self._lock:
            if self._closed:
                return
        atexit.unregister(self._atexit)
        try:
            self._stop_writer()
        finally:
            with self._reader_lock:
                self._reader_conn.close()
            self._writer_conn.close()
        if self.lost:
            _log.error(
                "%s: %d execution record(s) could not be committed in this session; see %s",
                self.path,
                self.lost,
                self.unrecorded_path,
            )

    def __repr__(self) -> str:
        return f"ExecutionStore({str(self.path)!r})"


def _close_at_exit(store: ExecutionStore) -> Any:
    """Register a close at interpreter exit that does not keep ``store`` alive."""
    ref = weakref.ref(store)

    def close() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    atexit.register(close)
    return close
