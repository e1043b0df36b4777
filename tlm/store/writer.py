"""The store's writer: a bounded buffer drained by one thread that commits records in batches.

A record can fail to be stored for three kinds of reasons, and none of them stops the writer:

- *the record itself* (text SQLite cannot encode, a value JSON cannot hold): the batch is
  written record by record and only the bad value is escaped (:func:`~tlm.store.schema.
  escape_row`); its batch-mates are committed as usual;
- *the file is locked or busy* (another process holds the write lock past the busy timeout):
  the batch is retried with back-off until the lock is released; nothing is dropped;
- *the database cannot take writes* (disk full, corruption, I/O error): the batch's records are
  appended to the fallback file (``unrecorded.jsonl``), counted in :attr:`RecordWriter.lost`,
  logged with the real SQLite error, and reported on their :class:`Ticket`. Later batches are
  tried again (the disk may have room by then).

Whoever needs to know when *its* record is committed takes a :class:`Ticket` with
:meth:`RecordWriter.expect` before the record is written; writes of expected records never block
(the owner waits on the ticket instead). Awaited records are committed as soon as
:meth:`RecordWriter.commit_now` is called (or the linger time passes), together with every other
record written by then: group commit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tlm.errors import StoreError
from tlm.store.failures import UNRECORDED_NAME, describe, is_transient, rescue
from tlm.store.schema import UPSERT, escape_row, row_chunks, to_row
from tlm.telemetry.records import ExecutionRecord

__all__ = ("Ticket", "RecordWriter")

_log = logging.getLogger("tlm.store")
_MAX_BACKOFF_S = 2.0
_RECORD_ERRORS = (
    UnicodeError,
    ValueError,
    TypeError,
    OverflowError,
    sqlite3.InterfaceError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
)
"""Errors that come from one record's values, not from the database file."""


def _on_event_loop() -> bool:
    """Whether this thread is running an event loop (asyncio, or trio when it is loaded)."""
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        pass
    trio: Any = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_trio_token()
        return True
    except RuntimeError:
        return False


class Ticket:
    """One expected record: its place in the write order and, once processed, its outcome."""

    __slots__ = ("awaited", "error", "execution_id", "seq")

    def __init__(self, execution_id: str, awaited: bool) -> None:
        self.execution_id = execution_id
        self.awaited = awaited
        """Whether someone waits for the commit (the writer then does not linger)."""
        self.seq: int | None = None
        """The record's position in the write order, once written (``None`` before)."""
        self.error: StoreError | None = None
        """Why the record could not be committed (says where it was saved instead)."""


class _Entry:
    __slots__ = ("record", "ticket")

    def __init__(self, record: ExecutionRecord, ticket: Ticket | None) -> None:
        self.record = record
        self.ticket = ticket


class RecordWriter:
    """The writing half of :class:`~tlm.store.ExecutionStore` (see the module docstring)."""

    path: Path

    def _start_writer(
        self,
        conn: Any,
        *,
        queue_size: int,
        batch_size: int,
        linger_s: float,
        close_timeout_s: float,
    ) -> None:
        self._writer_conn = conn
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._linger_s = linger_s
        self._close_timeout_s = close_timeout_s
        self.unrecorded_path = self._fallback_dir() / UNRECORDED_NAME
        """Where records the database could not take are appended (JSON lines)."""
        self._buffer: deque[_Entry] = deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._expected: dict[str, Ticket] = {}
        self._submitted = 0
        self._processed = 0
        self._urgent = 0
        self._kicked = False
        self._lost = 0
        self._flush_waiters = 0
        self._max_pending = 0
        self._overflowed = 0
        self._closed = False
        self._stopping = False
        self._stop_deadline = float("inf")
        self._losses: dict[int, StoreError] = {}
        self._listeners: list[Callable[[int], None]] = []
        self._thread = threading.Thread(target=self._run, name="tlm-store-writer", daemon=True)
        self._thread.start()

    @property
    def where(self) -> str:
        """The database, as error messages and logs name it."""
        return str(self.path)

    def _fallback_dir(self) -> Path:
        """The directory of :attr:`unrecorded_path`."""
        return self.path.parent

    # ------------------------------------------------------------------ producers

    def expect(self, execution_id: str, *, awaited: bool = True) -> Ticket:
        """A ticket for the record of ``execution_id``, to be written next (see the module doc)."""
        ticket = Ticket(execution_id, awaited)
        with self._lock:
            self._expected[execution_id] = ticket
        return ticket

    def forget(self, ticket: Ticket) -> None:
        """Drop a ticket whose record was never written."""
        with self._lock:
            if self._expected.get(ticket.execution_id) is ticket:
                del self._expected[ticket.execution_id]

    def write(self, record: ExecutionRecord) -> None:
        """Queue ``record`` for the writer.

        Blocks while the queue is full (back-pressure) -- but never an event loop's thread:
        an expected record's owner awaits its ticket instead (:mod:`tlm.engine.recording`),
        and a record written from a running event loop (a span ending there) is queued past
        the bound, since blocking the loop would stall every task on it, including the ones
        the writer is about to wake.

        Raises:
            StoreError: The store is closed.
        """
        with self._lock:
            ticket = self._expected.pop(record.execution_id, None)
            while True:
                if self._closed:
                    raise StoreError(f"{self.where}: the execution store is closed")
                if ticket is not None or len(self._buffer) < self._queue_size:
                    break
                if _on_event_loop():
                    self._overflowed += 1
                    break
                self._not_full.wait()
            self._buffer.append(_Entry(record, ticket))
            self._submitted += 1
            if ticket is not None:
                ticket.seq = self._submitted
                if ticket.awaited:
                    self._urgent += 1
            pending = self._submitted - self._processed
            if pending > self._max_pending:
                self._max_pending = pending
            if len(self._buffer) >= self._batch_size:
                self._work.notify()

    def commit_now(self) -> None:
        """Wake the writer for the awaited records written so far (one transaction for all)."""
        with self._lock:
            if self._urgent:
                self._kicked = True
                self._work.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record written so far is processed; ``False`` on timeout.

        Processed means committed, or (disk full, corruption) saved to :attr:`unrecorded_path`
        and counted in :attr:`lost`; a lock only delays it.
        """
        with self._lock:
            target = self._submitted
            self._flush_waiters += 1
            self._work.notify()
            try:
                return self._done.wait_for(lambda: self._processed >= target, timeout)
            finally:
                self._flush_waiters -= 1

    @property
    def pending(self) -> int:
        """Records written but not yet processed."""
        with self._lock:
            return self._submitted - self._processed

    @property
    def overflowed(self) -> int:
        """Records queued past ``queue_size`` because their writer was an event loop's thread
        (which must not block; see :meth:`write`)."""
        return self._overflowed

    @property
    def max_pending(self) -> int:
        """The most records ever waiting at once."""
        with self._lock:
            return self._max_pending

    @property
    def processed(self) -> int:
        """How many records the writer has finished with (committed or lost), in write order."""
        return self._processed

    @property
    def queue_size(self) -> int:
        """Records that may wait for the writer before writers of unexpected records block."""
        return self._queue_size

    @property
    def lost(self) -> int:
        """Records the database could not take (saved to :attr:`unrecorded_path`, if it can)."""
        return self._lost

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(processed)`` from the writer thread after each batch (must not block)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[int], None]) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # ------------------------------------------------------------------ the writer thread

    def _ready(self) -> bool:
        return bool(self._buffer) and (
            len(self._buffer) >= self._batch_size
            or self._kicked
            or self._flush_waiters > 0
            or self._stopping
        )

    def _run(self) -> None:
        buffer = self._buffer
        while True:
            with self._lock:
                # wait for a full batch, a waiter, or the linger time with something buffered
                if not self._work.wait_for(lambda: self._ready() or self._stopping, self._linger_s):
                    if not buffer:
                        continue
                if not buffer and self._stopping:
                    return
                count = min(len(buffer), self._batch_size)
                batch = [buffer.popleft() for _ in range(count)]
                self._urgent -= sum(1 for e in batch if e.ticket is not None and e.ticket.awaited)
                self._kicked = self._kicked and self._urgent > 0 and bool(buffer)
                self._not_full.notify_all()
            records = [e.record for e in batch]
            try:
                self._commit(self._writer_conn, records)
            except Exception as exc:  # a bug, not a database error: keep the records anyway
                _log.exception("the execution store's writer failed on a batch")
                try:
                    self._lose(records, exc)
                except Exception:
                    _log.exception("cannot save the batch to %s", self.unrecorded_path)
                    with self._lock:
                        self._lost += len(records)
                        for record in records:
                            self._losses[id(record)] = StoreError(
                                f"{self.where}: execution record {record.execution_id} "
                                f"not committed: {describe(exc)}"
                            )
            self._settle(batch)

    def _settle(self, batch: list[_Entry]) -> None:
        with self._lock:
            for entry in batch:
                error = self._losses.pop(id(entry.record), None)
                if entry.ticket is not None:
                    entry.ticket.error = error
            self._losses.clear()
            self._processed += len(batch)
            processed = self._processed
            self._done.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(processed)
            except Exception:
                _log.exception("a commit listener failed")

    def _commit(self, conn: Any, records: list[ExecutionRecord]) -> None:
        """Commit one batch: retry locks, isolate bad records, keep what the file cannot take."""
        rows = [to_row(r) for r in records]
        attempt = 0
        refused: list[tuple[ExecutionRecord, BaseException]] = []
        isolate = False
        while True:
            refused.clear()
            try:
                if isolate:
                    self._transaction(
                        conn, lambda: self._write_one_by_one(conn, records, rows, refused)
                    )
                else:
                    self._transaction(conn, lambda: self._write_all(conn, rows))
            except _RECORD_ERRORS:
                if isolate:
                    raise
                isolate = True  # some record cannot be stored as is: find it, spare the rest
                continue
            except sqlite3.Error as exc:
                if is_transient(exc) and time.monotonic() < self._stop_deadline:
                    self._wait_for_lock(attempt, exc)
                    attempt += 1
                    continue
                self._lose(records, exc)
            break
        for record, why in refused:
            self._lose([record], why)
        if attempt:
            _log.warning("%s: the lock was released; recording resumed", self.where)

    @staticmethod
    def _write_all(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` with few statements (see :func:`~tlm.store.schema.upsert_rows`)."""
        for statement, params in row_chunks(rows):
            conn.execute(statement, params)

    def _write_one_by_one(
        self,
        conn: sqlite3.Connection,
        records: list[ExecutionRecord],
        rows: list[tuple[Any, ...]],
        refused: list[tuple[ExecutionRecord, BaseException]],
    ) -> None:
        for record, row in zip(records, rows, strict=True):
            try:
                conn.execute(UPSERT, row)
                continue
            except _RECORD_ERRORS as exc:
                _log.warning(
                    "execution record %s cannot be stored as is (%s); storing it escaped",
                    record.execution_id,
                    describe(exc),
                )
            try:
                conn.execute(UPSERT, escape_row(row))
            except _RECORD_ERRORS as exc:
                refused.append((record, exc))

    @staticmethod
    def _transaction(conn: sqlite3.Connection, body: Callable[[], object]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            body()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (e.g. SQLITE_FULL)
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    _log.debug("rollback failed after a failed commit", exc_info=True)
            raise

    def _wait_for_lock(self, attempt: int, exc: BaseException) -> None:
        if attempt == 0:
            _log.warning(
                "%s is locked by another connection (%s); retrying until it is released, "
                "no record is dropped",
                self.where,
                describe(exc),
            )
        time.sleep(min(0.05 * 2**attempt, _MAX_BACKOFF_S))

    def _lose(self, records: list[ExecutionRecord], exc: BaseException) -> None:
        """Save ``records`` to the fallback file, count them and say why they are not committed."""
        reason = describe(exc)
        failed = rescue(self.unrecorded_path, records)
        with self._lock:
            self._lost += len(records)
            for record in records:
                why = failed.get(record.execution_id)
                where = (
                    f"could not save it to {self.unrecorded_path} either ({why})"
                    if why
                    else f"saved to {self.unrecorded_path}"
                )
                self._losses[id(record)] = StoreError(
                    f"{self.where}: execution record {record.execution_id} not committed: "
                    f"{reason}; {where}"
                )
        _log.error(
            "%s: %d execution record(s) not committed: %s; %d saved to %s%s",
            self.where,
            len(records),
            reason,
            len(records) - len(failed),
            self.unrecorded_path,
            f", {len(failed)} could not be saved there either" if failed else "",
        )

    def _stop_writer(self) -> None:
        """Commit what is buffered (locks are retried for ``close_timeout_s``), stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._stop_deadline = time.monotonic() + self._close_timeout_s
            self._work.notify()
            self._not_full.notify_all()
        self._thread.join()
