"""The review queue's contract on both backends (a real SQLite file, the real PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from tlm.errors import StoreCorrupted, StoreError
from tlm.verify.review_queue import (
    AmbiguousReviewId,
    ReviewAlreadyDecided,
    ReviewNotFound,
    open_review_queue,
)


@pytest.fixture
def queue_on(backend: str | None, tmp_path: Path) -> Any:
    def make(**options: Any) -> Any:
        return open_review_queue(tmp_path / "data", backend, **options)

    return make


def test_reviews_are_listed_found_by_prefix_and_decided_once(queue_on: Any) -> None:
    queue = queue_on(redact=["email"])
    first = queue.enqueue("e1", "extract", "1.0.0", {"email": "a@b.c", "n": 1}, {"ok": True})
    second = queue.enqueue("e2", "extract", "1.0.0", {"n": 2}, {"ok": False}, queue="urgent")
    assert [r.id for r in queue.list()] == [first, second]
    assert [r.id for r in queue.list(queue="urgent")] == [second]
    assert [r.id for r in queue.list(limit=1, newest_first=True)] == [second]
    assert queue.get(first[:8]).id == first
    assert queue.get(first).input["email"] != "a@b.c"
    with pytest.raises(AmbiguousReviewId):
        queue.get(first[:3])
    with pytest.raises(ReviewNotFound):
        queue.get("f" * 16)
    other = queue_on()  # another process's view of the same queue
    outcomes: list[str] = []

    def decide(q: Any, name: str) -> None:
        try:
            q.approve(first, reviewer=name)
            outcomes.append(name)
        except ReviewAlreadyDecided:
            outcomes.append("refused")

    threads = [
        threading.Thread(target=decide, args=(q, n)) for q, n in ((queue, "a"), (other, "b"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes)[1] == "refused"  # exactly one of the two decided
    assert other.get(first).status == "approved"
    assert [r.id for r in other.list()] == [second]
    edited = other.edit(second, {"ok": True}, note="fixed")
    assert edited.action == "edit"
    assert queue.decision(second) is not None


async def test_a_waiter_sees_a_decision_made_through_another_queue(queue_on: Any) -> None:
    waiter = queue_on(poll_interval_s=0.05)
    review_id = waiter.enqueue("e1", "extract", "1.0.0", {}, {"v": 1})
    decided: list[Any] = []

    async def wait() -> None:
        decided.append(await waiter.wait(review_id, timeout_s=10))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await anyio.sleep(0.2)
        queue_on().reject(review_id, note="wrong")
    assert decided[0] is not None
    assert decided[0].action == "reject"
    pending = waiter.enqueue("e2", "extract", "1.0.0", {}, {"v": 2})
    assert await waiter.wait(pending, timeout_s=0.1) is None  # nobody decided it


def test_a_queue_written_by_a_newer_tlm_is_refused(
    queue_on: Any, backend: str | None, tmp_path: Path
) -> None:
    queue_on()
    if backend is None:
        with sqlite3.connect(tmp_path / "data" / "reviews.db") as conn:
            conn.execute("PRAGMA user_version = 99")
    else:
        with psycopg.connect(backend, autocommit=True) as conn:
            conn.execute("UPDATE tlm_schema SET version = 99 WHERE name = 'review queue'")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        queue_on()


def test_a_damaged_sqlite_queue_is_named(tmp_path: Path) -> None:
    path = tmp_path / "reviews.db"
    path.write_bytes(b"garbage, not SQLite " * 300)
    with pytest.raises(StoreCorrupted, match=r"reviews\.db: the review queue is corrupted"):
        open_review_queue(tmp_path, None)
