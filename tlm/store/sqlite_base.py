"""Opening a SQLite file of TLM's: the project's pragmas and versioned migrations, applied once.

Every SQLite-backed repository (execution log, result cache, review queue, batch state...) opens
its file here: a connection in autocommit mode (transactions are explicit), WAL with
``synchronous=NORMAL`` (a committed write survives the process being killed), a busy timeout so
concurrent writers wait for each other, foreign keys on. :func:`migrate` applies the missing
steps of the repository's :class:`~tlm.store.migrations.Schema` in one ``BEGIN IMMEDIATE``
transaction and records the version in ``PRAGMA user_version``: processes opening a new file
together take the write lock one after the other, and the second finds the work done. A file
that is damaged, or not a database at all, is a :class:`~tlm.errors.StoreCorrupted` naming the
file; any other failure a :class:`~tlm.errors.StoreError` naming it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tlm.errors import StoreError
from tlm.store.failures import describe, is_corruption
from tlm.store.integrity import check_integrity, corrupted
from tlm.store.migrations import Schema, newer_schema

__all__ = ("connect", "immediate", "migrate", "open_database", "file_version", "failure")


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction (the write lock taken at once) on an autocommit
    connection: committed when the block ends, rolled back when it raises (unless SQLite has
    rolled back already, e.g. on ``SQLITE_FULL``)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def failure(path: Path, what: str, doing: str, exc: BaseException) -> StoreError:
    """``exc`` as the error to raise: corruption is :class:`StoreCorrupted`, naming the file."""
    if isinstance(exc, StoreError):
        return exc
    if is_corruption(exc):
        return corrupted(path, describe(exc), what)
    return StoreError(f"{path}: cannot {doing} {what}: {exc}")


def connect(
    path: str | os.PathLike[str],
    *,
    busy_timeout_s: float = 30.0,
    foreign_keys: bool = True,
    what: str = "the database",
) -> sqlite3.Connection:
    """A connection to ``path`` (created with its directory) with TLM's pragmas.

    The connection may be used from any thread (callers serialize its use); transactions are
    explicit (``BEGIN``/``COMMIT``), each statement outside one commits on its own.

    Raises:
        StoreCorrupted: The file is damaged or not a SQLite database.
        StoreError: It cannot be created or opened.
    """
    path = Path(path)
    conn: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
        )
        _enter_wal(conn, busy_timeout_s)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            conn.close()
        raise failure(path, what, "open", exc) from exc
    return conn


def _enter_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried while the file is locked, for up to the busy timeout.

    Opening a WAL file whose last connection just closed rebuilds its index under an exclusive
    lock, and a connection opening meanwhile gets "database is locked" at once: SQLite's busy
    handler is not consulted there (seen with 20 threads each opening the same file).
    """
    deadline = time.monotonic() + busy_timeout_s
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def migrate(conn: sqlite3.Connection, schema: Schema, source: str) -> tuple[int, int]:
    """Bring ``conn``'s file to ``schema``'s newest version atomically; ``(before, after)``.

    The steps run in one ``BEGIN IMMEDIATE`` transaction (a second process opening the file at
    the same time waits for the write lock, then sees the new version and does nothing).

    Raises:
        StoreError: The file's version is newer than ``schema`` knows (``source`` names it).
        sqlite3.Error: A statement failed (nothing was changed).
    """
    if _version(conn) == schema.version:  # the common case: no write lock taken
        return schema.version, schema.version
    with immediate(conn):
        before = _version(conn)
        if before > schema.version:
            raise newer_schema(source, schema, before)
        for step in range(before, schema.version):
            for statement in schema.steps[step]:
                conn.execute(statement)
        if before != schema.version:
            conn.execute(f"PRAGMA user_version = {schema.version}")
    return before, schema.version


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def open_database(
    path: str | os.PathLike[str],
    schema: Schema,
    *,
    what: str,
    busy_timeout_s: float = 30.0,
    foreign_keys: bool = True,
    check_budget_s: float = 0.0,
) -> sqlite3.Connection:
    """:func:`connect`, check the file's integrity (within ``check_budget_s``; 0: no check),
    then :func:`migrate` it to ``schema``.

    ``what`` names the repository in messages (``"the result cache"``).

    Raises:
        StoreCorrupted: The file is damaged or not a SQLite database.
        StoreError: It cannot be opened or migrated, or its schema is newer than this TLM's.
    """
    path = Path(path)
    conn = connect(path, busy_timeout_s=busy_timeout_s, foreign_keys=foreign_keys, what=what)
    try:
        check_integrity(conn, path, check_budget_s, what)
        migrate(conn, schema, str(path))
    except (sqlite3.Error, StoreError) as exc:
        conn.close()
        raise failure(path, what, "migrate", exc) from exc
    return conn


def file_version(path: str | os.PathLike[str], what: str = "the database") -> int | None:
    """The schema version of the file at ``path`` read without changing it (``None``: no file).

    Raises:
        StoreCorrupted: The file is not a SQLite database.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise failure(path, what, "read", exc) from exc
    try:
        return _version(conn)
    except sqlite3.Error as exc:
        raise failure(path, what, "read", exc) from exc
    finally:
        conn.close()
