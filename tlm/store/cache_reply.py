"""Waiting on the result cache's thread from an event loop, within a time limit.

A :class:`Reply` is made on the awaiting task's loop: an asyncio future (or, on trio, an event
set through the loop's token). The cache thread fills in :attr:`Reply.value` and calls
:func:`wake` once for every reply it finished together (one wake-up per loop). The awaiting
side gives up after ``timeout_s`` (:meth:`Reply.wait` then returns its ``default``): an
asyncio reply by a timer on the loop, cheaper than a cancel scope; a trio one by
``anyio.move_on_after``. :class:`CallWatch` times the thread's calls to its table, so that a call
past the limit (a database that stopped answering) can be interrupted from another thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel

__all__ = ("CallWatch", "Reply", "wake")

_log = logging.getLogger("tlm.cache")


class Reply:
    """Where the cache thread leaves an answer, and how it wakes the awaiting task."""

    __slots__ = ("abandoned", "event", "future", "loop", "token", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.abandoned = False
        """Set once the awaiting side gave up (nobody reads the answer any more)."""
        self.event: anyio.Event | None = None
        self.token: Any = None
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            self.future: asyncio.Future[Any] | None = self.loop.create_future()
        except RuntimeError:  # not asyncio (trio): an anyio event set from the loop's token
            self.loop = self.future = None
            self.event = anyio.Event()
            self.token = anyio.lowlevel.current_token().native_token

    async def wait(self, timeout_s: float, default: Any, on_timeout: Callable[[], None]) -> Any:
        """The answer, or ``default`` once ``timeout_s`` passed (``on_timeout`` is called then,
        on the loop)."""
        future, loop = self.future, self.loop
        if future is not None and loop is not None:
            timer = loop.call_later(timeout_s, self._expire, default, on_timeout)
            try:
                return await future
            finally:
                timer.cancel()
        assert self.event is not None
        with anyio.move_on_after(timeout_s):
            await self.event.wait()
            return self.value
        self.abandoned = True
        on_timeout()
        return default

    def _expire(self, default: Any, on_timeout: Callable[[], None]) -> None:
        assert self.future is not None
        if self.future.done():
            return
        self.abandoned = True
        self.future.set_result(default)
        on_timeout()


def _resolve(replies: list[Reply]) -> None:
    for reply in replies:
        if reply.future is not None:
            if not reply.future.done():
                reply.future.set_result(reply.value)
        elif reply.event is not None:
            reply.event.set()


def wake(replies: list[Reply]) -> None:
    """Wake the tasks awaiting ``replies`` (from the cache thread): one call per event loop."""
    by_loop: dict[int, tuple[Any, list[Reply]]] = {}
    for reply in replies:
        owner = reply.loop if reply.loop is not None else reply.token
        by_loop.setdefault(id(owner), (owner, []))[1].append(reply)
    for owner, group in by_loop.values():
        try:
            if isinstance(owner, asyncio.AbstractEventLoop):
                owner.call_soon_threadsafe(_resolve, group)
            else:
                owner.run_sync_soon(_resolve, group)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            _log.debug("result cache: a waiting event loop closed", exc_info=True)


class CallWatch:
    """The cache thread's table call running now, and whether it is overdue (any thread).

    Args:
        timeout_s: How long a call may run before it is overdue.
        interrupt: Makes the running call fail (called at most once per call, from the thread
            that finds it overdue).
    """

    def __init__(self, timeout_s: float, interrupt: Callable[[], None]) -> None:
        self.timeout_s = timeout_s
        self._interrupt = interrupt
        self._lock = threading.Lock()
        self.started = 0.0
        """When the call running now began (monotonic seconds; 0: none running)."""
        self._interrupted = 0.0

    def run(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(*args)``, timed (the cache thread)."""
        with self._lock:
            self.started = time.monotonic()
        try:
            return work(*args)
        finally:
            with self._lock:
                self.started = 0.0

    def overdue(self) -> bool:
        """Whether the call running now is past the timeout; if so it is interrupted (once)."""
        with self._lock:
            started = self.started
            if not started or time.monotonic() - started < self.timeout_s:
                return False
            if self._interrupted != started:
                self._interrupted = started
                try:
                    self._interrupt()
                except Exception:
                    _log.debug("result cache: interrupting a call failed", exc_info=True)
        return True
