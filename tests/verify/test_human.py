"""Human review: the persistent queue, the waiting or pending verifier, decisions from elsewhere."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from tlm.definition.model import HumanParams
from tlm.errors import StoreError
from tlm.verify.base import Verdict
from tlm.verify.human import HumanVerifier, await_decision
from tlm.verify.review_queue import (
    SCHEMA_VERSION,
    Decision,
    Review,
    ReviewAlreadyDecided,
    ReviewNotFound,
    ReviewQueue,
)

from .support import make_context

POLL = 0.01


@pytest.fixture
def queue(tmp_path: Path) -> ReviewQueue:
    return ReviewQueue.in_data_dir(tmp_path / "data", poll_interval_s=POLL)


async def wait_for_pending(queue: ReviewQueue) -> Review:
    """The first pending review, once the verifier under test is blocked waiting on it."""
    await anyio.wait_all_tasks_blocked()
    (pending,) = queue.list()
    return pending


def test_queue_roundtrip_and_schema(queue: ReviewQueue) -> None:
    review_id = queue.enqueue("exec-1", "task", "1.0.0", {"q": 1}, {"a": [1, 2]}, queue="legal")
    review = queue.get(review_id)
    assert (review.status, review.queue, review.input, review.output) == (
        "pending",
        "legal",
        {"q": 1},
        {"a": [1, 2]},
    )
    assert review.decision is None
    assert queue.list(queue="legal") == [review]
    assert queue.list(queue="default") == []
    assert queue.get(review_id[:8]).id == review_id  # a unique 8-character prefix is enough

    with sqlite3.connect(queue.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_decisions_are_recorded_once(queue: ReviewQueue) -> None:
    seen: list[tuple[Review, Decision]] = []
    queue.on_decision = lambda review, decision: seen.append((review, decision))
    first = queue.enqueue("e1", "t", "1", {}, {"v": 1})
    second = queue.enqueue("e2", "t", "1", {}, {"v": 2})
    third = queue.enqueue("e3", "t", "1", {}, {"v": 3})

    approved = queue.approve(first, note="fine", reviewer="ana")
    rejected = queue.reject(second, note="wrong")
    edited = queue.edit(third, {"v": 30}, note="fixed")

    assert (approved.action, approved.output, approved.note, approved.reviewer) == (
        "approve",
        {"v": 1},
        "fine",
        "ana",
    )
    assert (rejected.passed, edited.passed, edited.output) == (False, True, {"v": 30})
    assert [r.status for r in queue.list(status=None)] == ["approved", "rejected", "edited"]
    assert queue.list() == []
    assert [(r.id, d.action) for r, d in seen] == [
        (first, "approve"),
        (second, "reject"),
        (third, "edit"),
    ]
    with pytest.raises(ReviewAlreadyDecided, match="already approved"):
        queue.reject(first, note="changed my mind")
    with pytest.raises(ReviewNotFound, match="no review with id 'nope0000'"):
        queue.approve("nope0000")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reviews.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="schema version"):
        ReviewQueue(path)


async def test_waiting_verifier_sees_cli_approval_from_another_process(
    queue: ReviewQueue,
) -> None:
    verifier = HumanVerifier(HumanParams(wait=True, timeout_s=30), queue)
    verdicts: list[Verdict] = []

    async def run() -> None:
        verdicts.append(await verifier.verify(make_context(output={"skills": ["x"]})))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        review = await wait_for_pending(queue)
        assert review.execution_id == "exec-1"
        assert review.task_id == "skill_decomposition"
        command = [sys.executable, "-c", "from tlm.cli import main; main()", "review"]
        command += ["--data-dir", str(queue.path.parent), "approve", review.id, "--note", "ok"]
        result = await anyio.run_process(command, check=False)
        assert result.returncode == 0, result.stderr.decode()

    (verdict,) = verdicts
    assert verdict.passed is True
    assert verdict.decisive
    assert verdict.confidence == 1.0
    assert verdict.details["review_id"] == review.id
    assert verdict.details["note"] == "ok"
    assert verdict.output is None


async def test_decision_after_restart_resolves_pending_result(tmp_path: Path) -> None:
    before = ReviewQueue.in_data_dir(tmp_path, poll_interval_s=POLL)
    pending = await HumanVerifier(HumanParams(), before).verify(make_context())
    assert pending.passed is None
    assert not pending.decisive
    review_id = pending.details["review_id"]
    del before  # "restart": nothing survives but the file

    after = ReviewQueue.in_data_dir(tmp_path, poll_interval_s=POLL)
    assert [r.id for r in after.list()] == [review_id]
    after.reject(review_id, note="hallucinated skill")

    verdict = await await_decision(
        ReviewQueue.in_data_dir(tmp_path, poll_interval_s=POLL), review_id, timeout_s=5
    )
    assert verdict.passed is False
    assert verdict.decisive
    assert verdict.details["note"] == "hallucinated skill"


async def test_pending_result_awaited_while_decision_arrives(queue: ReviewQueue) -> None:
    pending = await HumanVerifier(HumanParams(queue="legal"), queue).verify(make_context())
    assert pending.details["queue"] == "legal"
    review_id = pending.details["review_id"]
    verdicts: list[Verdict] = []

    async def waiter() -> None:
        verdicts.append(await await_decision(queue, review_id))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()  # the waiter has polled and found nothing yet
        assert verdicts == []
        ReviewQueue(queue.path).edit(review_id, {"skills": ["fixed"]}, note="edited")

    assert verdicts[0].passed is True
    assert verdicts[0].output == {"skills": ["fixed"]}


async def test_await_decision_timeout_is_still_pending(queue: ReviewQueue) -> None:
    review_id = queue.enqueue("e", "t", "1", {}, {})
    verdict = await await_decision(queue, review_id, timeout_s=POLL * 2)
    assert verdict.passed is None
    assert verdict.details["timed_out"] is True


@pytest.mark.parametrize(
    ("action", "passed"),
    [("approve", True), ("reject", False), ("fallback", False)],
)
async def test_wait_timeout_applies_default_action(
    queue: ReviewQueue, action: str, passed: bool
) -> None:
    params = HumanParams(wait=True, timeout_s=POLL * 2, default_action=action)  # type: ignore[arg-type]
    verdict = await HumanVerifier(params, queue).verify(make_context())
    assert verdict.passed is passed
    assert verdict.decisive
    assert verdict.details["timed_out"] is True
    assert verdict.details["default_action"] == action
    assert queue.get(verdict.details["review_id"]).status == "pending"


async def test_edit_becomes_verdict_output(queue: ReviewQueue) -> None:
    verifier = HumanVerifier(HumanParams(wait=True, timeout_s=30), queue)
    verdicts: list[Verdict] = []

    async def run() -> None:
        verdicts.append(await verifier.verify(make_context()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        review = await wait_for_pending(queue)
        queue.edit(review.id, {"skills": ["edited"]}, reviewer="bo")

    assert verdicts[0].passed is True
    assert verdicts[0].output == {"skills": ["edited"]}
    assert verdicts[0].details["action"] == "edit"
    assert verdicts[0].details["reviewer"] == "bo"


async def test_waiting_verifier_can_be_cancelled(queue: ReviewQueue) -> None:
    verifier = HumanVerifier(HumanParams(wait=True), queue)  # no timeout: waits for ever
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(verifier.verify, make_context())
            await wait_for_pending(queue)
            scope.cancel()
    assert scope.cancelled_caught
    assert queue.list()[0].status == "pending"
