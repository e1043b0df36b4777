"""The verifier an engine compiles into a task: the definition's method built by
:func:`tlm.verify.factory.create_verifier`, wrapped in the cold-start/risk policy when one is
configured; and the per-task verification history that policy reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from tlm.definition.model import TaskDefinition, VerificationSpec
from tlm.verify.base import Verifier
from tlm.verify.methods import calls_out, voters_ahead

if TYPE_CHECKING:
    import aiohttp

    from tlm.engine.config import EngineConfig
    from tlm.learn.coldstart import TaskHistory, VerificationPolicy
    from tlm.similarity import MetricRegistry
    from tlm.store.base import ExecutionLog as ExecutionStore
    from tlm.verify.review_queue import ReviewQueue

__all__ = ("VerifierParts", "build_verifier", "TaskHistories", "calls_out")

HISTORY_TTL_S = 30.0
"""How long a task's verification history is reused before it is read again."""


@attrs.frozen
class VerifierParts:
    """What building a verifier draws on, from the engine."""

    metrics: MetricRegistry | None
    functions: Mapping[str, Callable[..., Any]]
    review_queue: ReviewQueue | None
    http_session: Callable[[], aiohttp.ClientSession]
    config: EngineConfig
    cascade_plans: Mapping[str, Any]
    policy: VerificationPolicy | None
    """The cold-start/risk policy (only with an execution store to learn the history from)."""
    history: Callable[[str], Awaitable[TaskHistory]]


def build_verifier(definition: TaskDefinition, parts: VerifierParts) -> tuple[Verifier, int]:
    """The task's verifier, and how many consensus voters to start beside the primary call."""
    from tlm.verify.factory import create_verifier, external_policy

    def build(spec: VerificationSpec) -> Verifier:
        return create_verifier(
            spec,
            metrics=parts.metrics,
            functions=parts.functions,
            review_queue=parts.review_queue,
            session=parts.http_session() if calls_out(spec) else None,
            policy=external_policy(parts.config),
            cascade_plans=parts.cascade_plans,
        )

    verifier = build(definition.verification)
    voters = voters_ahead(definition.verification)
    policy = parts.policy
    if policy is not None:
        from tlm.learn.coldstart import TaskHistory
        from tlm.verify.adaptive import PolicyVerifier

        override = policy.verification_override(definition, TaskHistory())
        verifier = PolicyVerifier(
            verifier, build(override) if override else None, policy, parts.history
        )
        voters = 0  # the policy may skip verification: do not pay for voters up front
    return verifier, voters


class TaskHistories:
    """Each task's verification history, re-read from the store (in a worker thread, off the
    event loop) at most every :data:`HISTORY_TTL_S` seconds."""

    def __init__(
        self, store: Callable[[], ExecutionStore | None], clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._clock = clock
        self._read: dict[str, tuple[float, TaskHistory]] = {}

    async def get(self, task_id: str) -> TaskHistory:
        """The history of ``task_id``."""
        from tlm.learn.coldstart import TaskHistory

        now = self._clock()
        cached = self._read.get(task_id)
        if cached is not None and now - cached[0] < HISTORY_TTL_S:
            return cached[1]
        store = self._store()
        assert store is not None

        def read() -> TaskHistory:
            return TaskHistory.from_records(store.iter_query(task_id=task_id))

        history = await anyio.to_thread.run_sync(read)
        self._read[task_id] = (now, history)
        return history
