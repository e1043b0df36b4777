"""``tlm db status`` and ``tlm db upgrade``: the schema of TLM's state, for operators.

With ``database = "postgresql://..."`` (or ``TLM_DATABASE_URL``, or ``--database``) they act on
that database; otherwise on the SQLite files in the data directory. Every store also migrates
itself on open (under a lock), so ``upgrade`` is for doing it ahead of a rollout, once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tlm.errors import ConfigurationError, StoreError

if TYPE_CHECKING:
    from tlm.store.migrations import Schema

__all__ = ("COMMANDS", "db")


def _settings(data_dir: Path | None, database: str | None) -> tuple[Path, str | None]:
    from tlm.engine.config import load_config
    from tlm.store.backend import check_database_url

    try:
        config = load_config()
        url = check_database_url(database, "--database") if database else config.database
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    return (data_dir or config.data_dir), url


def _sqlite_version(path: Path) -> int | None:
    if not path.is_file():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _sqlite_files() -> dict[str, int]:
    from tlm.rollout.state import ROLLOUTS_FILE, ROLLOUTS_SCHEMA
    from tlm.store.schema import MIGRATIONS
    from tlm.verify.review_queue import REVIEWS_FILE, SCHEMA_VERSION
    from tlm.workflow.store import DB_NAME, WORKFLOWS_SCHEMA

    return {
        "tlm.db": len(MIGRATIONS),
        REVIEWS_FILE: SCHEMA_VERSION,
        DB_NAME: WORKFLOWS_SCHEMA.version,
        ROLLOUTS_FILE: ROLLOUTS_SCHEMA.version,
    }


def _pg_schemas() -> tuple[Schema, ...]:
    """Every schema TLM keeps in PostgreSQL, in the order they are migrated."""
    from tlm.learn.rankings_pg import PG_RANKINGS_SCHEMA
    from tlm.rollout.state_pg import PG_ROLLOUTS_SCHEMA
    from tlm.store.pg_schema import PG_EXECUTIONS
    from tlm.ui.queries_pg import PG_CONSOLE_SCHEMA
    from tlm.workflow.store_pg import PG_WORKFLOWS_SCHEMA

    return (
        PG_EXECUTIONS,
        PG_WORKFLOWS_SCHEMA,
        PG_ROLLOUTS_SCHEMA,
        PG_RANKINGS_SCHEMA,
        PG_CONSOLE_SCHEMA,
    )


@click.group()
def db() -> None:
    """The schema of TLM's state: SQLite files in the data directory, or PostgreSQL."""


_options = [
    click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The data directory (default: TLM_DATA_DIR, else tlm.toml, else .tlm).",
    ),
    click.option(
        "--database",
        default=None,
        metavar="URL",
        help="A PostgreSQL URL (default: TLM_DATABASE_URL, else database in tlm.toml).",
    ),
]


def _with_options(f: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_options):
        f = option(f)
    return f


@db.command()
@_with_options
def status(data_dir: Path | None, database: str | None) -> None:
    """Show the backend and its schema version (and whether an upgrade is pending)."""
    data_dir, url = _settings(data_dir, database)
    if url is not None:
        from tlm.store.backend import redact_url, require_psycopg

        require_psycopg()
        from tlm.store.pg_base import versions
        from tlm.store.postgres import connect

        try:
            with connect(url) as conn:
                versions_found = versions(conn)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"backend: postgresql {redact_url(url)}")
        for schema in _pg_schemas():
            version = versions_found.get(schema.name, 0)
            click.echo(
                f"{schema.name}: version {version} of {schema.version}"
                + _pending(version, schema.version)
            )
        return
    click.echo(f"backend: sqlite {data_dir}")
    for name, known in _sqlite_files().items():
        found = _sqlite_version(data_dir / name)
        state = "not created yet" if found is None else f"version {found} of {known}"
        click.echo(f"{name}: {state}" + ("" if found is None else _pending(found, known)))


def _pending(version: int, known: int) -> str:
    if version < known:
        return f" ({known - version} migration(s) pending: tlm db upgrade)"
    if version > known:
        return " (newer than this TLM: upgrade TLM)"
    return " (up to date)"


@db.command()
@_with_options
def upgrade(data_dir: Path | None, database: str | None) -> None:
    """Apply every pending migration (under a lock: safe while replicas start)."""
    data_dir, url = _settings(data_dir, database)
    try:
        if url is not None:
            from tlm.store.backend import redact_url, require_psycopg

            require_psycopg()
            from tlm.store.pg_base import migrate
            from tlm.store.postgres import connect

            with connect(url) as conn:
                done = migrate(conn, _pg_schemas(), redact_url(url))
            for name, (before, after) in done.items():
                click.echo(f"{redact_url(url)}: {name} schema version {before} -> {after}")
            return
        from tlm.rollout.state import ROLLOUTS_FILE, RolloutStore
        from tlm.store.sqlite import ExecutionStore, default_db_path
        from tlm.verify.review_queue import ReviewQueue
        from tlm.workflow.store import DB_NAME, WorkflowStore

        versions = {name: _sqlite_version(data_dir / name) or 0 for name in _sqlite_files()}
        ExecutionStore(default_db_path(data_dir)).close()
        ReviewQueue.in_data_dir(data_dir)
        WorkflowStore(data_dir / DB_NAME).list(limit=1)  # migrates on first use
        RolloutStore(data_dir / ROLLOUTS_FILE)
        for name in _sqlite_files():
            click.echo(f"{data_dir / name}: schema version {versions[name]} -> "
                       f"{_sqlite_version(data_dir / name)}")  # fmt: skip
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


COMMANDS = (db,)
