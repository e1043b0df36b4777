"""PostgreSQL-only schemas: the shared rankings row and the console's indexes on executions.

Rankings stay a file (``rankings.json``) in the data directory on SQLite, and the console's
SQLite indexes come with the execution log's own migrations; on PostgreSQL both are versioned
schemas reported and applied by ``tlm db`` (:mod:`tlm.store.registry`).
"""

from __future__ import annotations

from typing import Final

from tlm.store.migrations import Schema

__all__ = ("PG_RANKINGS_SCHEMA", "PG_CONSOLE_SCHEMA")

PG_RANKINGS_SCHEMA: Final = Schema(
    "rankings",
    (
        # 1: the current rankings (one row), with a version bumped by every save
        (
            """CREATE TABLE rankings (
                name TEXT PRIMARY KEY,
                version BIGINT NOT NULL,
                generated_at TEXT NOT NULL,
                body TEXT NOT NULL
            )""",
        ),
    ),
)

PG_CONSOLE_SCHEMA: Final = Schema(
    "console",
    (
        # 1: keyset pages newest first, per task too
        (
            "CREATE INDEX IF NOT EXISTS executions_time_id ON executions (timestamp, execution_id)",
            "CREATE INDEX IF NOT EXISTS executions_task_time_id"
            " ON executions (task_id, timestamp, execution_id)",
        ),
    ),
)
