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
from typing import TypeAlias

import anyio
import anyio.lowlevel

from tlm.store.base import ExecutionLog

__all__ = ("CommitWaiter", "running_loop")


def running_loop() -> object:
    """The running event loop (asyncio's loop, or trio's token): what a waiter is bound to."""
    try:
        return asyncio.get_running_loop()  # the cheap question first: one C call
    except RuntimeError:
        return anyio.lowlevel.current_token().native_token


_Waitable: TypeAlias = anyio.Event | asyncio.Future[None]
"""What one waiting task awaits: an asyncio future, or an anyio event on other loops."""


class CommitWaiter:
    """Awaits the writer's progress on the event loop it was created on (see the module doc)."""

    def __init__(self, writer: ExecutionLog) -> None:
        self._writer = writer
        native = running_loop()
        self._loop = native if isinstance(native, asyncio.AbstractEventLoop) else None
        """The asyncio loop, whose futures are awaited directly (``None``: anyio events)."""
        self._schedule = _scheduler(native)
        self._waiting: list[tuple[int, int, _Waitable]] = []
        self._order = itertools.count()
        self._wake_pending = False
        self._flag_lock = threading.Lock()
        writer.add_listener(self._on_progress)

    async def wait(self, seq: int) -> None:
        """Return once the writer has processed ``seq`` records (at once if it has)."""
        if self._writer.processed >= seq:
            return
        waitable: _Waitable = anyio.Event() if self._loop is None else self._loop.create_future()
        heapq.heappush(self._waiting, (seq, next(self._order), waitable))
        if self._writer.processed >= seq:  # the batch finished while we registered
            self._wake()
        if isinstance(waitable, asyncio.Future):
            await waitable  # cancelled with its task (anyio's cancel scopes cancel the task)
        else:
            await waitable.wait()

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
            waitable = heapq.heappop(waiting)[2]
            if isinstance(waitable, asyncio.Future):
                if not waitable.done():  # its task may have been cancelled meanwhile
                    waitable.set_result(None)
            else:
                waitable.set()


def _scheduler(native: object) -> Callable[[Callable[[], None]], None]:
    """How to run a callback soon on the loop ``native`` from another thread."""
    if isinstance(native, asyncio.AbstractEventLoop):
        loop = native

        def schedule(callback: Callable[[], None]) -> None:
            loop.call_soon_threadsafe(callback)

        return schedule
    run_sync_soon = getattr(native, "run_sync_soon", None)  # trio's token
    if run_sync_soon is None:
        raise RuntimeError(f"no thread-safe scheduling for event loop {native!r}")
    return run_sync_soon  # type: ignore[no-any-return]
