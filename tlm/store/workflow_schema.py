"""The workflow-run repository's schemas: its SQLite file and its PostgreSQL tables.

Kept under :mod:`tlm.store` so :mod:`tlm.store.registry` (what ``tlm db`` reports) can name them;
the stores are :mod:`tlm.workflow.store` and :mod:`tlm.workflow.store_pg`.
"""

from __future__ import annotations

from typing import Final

from tlm.store.migrations import Schema

__all__ = ("DB_NAME", "MIGRATIONS", "WORKFLOWS_SCHEMA", "PG_WORKFLOWS_SCHEMA")

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
WORKFLOWS_SCHEMA: Final = Schema("workflow runs", MIGRATIONS)
"""The SQLite schema (the PostgreSQL one is :data:`tlm.workflow.store_pg.PG_WORKFLOWS_SCHEMA`)."""

PG_WORKFLOWS_SCHEMA: Final = Schema(
    "workflow runs",
    (
        # 1: runs and their steps
        (
            """CREATE TABLE workflow_runs (
                run_id TEXT PRIMARY KEY,
                workflow TEXT NOT NULL,
                status TEXT NOT NULL,
                started_at TEXT NOT NULL,
                latency_s DOUBLE PRECISION NOT NULL,
                cost_usd DOUBLE PRECISION NOT NULL,
                error TEXT,
                output TEXT
            )""",
            "CREATE INDEX workflow_runs_by_time ON workflow_runs (started_at)",
            "CREATE INDEX workflow_runs_by_workflow ON workflow_runs (workflow, started_at)",
            """CREATE TABLE workflow_steps (
                run_id TEXT NOT NULL REFERENCES workflow_runs (run_id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                step TEXT NOT NULL,
                PRIMARY KEY (run_id, seq)
            )""",
        ),
    ),
)
