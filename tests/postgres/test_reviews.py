"""The review queue on PostgreSQL: shared by processes, decisions wake waiters by NOTIFY."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from tlm.errors import StoreError
from tlm.verify.review_queue import ReviewAlreadyDecided, ReviewNotFound, open_review_queue
from tlm.verify.review_queue_pg import PostgresReviewQueue

ROOT = Path(__file__).resolve().parents[2]

WAITER = textwrap.dedent(
    """
    import sys, time, anyio
    from tlm.verify.review_queue import open_review_queue

    async def main() -> None:
        queue = open_review_queue("unused", sys.argv[1], poll_interval_s=30.0)
        print("waiting", flush=True)
        decision = await queue.wait(sys.argv[2], timeout_s=20)
        print(f"{decision.action if decision else None} {time.time()!r}", flush=True)

    anyio.run(main)
    """
)


def test_the_queue_on_postgres_enqueues_lists_and_decides_once(pg_url: str, tmp_path: Path) -> None:
    queue = open_review_queue(tmp_path, pg_url, redact=["email"])
    assert isinstance(queue, PostgresReviewQueue)
    first = queue.enqueue("e1", "extract", "1.0.0", {"email": "a@b.c"}, {"ok": True})
    second = queue.enqueue("e2", "extract", "1.0.0", {"x": 1}, {"ok": False}, queue="urgent")
    assert [r.id for r in queue.list()] == [first, second]
    assert [r.id for r in queue.list(queue="urgent")] == [second]
    # pages, as the console reads them
    assert [r.id for r in queue.list(limit=1)] == [first]
    assert [r.id for r in queue.list(offset=1)] == [second]
    assert [r.id for r in queue.list(limit=1, newest_first=True)] == [second]
    stored = queue.get(first[:8])  # a prefix names it
    assert stored.id == first
    assert stored.input["email"] != "a@b.c"  # redacted before it was stored
    decision = queue.approve(first, note="fine", reviewer="ann")
    assert decision.action == "approve"
    with pytest.raises(ReviewAlreadyDecided):
        queue.reject(first, note="too late")
    other = open_review_queue(tmp_path, pg_url)  # another replica sees the same queue
    assert other.get(first).status == "approved"
    assert [r.id for r in other.list()] == [second]
    with pytest.raises(ReviewNotFound, match="no review with id 'ffffffffffff'"):
        other.get("ffffffffffff")


async def test_a_waiter_in_this_process_wakes_on_notify_not_polling(pg_url: str) -> None:
    queue = PostgresReviewQueue(pg_url, poll_interval_s=60.0)  # a poll would take a minute
    review_id = queue.enqueue("e1", "extract", "1.0.0", {}, {"v": 1})
    woke: list[float] = []

    async def wait() -> None:
        decision = await queue.wait(review_id, timeout_s=10)
        assert decision is not None
        assert decision.action == "edit"
        woke.append(time.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await anyio.sleep(0.5)
        decided_at = time.monotonic()
        await anyio.to_thread.run_sync(lambda: queue.edit(review_id, {"v": 2}))
    assert woke
    assert woke[0] - decided_at < 1.0


async def test_a_wait_times_out_with_none(pg_url: str) -> None:
    queue = PostgresReviewQueue(pg_url)
    review_id = queue.enqueue("e1", "extract", "1.0.0", {}, {})
    assert await queue.wait(review_id, timeout_s=0.3) is None


def test_an_approval_in_one_process_releases_a_waiter_in_another_within_a_second(
    pg_url: str,
) -> None:
    queue = PostgresReviewQueue(pg_url)
    review_id = queue.enqueue("e1", "extract", "1.0.0", {"q": 1}, {"a": 1})
    waiter = subprocess.Popen(
        [sys.executable, "-c", WAITER, pg_url, review_id],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert waiter.stdout is not None
    assert waiter.stdout.readline().strip() == "waiting"
    time.sleep(1.0)  # let it LISTEN
    approved_at = time.time()
    queue.approve(review_id)
    out, _ = waiter.communicate(timeout=30)
    action, woke_at = out.split()
    assert action == "approve"
    assert float(woke_at) - approved_at < 1.0


def test_an_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open the review queue postgresql://u:\\*\\*\\*@"):
        PostgresReviewQueue("postgresql://u:secret@127.0.0.1:1/db")
