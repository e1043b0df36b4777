"""The execution store's backend-neutral interface (the seam the backends plug into).

What the engine, the telemetry processor, the CLI, learning, the console and rollouts use of an
execution store, whatever holds the records: :class:`~tlm.store.sqlite.ExecutionStore` (one
SQLite file, the embedded default) or :class:`~tlm.store.postgres.PostgresExecutionStore` (one
PostgreSQL database shared by many processes and hosts). Both keep the durability contract of
:mod:`tlm.store.writer`: a bounded buffer, one writer thread committing in batches, tickets for
callers that wait for their record, and ``unrecorded.jsonl`` for what cannot be kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tlm.telemetry.records import ExecutionRecord, Feedback, FeedbackSource

if TYPE_CHECKING:
    from tlm.store.writer import Ticket

__all__ = ("ExecutionLog",)


@runtime_checkable
class ExecutionLog(Protocol):
    """An execution store: records written once by execution id, read back with their feedback."""

    unrecorded_path: Path
    """Where records the database could not take are appended (JSON lines)."""

    # writing (see tlm.store.writer)
    def expect(self, execution_id: str, *, awaited: bool = True) -> Ticket: ...
    def forget(self, ticket: Ticket) -> None: ...
    def write(self, record: ExecutionRecord, /) -> None: ...
    def commit_now(self) -> None: ...
    def flush(self, timeout: float | None = None) -> bool: ...
    def add_listener(self, listener: Callable[[int], None]) -> None: ...
    def remove_listener(self, listener: Callable[[int], None]) -> None: ...

    @property
    def pending(self) -> int: ...
    @property
    def processed(self) -> int: ...
    @property
    def queue_size(self) -> int: ...
    @property
    def lost(self) -> int: ...

    # reading
    def get(self, execution_id: str) -> ExecutionRecord | None: ...
    def iter_query(
        self,
        *,
        task_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        version: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[ExecutionRecord]: ...
    def query(
        self,
        *,
        task_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        version: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ExecutionRecord]: ...
    def count(self, *, task_id: str | None = None) -> int: ...

    # feedback and lifecycle
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
    ) -> Feedback: ...
    def close(self) -> None: ...
