"""Feedback on executions, from people or systems, linked to the execution record."""

from __future__ import annotations

from datetime import datetime

import anyio.to_thread

from tlm.errors import InvalidArgument
from tlm.numbers import check_feedback_score
from tlm.store.base import ExecutionLog
from tlm.telemetry.records import Feedback, FeedbackSource

__all__ = ("record_feedback",)


async def record_feedback(
    store: ExecutionLog,
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
        tlm.errors.InvalidArgument: ``score`` is not a finite number from 0 (wrong) to 1
            (right), or ``correct``, ``note`` or ``source`` is of the wrong kind.
    """
    score = check_feedback_score(score)
    if correct is not None and not isinstance(correct, bool):
        raise InvalidArgument("correct", f"expected true, false or None, not {correct!r}")
    if note is not None and not isinstance(note, str):
        raise InvalidArgument("note", f"expected text, not {type(note).__name__}")
    if source not in ("human", "system"):
        raise InvalidArgument("source", f"expected 'human' or 'system', not {source!r}")

    def add() -> Feedback:
        return store.add_feedback(
            execution_id, score=score, correct=correct, note=note, source=source, at=at
        )

    return await anyio.to_thread.run_sync(add)
