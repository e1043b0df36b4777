"""Waiting on the event loop for the store's writer thread, without blocking the loop.

A :class:`CommitWaiter` is bound to one event loop. Tasks ``await waiter.wait(seq)`` until the
writer has processed the ``seq``-th record; the writer thread, after each batch, schedules one
callback on the loop (``call_soon_threadsafe``, never a blocking hand-off) that wakes every task
whose record is done. Many tasks share one transaction and one wake-up: group commit.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel

from tlm.store.base import ExecutionLog

__all__ = ("CommitWaiter",)


def _loop_scheduler() -> Callable[[Callable[[], None]], None]:
    """How to run a callback soon on the current event loop from another thread."""
    native: Any = anyio.lowlevel.current_token().native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        loop = native

        def schedule(callback: Callable[[], None]) -> None:
            loop.call_soon_threadsafe(callback)

        return schedule
    run_sync_soon = getattr(native, "run_sync_soon", None)  # trio's token
    if run_sync_soon is None:
        raise RuntimeError(f"no thread-safe scheduling for event loop {native!r}")
    return run_sync_soon  # type: ignore[no-any-return]


class CommitWaiter:
    """Awaits the writer's progress on the event loop it was created on (see the module doc)."""

    def __init__(self, writer: ExecutionLog) -> None:
        self._writer = writer
        self._schedule = _loop_scheduler()
        self._waiting: list[tuple[int, int, anyio.Event]] = []
        self._order = itertools.count()
        self._wake_pending = False
        self._flag_lock = threading.Lock()
        writer.add_listener(self._on_progress)

    async def wait(self, seq: int) -> None:
        """Return once the writer has processed ``seq`` records (at once if it has)."""
        if self._writer.processed >= seq:
            return
        event = anyio.Event()
        heapq.heappush(self._waiting, (seq, next(self._order), event))
        if self._writer.processed >= seq:  # the batch finished while we registered
            self._wake()
        await event.wait()

    def close(self) -> None:
        """Stop listening to the writer."""
        self._writer.remove_listener(self._on_progress)

    # the writer thread
    def _on_progress(self, processed: int) -> None:
        if not self._waiting:
            return
        with self._flag_lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._schedule(self._wake)
        except RuntimeError:  # the loop is closed: nobody is left to wake
            with self._flag_lock:
                self._wake_pending = False

    # the event loop
    def _wake(self) -> None:
        with self._flag_lock:
            self._wake_pending = False
        processed = self._writer.processed
        waiting = self._waiting
        while waiting and waiting[0][0] <= processed:
            heapq.heappop(waiting)[2].set()
