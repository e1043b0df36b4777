"""Execution records and feedback in PostgreSQL, shared by every process that names the database.

The same durability contract as the SQLite store (:mod:`tlm.store.writer`): writes go through a
bounded buffer to one writer thread that commits them in batches (psycopg's pipelined
``executemany``), callers that wait for their record hold a ticket, and a record is written once
by execution id (``INSERT ... ON CONFLICT (execution_id) DO UPDATE``), so N replicas writing the
same database never duplicate one. When the database is unavailable (restarting, network down)
the writer reconnects and retries the batch with back-off for ``unavailable_timeout_s``; records
still not committed after that are saved to ``<data_dir>/unrecorded.jsonl``, counted in
:attr:`~tlm.store.writer.RecordWriter.lost` and reported to their waiting execution
(``RecordNotCommitted``). The schema is migrated on open (:mod:`tlm.store.pg_schema`).
:meth:`~PostgresExecutionStore.close` is bounded by ``close_timeout_s`` even when the database
stopped answering without closing the connection (a paused server, a network silently dropping
packets): the batch then still waiting has its connection shut down, and goes to the file.

Driver: psycopg 3. Its blocking API works from the writer thread exactly like :mod:`sqlite3`
(one connection owned by one thread), its async API serves the review queue's waits, and it
speaks LISTEN/NOTIFY on both.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from tlm.errors import StoreError
from tlm.store.backend import redact_url
from tlm.store.pg_schema import PG_UPSERT, migrate, pg_escape_row
from tlm.store.reads import StoreReads
from tlm.store.schema import to_row
from tlm.store.sqlite import _close_at_exit
from tlm.telemetry.records import ExecutionRecord, Feedback

__all__ = ("PostgresExecutionStore", "connect")

_log = logging.getLogger("tlm.store")
_MAX_BACKOFF_S = 2.0
_UPSERT = PG_UPSERT.encode()


def connect(url: str, *, connect_timeout_s: float = 10.0) -> psycopg.Connection[Any]:
    """An autocommit connection (transactions are explicit) or a :class:`StoreError`."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(connect_timeout_s)))
    except psycopg.Error as exc:
        raise StoreError(f"{redact_url(url)}: cannot connect to PostgreSQL: {exc}") from exc


class PostgresExecutionStore(StoreReads):
    """Execution records in a PostgreSQL database; thread-safe; one writer thread per store.

    Args:
        url: ``postgresql://user:password@host:port/dbname`` (the password is never logged).
        data_dir: Where ``unrecorded.jsonl`` goes when a record cannot be kept.
        queue_size, batch_size, linger_s, close_timeout_s: As for
            :class:`~tlm.store.sqlite.ExecutionStore`.
        unavailable_timeout_s: How long a batch is retried while the database cannot be reached
            before its records go to the fallback file.

    Raises:
        StoreError: The database cannot be reached or migrated.
    """

    def __init__(
        self,
        url: str,
        *,
        data_dir: str | Path = ".tlm",
        queue_size: int = 1024,
        batch_size: int = 512,
        linger_s: float = 0.05,
        close_timeout_s: float = 60.0,
        unavailable_timeout_s: float = 60.0,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be at least 1")
        self.url = url
        self.data_dir = Path(data_dir)
        self.path = self.data_dir  # the fallback file's directory (RecordWriter)
        self._unavailable_timeout_s = unavailable_timeout_s
        self._close_timeout_s = close_timeout_s
        self._conn_lock = threading.Lock()  # the writer's connection: replaced vs. interrupted
        writer_conn = connect(url)
        try:
            migrate(writer_conn, self.where)
            self._reader_conn = connect(url)
        except BaseException as exc:
            writer_conn.close()
            if isinstance(exc, psycopg.Error):
                raise StoreError(f"{self.where}: cannot open the execution store: {exc}") from exc
            raise
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._reader_lock = threading.Lock()
        self._start_writer(
            writer_conn,
            queue_size=queue_size,
            batch_size=batch_size,
            linger_s=linger_s,
            close_timeout_s=close_timeout_s,
        )
        self._atexit = _close_at_exit(self)  # type: ignore[arg-type]

    @property
    def where(self) -> str:
        return redact_url(self.url)

    def _fallback_dir(self) -> Path:
        return self.data_dir

    # ------------------------------------------------------------------ the writer thread

    def _commit(self, conn: Any, records: list[ExecutionRecord]) -> None:
        """Commit one batch; reconnect and retry while the database is unavailable."""
        rows = [pg_escape_row(to_row(r)) for r in records]
        give_up = time.monotonic() + self._unavailable_timeout_s
        attempt = 0
        while True:
            try:
                self._write_batch(rows)
            except psycopg.OperationalError as exc:  # unreachable, restarting, shut down
                self._drop_writer_conn()
                if time.monotonic() < min(give_up, self._stop_deadline):
                    self._wait_for_database(attempt, exc)
                    attempt += 1
                    continue
                self._lose(records, exc)
            except (psycopg.Error, ValueError, TypeError, UnicodeError):
                self._write_each(records, rows)  # some record is refused: spare the rest
            break
        if attempt:
            _log.warning("%s: the database is back; recording resumed", self.where)

    def _writer(self) -> psycopg.Connection[Any]:
        if self._writer_conn is None or self._writer_conn.closed:
            opened = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            with self._conn_lock:
                self._writer_conn = opened
        conn: psycopg.Connection[Any] = self._writer_conn
        return conn

    def _write_batch(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._writer()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_UPSERT, rows)

    def _write_each(self, records: list[ExecutionRecord], rows: list[tuple[Any, ...]]) -> None:
        for record, row in zip(records, rows, strict=True):
            try:
                conn = self._writer()
                with conn.transaction():
                    conn.execute(_UPSERT, row)
            except psycopg.OperationalError as exc:
                self._drop_writer_conn()
                self._lose([record], exc)
            except (psycopg.Error, ValueError, TypeError, UnicodeError) as exc:
                self._lose([record], exc)

    def _drop_writer_conn(self) -> None:
        with self._conn_lock:
            conn = self._writer_conn
            self._writer_conn = None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                _log.debug("closing a broken connection failed", exc_info=True)

    def _interrupt_writer_after(self, done: threading.Event) -> None:
        """From ``close_timeout_s`` after :meth:`close` began until the writer stopped, make a
        batch waiting on the database fail (its socket shut down, as if the server had closed
        it): the writer then keeps its records in the fallback file instead of waiting forever.
        Runs in a thread of its own."""
        if done.wait(self._close_timeout_s):
            return
        _log.warning("%s does not answer; closing without waiting any longer", self.where)
        while True:
            self._interrupt_writer()
            if done.wait(1.0):
                return

    def _interrupt_writer(self) -> None:
        with self._conn_lock:
            conn = self._writer_conn
            if conn is None or conn.closed:
                return
            try:
                with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except (OSError, psycopg.Error):
                _log.debug("interrupting the writer's connection failed", exc_info=True)

    def _wait_for_database(self, attempt: int, exc: BaseException) -> None:
        if attempt == 0:
            _log.warning(
                "%s is unavailable (%s); retrying for up to %.0f s, no record is dropped",
                self.where,
                str(exc).strip() or type(exc).__name__,
                self._unavailable_timeout_s,
            )
        time.sleep(min(0.05 * 2**attempt, _MAX_BACKOFF_S))

    # ------------------------------------------------------------------ reading

    def _read(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql``; reconnects once if the database restarted since the last read."""
        rows: list[tuple[Any, ...]] = self._retried(
            lambda conn: conn.execute(sql.encode(), args).fetchall()
        )
        return rows

    def _run_statement(self, sql: str, args: Any = ()) -> int:
        """Rows ``sql`` inserted or selected; reconnects once (the statement must be safe to
        run twice: its first try may have committed before the connection dropped)."""
        count: int = self._retried(lambda conn: conn.execute(sql.encode(), args).rowcount)
        return count

    def _retried(self, work: Any) -> Any:
        for retry in (False, True):
            try:
                if self._reader_conn.closed:
                    self._reader_conn = connect(self.url)
                return work(self._reader_conn)
            except psycopg.OperationalError as exc:
                self._reader_conn.close()
                if retry:
                    raise StoreError(f"{self.where}: read failed: {exc}") from exc
            except psycopg.Error as exc:
                raise StoreError(f"{self.where}: read failed: {exc}") from exc
        raise AssertionError("unreachable")

    _mark = "%s"

    def _rows(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._read(sql, args)

    def _feedback_for(self, ids: list[str]) -> dict[str, tuple[Feedback, ...]]:
        if not ids:
            return {}
        return {k: tuple(v) for k, v in self._feedback_rows("= ANY(%s)", (ids,)).items()}

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Commit everything written, stop the writer and close the connections. Idempotent."""
        with self._lock:
            if self._closed:
                return
        atexit.unregister(self._atexit)
        stopped = threading.Event()
        threading.Thread(
            target=self._interrupt_writer_after,
            args=(stopped,),
            name="tlm-store-close",
            daemon=True,
        ).start()
        try:
            self._stop_writer()
        finally:
            stopped.set()
            with self._reader_lock:
                self._reader_conn.close()
            self._drop_writer_conn()
        if self.lost:
            _log.error(
                "%s: %d execution record(s) could not be committed in this session; see %s",
                self.where,
                self.lost,
                self.unrecorded_path,
            )

    def __repr__(self) -> str:
        return f"PostgresExecutionStore({self.where!r})"
