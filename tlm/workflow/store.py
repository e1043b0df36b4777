"""Workflow runs in a small SQLite file (``<data_dir>/workflows.db``, WAL, versioned schema).

Each call opens its own short-lived connection, so a :class:`WorkflowStore` may be used from any
thread (the runner writes from a worker thread). The schema version is ``PRAGMA user_version``;
:data:`MIGRATIONS` are applied in order on first use.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import cattrs

from tlm.errors import StoreError
from tlm.workflow.record import StepRun, WorkflowRun

__all__ = ("WorkflowStore", "MIGRATIONS", "DB_NAME")

DB_NAME: Final = "workflows.db"

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: runs and their steps
    (
        """CREATE TABLE workflow_runs (
            run_id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            latency_s REAL NOT NULL,
            cost_usd REAL NOT NULL,
            error TEXT,
            output TEXT
        )""",
        "CREATE INDEX workflow_runs_by_time ON workflow_runs (started_at)",
        """CREATE TABLE workflow_steps (
            run_id TEXT NOT NULL REFERENCES workflow_runs (run_id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            step TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
    ),
)

_converter = cattrs.Converter()


class WorkflowStore:
    """Reads and writes :class:`~tlm.workflow.record.WorkflowRun` records."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._migrated = False
        self._lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open the workflow store: {exc}") from exc
        try:
            with self._lock:
                if not self._migrated:
                    self._migrate(connection)
                    self._migrated = True
            yield connection
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        finally:
            connection.close()

    def _migrate(self, connection: sqlite3.Connection) -> None:
        connection.execute("PRAGMA journal_mode=WAL")
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this TLM "
                f"({len(MIGRATIONS)}); upgrade TLM"
            )
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            with connection:
                for statement in statements:
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")

    def write(self, run: WorkflowRun) -> None:
        """Store ``run`` (replacing an earlier record with the same id)."""
        output = json.dumps(run.output, default=str) if run.output is not None else None
        with self._connect() as connection, connection:
            connection.execute("DELETE FROM workflow_steps WHERE run_id = ?", (run.run_id,))
            connection.execute(
                "INSERT OR REPLACE INTO workflow_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
                "SELECT step FROM workflow_steps WHERE run_id = ? ORDER BY seq", (rows[0][0],)
            ).fetchall()
        return _run(rows[0], [row[0] for row in steps])

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


def _run(row: tuple[Any, ...], steps: list[str]) -> WorkflowRun:
    run_id, workflow, status, started_at, latency_s, cost_usd, error, output = row
    return WorkflowRun(
        run_id=run_id,
        workflow=workflow,
        status=status,
        started_at=started_at,
        latency_s=latency_s,
        cost_usd=cost_usd,
        error=error,
        output=json.loads(output) if output is not None else None,
        steps=tuple(_converter.structure(json.loads(s), StepRun) for s in steps),
    )
