"""Versioned schemas on PostgreSQL: one version row per repository, migrated under a lock.

Every repository kept in PostgreSQL (execution log and reviews, result cache, workflow runs...)
declares a :class:`~tlm.store.migrations.Schema`; :func:`migrate` applies the missing steps of
the schemas given in one transaction holding ``pg_advisory_xact_lock``, so replicas starting
together wait for each other instead of racing, and records each schema's version in the
``tlm_schema`` table (``name``, ``version``). A database already up to date is recognised
without taking the lock. The first schema TLM kept there (``executions``) predates the ``name``
column: its row is the one the column's default names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from tlm.store.migrations import Schema, newer_schema

if TYPE_CHECKING:
    import psycopg

__all__ = ("LOCK_KEY", "SCHEMA_TABLE", "migrate", "versions", "version_of")

LOCK_KEY: Final = 0x746C6D00  # "tlm\0": the advisory lock taken while migrating
SCHEMA_TABLE: Final = "tlm_schema"
_FIRST: Final = "executions"
"""The schema whose version row predates the ``name`` column."""

_PREPARE: Final = (
    f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER NOT NULL)",
    f"ALTER TABLE {SCHEMA_TABLE} ADD COLUMN IF NOT EXISTS name TEXT NOT NULL DEFAULT '{_FIRST}'",
    f"CREATE UNIQUE INDEX IF NOT EXISTS {SCHEMA_TABLE}_name ON {SCHEMA_TABLE} (name)",
)


def versions(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The version of every schema recorded in the database (empty: TLM never wrote to it)."""
    exists = conn.execute(f"SELECT to_regclass('{SCHEMA_TABLE}')").fetchone()
    if exists is None or exists[0] is None:
        return {}
    has_name = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = 'name' "
        "AND table_schema = current_schema()",
        (SCHEMA_TABLE,),
    ).fetchone()
    if has_name is None:
        row = conn.execute(f"SELECT version FROM {SCHEMA_TABLE}").fetchone()
        return {} if row is None else {_FIRST: int(row[0])}
    rows = conn.execute(f"SELECT name, version FROM {SCHEMA_TABLE}").fetchall()
    return {str(name): int(version) for name, version in rows}


def version_of(conn: psycopg.Connection[Any], schema: Schema) -> int:
    """The version of ``schema`` in the database (0: not created yet)."""
    return versions(conn).get(schema.name, 0)


def migrate(
    conn: psycopg.Connection[Any], schemas: Sequence[Schema], source: str
) -> dict[str, tuple[int, int]]:
    """Bring every schema in ``schemas`` to its newest version; ``{name: (before, after)}``.

    ``conn`` is in autocommit mode (psycopg's ``autocommit=True``); the migration is one
    transaction under the advisory lock: all of it happens, or none.

    Raises:
        StoreError: The database holds a newer version of a schema than this TLM knows
            (``source`` names the database; nothing was changed).
        psycopg.Error: A statement failed (nothing was changed).
    """
    found = versions(conn)
    for schema in schemas:
        if found.get(schema.name, 0) > schema.version:
            raise newer_schema(source, schema, found[schema.name])
    if all(found.get(s.name, 0) == s.version for s in schemas):
        return {s.name: (s.version, s.version) for s in schemas}
    done: dict[str, tuple[int, int]] = {}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        for statement in _PREPARE:
            conn.execute(statement.encode())
        found = versions(conn)  # again, under the lock: another replica may have migrated
        for schema in schemas:
            before = found.get(schema.name, 0)
            if before > schema.version:
                raise newer_schema(source, schema, before)
            for step in range(before, schema.version):
                for statement in schema.steps[step]:
                    conn.execute(statement.encode())
            if schema.name not in found:
                conn.execute(
                    f"INSERT INTO {SCHEMA_TABLE} (name, version) VALUES (%s, %s)",
                    (schema.name, schema.version),
                )
            elif before != schema.version:
                conn.execute(
                    f"UPDATE {SCHEMA_TABLE} SET version = %s WHERE name = %s",
                    (schema.version, schema.name),
                )
            done[schema.name] = (before, schema.version)
    return done
