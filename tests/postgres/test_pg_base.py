"""The shared PostgreSQL migration base: one version row per schema, migrated under a lock."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tlm.errors import StoreError
from tlm.store.migrations import Schema
from tlm.store.pg_base import migrate, version_of, versions
from tlm.store.pg_schema import PG_EXECUTIONS, PG_MIGRATIONS

THINGS = Schema(
    "test things",
    (
        ("CREATE TABLE things (id BIGSERIAL PRIMARY KEY, name TEXT)", "CREATE TABLE log (n INT)"),
        ("ALTER TABLE things ADD COLUMN size INT", "INSERT INTO log VALUES (2)"),
    ),
)


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)


def test_schemas_are_versioned_side_by_side(pg_url: str) -> None:
    with _connect(pg_url) as conn:
        assert versions(conn) == {}
        assert migrate(conn, (PG_EXECUTIONS,), "db") == {"executions": (0, len(PG_MIGRATIONS))}
        first = Schema("test things", THINGS.steps[:1])
        assert migrate(conn, (PG_EXECUTIONS, first), "db")["test things"] == (0, 1)
        assert migrate(conn, (THINGS,), "db") == {"test things": (1, 2)}
        assert migrate(conn, (THINGS,), "db") == {"test things": (2, 2)}
        assert versions(conn) == {"executions": len(PG_MIGRATIONS), "test things": 2}
        assert version_of(conn, THINGS) == 2
        assert conn.execute("SELECT n FROM log").fetchall() == [(2,)]


def test_a_database_from_before_named_versions_keeps_its_version(pg_url: str) -> None:
    with _connect(pg_url) as conn:  # what the previous TLM left: one unnamed version row
        with conn.transaction():
            for statement in PG_EXECUTIONS.steps[0]:
                conn.execute(statement.encode())
            conn.execute("CREATE TABLE tlm_schema (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO tlm_schema (version) VALUES (1)")
        assert versions(conn) == {"executions": 1}
        assert migrate(conn, (PG_EXECUTIONS, THINGS), "db") == {
            "executions": (1, len(PG_MIGRATIONS)),
            "test things": (0, 2),
        }
        assert conn.execute("SELECT to_regclass('reviews')").fetchone() == ("reviews",)


def test_a_failing_step_changes_nothing(pg_url: str) -> None:
    broken = Schema("test things", (*THINGS.steps, ("CREATE TABLE x (a INT)", "NOT SQL")))
    with _connect(pg_url) as conn:
        migrate(conn, (THINGS,), "db")
        with pytest.raises(psycopg.Error):
            migrate(conn, (broken,), "db")
        assert version_of(conn, THINGS) == 2
        assert conn.execute("SELECT to_regclass('x')").fetchone() == (None,)


def test_a_newer_schema_is_refused_naming_it(pg_url: str) -> None:
    with _connect(pg_url) as conn:
        migrate(conn, (THINGS,), "db")
        with pytest.raises(StoreError, match=r"db: schema version 2 is newer .* test things"):
            migrate(conn, (Schema("test things", THINGS.steps[:1]),), "db")


def test_replicas_migrating_together_apply_each_step_once(pg_url: str) -> None:
    counted = Schema("test counted", (("CREATE TABLE log (n INT)", "INSERT INTO log VALUES (1)"),))
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            with _connect(pg_url) as conn:
                start.wait()
                migrate(conn, (PG_EXECUTIONS, counted), "db")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with _connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM log").fetchone() == (1,)
        assert versions(conn) == {"executions": len(PG_MIGRATIONS), "test counted": 1}
