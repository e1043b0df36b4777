"""Every repository TLM keeps, with its schema on each backend: what ``tlm db`` reports and
upgrades.

A repository has a SQLite file in the data directory (the embedded default) and, when it can be
shared by replicas, a schema in the PostgreSQL database named by ``database`` /
``TLM_DATABASE_URL``; one without a PostgreSQL schema stays in the data directory whatever the
backend (the batch state belongs to the machine running the batch). A new repository adds one
entry to :data:`REPOSITORIES`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from tlm.errors import StoreError
from tlm.store import pg_base
from tlm.store.batch_schema import BATCH_FILE, BATCH_SQLITE
from tlm.store.cache import CACHE_FILE
from tlm.store.cache_tables import CACHE_PG, CACHE_SQLITE
from tlm.store.integrity import DEFAULT_CHECK_BUDGET_S
from tlm.store.migrations import Schema
from tlm.store.pg_schema import PG_EXECUTIONS
from tlm.store.review_schema import PG_REVIEWS, REVIEWS_FILE, REVIEWS_SQLITE
from tlm.store.rollout_schema import PG_ROLLOUTS_SCHEMA, ROLLOUTS_FILE, ROLLOUTS_SCHEMA
from tlm.store.schema import EXECUTIONS
from tlm.store.shared_schemas import PG_CONSOLE_SCHEMA, PG_RANKINGS_SCHEMA
from tlm.store.sqlite_base import file_version, open_database
from tlm.store.workflow_schema import DB_NAME, PG_WORKFLOWS_SCHEMA, WORKFLOWS_SCHEMA

if TYPE_CHECKING:
    import psycopg

__all__ = (
    "Repository",
    "REPOSITORIES",
    "POSTGRES_ONLY",
    "postgres_schemas",
    "local_repositories",
    "upgrade_sqlite",
    "upgrade_postgres",
    "postgres_versions",
)


@attrs.frozen
class Repository:
    """One kind of TLM state and its schemas."""

    what: str
    """What it holds, for people (``"result cache"``)."""
    file: str
    """Its SQLite file in the data directory."""
    sqlite: Schema
    postgres: Schema | None
    """Its schema on PostgreSQL (``None``: kept in the data directory on every backend)."""

    def sqlite_version(self, data_dir: str | os.PathLike[str]) -> int | None:
        """The version of its file in ``data_dir`` (``None``: not created yet)."""
        return file_version(Path(data_dir) / self.file, f"the {self.what}")


REPOSITORIES: Final = (
    Repository("executions and feedback", "tlm.db", EXECUTIONS, PG_EXECUTIONS),
    Repository("result cache", CACHE_FILE, CACHE_SQLITE, CACHE_PG),
    Repository("review queue", REVIEWS_FILE, REVIEWS_SQLITE, PG_REVIEWS),
    Repository("batch state", BATCH_FILE, BATCH_SQLITE, None),
    Repository("workflow runs", DB_NAME, WORKFLOWS_SCHEMA, PG_WORKFLOWS_SCHEMA),
    Repository("rollouts", ROLLOUTS_FILE, ROLLOUTS_SCHEMA, PG_ROLLOUTS_SCHEMA),
)

POSTGRES_ONLY: Final = (PG_RANKINGS_SCHEMA, PG_CONSOLE_SCHEMA)
"""Schemas with no SQLite file of their own: the shared rankings row (``rankings.json`` in the
data directory otherwise) and the console's indexes on the executions table (on SQLite they come
with the execution log's migrations)."""


def postgres_schemas() -> tuple[Schema, ...]:
    """The PostgreSQL schemas of every repository, each once, in order."""
    found: dict[str, Schema] = {}
    for repository in REPOSITORIES:
        if repository.postgres is not None:
            found.setdefault(repository.postgres.name, repository.postgres)
    for schema in POSTGRES_ONLY:
        found.setdefault(schema.name, schema)
    return tuple(found.values())


def local_repositories(on_postgres: bool) -> Iterator[Repository]:
    """The repositories kept in SQLite files in the data directory on this backend."""
    return (r for r in REPOSITORIES if not on_postgres or r.postgres is None)


def upgrade_sqlite(repository: Repository, data_dir: str | os.PathLike[str]) -> tuple[int, int]:
    """Create or migrate ``repository``'s file in ``data_dir``; ``(before, after)``.

    Raises:
        StoreCorrupted: The file is damaged (checked within the execution store's budget).
        StoreError: It cannot be opened or migrated, or is newer than this TLM.
    """
    path = Path(data_dir) / repository.file
    before = file_version(path, f"the {repository.what}") or 0
    open_database(
        path,
        repository.sqlite,
        what=f"the {repository.what}",
        check_budget_s=DEFAULT_CHECK_BUDGET_S,
    ).close()
    return before, repository.sqlite.version


def postgres_versions(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The version of each PostgreSQL schema in the database (0: not created yet)."""
    found = pg_base.versions(conn)
    return {schema.name: found.get(schema.name, 0) for schema in postgres_schemas()}


def upgrade_postgres(conn: psycopg.Connection[Any], source: str) -> dict[str, tuple[int, int]]:
    """Migrate every PostgreSQL schema (one transaction, under the advisory lock).

    Raises:
        StoreError: The database refused a migration (nothing was changed) or is newer.
    """
    import psycopg

    try:
        return pg_base.migrate(conn, postgres_schemas(), source)
    except psycopg.Error as exc:
        raise StoreError(f"{source}: migration failed, nothing was changed: {exc}") from exc
