"""TLM's schema on PostgreSQL: versioned migrations applied under an advisory lock.

The execution log's schema (executions and feedback) is one
:class:`~tlm.store.migrations.Schema` applied by :mod:`tlm.store.pg_base`: opening a store
applies the missing migrations in one transaction holding ``pg_advisory_xact_lock``, so replicas
starting together wait for each other instead of racing; ``tlm db upgrade`` does the same on
demand and ``tlm db status`` reports the version. Rows use the
same text and number encodings as the SQLite store (:mod:`tlm.store.schema`), so both backends
read records back the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from tlm.store import pg_base
from tlm.store.migrations import Schema
from tlm.store.pg_base import LOCK_KEY, version_of
from tlm.store.review_schema import PG_REVIEWS_STEP
from tlm.store.schema import COLUMNS

if TYPE_CHECKING:
    import psycopg

__all__ = (
    "PG_MIGRATIONS",
    "PG_EXECUTIONS",
    "LOCK_KEY",
    "PG_UPSERT",
    "REVIEWS_CHANNEL",
    "migrate",
    "schema_version",
    "pg_escape_row",
)

REVIEWS_CHANNEL: Final = "tlm_reviews"
"""The NOTIFY channel a review decision is announced on (payload: the review id)."""

PG_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: executions and their feedback (the columns of tlm.store.schema.COLUMNS)
    (
        """CREATE TABLE executions (
            execution_id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            task_version TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            status TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT,
            models_used TEXT NOT NULL,
            verification_method TEXT,
            passed INTEGER,
            confidence DOUBLE PRECISION,
            verification_details TEXT,
            execution_time DOUBLE PRECISION NOT NULL,
            tokens_used BIGINT NOT NULL,
            cost DOUBLE PRECISION NOT NULL,
            prompt_variant TEXT,
            attempts INTEGER NOT NULL,
            error_type TEXT,
            error_message TEXT,
            cache_hit INTEGER NOT NULL,
            fallback TEXT,
            trace_id TEXT,
            prompt TEXT,
            system_prompt TEXT,
            queue_wait_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
            batch_id TEXT,
            batch_custom_id TEXT,
            session_id TEXT,
            user_id TEXT,
            tags TEXT,
            metadata TEXT,
            selection TEXT,
            spans TEXT
        )""",
        "CREATE INDEX executions_task_time ON executions (task_id, timestamp)",
        "CREATE INDEX executions_time ON executions (timestamp)",
        """CREATE TABLE feedback (
            id BIGSERIAL PRIMARY KEY,
            execution_id TEXT NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
            source TEXT NOT NULL CHECK (source IN ('human', 'system')),
            at TEXT NOT NULL,
            score DOUBLE PRECISION,
            correct INTEGER,
            note TEXT
        )""",
        "CREATE INDEX feedback_execution ON feedback (execution_id)",
    ),
    # 2: the review queue's table, versioned on its own since (tlm.store.review_schema)
    PG_REVIEWS_STEP,
    # 3: a client-made id per feedback entry: a retried insert writes it once
    (
        "ALTER TABLE feedback ADD COLUMN feedback_id TEXT",
        "CREATE UNIQUE INDEX feedback_client_id ON feedback (feedback_id)",
    ),
)
"""Step ``i`` (0-based) takes the schema from version ``i`` to ``i + 1``."""
PG_EXECUTIONS: Final = Schema("executions", PG_MIGRATIONS)
"""The execution log (executions, feedback) on PostgreSQL (the review queue has its own,
:data:`tlm.store.review_schema.PG_REVIEWS`)."""

PG_UPSERT: Final = (
    f"INSERT INTO executions ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    "ON CONFLICT (execution_id) DO UPDATE SET "
    + ", ".join(f"{col} = EXCLUDED.{col}" for col in COLUMNS[1:])
)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The version of the execution log's schema in the database (0: TLM never wrote to it)."""
    return version_of(conn, PG_EXECUTIONS)


def migrate(conn: psycopg.Connection[Any], source: str) -> tuple[int, int]:
    """Bring the execution log's schema to the newest version under the advisory lock;
    ``(before, after)`` (see :func:`tlm.store.pg_base.migrate`).

    Raises:
        StoreError: The database has a newer schema than this TLM knows.
    """
    return pg_base.migrate(conn, (PG_EXECUTIONS,), source)[PG_EXECUTIONS.name]


def _escape(text: str) -> str:
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def pg_escape_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """``row`` with what PostgreSQL text cannot hold (NUL, lone surrogates) as ``\\uXXXX``.

    Inside the JSON columns that is JSON's own escape, so the value reads back unchanged.
    """
    return tuple(_escape(v) if isinstance(v, str) and _UNSTORABLE.search(v) else v for v in row)
