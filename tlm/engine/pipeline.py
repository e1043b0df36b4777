"""Stage actors joined by bounded memory object streams.

:func:`open_pipeline` starts, in a task group, one feeder and ``stage.workers`` worker tasks per
stage. Each edge is a memory object stream with a small buffer, so a stage that falls behind
holds back the stages before it and, at the head, the feeder stops pulling inputs: memory stays
bounded whatever the length of the input. Workers get their own ``clone()`` of their streams; a
stream closes when its last clone does, which ends the next stage in turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

import anyio
import attrs
from anyio.streams.memory import (
    MemoryObjectReceiveStream,
    MemoryObjectSendStream,
    MemoryObjectStreamStatistics,
)

__all__ = ("Stage", "Pipeline", "open_pipeline")

T = TypeVar("T")


@attrs.frozen
class Stage(Generic[T]):
    """One actor: ``workers`` tasks each applying ``run`` to the items they receive."""

    name: str
    run: Callable[[T], Awaitable[T]]
    workers: int = 1


@attrs.define(eq=False)
class Pipeline(Generic[T]):
    """A running pipeline: iterate :attr:`results`; :meth:`statistics` shows each edge's state."""

    results: MemoryObjectReceiveStream[T]
    edges: dict[str, MemoryObjectSendStream[T]]
    fed: int = 0
    """How many items the feeder has taken from the source so far."""

    def statistics(self) -> dict[str, MemoryObjectStreamStatistics]:
        """Per stage: the statistics of the stream feeding it (buffer use, waiting senders)."""
        return {name: stream.statistics() for name, stream in self.edges.items()}


@asynccontextmanager
async def open_pipeline(
    source: AsyncIterable[T], stages: Sequence[Stage[T]], *, buffer: int = 0
) -> AsyncIterator[Pipeline[T]]:
    """Run ``source`` through ``stages``; leaving the block cancels whatever is still running.

    A consumer that stops early (``aclose()`` of an async generator iterating the results, which
    throws ``GeneratorExit`` in here) cancels the actors, and the ``GeneratorExit`` goes on
    unwrapped once they have stopped, so early exit is not an error.
    """
    closing: GeneratorExit | None = None
    async with anyio.create_task_group() as tg:
        head_send, receive = anyio.create_memory_object_stream[T](buffer)
        edges: dict[str, MemoryObjectSendStream[T]] = {}
        feeding = head_send
        for stage in stages:
            edges[stage.name] = feeding
            feeding, next_receive = anyio.create_memory_object_stream[T](buffer)
            with receive, feeding:
                for _ in range(stage.workers):
                    tg.start_soon(_work, stage, receive.clone(), feeding.clone())
            receive = next_receive
        pipeline = Pipeline(results=receive, edges=edges)
        tg.start_soon(_feed, source, head_send, pipeline)
        try:
            async with receive:
                yield pipeline
        except GeneratorExit as exc:
            closing = exc
        finally:
            tg.cancel_scope.cancel()
    if closing is not None:
        raise closing


async def _feed(
    source: AsyncIterable[T], send: MemoryObjectSendStream[T], pipeline: Pipeline[T]
) -> None:
    async with send:
        async for item in source:
            pipeline.fed += 1
            await send.send(item)


async def _work(
    stage: Stage[T], receive: MemoryObjectReceiveStream[T], send: MemoryObjectSendStream[T]
) -> None:
    async with receive, send:
        async for item in receive:
            done = await stage.run(item)
            try:
                await send.send(done)
            except anyio.BrokenResourceError:
                return  # the consumer left while this item was in flight; it is cancelling us
