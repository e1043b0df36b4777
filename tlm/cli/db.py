"""``tlm db status`` and ``tlm db upgrade``: the schema of TLM's state, for operators.

Every repository of :data:`tlm.store.registry.REPOSITORIES` (execution log and feedback, result
cache, review queue, batch state...). With ``database = "postgresql://..."`` (or
``TLM_DATABASE_URL``, or ``--database``) they act on that database (and on the files of the
repositories that stay in the data directory); otherwise on the SQLite files in the data
directory. Every store also migrates itself on open (under a lock), so ``upgrade`` is for doing
it ahead of a rollout, once.
"""

from __future__ import annotations

from pathlib import Path

import click

from tlm.errors import ConfigurationError, StoreError

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
    """Show the backend and each repository's schema version (and pending upgrades)."""
    from tlm.store.registry import local_repositories, postgres_schemas, postgres_versions

    data_dir, url = _settings(data_dir, database)
    if url is not None:
        from tlm.store.backend import redact_url, require_psycopg

        require_psycopg()
        from tlm.store.postgres import connect

        try:
            with connect(url) as conn:
                found = postgres_versions(conn)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"backend: postgresql {redact_url(url)}")
        for schema in postgres_schemas():
            version = found[schema.name]
            click.echo(
                f"{schema.name}: version {version} of {schema.version}"
                + _pending(version, schema.version)
            )
        click.echo(f"kept in the data directory {data_dir}:")
    else:
        click.echo(f"backend: sqlite {data_dir}")
    failed = False
    for repository in local_repositories(url is not None):
        known = repository.sqlite.version
        try:
            found_version = repository.sqlite_version(data_dir)
        except StoreError as exc:
            click.echo(f"{repository.file} ({repository.what}): {exc}")
            failed = True
            continue
        state = (
            "not created yet"
            if found_version is None
            else f"version {found_version} of {known}" + _pending(found_version, known)
        )
        click.echo(f"{repository.file} ({repository.what}): {state}")
    if failed:
        raise SystemExit(1)


def _pending(version: int, known: int) -> str:
    if version < known:
        return f" ({known - version} migration(s) pending: tlm db upgrade)"
    if version > known:
        return " (newer than this TLM: upgrade TLM)"
    return " (up to date)"


@db.command()
@_with_options
def upgrade(data_dir: Path | None, database: str | None) -> None:
    """Apply every pending migration of every repository (under a lock: safe while replicas
    start)."""
    from tlm.store.registry import local_repositories, upgrade_postgres, upgrade_sqlite

    data_dir, url = _settings(data_dir, database)
    try:
        if url is not None:
            from tlm.store.backend import redact_url, require_psycopg

            require_psycopg()
            from tlm.store.postgres import connect

            with connect(url) as conn:
                done = upgrade_postgres(conn, redact_url(url))
            for name, (before, after) in done.items():
                click.echo(f"{redact_url(url)} {name}: schema version {before} -> {after}")
        for repository in local_repositories(url is not None):
            before, after = upgrade_sqlite(repository, data_dir)
            click.echo(f"{data_dir / repository.file}: schema version {before} -> {after}")
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


COMMANDS = (db,)
