"""The rollout repository's schemas: its SQLite file and its PostgreSQL tables.

Kept under :mod:`tlm.store` so :mod:`tlm.store.registry` (what ``tlm db`` reports) can name them;
the stores are :mod:`tlm.rollout.state` and :mod:`tlm.rollout.state_pg`.
"""

from __future__ import annotations

from typing import Final

from tlm.store.migrations import Schema

__all__ = ("ROLLOUTS_FILE", "ROLLOUTS_SCHEMA", "PG_ROLLOUTS_SCHEMA")

ROLLOUTS_FILE = "rollouts.db"

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE rollouts (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            current_version TEXT NOT NULL,
            new_version TEXT NOT NULL,
            share REAL NOT NULL,
            state TEXT NOT NULL,
            policy TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL
        )""",
        "CREATE INDEX rollouts_task ON rollouts (task_id, started_at)",
        """CREATE TABLE decisions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            rollout_id TEXT NOT NULL REFERENCES rollouts (id),
            at REAL NOT NULL,
            action TEXT NOT NULL,
            reason TEXT NOT NULL,
            evidence TEXT NOT NULL,
            actor TEXT NOT NULL
        )""",
        "CREATE INDEX decisions_rollout ON decisions (rollout_id, id)",
        """CREATE TABLE eval_runs (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            new_version TEXT NOT NULL,
            current_version TEXT NOT NULL,
            created_at REAL NOT NULL,
            status TEXT NOT NULL,
            settings TEXT NOT NULL,
            spent_usd REAL NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE eval_items (
            run_id TEXT NOT NULL REFERENCES eval_runs (id),
            input_hash TEXT NOT NULL,
            position INTEGER NOT NULL,
            input TEXT NOT NULL,
            reference TEXT,
            reference_kind TEXT,
            recorded TEXT,
            status TEXT NOT NULL,
            outcome TEXT,
            PRIMARY KEY (run_id, input_hash)
        )""",
    ),
)
ROLLOUTS_SCHEMA = Schema("rollouts", _MIGRATIONS)
"""The SQLite schema (PostgreSQL's: :data:`PG_ROLLOUTS_SCHEMA`, below)."""

PG_ROLLOUTS_SCHEMA: Final = Schema(
    "rollouts",
    (
        # 1: rollouts, their decisions, replay-evaluation runs and their items
        (
            """CREATE TABLE rollouts (
                id TEXT PRIMARY KEY,
                task_id TEXT NOT NULL,
                current_version TEXT NOT NULL,
                new_version TEXT NOT NULL,
                share DOUBLE PRECISION NOT NULL,
                state TEXT NOT NULL,
                policy TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                ended_at DOUBLE PRECISION,
                seq BIGSERIAL NOT NULL
            )""",
            "CREATE INDEX rollouts_task ON rollouts (task_id, started_at)",
            """CREATE TABLE decisions (
                id BIGSERIAL PRIMARY KEY,
                rollout_id TEXT NOT NULL REFERENCES rollouts (id),
                at DOUBLE PRECISION NOT NULL,
                action TEXT NOT NULL,
                reason TEXT NOT NULL,
                evidence TEXT NOT NULL,
                actor TEXT NOT NULL
            )""",
            "CREATE INDEX decisions_rollout ON decisions (rollout_id, id)",
            """CREATE TABLE eval_runs (
                id TEXT PRIMARY KEY,
                task_id TEXT NOT NULL,
                new_version TEXT NOT NULL,
                current_version TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                status TEXT NOT NULL,
                settings TEXT NOT NULL,
                spent_usd DOUBLE PRECISION NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE eval_items (
                run_id TEXT NOT NULL REFERENCES eval_runs (id),
                input_hash TEXT NOT NULL,
                position INTEGER NOT NULL,
                input TEXT NOT NULL,
                reference TEXT,
                reference_kind TEXT,
                recorded TEXT,
                status TEXT NOT NULL,
                outcome TEXT,
                PRIMARY KEY (run_id, input_hash)
            )""",
        ),
    ),
)
"""``rowid`` (SQLite's insertion order) is the ``seq`` column here."""
