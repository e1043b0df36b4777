"""The embedded store: execution records and feedback in one SQLite file (WAL).

Writes go through a bounded buffer to one writer thread that commits in batches (a full batch, a
flush, or a partial batch after ``linger_s``); when the writer is behind,
:meth:`ExecutionStore.write` blocks (back-pressure) instead of dropping anything.
Reads see what is committed; :meth:`~ExecutionStore.get`, :meth:`~ExecutionStore.query` and
:meth:`~ExecutionStore.add_feedback` flush pending writes first, so a caller reads its own writes.
Records are keyed by execution id: writing one twice replaces it and keeps its feedback.

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` are applied in order on
open. A committed record survives the process being killed (WAL, ``synchronous=NORMAL``).
"""

from __future__ import annotations

import atexit
import json
import os
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from tlm.errors import StoreError
from tlm.telemetry.records import (
    ErrorInfo,
    ExecutionRecord,
    Feedback,
    FeedbackSource,
    Performance,
    VerificationResults,
    format_timestamp,
)

__all__ = ("ExecutionStore", "MIGRATIONS", "DEFAULT_DB_NAME", "default_db_path")

DEFAULT_DB_NAME: Final = "tlm.db"

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: executions and feedback
    (
        """CREATE TABLE executions (
            execution_id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            task_version TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            status TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT,
            models_used TEXT NOT NULL,
            verification_method TEXT,
            passed INTEGER,
            confidence REAL,
            verification_details TEXT,
            execution_time REAL NOT NULL,
            tokens_used INTEGER NOT NULL,
            cost REAL NOT NULL,
            prompt_variant TEXT,
            attempts INTEGER NOT NULL,
            error_type TEXT,
            error_message TEXT,
            cache_hit INTEGER NOT NULL,
            fallback TEXT,
            trace_id TEXT,
            prompt TEXT,
            system_prompt TEXT
        )""",
        "CREATE INDEX executions_task_time ON executions (task_id, timestamp)",
        "CREATE INDEX executions_time ON executions (timestamp)",
        """CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            execution_id TEXT NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
            source TEXT NOT NULL CHECK (source IN ('human', 'system')),
            at TEXT NOT NULL,
            score REAL,
            correct INTEGER,
            note TEXT
        )""",
        "CREATE INDEX feedback_execution ON feedback (execution_id)",
    ),
    # 2: the span tree of each execution (JSON), for the console's waterfall
    ("ALTER TABLE executions ADD COLUMN spans TEXT",),
)
"""Schema migrations: step ``i`` (0-based) takes ``user_version`` from ``i`` to ``i + 1``."""

_COLUMNS: Final = (
    "execution_id",
    "task_id",
    "task_version",
    "timestamp",
    "status",
    "input",
    "output",
    "models_used",
    "verification_method",
    "passed",
    "confidence",
    "verification_details",
    "execution_time",
    "tokens_used",
    "cost",
    "prompt_variant",
    "attempts",
    "error_type",
    "error_message",
    "cache_hit",
    "fallback",
    "trace_id",
    "prompt",
    "system_prompt",
    "spans",
)
_UPSERT: Final = (
    f"INSERT INTO executions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    f"ON CONFLICT (execution_id) DO UPDATE SET "
    + ", ".join(f"{col} = excluded.{col}" for col in _COLUMNS[1:])
)
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM executions"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def default_db_path(data_dir: str | os.PathLike[str] = ".tlm") -> Path:
    """``<data_dir>/tlm.db``."""
    return Path(data_dir) / DEFAULT_DB_NAME


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _migrate(conn: sqlite3.Connection, source: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{source}: schema version {version} is newer than this TLM knows "
                f"({len(MIGRATIONS)}); upgrade TLM"
            )
        for step in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _to_row(record: ExecutionRecord) -> tuple[Any, ...]:
    v = record.verification_results
    p = record.performance
    e = record.error
    return (
        record.execution_id,
        record.task_id,
        record.task_version,
        record.timestamp,
        record.status,
        _dumps(record.input),
        None if record.output is None else _dumps(record.output),
        _dumps(record.models_used),
        None if v is None else v.method_used,
        None if v is None or v.passed is None else int(v.passed),
        None if v is None else v.confidence,
        None if v is None or not v.details else _dumps(v.details),
        p.execution_time,
        p.tokens_used,
        p.cost,
        record.prompt_variant,
        record.attempts,
        None if e is None else e.type,
        None if e is None else e.message,
        int(record.cache_hit),
        record.fallback,
        record.trace_id,
        record.prompt,
        record.system_prompt,
        _dumps(record.spans) if record.spans else None,
    )


def _from_row(row: Sequence[Any], feedback: tuple[Feedback, ...]) -> ExecutionRecord:
    (
        execution_id,
        task_id,
        task_version,
        timestamp,
        status,
        input_json,
        output_json,
        models_json,
        method,
        passed,
        confidence,
        details_json,
        execution_time,
        tokens_used,
        cost,
        prompt_variant,
        attempts,
        error_type,
        error_message,
        cache_hit,
        fallback,
        trace_id,
        prompt,
        system_prompt,
        spans_json,
    ) = row
    verification = (
        None
        if method is None
        else VerificationResults(
            method_used=method,
            passed=None if passed is None else bool(passed),
            confidence=confidence,
            details=json.loads(details_json) if details_json else {},
        )
    )
    return ExecutionRecord(
        execution_id=execution_id,
        task_id=task_id,
        task_version=task_version,
        input=json.loads(input_json),
        output=None if output_json is None else json.loads(output_json),
        models_used=tuple(json.loads(models_json)),
        verification_results=verification,
        performance=Performance(execution_time, tokens_used, cost),
        timestamp=timestamp,
        feedback=feedback,
        prompt_variant=prompt_variant,
        attempts=attempts,
        error=None if error_type is None else ErrorInfo(error_type, error_message or ""),
        status=status,
        cache_hit=bool(cache_hit),
        fallback=fallback,
        trace_id=trace_id,
        prompt=prompt,
        system_prompt=system_prompt,
        spans=tuple(json.loads(spans_json)) if spans_json else (),
    )


def _feedback_from_row(row: Sequence[Any]) -> Feedback:
    source, at, score, correct, note = row
    return Feedback(
        source=source,
        at=at,
        score=score,
        correct=None if correct is None else bool(correct),
        note=note,
    )


class ExecutionStore:
    """Execution records in a SQLite file; thread-safe; one writer thread per store.

    Args:
        path: The database file (created with its directory if missing), e.g.
            :func:`default_db_path`.
        queue_size: Records that may wait for the writer before :meth:`write` blocks.
        batch_size: Most records committed in one transaction.
        linger_s: How long a partial batch may wait for more records before it is committed.

    Raises:
        StoreError: The file cannot be opened or migrated.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        queue_size: int = 1024,
        batch_size: int = 512,
        linger_s: float = 0.05,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be at least 1")
        self.path = Path(path)
        self._batch_size = batch_size
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer_conn = _connect(self.path)
            _migrate(self._writer_conn, str(self.path))
            self._reader_conn = _connect(self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the execution store: {exc}") from exc
        self._reader_lock = threading.Lock()
        self._queue_size = queue_size
        self._linger_s = linger_s
        self._buffer: deque[ExecutionRecord] = deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._submitted = 0
        self._committed = 0
        self._flush_waiters = 0
        self._failed: BaseException | None = None
        self._closed = False
        self._stopping = False
        self._max_pending = 0
        self._thread = threading.Thread(target=self._run, name="tlm-store-writer", daemon=True)
        self._thread.start()
        self._atexit = _close_at_exit(self)

    # ------------------------------------------------------------------ writing

    def write(self, record: ExecutionRecord) -> None:
        """Queue ``record`` for the writer; blocks while the queue is full (back-pressure).

        Raises:
            StoreError: The store is closed or the writer failed.
        """
        with self._lock:
            while True:
                if self._closed:
                    raise StoreError(f"{self.path}: the execution store is closed")
                if self._failed is not None:
                    raise StoreError(f"{self.path}: the writer failed: {self._failed}")
                if len(self._buffer) < self._queue_size:
                    break
                self._not_full.wait()
            self._buffer.append(record)
            self._submitted += 1
            pending = self._submitted - self._committed
            if pending > self._max_pending:
                self._max_pending = pending
            if len(self._buffer) >= self._batch_size:
                self._work.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record written so far is committed; ``False`` on timeout.

        Raises:
            StoreError: The writer failed to commit.
        """
        with self._lock:
            target = self._submitted
            self._flush_waiters += 1
            self._work.notify()
            try:
                done = self._done.wait_for(
                    lambda: self._committed >= target or self._failed is not None, timeout
                )
            finally:
                self._flush_waiters -= 1
            if self._failed is not None:
                raise StoreError(f"{self.path}: the writer failed: {self._failed}")
            return done

    @property
    def pending(self) -> int:
        """Records written but not yet committed."""
        with self._lock:
            return self._submitted - self._committed

    @property
    def max_pending(self) -> int:
        """The most records ever waiting at once (at most ``queue_size`` plus one batch)."""
        with self._lock:
            return self._max_pending

    def _ready(self) -> bool:
        return bool(self._buffer) and (
            len(self._buffer) >= self._batch_size or self._flush_waiters > 0 or self._stopping
        )

    def _run(self) -> None:
        conn = self._writer_conn
        buffer = self._buffer
        while True:
            with self._lock:
                # wait for a full batch, a flush, or the linger time with something buffered
                if not self._work.wait_for(lambda: self._ready() or self._stopping, self._linger_s):
                    if not buffer:
                        continue
                if not buffer and self._stopping:
                    return
                count = min(len(buffer), self._batch_size)
                batch = [buffer.popleft() for _ in range(count)]
                self._not_full.notify_all()
            if batch:
                self._commit(conn, batch)

    def _commit(self, conn: sqlite3.Connection, records: list[ExecutionRecord]) -> None:
        """Commit one batch (overridable, e.g. to inject a delay in tests)."""
        try:
            rows = [_to_row(r) for r in records]
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_UPSERT, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except Exception as exc:
            with self._lock:
                self._failed = exc
                self._done.notify_all()
                self._not_full.notify_all()
            return
        with self._lock:
            self._committed += len(records)
            self._done.notify_all()

    # ------------------------------------------------------------------ reading

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """The record of ``execution_id`` with its feedback, or ``None``."""
        self.flush()
        with self._reader_lock:
            row = self._read(f"{_SELECT} WHERE execution_id = ?", (execution_id,)).fetchone()
            if row is None:
                return None
            return _from_row(row, self._feedback_of(execution_id))

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
        where: list[str] = []
        args: list[Any] = []
        if task_id is not None:
            where.append("task_id = ?")
            args.append(task_id)
        if version is not None:
            where.append("task_version = ?")
            args.append(version)
        if since is not None:
            where.append("timestamp >= ?")
            args.append(format_timestamp(since))
        if until is not None:
            where.append("timestamp < ?")
            args.append(format_timestamp(until))
        sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY timestamp DESC" if newest_first else " ORDER BY timestamp"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._reader_lock:
            rows = self._read(sql, args).fetchall()
            feedback = self._feedback_for([row[0] for row in rows])
        for row in rows:
            yield _from_row(row, feedback.get(row[0], ()))

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
        return tuple(_feedback_from_row(r) for r in rows)

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
                found.setdefault(row[0], []).append(_feedback_from_row(row[1:]))
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
    ) -> Feedback:
        """Attach feedback to a recorded execution and return it.

        Raises:
            StoreError: No execution has that id, or the write failed.
            ValueError: ``source`` is not ``"human"`` or ``"system"``, or nothing was given.
        """
        if source not in ("human", "system"):
            raise ValueError(f"feedback source must be 'human' or 'system', not {source!r}")
        if score is None and correct is None and not note:
            raise ValueError("feedback needs a score, a correct/incorrect mark or a note")
        feedback = Feedback(
            source=source,
            at=format_timestamp(at or datetime.now().astimezone()),
            score=None if score is None else float(score),
            correct=correct,
            note=note,
        )
        self.flush()
        with self._reader_lock:
            conn = self._reader_conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    exists = conn.execute(
                        "SELECT 1 FROM executions WHERE execution_id = ?", (execution_id,)
                    ).fetchone()
                    if exists is None:
                        raise StoreError(f"{self.path}: no execution with id {execution_id!r}")
                    conn.execute(
                        "INSERT INTO feedback (execution_id, source, at, score, correct, note) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            execution_id,
                            feedback.source,
                            feedback.at,
                            feedback.score,
                            None if correct is None else int(correct),
                            note,
                        ),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot record feedback: {exc}") from exc
        return feedback

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Commit everything written, stop the writer and close the file. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._work.notify()
            self._not_full.notify_all()
        atexit.unregister(self._atexit)
        try:
            self._thread.join()
        finally:
            with self._reader_lock:
                self._reader_conn.close()
            self._writer_conn.close()
        if self._failed is not None:
            raise StoreError(f"{self.path}: the writer failed: {self._failed}")

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
