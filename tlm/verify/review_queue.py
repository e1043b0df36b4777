"""The persistent human review queue: one SQLite file (``<data_dir>/reviews.db``, WAL).

Any process may enqueue, list and decide reviews; a decision is one atomic ``UPDATE`` that only
succeeds while the review is pending, so two reviewers cannot both decide. :meth:`ReviewQueue.wait`
polls the file, so a decision made by another process (the ``tlm review`` CLI) or after a restart
is seen. The file is opened and its schema (:data:`tlm.store.review_schema.REVIEWS_SQLITE`)
migrated by :mod:`tlm.store.sqlite_base`, like every TLM file.

A review is named by its full id or by a prefix of at least :data:`MIN_ID_PREFIX` characters
(like a git short hash) that matches exactly one review; anything shorter, or a prefix shared by
several reviews, is refused with :class:`AmbiguousReviewId`. Inputs and outputs are stored with
the configured redacted fields masked (``redact``), and an edited output is checked by
``output_check`` (the task's output schema and rules) before it is accepted.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio
import attrs

from tlm.errors import OutputInvalid, Problem, StoreError
from tlm.store.review_schema import REVIEWS_FILE, REVIEWS_SQLITE
from tlm.store.sqlite_base import connect, open_database
from tlm.telemetry.redact import Redaction

__all__ = (
    "REVIEWS_FILE",
    "SCHEMA_VERSION",
    "MIN_ID_PREFIX",
    "ReviewStatus",
    "Action",
    "Decision",
    "Review",
    "ReviewNotFound",
    "ReviewAlreadyDecided",
    "AmbiguousReviewId",
    "DecisionHook",
    "OutputCheck",
    "FeedbackSink",
    "feedback_hook",
    "ReviewQueue",
    "open_review_queue",
)

"""The queue's file name inside the data directory."""

SCHEMA_VERSION = REVIEWS_SQLITE.version
_WHAT = "the review queue"
MIN_ID_PREFIX = 8
"""The fewest characters of a review id that may name it (ids are 16 hex digits)."""

ReviewStatus = Literal["pending", "approved", "rejected", "edited"]
Action = Literal["approve", "reject", "edit"]

_STATUS_OF: Mapping[str, ReviewStatus] = {
    "approve": "approved",
    "reject": "rejected",
    "edit": "edited",
}


class ReviewNotFound(StoreError, KeyError):
    """No review has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "review not found"


class ReviewAlreadyDecided(StoreError):
    """The review was already approved, rejected or edited."""


class AmbiguousReviewId(StoreError, ValueError):
    """The id given is shorter than :data:`MIN_ID_PREFIX` or matches several reviews."""


@attrs.frozen
class Decision:
    """A reviewer's decision on one review."""

    action: Action
    output: Any
    """The output the decision stands behind: the edited output for ``edit``, else the original."""
    decided_at: float
    """Seconds since the epoch."""
    note: str | None = None
    reviewer: str | None = None

    @property
    def passed(self) -> bool:
        """Whether the output was accepted (approved or edited)."""
        return self.action != "reject"


@attrs.frozen
class Review:
    """One execution awaiting (or having received) a human decision."""

    id: str
    execution_id: str
    task_id: str
    task_version: str
    queue: str
    input: Any
    output: Any
    status: ReviewStatus
    created_at: float
    decision: Decision | None = None
    output_spec: Mapping[str, Any] | None = None
    """The task's output ``{"schema": ..., "validations": [...]}`` when it was queued: what an
    edited output must satisfy, even where the definition cannot be found."""


DecisionHook = Callable[[Review, Decision], None]
"""Called in the deciding process after a decision is stored (e.g. to record feedback)."""

OutputCheck = Callable[[Review, Any], Sequence[Problem]]
"""Validates an edited output for a review (its task's output schema and rules); returns the
problems found, empty when the output is acceptable."""


class FeedbackSink(Protocol):
    """Where feedback on executions goes (the execution store)."""

    def add_feedback(
        self,
        execution_id: str,
        *,
        correct: bool | None = None,
        note: str | None = None,
        source: Literal["human", "system"] = "human",
    ) -> Any: ...


def feedback_hook(sink: FeedbackSink) -> DecisionHook:
    """A decision hook recording each decision as human feedback on its execution."""

    def record(review: Review, decision: Decision) -> None:
        note = f"review {decision.action}" + (f": {decision.note}" if decision.note else "")
        sink.add_feedback(review.execution_id, correct=decision.passed, note=note, source="human")

    return record


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _row_to_review(row: sqlite3.Row) -> Review:
    output = json.loads(row["output"])
    decision = None
    if row["action"] is not None:
        decided = row["decided_output"]
        decision = Decision(
            action=row["action"],
            output=json.loads(decided) if decided is not None else output,
            decided_at=row["decided_at"],
            note=row["note"],
            reviewer=row["reviewer"],
        )
    return Review(
        id=row["id"],
        execution_id=row["execution_id"],
        task_id=row["task_id"],
        task_version=row["task_version"],
        queue=row["queue"],
        input=json.loads(row["input"]),
        output=output,
        status=row["status"],
        created_at=row["created_at"],
        decision=decision,
        output_spec=json.loads(row["output_spec"]) if row["output_spec"] else None,
    )


class ReviewQueue:
    """The review queue in one SQLite file; safe to share between processes.

    Args:
        path: the database file (its directory is created); see :meth:`in_data_dir`.
        on_decision: called after each decision this object stores.
        poll_interval_s: how often :meth:`wait` looks for a decision.
        clock: seconds since the epoch (injectable for tests).
        redact: field names masked in the stored input and output (their values are masked
            wherever else they appear in them too).
        output_check: validates an edited output before :meth:`edit` stores it.

    Raises:
        StoreError: the file cannot be opened, or was written by a newer TLM.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        on_decision: DecisionHook | None = None,
        poll_interval_s: float = 0.5,
        clock: Callable[[], float] = time.time,
        redact: Collection[str] = (),
        output_check: OutputCheck | None = None,
    ) -> None:
        self.path = Path(path)
        self.on_decision = on_decision
        self.redaction = Redaction(fields=frozenset(redact))
        self.output_check = output_check
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        open_database(
            self.path, REVIEWS_SQLITE, what=_WHAT, busy_timeout_s=10.0, foreign_keys=False
        ).close()

    @property
    def where(self) -> str:
        """The database, as messages name it."""
        return str(self.path)

    @classmethod
    def in_data_dir(cls, data_dir: str | Path, **kwargs: Any) -> ReviewQueue:
        """The queue at ``<data_dir>/reviews.db``."""
        return cls(Path(data_dir) / REVIEWS_FILE, **kwargs)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = connect(self.path, busy_timeout_s=10.0, foreign_keys=False, what=_WHAT)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"review queue {self.path}: {exc}") from exc
        finally:
            conn.close()

    def enqueue(
        self,
        execution_id: str,
        task_id: str,
        task_version: str,
        input: Any,
        output: Any,
        queue: str = "default",
        *,
        output_spec: Mapping[str, Any] | None = None,
    ) -> str:
        """Add a pending review and return its id (redacted fields masked in what is stored).

        ``output_spec`` (``{"schema": ..., "validations": [...]}``) is what an edited output must
        satisfy; keep it with the review so any process can check an edit.
        """
        if self.redaction.fields:
            scope = self.redaction.for_input(input)
            input, output = scope.value(input), scope.value(output)
        review_id = uuid.uuid4().hex[:16]
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO reviews (id, execution_id, task_id, task_version, queue, input,"
                " output, created_at, output_spec) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    review_id,
                    execution_id,
                    task_id,
                    task_version,
                    queue,
                    _dump(input),
                    _dump(output),
                    self._clock(),
                    None if output_spec is None else _dump(output_spec),
                ),
            )
        return review_id

    def list(
        self,
        status: ReviewStatus | None = "pending",
        queue: str | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Review]:
        """Reviews oldest first (``newest_first``: newest first); ``status=None`` lists every
        status, ``queue=None`` every queue; at most ``limit`` of them after skipping ``offset``.

        Raises:
            ValueError: ``limit`` or ``offset`` is negative.
        """
        if (limit is not None and limit < 0) or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit} and {offset}")
        clauses: list[str] = []
        args: list[Any] = []
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if queue is not None:
            clauses.append("queue = ?")
            args.append(queue)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT * FROM reviews{where} ORDER BY created_at {order}, rowid {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        if offset:
            sql += " OFFSET ?" if limit is not None else " LIMIT -1 OFFSET ?"
            args.append(offset)
        with self._connect() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [_row_to_review(row) for row in rows]

    def get(self, review_id: str) -> Review:
        """The review with this id, or with this id prefix of at least :data:`MIN_ID_PREFIX`
        characters matching no other review.

        Raises:
            AmbiguousReviewId: the prefix is too short, or several reviews start with it.
            ReviewNotFound: no review matches.
        """
        with self._connect() as conn:
            exact = conn.execute("SELECT * FROM reviews WHERE id = ?", (review_id,)).fetchone()
            if exact is not None:
                return _row_to_review(exact)
            if len(review_id) < MIN_ID_PREFIX:
                raise AmbiguousReviewId(
                    f"review id {review_id!r} is too short: give the full id or at least "
                    f"{MIN_ID_PREFIX} of its characters (see `tlm review list`)"
                )
            rows = conn.execute(
                "SELECT * FROM reviews WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 3",
                (_like_prefix(review_id),),
            ).fetchall()
        if not rows:
            raise ReviewNotFound(f"no review with id {review_id!r} in {self.where}")
        if len(rows) > 1:
            shown = ", ".join(row["id"] for row in rows[:2]) + (", ..." if len(rows) > 2 else "")
            raise AmbiguousReviewId(
                f"review id {review_id!r} is ambiguous: it matches more than one review "
                f"({shown}); give more characters"
            )
        return _row_to_review(rows[0])

    def approve(
        self, review_id: str, note: str | None = None, reviewer: str | None = None
    ) -> Decision:
        """Accept the output as it is."""
        return self._decide(review_id, "approve", None, note, reviewer)

    def reject(self, review_id: str, *, note: str, reviewer: str | None = None) -> Decision:
        """Reject the output; ``note`` says why."""
        return self._decide(review_id, "reject", None, note, reviewer)

    def edit(
        self,
        review_id: str,
        new_output: Any,
        note: str | None = None,
        reviewer: str | None = None,
    ) -> Decision:
        """Accept a corrected output in place of the model's.

        Raises:
            OutputInvalid: ``output_check`` found problems (each located by JSON path); nothing
                is stored.
        """
        if self.output_check is not None:
            review = self.get(review_id)
            problems = self.output_check(review, new_output)
            if problems:
                raise OutputInvalid(review.task_id, problems)
        return self._decide(review_id, "edit", _dump(new_output), note, reviewer)

    def _decide(
        self,
        review_id: str,
        action: Action,
        decided_output: str | None,
        note: str | None,
        reviewer: str | None,
    ) -> Decision:
        review = self.get(review_id)
        with self._connect() as conn:
            updated = conn.execute(
                "UPDATE reviews SET status = ?, action = ?, decided_output = ?, note = ?,"
                " reviewer = ?, decided_at = ? WHERE id = ? AND status = 'pending'",
                (
                    _STATUS_OF[action],
                    action,
                    decided_output,
                    note,
                    reviewer,
                    self._clock(),
                    review.id,
                ),
            ).rowcount
        decided = self.get(review.id)
        if not updated:
            raise ReviewAlreadyDecided(f"review {review.id} is already {decided.status}")
        assert decided.decision is not None
        if self.on_decision is not None:
            self.on_decision(decided, decided.decision)
        return decided.decision

    def decision(self, review_id: str) -> Decision | None:
        """The decision on this review, or ``None`` while it is pending."""
        return self.get(review_id).decision

    async def wait(self, review_id: str, timeout_s: float | None = None) -> Decision | None:
        """Wait for a decision (from any process); ``None`` if ``timeout_s`` passes first.

        Polls the file every ``poll_interval_s``; any number of waiters may wait concurrently.
        """
        deadline = math.inf if timeout_s is None else timeout_s
        with anyio.move_on_after(deadline):
            while True:
                # in a worker thread: a locked database must not stall the event loop
                decision = await anyio.to_thread.run_sync(self.decision, review_id)
                if decision is not None:
                    return decision
                await anyio.sleep(self.poll_interval_s)
        return self.decision(review_id)


def open_review_queue(
    data_dir: str | Path, database: str | None = None, **kwargs: Any
) -> ReviewQueue:
    """The queue in PostgreSQL when ``database`` is a URL (waits wake on NOTIFY), else the
    SQLite file ``<data_dir>/reviews.db``; ``kwargs`` as for :class:`ReviewQueue`."""
    if database:
        from tlm.verify.review_queue_pg import PostgresReviewQueue

        return PostgresReviewQueue(database, **kwargs)
    return ReviewQueue.in_data_dir(data_dir, **kwargs)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
