"""What both execution stores read and attach the same way: records with their feedback, counts
and feedback entries, over one driver hook (:meth:`StoreReads._rows`).

:class:`~tlm.store.sqlite.ExecutionStore` and :class:`~tlm.store.postgres.PostgresExecutionStore`
differ in how a statement runs (their connection, parameter mark and error handling), not in what
they ask: the statements are built here once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Self

from tlm.store.feedback import insert_feedback, new_feedback, new_feedback_id
from tlm.store.schema import SELECT, feedback_from_row, from_row, query_sql
from tlm.store.writer import RecordWriter
from tlm.telemetry.records import ExecutionRecord, Feedback, FeedbackSource

__all__ = ("StoreReads",)


class StoreReads(RecordWriter):
    """The reading and feedback half of an execution store (a :class:`RecordWriter`)."""

    _mark: str
    """The driver's parameter mark (``?`` or ``%s``)."""
    _reader_lock: threading.Lock

    @property
    def where(self) -> str:
        """The store, for messages."""
        raise NotImplementedError

    def _rows(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Every row of ``sql``; driver errors as :class:`~tlm.errors.StoreError`."""
        raise NotImplementedError

    def _run_statement(self, sql: str, args: Sequence[Any]) -> int:
        """Rows ``sql`` inserted or selected (safe to run twice)."""
        raise NotImplementedError

    def _feedback_for(self, ids: list[str]) -> dict[str, tuple[Feedback, ...]]:
        """The feedback of each of ``ids`` that has some, oldest first."""
        raise NotImplementedError

    def _feedback_rows(self, sql_in: str, args: Sequence[Any]) -> dict[str, list[Feedback]]:
        found: dict[str, list[Feedback]] = {}
        rows = self._rows(
            "SELECT execution_id, source, at, score, correct, note FROM feedback "
            f"WHERE execution_id {sql_in} ORDER BY id",
            args,
        )
        for row in rows:
            found.setdefault(row[0], []).append(feedback_from_row(row[1:]))
        return found

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """The record of ``execution_id`` with its feedback, or ``None``."""
        self.flush()
        with self._reader_lock:
            rows = self._rows(f"{SELECT} WHERE execution_id = {self._mark}", (execution_id,))
            if not rows:
                return None
            return from_row(rows[0], self._feedback_for([execution_id]).get(execution_id, ()))

    def iter_query(
        self,
        *,
        task_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        version: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[ExecutionRecord]:
        """Records matching every given filter, oldest first; ``until`` is exclusive."""
        self.flush()
        sql, args = query_sql(
            SELECT,
            self._mark,
            task_id=task_id,
            since=since,
            until=until,
            version=version,
            limit=limit,
            newest_first=newest_first,
        )
        with self._reader_lock:
            rows = self._rows(sql, args)
            feedback = self._feedback_for([row[0] for row in rows])
        for row in rows:
            yield from_row(row, feedback.get(row[0], ()))

    def query(
        self,
        *,
        task_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        version: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ExecutionRecord]:
        """Like :meth:`iter_query`, as a list."""
        return list(
            self.iter_query(
                task_id=task_id,
                since=since,
                until=until,
                version=version,
                limit=limit,
                newest_first=newest_first,
            )
        )

    def count(self, *, task_id: str | None = None) -> int:
        """How many records are committed (for ``task_id`` when given)."""
        self.flush()
        with self._reader_lock:
            if task_id is None:
                rows = self._rows("SELECT count(*) FROM executions", ())
            else:
                rows = self._rows(
                    f"SELECT count(*) FROM executions WHERE task_id = {self._mark}", (task_id,)
                )
        return int(rows[0][0])

    def add_feedback(
        self,
        execution_id: str,
        *,
        score: float | None = None,
        correct: bool | None = None,
        note: str | None = None,
        source: FeedbackSource = "human",
        at: datetime | None = None,
        feedback_id: str | None = None,
    ) -> Feedback:
        """Attach feedback to a recorded execution and return it (once per ``feedback_id``:
        given again, or retried after a dropped connection, nothing more is written; see
        :func:`tlm.store.feedback.insert_feedback`).

        Raises:
            StoreError: No execution has that id, or the write failed.
            ValueError: ``source`` is not ``"human"`` or ``"system"``, or nothing was given.
            InvalidArgument: ``score`` is not a finite number from 0 to 1.
        """
        feedback = new_feedback(score=score, correct=correct, note=note, source=source, at=at)
        self.flush()
        with self._reader_lock:
            insert_feedback(
                self._run_statement, self._mark, self.where, execution_id, feedback,
                feedback_id or new_feedback_id(),
            )  # fmt: skip
        return feedback

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError
