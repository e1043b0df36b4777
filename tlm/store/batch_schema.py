"""The batch state's schema, in its SQLite file ``<data_dir>/batches.db`` (see
:mod:`tlm.batch.state`)."""

from __future__ import annotations

from typing import Final

from tlm.store.migrations import Schema

__all__ = ("BATCH_FILE", "BATCH_SQLITE")

BATCH_FILE: Final = "batches.db"

BATCH_SQLITE: Final = Schema(
    "batch state",
    (
        (
            """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            task_version TEXT NOT NULL,
            input_path TEXT NOT NULL,
            output_path TEXT NOT NULL,
            options TEXT NOT NULL,
            max_cost REAL,
            status TEXT NOT NULL,
            output_offset INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        )""",
            """CREATE TABLE items (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            line INTEGER NOT NULL,
            execution_id TEXT NOT NULL,
            input TEXT NOT NULL,
            model TEXT,
            request_sha TEXT,
            estimate REAL NOT NULL DEFAULT 0,
            state TEXT NOT NULL,
            submission_id TEXT,
            custom_id TEXT,
            result TEXT,
            resubmits INTEGER NOT NULL DEFAULT 0,
            cost REAL,
            status TEXT,
            PRIMARY KEY (run_id, line)
        )""",
            "CREATE INDEX items_state ON items (run_id, state, line)",
            "CREATE INDEX items_custom ON items (submission_id, custom_id)",
            """CREATE TABLE submissions (
            submission_id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            input_file_id TEXT,
            status TEXT NOT NULL,
            requests INTEGER NOT NULL,
            created_at TEXT NOT NULL
        )""",
        ),
    ),
)
"""Step ``i`` (0-based) takes ``user_version`` from ``i`` to ``i + 1``."""
