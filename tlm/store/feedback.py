"""Feedback on executions, from people or systems, linked to the execution record."""

from __future__ import annotations

from datetime import datetime

import anyio.to_thread

from tlm.numbers import check_feedback_score
from tlm.store.sqlite import ExecutionStore
from tlm.telemetry.records import Feedback, FeedbackSource

__all__ = ("record_feedback",)


async def record_feedback(
    store: ExecutionStore,
    execution_id: str,
    *,
    score: float | None = None,
    correct: bool | None = None,
    note: str | None = None,
    source: FeedbackSource = "human",
    at: datetime | None = None,
) -> Feedback:
    """Attach feedback to execution ``execution_id`` (in a worker thread) and return it.

    Raises:
        tlm.errors.StoreError: No execution has that id, or the write failed.
        ValueError: ``source`` is unknown, or no score, mark or note was given.
        tlm.errors.InvalidArgument: ``score`` is not a finite number from 0 (wrong) to 1 (right).
    """
    score = check_feedback_score(score)

    def add() -> Feedback:
        return store.add_feedback(
            execution_id, score=score, correct=correct, note=note, source=source, at=at
        )

    return await anyio.to_thread.run_sync(add)
