"""Choosing the storage backend: SQLite files in the data directory, or one PostgreSQL database.

``database = "postgresql://user@host/db"`` in ``tlm.toml`` (or ``TLM_DATABASE_URL``) puts the
shared state of every process using that project in PostgreSQL; without it each data directory
keeps its own SQLite files (the embedded default). The PostgreSQL driver (psycopg 3) comes with
the ``tlm[postgres]`` extra and is imported only when a PostgreSQL URL is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit, urlunsplit

from tlm.errors import ConfigurationError
from tlm.store.base import ExecutionLog

__all__ = (
    "POSTGRES_SCHEMES",
    "check_database_url",
    "is_postgres",
    "redact_url",
    "open_store",
    "require_psycopg",
)

POSTGRES_SCHEMES: Final = ("postgresql", "postgres")


class _Configured(Protocol):
    """What :func:`open_store` reads of an engine configuration."""

    @property
    def data_dir(self) -> Path: ...
    @property
    def database(self) -> str | None: ...


def is_postgres(url: str | None) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return bool(url) and urlsplit(str(url)).scheme in POSTGRES_SCHEMES


def check_database_url(url: Any, source: str = "database") -> str | None:
    """``url`` if it is empty or a PostgreSQL URL, else a :class:`ConfigurationError`."""
    if url is None or url == "":
        return None
    if not isinstance(url, str) or not is_postgres(url):
        shown = redact_url(url) if isinstance(url, str) else repr(url)
        raise ConfigurationError(
            f"{source}: expected a URL like postgresql://user@host:5432/dbname "
            f"(or nothing for the SQLite files in data_dir), not {shown}"
        )
    return url


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe to log or show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def require_psycopg() -> None:
    """Import psycopg or say how to install it."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "a PostgreSQL database is configured but psycopg is not installed: "
            "pip install 'tlm[postgres]'"
        ) from exc


def open_store(
    where: str | os.PathLike[str] | _Configured, database: str | None = None, **options: Any
) -> ExecutionLog:
    """The execution store: PostgreSQL when ``database`` is a URL, else ``<data_dir>/tlm.db``.

    ``where`` is the data directory, or an :class:`~tlm.engine.config.EngineConfig` (its
    ``data_dir`` and ``database``). ``options`` go to the store's constructor (``queue_size``,
    ``batch_size``, ``linger_s``...). Records PostgreSQL cannot keep are saved to
    ``<data_dir>/unrecorded.jsonl``.
    """
    if isinstance(where, (str, os.PathLike)):
        data_dir: str | os.PathLike[str] = where
    else:
        data_dir, database = where.data_dir, database or where.database
    if check_database_url(database) is not None:
        assert database is not None
        require_psycopg()
        from tlm.store.postgres import PostgresExecutionStore

        return PostgresExecutionStore(database, data_dir=Path(data_dir), **options)
    from tlm.store.sqlite import ExecutionStore, default_db_path

    return ExecutionStore(default_db_path(data_dir), **options)
