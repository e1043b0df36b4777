"""Feedback on executions, from people or systems, linked to the execution record.

One implementation for every execution store: :func:`new_feedback` checks and builds an entry,
:func:`insert_feedback` writes it with the statement both backends run. Each entry carries a
client-made id (``feedback_id``, unique in the table) and is inserted with ``ON CONFLICT
(feedback_id) DO NOTHING``: a store that retries after its connection dropped mid-insert (the
first try may have committed) writes the entry once, not twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import anyio.to_thread

from tlm.errors import InvalidArgument, StoreError
from tlm.numbers import check_feedback_score
from tlm.store.base import ExecutionLog
from tlm.telemetry.records import Feedback, FeedbackSource, format_timestamp

__all__ = ("record_feedback", "new_feedback", "new_feedback_id", "insert_feedback")

Run = Callable[[str, Sequence[Any]], int]
"""Runs one statement on a store's connection: how many rows it inserted (or selected)."""


def new_feedback_id() -> str:
    """A fresh feedback id (made by the client, so a retried insert is recognised)."""
    return uuid.uuid4().hex


def new_feedback(
    *,
    score: float | None,
    correct: bool | None,
    note: str | None,
    source: FeedbackSource,
    at: datetime | None,
) -> Feedback:
    """The entry to store, checked.

    Raises:
        ValueError: ``source`` is not ``"human"`` or ``"system"``, or nothing was given.
        InvalidArgument: ``score`` is not a finite number from 0 to 1.
    """
    score = check_feedback_score(score)  # finite, 0 (wrong) to 1 (right)
    if source not in ("human", "system"):
        raise ValueError(f"feedback source must be 'human' or 'system', not {source!r}")
    if score is None and correct is None and not note:
        raise ValueError("feedback needs a score, a correct/incorrect mark or a note")
    return Feedback(
        source=source,
        at=format_timestamp(at or datetime.now().astimezone()),
        score=None if score is None else float(score),
        correct=correct,
        note=note,
    )


def insert_feedback(
    run: Run,
    placeholder: str,
    where: str,
    execution_id: str,
    feedback: Feedback,
    feedback_id: str,
) -> None:
    """Attach ``feedback`` to ``execution_id`` once, whatever retries ``run`` makes.

    ``placeholder`` is the driver's parameter mark (``?`` or ``%s``); ``where`` names the store.

    Raises:
        StoreError: No execution has that id.
    """
    p = placeholder
    correct = None if feedback.correct is None else int(feedback.correct)
    inserted = run(
        "INSERT INTO feedback (feedback_id, execution_id, source, at, score, correct, note) "
        f"SELECT {p}, execution_id, {p}, {p}, {p}, {p}, {p} FROM executions "
        f"WHERE execution_id = {p} ON CONFLICT (feedback_id) DO NOTHING",
        (feedback_id, feedback.source, feedback.at, feedback.score, correct, feedback.note,
         execution_id),
    )  # fmt: skip
    if inserted:
        return
    if run(f"SELECT 1 FROM feedback WHERE feedback_id = {p}", (feedback_id,)):
        return  # an earlier try of this very entry was committed
    raise StoreError(f"{where}: no execution with id {execution_id!r}")


async def record_feedback(
    store: ExecutionLog,
    execution_id: str,
    *,
    score: float | None = None,
    correct: bool | None = None,
    note: str | None = None,
    source: FeedbackSource = "human",
    at: datetime | None = None,
    feedback_id: str | None = None,
) -> Feedback:
    """Attach feedback to execution ``execution_id`` (in a worker thread) and return it.

    ``feedback_id`` (default: a new one) makes the call idempotent: given again, nothing more
    is written.

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
            execution_id,
            score=score,
            correct=correct,
            note=note,
            source=source,
            at=at,
            feedback_id=feedback_id,
        )

    return await anyio.to_thread.run_sync(add)
