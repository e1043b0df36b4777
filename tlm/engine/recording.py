"""The durability contract between an execution and its record.

``durability = "durable"`` (the default): an execution returns to its caller only once its record
is committed to the store. The wait is awaited on the event loop (never a blocking call) and is
shared: the first execution to finish asks for the commit (after ``COMMIT_DELAY_S`` when
``COMMIT_SIBLINGS`` or more are in flight), every record written by then goes in that one
transaction, and the writer wakes all their executions at once (group commit). When the record
cannot be committed (disk full, a damaged file) the caller gets
:class:`~tlm.errors.RecordNotCommitted`, which carries the result.

``durability = "relaxed"``: an execution returns as soon as its record is queued; it waits only
while more than the store's ``queue_size`` records are queued (back-pressure, still awaited). A
record that later cannot be committed is counted (:attr:`tlm.store.ExecutionStore.lost`), logged,
and saved to the fallback file; one still queued when the process is killed is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import anyio
import anyio.lowlevel

from tlm.engine.config import Durability
from tlm.errors import ExecutionError, RecordNotCommitted
from tlm.store.commit_wait import CommitWaiter, running_loop

if TYPE_CHECKING:
    from tlm.engine.job import Job
    from tlm.engine.result import ExecutionResult
    from tlm.store.base import ExecutionLog as ExecutionStore
    from tlm.store.writer import Ticket

__all__ = ("DURABILITY_MODES", "Recorder", "record_cancelled")

_log = logging.getLogger("tlm.engine")

DURABILITY_MODES: Final = ("durable", "relaxed")
COMMIT_SIBLINGS: Final = 8
"""Executions in flight from which a commit waits ``COMMIT_DELAY_S`` for more records."""
COMMIT_DELAY_S: Final = 0.001


class Recorder:
    """Holds each execution until its record is safe, as ``durability`` says (module doc)."""

    def __init__(self, store: ExecutionStore, durability: Durability = "durable") -> None:
        self._store = store
        self.durable = durability == "durable"
        self._waiters: dict[object, CommitWaiter] = {}
        self._tickets: dict[str, Ticket] = {}
        self._in_flight = 0
        self._leading = False

    def started(self) -> None:
        """Count an execution that started (its record is announced when it ends)."""
        self._in_flight += 1

    def expect(self, execution_id: str) -> None:
        """Announce the record of ``execution_id``; call just before its root span ends."""
        self._in_flight = max(0, self._in_flight - 1)
        self._tickets[execution_id] = self._store.expect(execution_id, awaited=self.durable)

    def discard(self, execution_id: str) -> None:
        """Stop tracking ``execution_id`` (its record is written, nobody waits for it)."""
        ticket = self._tickets.pop(execution_id, None)
        if ticket is not None and ticket.seq is None:
            self._store.forget(ticket)

    async def settle(self, result: ExecutionResult) -> RecordNotCommitted | None:
        """Wait as the contract says; the error to give the caller if the record is not kept."""
        ticket = self._tickets.pop(result.execution_id, None)
        if ticket is None:
            return None
        if ticket.seq is None:  # the record never reached this store (another tracer provider)
            self._store.forget(ticket)
            return None
        if not self.durable:
            room_at = ticket.seq - self._store.queue_size
            if room_at > self._store.processed:
                await self._waiter().wait(room_at)
            return None
        await self._commit_soon()
        await self._waiter().wait(ticket.seq)
        if ticket.error is None:
            return None
        return RecordNotCommitted(
            f"{ticket.error}. The execution itself finished: its result is on this error "
            f"(.result, .output)",
            result=result,
        )

    async def _commit_soon(self) -> None:
        """Have the writer commit the awaited records: at once when this execution runs alone;
        with others in flight, after ``COMMIT_DELAY_S`` so theirs share the transaction (one
        execution leads, the ones finishing meanwhile ride along)."""
        if self._leading:
            return  # the leader's commit takes this record too
        if not self._in_flight:  # alone: nobody could ride along, commit without a loop round
            self._store.commit_now()
            return
        self._leading = True
        try:
            if self._in_flight >= COMMIT_SIBLINGS:
                await anyio.sleep(COMMIT_DELAY_S)
            else:
                await anyio.lowlevel.checkpoint()  # those finishing in this round ride along
        finally:
            self._leading = False
            self._store.commit_now()

    def _waiter(self) -> CommitWaiter:
        """The commit waiter of the running event loop (an engine may outlive a loop)."""
        loop = running_loop()
        waiter = self._waiters.get(loop)
        if waiter is None:
            waiter = self._waiters[loop] = CommitWaiter(self._store)
        return waiter

    def close(self) -> None:
        """Stop listening to the store."""
        for waiter in self._waiters.values():
            waiter.close()
        self._waiters.clear()


def record_cancelled(jobs: Iterable[Job]) -> None:
    """Record every execution in ``jobs`` not finished yet as cancelled (``map`` left early)."""
    from tlm.engine.stages.finish import finish_unawaited

    for job in list(jobs):
        if job.result is not None:
            continue
        try:
            if job.span is None:
                job.runtime.tracing.open(job)
            if job.error is None:
                job.error = ExecutionError("execution cancelled: the map was left early")
            finish_unawaited(job)
        except Exception:  # one execution that cannot be recorded must not stop the others
            _log.exception("cannot record cancelled execution %s", job.execution_id)
