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
from pathlib import Path
from typing import Any, Final

from tlm.rollout.state import RolloutStore
from tlm.store.pg_repo import OnPostgres, PgRepository
from tlm.store.rollout_schema import PG_ROLLOUTS_SCHEMA

__all__ = ("PG_ROLLOUTS_SCHEMA", "PostgresRolloutStore")

_WRITE_LOCK: Final = 0x746C6D52  # "tlmR": rollout writes, one at a time across replicas


class PostgresRolloutStore(OnPostgres, RolloutStore):
    """Rollouts in PostgreSQL; thread-safe.

    Raises:
        StoreError: The database cannot be reached or migrated.
    """

    def __init__(self, url: str, *, clock: Any = time.time) -> None:
        self.url = url
        self.path = Path("rollouts")  # no file
        self._clock = clock
        self._write_lock = _WRITE_LOCK
        self._db = PgRepository(
            url, (PG_ROLLOUTS_SCHEMA,), what="the rollout store", renames={"rowid": "seq"}
        )

    def _migrate(self) -> None:  # done by PgRepository on open
        pass
