"""Back-pressure never blocks an event loop: a full queue makes other threads wait, not the loop."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from tests.store.test_sqlite import make_record
from tlm.store import ExecutionStore
from tlm.telemetry.records import ExecutionRecord


def write_from_a_thread(store: Any, records: Sequence[ExecutionRecord]) -> threading.Thread:
    """Start writing ``records`` from a plain thread (no event loop); the thread, after giving
    it half a second."""

    def write_all() -> None:
        for record in records:
            store.write(record)

    writer = threading.Thread(target=write_all)
    writer.start()
    writer.join(0.5)
    return writer


def write_from_the_loop(store: Any, records: Sequence[ExecutionRecord]) -> tuple[float, int]:
    """Write ``records`` one by one from an event loop's own thread while a heartbeat task runs;
    the seconds the writes took and how often the heartbeat ran meanwhile."""
    ticks = 0

    async def main() -> float:
        nonlocal ticks

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            started = time.monotonic()
            for record in records:
                store.write(record)
                await anyio.lowlevel.checkpoint()
            took = time.monotonic() - started
            tg.cancel_scope.cancel()
        return took

    return anyio.run(main), ticks


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection holding the database's write lock: the writer cannot commit."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_writes_from_an_event_loop_never_block_on_a_full_queue(tmp_path: Path) -> None:
    path = tmp_path / "tlm.db"
    store = ExecutionStore(path, queue_size=2, batch_size=1, busy_timeout_s=0.05)
    holder = _hold_write_lock(path)
    release = threading.Timer(5.0, holder.rollback)  # unblocks the writer even if we hang
    release.start()
    try:
        # 5x the queue, from the loop's own thread
        took, ticks = write_from_the_loop(store, [make_record(i) for i in range(10)])
        assert took < 2.0  # not held until the lock is released (5 s)
        assert ticks >= 10  # the loop kept running its other tasks
        assert store.overflowed >= 10 - 2 - 1  # past the bound (the writer holds one batch)
        assert store.pending == 10  # nothing committed while the lock is held, nothing dropped
        holder.rollback()
        assert store.flush(30)
        assert store.count() == 10
        assert store.lost == 0
    finally:
        release.cancel()
        holder.close()
        store.close()


def test_a_plain_thread_still_waits_for_room(tmp_path: Path) -> None:
    path = tmp_path / "tlm.db"
    store = ExecutionStore(path, queue_size=1, batch_size=1, busy_timeout_s=0.05)
    holder = _hold_write_lock(path)
    try:
        writer = write_from_a_thread(store, [make_record(i) for i in range(4)])
        assert writer.is_alive()  # blocked: the queue is full and the writer cannot commit
        assert store.overflowed == 0
        holder.rollback()
        writer.join(30)
        assert not writer.is_alive()
        assert store.flush(30)
        assert store.count() == 4
    finally:
        holder.close()
        store.close()
