"""The review queue's schema in its SQLite file (``<data_dir>/reviews.db``).

On PostgreSQL the reviews table is part of the execution log's schema
(:data:`tlm.store.pg_schema.PG_EXECUTIONS`, step 2).
"""

from __future__ import annotations

from typing import Final

from tlm.store.migrations import Schema

__all__ = ("REVIEWS_FILE", "REVIEWS_SQLITE")

REVIEWS_FILE: Final = "reviews.db"

REVIEWS_SQLITE: Final = Schema(
    "review queue",
    (
        # 1: the reviews
        (
            """CREATE TABLE reviews (
                id TEXT PRIMARY KEY,
                execution_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                task_version TEXT NOT NULL,
                queue TEXT NOT NULL,
                input TEXT NOT NULL,
                output TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending',
                created_at REAL NOT NULL,
                action TEXT,
                decided_output TEXT,
                note TEXT,
                reviewer TEXT,
                decided_at REAL
            )""",
            "CREATE INDEX reviews_status_queue ON reviews (status, queue, created_at)",
        ),
        # 2: what an edited output must satisfy, kept with the review
        ("ALTER TABLE reviews ADD COLUMN output_spec TEXT",),
    ),
)
