"""Workflow runs in the shared PostgreSQL database: every replica's runs in one place.

The same statements as the SQLite :class:`~tlm.workflow.store.WorkflowStore` (written in the
dialect both accept), on a :class:`~tlm.store.pg_repo.PgRepository` connection; the schema
(:data:`PG_WORKFLOWS_SCHEMA`) is migrated on open under the advisory lock of
:mod:`tlm.store.pg_base`, and reported by ``tlm db status``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from tlm.store.pg_repo import OnPostgres, PgRepository
from tlm.store.workflow_schema import PG_WORKFLOWS_SCHEMA
from tlm.workflow.store import WorkflowStore

__all__ = ("PG_WORKFLOWS_SCHEMA", "PostgresWorkflowStore")

_WRITE_LOCK: Final = 0x746C6D57  # "tlmW": one writer of a run at a time across replicas


class PostgresWorkflowStore(OnPostgres, WorkflowStore):
    """Workflow runs in PostgreSQL; thread-safe.

    Raises:
        StoreError: The database cannot be reached or migrated.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = Path("workflow_runs")  # no file
        self._write_lock = _WRITE_LOCK
        self._db = PgRepository(url, (PG_WORKFLOWS_SCHEMA,), what="the workflow store")
