"""The review queue's schemas: its SQLite file (``<data_dir>/reviews.db``) and PostgreSQL.

On PostgreSQL the queue is versioned by its own row (``review queue``) in ``tlm_schema``. Its
table was created by step 2 of the execution log's schema before (:data:`PG_REVIEWS_STEP`, kept
there so an older TLM and the databases it wrote agree on what that step means); both create
it only if missing, so a database from before keeps its reviews and adopts the new row.
"""

from __future__ import annotations

from typing import Final

from tlm.store.migrations import Schema

__all__ = ("REVIEWS_FILE", "REVIEWS_SQLITE", "PG_REVIEWS", "PG_REVIEWS_STEP")

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

PG_REVIEWS_STEP: Final = (
    """CREATE TABLE IF NOT EXISTS reviews (
        id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        task_version TEXT NOT NULL,
        queue TEXT NOT NULL,
        input TEXT NOT NULL,
        output TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        created_at DOUBLE PRECISION NOT NULL,
        action TEXT,
        decided_output TEXT,
        note TEXT,
        reviewer TEXT,
        decided_at DOUBLE PRECISION,
        output_spec TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS reviews_status_queue ON reviews (status, queue, created_at)",
)
"""The reviews table on PostgreSQL (step 1 of :data:`PG_REVIEWS`)."""

PG_REVIEWS: Final = Schema("review queue", (PG_REVIEWS_STEP,))
"""The review queue on PostgreSQL; later changes to its table are steps here."""
