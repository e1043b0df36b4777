"""One PostgreSQL connection for a small repository (workflow runs, rollouts, rankings).

A repository written once in SQLite's dialect (``?`` placeholders, ``rowid``) runs on PostgreSQL
through :class:`PgStatements`, which rewrites each statement (and stores what PostgreSQL text
cannot hold, NUL and lone surrogates, as ``\\uXXXX`` escapes: JSON's own, so JSON reads back
unchanged); :class:`PgRepository` owns one
connection (opened and migrated on creation, under :mod:`tlm.store.pg_base`'s advisory lock;
reopened after the database went away), serialises its use across threads and turns driver
errors into :class:`~tlm.errors.StoreError` naming the database with its password masked.

A repository is kept open for many calls (an engine keeps one workflow runs store for all its
runs), so before each use its idle connection is checked without a round trip: a server that
restarted or ended the session has closed the socket (or left a last error message on it), which
makes the idle socket readable, and the connection is then replaced instead of failing the call.
"""

from __future__ import annotations

import re
import select
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tlm.errors import StoreError
from tlm.store import pg_base
from tlm.store.backend import redact_url
from tlm.store.migrations import Schema
from tlm.store.pg_schema import pg_escape_row

__all__ = ("PgStatements", "PgRepository", "OnPostgres", "pg_sql")


def pg_sql(sql: str, renames: Mapping[str, str] | None = None) -> str:
    """``sql`` with ``?`` placeholders as ``%s`` and each word of ``renames`` replaced."""
    statement = sql.replace("%", "%%").replace("?", "%s")
    for old, new in (renames or {}).items():
        statement = re.sub(rf"\b{re.escape(old)}\b", new, statement)
    return statement


class PgStatements:
    """A psycopg connection taking SQLite-style statements (see :func:`pg_sql`)."""

    def __init__(self, conn: psycopg.Connection[Any], renames: Mapping[str, str]) -> None:
        self.conn = conn
        self.renames = renames

    def execute(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.conn.execute(pg_sql(sql, self.renames).encode(), pg_escape_row(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(
                pg_sql(sql, self.renames).encode(), [pg_escape_row(row) for row in rows]
            )


def _closed_by_server(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection's socket has something to read: nothing is expected between
    statements (no LISTEN here), so the server closed it or is about to (its last message)."""
    try:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, psycopg.Error):
        return True


class PgRepository:
    """A repository's connection to ``url``; thread-safe (one connection behind a lock).

    Args:
        url: ``postgresql://...`` (shown with its password masked).
        schemas: Migrated when the repository opens.
        what: The repository's name in messages (``"the workflow store"``).
        renames: Words of the repository's SQLite statements PostgreSQL spells differently.

    Raises:
        StoreError: The database cannot be reached or migrated.
    """

    def __init__(
        self,
        url: str,
        schemas: Sequence[Schema],
        *,
        what: str,
        renames: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.what = what
        self._schemas = tuple(schemas)
        self._renames = dict(renames or {})
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        with self._lock:
            self._open()

    @property
    def where(self) -> str:
        """The database, password masked."""
        return redact_url(self.url)

    def _open(self) -> psycopg.Connection[Any]:
        current = self._conn
        if current is not None and not current.closed and not current.broken:
            if not _closed_by_server(current):
                return current
            current.close()
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot open {self.what}: {exc}") from exc
        try:
            pg_base.migrate(conn, self._schemas, self.where)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise StoreError(f"{self.where}: cannot migrate {self.what}: {exc}") from exc
            raise
        conn.row_factory = dict_row  # type: ignore[assignment]
        self._conn = conn
        weakref.finalize(self, conn.close)  # closed with the repository when not before
        return conn

    @contextmanager
    def statements(self, *, lock_key: int | None = None) -> Iterator[PgStatements]:
        """The connection, each statement committed on its own; with ``lock_key``, one
        transaction holding that advisory lock (committed at the end, rolled back on error)."""
        with self._lock:
            conn = self._open()
            try:
                if lock_key is None:
                    yield PgStatements(conn, self._renames)
                else:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
                        yield PgStatements(conn, self._renames)
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError):
                    conn.close()  # reopened by the next call
                raise StoreError(f"{self.what} {self.where}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class OnPostgres:
    """The PostgreSQL half of a SQLite store's twin: its ``_connect`` / ``_transaction`` (the
    statements the SQLite store runs) on a :class:`PgRepository`, writes under the advisory lock
    ``_write_lock`` (what ``BEGIN IMMEDIATE`` is on SQLite). Listed before the SQLite store among
    the bases."""

    _db: PgRepository
    _write_lock: int

    @property
    def where(self) -> str:
        """The database, password masked."""
        return self._db.where

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        with self._db.statements() as statements:
            yield statements

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._db.statements(lock_key=self._write_lock) as statements:
            yield statements

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
