"""The shared SQLite base: pragmas, atomic versioned migrations, damaged files named."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tlm.errors import StoreCorrupted, StoreError
from tlm.store.migrations import Schema
from tlm.store.sqlite_base import connect, file_version, migrate, open_database

SCHEMA = Schema(
    "test things",
    (
        ("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)", "CREATE TABLE log (n INT)"),
        ("ALTER TABLE things ADD COLUMN size INT", "INSERT INTO log VALUES (2)"),
    ),
)


def test_a_new_file_gets_the_pragmas_and_every_step(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "things.db"
    conn = open_database(path, SCHEMA, what="the things")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    conn.execute("INSERT INTO things (name, size) VALUES ('a', 1)")
    conn.close()
    assert file_version(path) == 2
    assert file_version(tmp_path / "missing.db") is None


def test_an_older_file_is_migrated_step_by_step_and_reopening_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "things.db"
    first = Schema("test things", SCHEMA.steps[:1])
    open_database(path, first, what="the things").close()
    assert file_version(path) == 1
    conn = connect(path)
    assert migrate(conn, SCHEMA, str(path)) == (1, 2)
    assert migrate(conn, SCHEMA, str(path)) == (2, 2)
    assert conn.execute("SELECT n FROM log").fetchall() == [(2,)]
    conn.close()


def test_a_failing_step_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "things.db"
    broken = Schema("test things", (*SCHEMA.steps, ("CREATE TABLE x (a)", "NOT SQL AT ALL")))
    open_database(path, SCHEMA, what="the things").close()
    with pytest.raises(StoreError, match=r"things\.db: cannot migrate the things"):
        open_database(path, broken, what="the things")
    assert file_version(path) == 2
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'x'").fetchone() is None
    conn.close()


def test_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "things.db"
    open_database(path, SCHEMA, what="the things").close()
    older = Schema("test things", SCHEMA.steps[:1])
    with pytest.raises(StoreError, match=r"schema version 2 is newer .* test things \(1\)"):
        open_database(path, older, what="the things")


def test_a_file_that_is_not_a_database_is_corrupted_and_named(tmp_path: Path) -> None:
    path = tmp_path / "things.db"
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(StoreCorrupted, match=r"things\.db: the things is corrupted"):
        open_database(path, SCHEMA, what="the things")
    with pytest.raises(StoreCorrupted, match=r"things\.db"):
        file_version(path)


def test_a_directory_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "things.db").mkdir()
    with pytest.raises(StoreError, match=r"things\.db: cannot open the things"):
        open_database(tmp_path / "things.db", SCHEMA, what="the things")


def test_connections_opening_a_new_file_together_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "things.db"
    counted = Schema("test things", (("CREATE TABLE log (n INT)", "INSERT INTO log VALUES (1)"),))
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            conn = connect(path)
            start.wait()
            migrate(conn, counted, str(path))
            conn.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM log").fetchone() == (1,)
    conn.close()


def test_many_threads_opening_a_new_file_at_once_all_get_a_connection(tmp_path: Path) -> None:
    # Opening a WAL file whose last connection just closed rebuilds its index under an exclusive
    # lock; a connection opening meanwhile was refused ("database is locked") without waiting.
    errors: list[BaseException] = []

    def open_and_write(path: Path) -> None:
        try:
            conn = connect(path)
            conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
            conn.execute("INSERT INTO t VALUES (1)")
            conn.close()
        except BaseException as exc:
            errors.append(exc)

    for round_ in range(60):
        path = tmp_path / f"r{round_}.db"
        threads = [threading.Thread(target=open_and_write, args=(path,)) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
