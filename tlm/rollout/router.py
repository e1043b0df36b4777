"""Which version of a task an unpinned execution gets, and when the canary is judged.

The engine asks :meth:`RolloutRouter.version_for` before each execution that names no version.
Without any rollout the answer is ``None`` (the registry's latest version, as before). While a
canary runs, an input goes to the new version when a stable hash of the rollout id and the
input's canonical JSON falls below the rollout's share, so the same input always gets the same
version; once a rollout has ended, its live version (promoted, rolled back or pinned) is the
answer. The state is read from the shared rollout store at most every ``refresh_s`` seconds (in
a worker thread), so every replica sees a decision within that time.

After executions, :meth:`RolloutRouter.after_execution` judges a running canary at most every
``check_every`` executions or ``check_every_s`` seconds, whichever comes first, from the
execution records of both versions since the rollout started; the decision is a
compare-and-set in the store, so replicas judging at once take it once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from tlm.errors import TLMError
from tlm.rollout.repository import Rollouts, open_rollouts
from tlm.rollout.state import ROLLOUTS_FILE, Rollout
from tlm.similarity.canonical import canonical_json

if TYPE_CHECKING:
    from tlm.rollout.decide import Verdict
    from tlm.store.base import ExecutionLog as ExecutionStore

__all__ = ("RolloutRouter", "bucket_of", "judge")

_log = logging.getLogger(__name__)


def bucket_of(rollout_id: str, input: Any) -> float:
    """A stable number in [0, 1) for ``input`` within one rollout."""
    material = rollout_id + "\x00" + canonical_json(input)
    digest = hashlib.sha256(material.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def judge(rollouts: Rollouts, executions: ExecutionStore, rollout: Rollout) -> Verdict:
    """Judge a running canary from the records of both versions and store the decision.

    A ``hold`` is returned but not stored (it would add a row per check); promotions and
    rollbacks are stored with their evidence, once, whichever replica gets there first.
    """
    from tlm.rollout.decide import CanaryPolicy, arm_stats, decide  # numpy: only when judging

    since = datetime.fromtimestamp(rollout.started_at, UTC)
    current = arm_stats(
        executions.iter_query(task_id=rollout.task_id, version=rollout.current_version, since=since)
    )
    new = arm_stats(
        executions.iter_query(task_id=rollout.task_id, version=rollout.new_version, since=since)
    )
    verdict = decide(current, new, CanaryPolicy.from_dict(rollout.policy))
    if verdict.action != "hold":
        rollouts.decide(rollout.id, verdict.action, verdict.reason, verdict.evidence)
    return verdict


class RolloutRouter:
    """The engine's view of the rollout store (see the module docstring).

    Args:
        data_dir: where ``rollouts.db`` lives; nothing is created until a rollout is started.
        database: a PostgreSQL URL: the rollouts of that database instead (every replica's).
        executions: the execution store the canary is judged from (``None``: never judged here).
        has_version: whether the registry knows ``(task_id, version)``; a live version the
            registry no longer has is ignored (the latest version is used).
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        executions: ExecutionStore | None,
        has_version: Callable[[str, str], bool],
        refresh_s: float = 1.0,
        check_every: int = 20,
        check_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        database: str | None = None,
    ) -> None:
        self.path = Path(data_dir) / ROLLOUTS_FILE
        self.database = database
        self._executions = executions
        self._has_version = has_version
        self.refresh_s = refresh_s
        self.check_every = check_every
        self.check_every_s = check_every_s
        self._clock = clock
        self._store: Rollouts | None = None
        self._rollouts: Mapping[str, Rollout] = {}
        self._read_at = -math.inf
        self._since_check: dict[str, int] = {}
        self._checked_at: dict[str, float] = {}
        self._judging = anyio.Lock()
        self.decisions: list[Verdict] = []
        """Decisions this router took (promotions and rollbacks), for inspection."""

    def _read(self) -> Mapping[str, Rollout]:
        if self._store is None:
            if self.database is None and not self.path.exists():
                return {}
            self._store = open_rollouts(self.path.parent, self.database)
        return self._store.all_latest()

    def close(self) -> None:
        """Release the rollout store's connection (PostgreSQL)."""
        store, self._store = self._store, None
        if store is not None:
            store.close()

    async def refresh(self, *, force: bool = False) -> None:
        """Re-read the rollout state when it is older than ``refresh_s`` (or ``force``)."""
        now = self._clock()
        if force or now - self._read_at >= self.refresh_s:
            self._read_at = now
            try:
                self._rollouts = await anyio.to_thread.run_sync(self._read)
            except TLMError as exc:  # e.g. the database restarting: keep what was read last
                if self._store is None:
                    raise
                _log.warning("cannot re-read the rollouts (%s); keeping the last state", exc)

    async def version_for(self, task_id: str, input: Any) -> str | None:
        """The version ``input`` should run on, or ``None`` for the registry's latest."""
        await self.refresh()
        rollout = self._rollouts.get(task_id)
        if rollout is None:
            return None
        if rollout.state == "running":
            chosen = (
                rollout.new_version
                if bucket_of(rollout.id, input) < rollout.share
                else rollout.current_version
            )
        else:
            chosen = rollout.live_version
        return chosen if self._has_version(task_id, chosen) else None

    async def after_execution(self, task_id: str) -> Verdict | None:
        """Judge the task's running canary when a check is due; the verdict, if one was taken."""
        rollout = self._rollouts.get(task_id)
        if rollout is None or rollout.state != "running" or self._executions is None:
            return None
        count = self._since_check.get(task_id, 0) + 1
        self._since_check[task_id] = count
        now = self._clock()
        last = self._checked_at.get(task_id, -math.inf)  # a new engine judges at once
        due = count >= self.check_every or now - last >= self.check_every_s
        if not due or self._judging.locked():
            return None
        async with self._judging:
            self._since_check[task_id] = 0
            self._checked_at[task_id] = now
            store, executions = self._store, self._executions
            assert store is not None
            try:
                verdict = await anyio.to_thread.run_sync(judge, store, executions, rollout)
            except TLMError as exc:  # never fail the execution that triggered the check
                _log.warning("cannot judge the rollout of %s: %s", task_id, exc)
                return None
            if verdict.action != "hold":
                self.decisions.append(verdict)
                await self.refresh(force=True)
            return verdict
