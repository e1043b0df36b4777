"""Where rollouts live: the backend-neutral interface and the choice of backend.

:class:`Rollouts` is what the router, ``tlm rollout`` and ``tlm evaluate`` use of a rollout store;
:func:`open_rollouts` gives the SQLite file ``<data_dir>/rollouts.db`` (the default) or, with a
PostgreSQL URL (``database`` in ``tlm.toml``, ``TLM_DATABASE_URL``), the shared database — the
same configuration that picks the execution log (:func:`tlm.store.open_store`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from tlm.rollout.records import Decision, EvalItem, EvalRun, Rollout

__all__ = ("Rollouts", "open_rollouts")


@runtime_checkable
class Rollouts(Protocol):
    """Rollouts, their decisions and replay evaluations (SQLite file or PostgreSQL)."""

    def start(
        self,
        task_id: str,
        current_version: str,
        new_version: str,
        share: float,
        policy: Mapping[str, Any],
        *,
        actor: str = "cli",
    ) -> Rollout: ...
    def pin(
        self, task_id: str, version: str, current_version: str, *, actor: str = "cli"
    ) -> None: ...
    def decide(
        self,
        rollout_id: str,
        action: Literal["promote", "rollback", "abort", "hold"],
        reason: str,
        evidence: Mapping[str, Any],
        *,
        actor: str = "auto",
    ) -> bool: ...
    def latest(self, task_id: str) -> Rollout | None: ...
    def all_latest(self) -> dict[str, Rollout]: ...
    def get(self, rollout_id: str) -> Rollout: ...
    def decisions(self, rollout_id: str) -> list[Decision]: ...
    def create_run(
        self,
        task_id: str,
        new_version: str,
        current_version: str,
        settings: Mapping[str, Any],
        items: list[EvalItem],
    ) -> EvalRun: ...
    def run(self, run_id: str) -> EvalRun: ...
    def runs(self, task_id: str | None = None) -> list[EvalRun]: ...
    def items(self, run_id: str, *, pending_only: bool = False) -> list[EvalItem]: ...
    def finish_item(
        self, run_id: str, input_hash: str, outcome: Mapping[str, Any], cost_usd: float
    ) -> None: ...
    def set_run_status(self, run_id: str, status: str) -> None: ...
    def close(self) -> None: ...


def open_rollouts(
    data_dir: str | os.PathLike[str], database: str | None = None, *, clock: Any = None
) -> Rollouts:
    """The rollouts of ``database`` (a PostgreSQL URL) or of ``<data_dir>/rollouts.db``.

    Raises:
        ConfigurationError: ``database`` is not a PostgreSQL URL, or psycopg is missing.
        StoreError: The store cannot be opened or migrated.
    """
    from tlm.store.backend import check_database_url, require_psycopg

    options = {} if clock is None else {"clock": clock}
    if check_database_url(database) is not None:
        assert database is not None
        require_psycopg()
        from tlm.rollout.state_pg import PostgresRolloutStore

        return PostgresRolloutStore(database, **options)
    from tlm.rollout.state import ROLLOUTS_FILE, RolloutStore

    return RolloutStore(Path(data_dir) / ROLLOUTS_FILE, **options)
