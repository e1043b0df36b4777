"""Awaiting the writer's commits from an event loop: asyncio and trio, cancellation."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.store.test_sqlite import make_record
from tlm.store import ExecutionStore
from tlm.store.commit_wait import CommitWaiter


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_waiters_return_once_their_record_is_committed(tmp_path: Path, backend: str) -> None:
    store = ExecutionStore(tmp_path / "tlm.db", linger_s=60)

    async def main() -> list[int]:
        waiter = CommitWaiter(store)
        done: list[int] = []

        async def wait_for(i: int, seq: int) -> None:
            await waiter.wait(seq)
            assert store.get(f"e{i}") is not None  # committed before the wait returns
            done.append(i)

        try:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for i in range(5):
                        ticket = store.expect(f"e{i}")
                        store.write(make_record(i))
                        assert ticket.seq is not None
                        tg.start_soon(wait_for, i, ticket.seq)
                    await anyio.sleep(0.05)
                    assert done == []  # nothing asked for the commit yet (linger 60 s)
                    store.commit_now()
                await waiter.wait(1)  # already processed: returns at once
        finally:
            waiter.close()
        return sorted(done)

    try:
        assert anyio.run(main, backend=backend) == [0, 1, 2, 3, 4]
    finally:
        store.close()


async def test_a_cancelled_wait_does_not_disturb_the_others(tmp_path: Path) -> None:
    store = ExecutionStore(tmp_path / "tlm.db", linger_s=60)
    waiter = CommitWaiter(store)
    try:
        first = store.expect("e0")
        store.write(make_record(0))
        second = store.expect("e1")
        store.write(make_record(1))
        assert first.seq is not None
        assert second.seq is not None
        returned: list[str] = []

        async def wait_for(name: str, seq: int) -> None:
            await waiter.wait(seq)
            returned.append(name)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as scope:
                    tg.start_soon(wait_for, "second", second.seq)
                    async with anyio.create_task_group() as inner:
                        inner.start_soon(wait_for, "first", first.seq)
                        await anyio.sleep(0.05)
                        scope.cancel()
                store.commit_now()  # the cancelled waiter's entry is skipped on wake-up
        assert returned == ["second"]
        assert store.count() == 2
    finally:
        waiter.close()
        store.close()
