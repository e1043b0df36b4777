"""The result cache's tables: one SQLite file per data directory, or one PostgreSQL table.

Both are used from the cache thread of :class:`~tlm.store.cache.ResultCache` only, so their calls
block freely; only :meth:`interrupt` comes from another thread, when a call is overdue. The
PostgreSQL table reconnects after the database went away; while it cannot be reached, lookups
and stores fail at once (for a growing back-off of up to a minute) instead of each waiting for a
connection: the cache is an optimisation and must not slow executions down. A call stuck on a
database that stopped answering is interrupted by shutting its connection's socket down (the
call fails at once, as if the server had closed it), which counts as the database going away.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tlm.errors import StoreError
from tlm.store import pg_base
from tlm.store.backend import redact_url
from tlm.store.migrations import Schema
from tlm.store.pg_schema import pg_escape_row
from tlm.store.sqlite_base import immediate, open_database

if TYPE_CHECKING:
    from tlm.store.cache import CacheRow, Entry

__all__ = ("CACHE_SQLITE", "CACHE_PG", "SqliteCacheTable", "PostgresCacheTable")

CACHE_SQLITE: Final = Schema(
    "result cache",
    (
        (  # 1 (files from before versioning already hold this table: IF NOT EXISTS)
            """CREATE TABLE IF NOT EXISTS results (
                key TEXT PRIMARY KEY,
                task_id TEXT NOT NULL,
                task_version TEXT NOT NULL,
                output TEXT NOT NULL,
                meta TEXT NOT NULL,
                stored_at REAL NOT NULL,
                expires_at REAL
            )""",
        ),
    ),
)
CACHE_PG: Final = Schema(
    "result cache",
    (
        (
            """CREATE TABLE result_cache (
                key TEXT PRIMARY KEY,
                task_id TEXT NOT NULL,
                task_version TEXT NOT NULL,
                output TEXT NOT NULL,
                meta TEXT NOT NULL,
                stored_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION
            )""",
        ),
    ),
)
_WHAT = "the result cache"


class SqliteCacheTable:
    """``results`` in a SQLite file (WAL; versioned like every TLM file)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self._db = open_database(
            path, CACHE_SQLITE, what=_WHAT, busy_timeout_s=busy_timeout_s, foreign_keys=False
        )

    @property
    def where(self) -> str:
        return str(self.path)

    def lookup(self, key: str, now: float) -> Entry | None:
        row = self._db.execute(
            "SELECT output, meta, stored_at, expires_at FROM results WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        if row[3] is not None and row[3] <= now:
            self._db.execute("DELETE FROM results WHERE key = ? AND expires_at <= ?", (key, now))
            return None
        return row[0], row[1], float(row[2]), row[3]

    def interrupt(self) -> None:
        """Abort the statement running now (``sqlite3``'s own, safe from any thread)."""
        self._db.interrupt()

    def store(self, rows: Sequence[CacheRow]) -> None:
        with immediate(self._db) as db:
            db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        self._db.close()


_UPSERT: Final = (
    b"INSERT INTO result_cache (key, task_id, task_version, output, meta, stored_at, "
    b"expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
    b"task_id = EXCLUDED.task_id, task_version = EXCLUDED.task_version, "
    b"output = EXCLUDED.output, meta = EXCLUDED.meta, stored_at = EXCLUDED.stored_at, "
    b"expires_at = EXCLUDED.expires_at"
)
_MAX_BACKOFF_S: Final = 60.0


class PostgresCacheTable:
    """``result_cache`` in a PostgreSQL database, shared by every replica naming it.

    Raises:
        StoreError: The database cannot be reached or migrated when the table opens.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 3.0) -> None:
        from tlm.store.postgres import connect

        self.url = url
        self._timeout = connect_timeout_s
        self._backoff = 0.0
        self._down_until = 0.0
        self._conn_lock = threading.Lock()  # the connection's replacement vs. interrupt()
        conn = connect(url, connect_timeout_s=connect_timeout_s)
        try:
            pg_base.migrate(conn, (CACHE_PG,), self.where)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{self.where}: cannot open {_WHAT}: {exc}") from exc
        self._conn: Any = conn

    @property
    def where(self) -> str:
        return redact_url(self.url)

    def _connection(self) -> Any:
        import psycopg

        if self._conn is not None and not self._conn.closed:
            return self._conn
        if time.monotonic() < self._down_until:
            raise StoreError(f"{self.where}: unavailable (retrying in a moment)")
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self._timeout))
            )
            with self._conn_lock:
                self._conn = conn
        except psycopg.OperationalError:
            self._went_down()
            raise
        self._backoff = 0.0
        return self._conn

    def _went_down(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
        self._backoff = min(max(2 * self._backoff, 1.0), _MAX_BACKOFF_S)
        self._down_until = time.monotonic() + self._backoff

    def _run(self, work: Any) -> Any:
        import psycopg

        conn = self._connection()
        try:
            return work(conn)
        except psycopg.OperationalError:
            self._went_down()
            raise

    def lookup(self, key: str, now: float) -> Entry | None:
        (key,) = pg_escape_row((key,))

        def work(conn: Any) -> Entry | None:
            row = conn.execute(
                b"SELECT output, meta, stored_at, expires_at FROM result_cache WHERE key = %s",
                (key,),
            ).fetchone()
            if row is None:
                return None
            if row[3] is not None and row[3] <= now:
                conn.execute(
                    b"DELETE FROM result_cache WHERE key = %s AND expires_at <= %s", (key, now)
                )
                return None
            return row[0], row[1], float(row[2]), row[3]

        found: Entry | None = self._run(work)
        return found

    def store(self, rows: Sequence[CacheRow]) -> None:
        escaped = [pg_escape_row(row) for row in rows]

        def work(conn: Any) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_UPSERT, escaped)

        self._run(work)

    def interrupt(self) -> None:
        """Make the call waiting on the connection fail now: its socket is shut down (not
        closed: the descriptor stays the connection's until the cache thread closes it)."""
        with self._conn_lock:
            conn = self._conn
            if conn is None or conn.closed:
                return
            fd = conn.pgconn.socket
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
