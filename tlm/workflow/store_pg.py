"""Workflow runs in the shared PostgreSQL database: every replica's runs in one place.

The same statements as the SQLite :class:`~tlm.workflow.store.WorkflowStore` (written in the
dialect both accept), on a :class:`~tlm.store.pg_repo.PgRepository` connection; the schema
(:data:`PG_WORKFLOWS_SCHEMA`) is migrated on open under the advisory lock of
:mod:`tlm.store.pg_base`, and reported by ``tlm db status``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from tlm.store.pg_repo import PgRepository
from tlm.store.workflow_schema import PG_WORKFLOWS_SCHEMA
from tlm.workflow.store import WorkflowStore

__all__ = ("PG_WORKFLOWS_SCHEMA", "PostgresWorkflowStore")

_WRITE_LOCK: Final = 0x746C6D57  # "tlmW": one writer of a run at a time across replicas


class PostgresWorkflowStore(WorkflowStore):
    """Workflow runs in PostgreSQL; thread-safe.

    Raises:
        StoreError: The database cannot be reached or migrated.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = Path("workflow_runs")  # no file
        self._db = PgRepository(url, (PG_WORKFLOWS_SCHEMA,), what="the workflow store")

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
        with self._db.statements(lock_key=_WRITE_LOCK) as statements:
            yield statements

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
