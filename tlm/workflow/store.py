"""Workflow runs: in a small SQLite file (``<data_dir>/workflows.db``, WAL, versioned schema) by
default, or in the shared PostgreSQL database (:mod:`tlm.workflow.store_pg`) when one is configured.

:class:`WorkflowRuns` is what callers use of either; :func:`open_workflow_store` picks the backend
the way :func:`tlm.store.open_store` does. Each SQLite call opens its own short-lived connection,
so a :class:`WorkflowStore` may be used from any thread (the runner writes from a worker thread).
The schema (:data:`WORKFLOWS_SCHEMA`) is migrated on first use by :mod:`tlm.store.sqlite_base`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import cattrs

from tlm.store import sqlite_base
from tlm.store.workflow_schema import DB_NAME, MIGRATIONS, WORKFLOWS_SCHEMA
from tlm.workflow.record import StepRun, WorkflowRun

__all__ = (
    "WorkflowRuns",
    "WorkflowStore",
    "MIGRATIONS",
    "WORKFLOWS_SCHEMA",
    "DB_NAME",
    "open_workflow_store",
)

_UPSERT: Final = (
    "INSERT INTO workflow_runs (run_id, workflow, status, started_at, latency_s, cost_usd, error,"
    " output) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET"
    " workflow = excluded.workflow, status = excluded.status, started_at = excluded.started_at,"
    " latency_s = excluded.latency_s, cost_usd = excluded.cost_usd, error = excluded.error,"
    " output = excluded.output"
)


@runtime_checkable
class WorkflowRuns(Protocol):
    """Where workflow runs are kept (SQLite file or PostgreSQL)."""

    def write(self, run: WorkflowRun) -> None: ...
    def get(self, run_id: str) -> WorkflowRun: ...
    def list(self, *, workflow: str | None = None, limit: int = 20) -> list[WorkflowRun]: ...
    def close(self) -> None: ...


def open_workflow_store(
    data_dir: str | os.PathLike[str], database: str | None = None
) -> WorkflowRuns:
    """The workflow runs of ``database`` (a PostgreSQL URL) or of ``<data_dir>/workflows.db``.

    Raises:
        ConfigurationError: ``database`` is not a PostgreSQL URL, or psycopg is missing.
        StoreError: The database cannot be reached or migrated.
    """
    from tlm.store.backend import check_database_url, require_psycopg

    if check_database_url(database) is not None:
        assert database is not None
        require_psycopg()
        from tlm.workflow.store_pg import PostgresWorkflowStore

        return PostgresWorkflowStore(database)
    return WorkflowStore(Path(data_dir) / DB_NAME)


_converter = cattrs.Converter()


class WorkflowStore:
    """Reads and writes :class:`~tlm.workflow.record.WorkflowRun` records in a SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._migrated = False
        self._lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        connection = sqlite_base.connect(self.path, what="the workflow store")
        connection.row_factory = sqlite3.Row
        try:
            with self._lock:
                if not self._migrated:
                    sqlite_base.migrate(connection, WORKFLOWS_SCHEMA, str(self.path))
                    self._migrated = True
            yield connection
        except sqlite3.Error as exc:
            raise sqlite_base.failure(self.path, "the workflow store", "use", exc) from exc
        finally:
            connection.close()

    def close(self) -> None:
        """Nothing to release (each call opens and closes its own connection)."""

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._connect() as connection, sqlite_base.immediate(connection):
            yield connection

    def write(self, run: WorkflowRun) -> None:
        """Store ``run`` (replacing an earlier record with the same id)."""
        output = json.dumps(run.output, default=str) if run.output is not None else None
        with self._transaction() as connection:
            connection.execute("DELETE FROM workflow_steps WHERE run_id = ?", (run.run_id,))
            connection.execute(
                _UPSERT,
                (
                    run.run_id,
                    run.workflow,
                    run.status,
                    run.started_at,
                    run.latency_s,
                    run.cost_usd,
                    run.error,
                    output,
                ),
            )
            connection.executemany(
                "INSERT INTO workflow_steps VALUES (?, ?, ?)",
                [
                    (run.run_id, seq, json.dumps(_converter.unstructure(step)))
                    for seq, step in enumerate(run.steps)
                ],
            )

    def get(self, run_id: str) -> WorkflowRun:
        """The run with this id (a unique prefix is enough).

        Raises:
            KeyError: no run, or more than one, matches.
        """
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT * FROM workflow_runs WHERE run_id LIKE ? ORDER BY started_at LIMIT 2",
                (run_id.replace("%", "").replace("_", "") + "%",),
            ).fetchall()
            if len(rows) != 1:
                raise KeyError(f"no workflow run {run_id!r}" if not rows else "ambiguous run id")
            steps = connection.execute(
                "SELECT step FROM workflow_steps WHERE run_id = ? ORDER BY seq",
                (rows[0]["run_id"],),
            ).fetchall()
        return _run(rows[0], [row["step"] for row in steps])

    def list(self, *, workflow: str | None = None, limit: int = 20) -> list[WorkflowRun]:
        """The latest runs, newest first, without their steps."""
        query = "SELECT * FROM workflow_runs"
        params: tuple[Any, ...] = ()
        if workflow is not None:
            query += " WHERE workflow = ?"
            params = (workflow,)
        query += " ORDER BY started_at DESC LIMIT ?"
        with self._connect() as connection:
            rows = connection.execute(query, (*params, limit)).fetchall()
        return [_run(row, []) for row in rows]


def _run(row: Any, steps: list[str]) -> WorkflowRun:
    output = row["output"]
    return WorkflowRun(
        run_id=row["run_id"],
        workflow=row["workflow"],
        status=row["status"],
        started_at=row["started_at"],
        latency_s=row["latency_s"],
        cost_usd=row["cost_usd"],
        error=row["error"],
        output=json.loads(output) if output is not None else None,
        steps=tuple(_converter.structure(json.loads(s), StepRun) for s in steps),
    )
