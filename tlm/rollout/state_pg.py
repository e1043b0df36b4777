"""Rollouts and replay evaluations in the shared PostgreSQL database.

The same statements as the SQLite :class:`~tlm.rollout.state.RolloutStore` on a
:class:`~tlm.store.pg_repo.PgRepository` connection. Every write is one transaction holding an
advisory lock (what ``BEGIN IMMEDIATE`` is on the SQLite file), so when replicas on several hosts
judge the same canary at once exactly one decision lands and a task never has two running
rollouts. The schema (:data:`PG_ROLLOUTS_SCHEMA`) is migrated on open and reported by
``tlm db status``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from tlm.rollout.state import RolloutStore
from tlm.store.migrations import Schema
from tlm.store.pg_repo import PgRepository

__all__ = ("PG_ROLLOUTS_SCHEMA", "PostgresRolloutStore")

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
_WRITE_LOCK: Final = 0x746C6D52  # "tlmR": rollout writes, one at a time across replicas


class PostgresRolloutStore(RolloutStore):
    """Rollouts in PostgreSQL; thread-safe.

    Raises:
        StoreError: The database cannot be reached or migrated.
    """

    def __init__(self, url: str, *, clock: Any = time.time) -> None:
        self.url = url
        self.path = Path("rollouts")  # no file
        self._clock = clock
        self._db = PgRepository(
            url, (PG_ROLLOUTS_SCHEMA,), what="the rollout store", renames={"rowid": "seq"}
        )

    @property
    def where(self) -> str:
        """The database, password masked."""
        return self._db.where

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        with self._db.statements() as statements:
            yield statements

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._db.statements(lock_key=_WRITE_LOCK) as statements:
            yield statements

    def _migrate(self) -> None:  # done by PgRepository on open
        pass

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
