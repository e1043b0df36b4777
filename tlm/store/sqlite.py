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
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from tlm.errors import StoreError
from tlm.store.failures import describe, is_corruption
from tlm.store.feedback import insert_feedback, new_feedback, new_feedback_id
from tlm.store.integrity import DEFAULT_CHECK_BUDGET_S, check_integrity, corrupted
from tlm.store.schema import (
    MIGRATIONS,
    SELECT,
    connect,
    feedback_from_row,
    from_row,
    migrate,
    query_sql,
)
from tlm.store.writer import RecordWriter, Ticket
from tlm.telemetry.records import ExecutionRecord, Feedback, FeedbackSource

__all__ = ("ExecutionStore", "Ticket", "MIGRATIONS", "DEFAULT_DB_NAME", "default_db_path")

DEFAULT_DB_NAME: Final = "tlm.db"
_SELECT: Final = SELECT
_log = logging.getLogger("tlm.store")


def default_db_path(data_dir: str | os.PathLike[str] = ".tlm") -> Path:
    """``<data_dir>/tlm.db``."""
    return Path(data_dir) / DEFAULT_DB_NAME


class ExecutionStore(RecordWriter):
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

    # ------------------------------------------------------------------ reading

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """The record of ``execution_id`` with its feedback, or ``None``."""
        self.flush()
        with self._reader_lock:
            row = self._read(f"{_SELECT} WHERE execution_id = ?", (execution_id,)).fetchone()
            if row is None:
                return None
            return from_row(row, self._feedback_of(execution_id))

    def iter_query(
        self,
        *,
        task_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        version: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[ExecutionRecord]:
        """Records matching every given filter, oldest first; ``until`` is exclusive."""
        self.flush()
        sql, args = query_sql(
            _SELECT,
            "?",
            task_id=task_id,
            since=since,
            until=until,
            version=version,
            limit=limit,
            newest_first=newest_first,
        )
        with self._reader_lock:
            rows = self._read(sql, args).fetchall()
            feedback = self._feedback_for([row[0] for row in rows])
        for row in rows:
            yield from_row(row, feedback.get(row[0], ()))

    def query(
        self,
        *,
        task_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        version: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ExecutionRecord]:
        """Like :meth:`iter_query`, as a list."""
        return list(
            self.iter_query(
                task_id=task_id,
                since=since,
                until=until,
                version=version,
                limit=limit,
                newest_first=newest_first,
            )
        )

    def count(self, *, task_id: str | None = None) -> int:
        """How many records are committed (for ``task_id`` when given)."""
        self.flush()
        with self._reader_lock:
            if task_id is None:
                row = self._read("SELECT count(*) FROM executions", ()).fetchone()
            else:
                row = self._read(
                    "SELECT count(*) FROM executions WHERE task_id = ?", (task_id,)
                ).fetchone()
        return int(row[0])

    def _read(self, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self._reader_conn.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: read failed: {exc}") from exc

    def _feedback_of(self, execution_id: str) -> tuple[Feedback, ...]:
        rows = self._read(
            "SELECT source, at, score, correct, note FROM feedback "
            "WHERE execution_id = ? ORDER BY id",
            (execution_id,),
        ).fetchall()
        return tuple(feedback_from_row(r) for r in rows)

    def _feedback_for(self, ids: list[str]) -> dict[str, tuple[Feedback, ...]]:
        if not ids:
            return {}
        found: dict[str, list[Feedback]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._read(
                "SELECT execution_id, source, at, score, correct, note FROM feedback "
                f"WHERE execution_id IN ({', '.join('?' * len(chunk))}) ORDER BY id",
                chunk,
            ).fetchall()
            for row in rows:
                found.setdefault(row[0], []).append(feedback_from_row(row[1:]))
        return {k: tuple(v) for k, v in found.items()}

    # ------------------------------------------------------------------ feedback

    def add_feedback(
        self,
        execution_id: str,
        *,
        score: float | None = None,
        correct: bool | None = None,
        note: str | None = None,
        source: FeedbackSource = "human",
        at: datetime | None = None,
        feedback_id: str | None = None,
    ) -> Feedback:
        """Attach feedback to a recorded execution and return it (once per ``feedback_id``:
        given again, nothing more is written; see :mod:`tlm.store.feedback`).

        Raises:
            StoreError: No execution has that id, or the write failed.
            ValueError: ``source`` is not ``"human"`` or ``"system"``, or nothing was given.
            InvalidArgument: ``score`` is not a finite number from 0 to 1.
        """
        feedback = new_feedback(score=score, correct=correct, note=note, source=source, at=at)
        self.flush()
        with self._reader_lock:
            try:
                insert_feedback(
                    self._run_statement, "?", str(self.path), execution_id, feedback,
                    feedback_id or new_feedback_id(),
                )  # fmt: skip
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot record feedback: {exc}") from exc
        return feedback

    def _run_statement(self, sql: str, args: Sequence[Any]) -> int:
        cursor = self._reader_conn.execute(sql, args)
        return len(cursor.fetchall()) if cursor.description else cursor.rowcount

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

    def __enter__(self) -> ExecutionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
