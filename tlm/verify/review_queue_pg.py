"""The review queue in PostgreSQL: one queue for every replica, decisions announced by NOTIFY.

The same queue as :class:`~tlm.verify.review_queue.ReviewQueue` (same statements, same rules:
a decision is one ``UPDATE ... WHERE status = 'pending'``), on the shared database. A decision is
followed by ``NOTIFY tlm_reviews, '<review id>'``; :meth:`PostgresReviewQueue.wait` ``LISTEN``\\ s
on an async connection and wakes as soon as the notification arrives, in whichever process or host
it waits (on a non-asyncio loop, or while the database is unreachable, it falls back to polling).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import psycopg
from psycopg.rows import dict_row

from tlm.errors import StoreError
from tlm.store import pg_base
from tlm.store.backend import redact_url
from tlm.store.pg_schema import REVIEWS_CHANNEL
from tlm.store.review_schema import PG_REVIEWS
from tlm.telemetry.redact import Redaction
from tlm.verify.review_queue import (
    Action,
    Decision,
    DecisionHook,
    OutputCheck,
    ReviewQueue,
)

__all__ = ("PostgresReviewQueue",)

_log = logging.getLogger("tlm.verify")


class _Connection:
    """A psycopg connection taking the queue's SQLite-style statements (``?`` placeholders)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        statement = (
            sql.replace("?", "%s").replace(", rowid", ", id").replace(" LIMIT -1", " LIMIT ALL")
        )
        return self.conn.execute(statement.encode(), args)


class PostgresReviewQueue(ReviewQueue):
    """The review queue in a PostgreSQL database (see the module docstring).

    Args:
        url: ``postgresql://...`` (the password is never shown).
        Others: as for :class:`~tlm.verify.review_queue.ReviewQueue`; ``poll_interval_s`` is only
        used when notifications cannot be (a non-asyncio loop, the database unreachable).

    Raises:
        StoreError: The database cannot be reached or migrated.
    """

    def __init__(
        self,
        url: str,
        *,
        on_decision: DecisionHook | None = None,
        poll_interval_s: float = 0.5,
        clock: Callable[[], float] = time.time,
        redact: Collection[str] = (),
        output_check: OutputCheck | None = None,
    ) -> None:
        self.url = url
        self.path = Path("reviews")  # unused: no file
        self.on_decision = on_decision
        self.redaction = Redaction(fields=frozenset(redact))
        self.output_check = output_check
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                pg_base.migrate(conn, (PG_REVIEWS,), self.where)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the review queue {self.where}: {exc}") from exc

    @property
    def where(self) -> str:
        return redact_url(self.url)

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=10, row_factory=dict_row
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the review queue {self.where}: {exc}") from exc
        try:
            yield _Connection(conn)
        except psycopg.Error as exc:
            raise StoreError(f"review queue {self.where}: {exc}") from exc
        finally:
            conn.close()

    def _migrate(self) -> None:  # done in __init__, under the advisory lock
        pass

    def _decide(
        self,
        review_id: str,
        action: Action,
        decided_output: str | None,
        note: str | None,
        reviewer: str | None,
    ) -> Decision:
        decision = super()._decide(review_id, action, decided_output, note, reviewer)
        resolved = self.get(review_id).id
        with self._connect() as conn:
            conn.execute("SELECT pg_notify(?, ?)", (REVIEWS_CHANNEL, resolved))
        return decision

    async def wait(self, review_id: str, timeout_s: float | None = None) -> Decision | None:
        """Wait for a decision from any process; ``None`` if ``timeout_s`` passes first.

        Wakes on the decision's NOTIFY (no polling while the database is reachable).
        """
        review = await anyio.to_thread.run_sync(self.get, review_id)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # trio: psycopg's async connection needs asyncio
            return await super().wait(review.id, timeout_s)
        deadline = math.inf if timeout_s is None else timeout_s
        with anyio.move_on_after(deadline):
            while True:
                try:
                    return await self._listen(review.id)
                except psycopg.OperationalError as exc:  # the database went away: retry
                    _log.warning("review wait on %s: %s; retrying", self.where, exc)
                    await anyio.sleep(self.poll_interval_s)
        return await anyio.to_thread.run_sync(self.decision, review.id)

    async def _listen(self, review_id: str) -> Decision:
        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=10)
        async with conn:
            await conn.execute(f"LISTEN {REVIEWS_CHANNEL}")
            # decided before we listened? (after LISTEN, so no decision can slip between)
            decision = await anyio.to_thread.run_sync(self.decision, review_id)
            if decision is not None:
                return decision
            async for notice in conn.notifies():
                if notice.payload == review_id:
                    decision = await anyio.to_thread.run_sync(self.decision, review_id)
                    if decision is not None:
                        return decision
        raise psycopg.OperationalError("the notification connection closed")
