"""``Engine.map``: many executions run concurrently, one task each, and the
:class:`ResultStream` the caller reads. The stages are ``execute``'s
(:mod:`tlm.engine.execution`)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from tlm.budget import BudgetLedger
from tlm.definition.model import TaskDefinition
from tlm.engine.compiled import CompiledTask
from tlm.engine.execution import finish_recorded, new_job, prepare, run_model_stages
from tlm.engine.job import Job, run_stage
from tlm.engine.recording import record_cancelled
from tlm.engine.result import ExecuteOptions, ExecutionResult
from tlm.engine.runtime import Runtime

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectStreamStatistics

    from tlm.rollout.router import RolloutRouter

__all__ = ("MapSource", "MapProgress", "ResultStream", "stream_results")


@attrs.frozen
class MapSource:
    """What a map needs of its engine: the open runtime, compiled tasks, the rollout router."""

    open_runtime: Callable[[], Awaitable[Runtime]]
    compile: Callable[[str | TaskDefinition, str | None], CompiledTask]
    rollouts: RolloutRouter | None
    """Routes each input to a version; ``None`` when the version is pinned."""


@attrs.define(eq=False)
class MapProgress:
    """A running map: how many inputs it took, and the stream of finished executions."""

    results: MemoryObjectReceiveStream[Job]
    fed: int = 0
    """How many inputs have been taken from the input iterable so far."""

    def statistics(self) -> dict[str, MemoryObjectStreamStatistics]:
        """``{"results": ...}``: the finished executions' stream (buffer use, waiting tasks)."""
        return {"results": self.results.statistics()}


class ResultStream(AsyncIterator[ExecutionResult]):
    """Results of :meth:`Engine.map`; an async iterator and an async context manager."""

    def __init__(self, results: Callable[[ResultStream], AsyncIterator[ExecutionResult]]) -> None:
        self._progress: MapProgress | None = None
        self._agen = results(self)

    def attach(self, progress: MapProgress) -> None:
        """Note the map's progress (for :attr:`fed` and :meth:`statistics`)."""
        self._progress = progress

    async def __aenter__(self) -> ResultStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> ExecutionResult:
        return await self._agen.__anext__()

    async def aclose(self) -> None:
        """Stop the map: executions still running are cancelled (and recorded as cancelled)."""
        aclose = getattr(self._agen, "aclose", None)
        if aclose is not None:
            await aclose()

    @property
    def fed(self) -> int:
        """How many inputs have been taken from the input iterable so far."""
        return self._progress.fed if self._progress else 0

    def statistics(self) -> dict[str, MemoryObjectStreamStatistics]:
        """``{"results": ...}``: the statistics of the stream of finished executions."""
        return self._progress.statistics() if self._progress else {}


async def stream_results(
    source: MapSource,
    holder: ResultStream,
    task: str | TaskDefinition,
    inputs: Iterable[Any] | AsyncIterable[Any],
    version: str | None,
    options: ExecuteOptions,
    ordered: bool,
    max_in_flight: int,
    budget: BudgetLedger | None,
) -> AsyncIterator[ExecutionResult]:
    """The results of ``inputs``, each run in a task of its own through the stages.

    An input is taken only when fewer than ``max_in_flight`` are running or waiting to be
    read, so memory stays bounded whatever the length of the input. Each execution runs
    ``execute``'s stages in one task (no hand-off between stages) and its finished job goes
    to the caller through one bounded stream, which never blocks a sender: the admission bound
    is the stream's size. Leaving early cancels what is still running; those executions are
    recorded as cancelled.
    """
    runtime = await source.open_runtime()
    compiled = source.compile(task, version)
    admitted = anyio.Semaphore(max_in_flight)
    taken: dict[int, Job] = {}
    """Jobs whose input was taken and whose record is not written yet, by ``id()``."""
    rollouts = source.rollouts
    tracing = runtime.tracing
    send, receive = anyio.create_memory_object_stream[Job](max_in_flight)
    progress = MapProgress(receive)
    holder.attach(progress)

    async def run(job: Job) -> None:
        tracing.open(job)
        with tracing.active(job):
            await run_stage(job, prepare)
            await run_model_stages(job)
        del taken[id(job)]
        await finish_recorded(job)
        try:
            send.send_nowait(job)  # room by construction: at most max_in_flight are admitted
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return  # the caller left while this one finished; it is cancelling us

    async def produce() -> None:
        async with send, anyio.create_task_group() as running:
            index = 0
            pending = _aiter(inputs)
            while True:
                await admitted.acquire()  # take an input only when there is room for it
                try:
                    item = await anext(pending)
                except StopAsyncIteration:
                    return
                chosen = compiled
                if rollouts is not None:
                    routed = await rollouts.version_for(compiled.definition.id, item)
                    if routed is not None:
                        chosen = source.compile(task, routed)
                job = new_job(runtime, chosen, item, options, index=index, parent_ledger=budget)
                taken[id(job)] = job
                progress.fed += 1
                running.start_soon(run, job)
                index += 1

    closing: GeneratorExit | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            try:
                async with receive:
                    waiting: dict[int, Job] = {}
                    next_index = 0
                    async for job in receive:
                        if rollouts is not None:
                            await rollouts.after_execution(compiled.definition.id)
                        if not ordered:
                            admitted.release()
                            assert job.result is not None
                            yield job.result
                            continue
                        assert job.index is not None
                        waiting[job.index] = job
                        while next_index in waiting:
                            ready = waiting.pop(next_index)
                            next_index += 1
                            admitted.release()
                            assert ready.result is not None
                            yield ready.result
            except GeneratorExit as exc:  # the caller left early (aclose): not an error
                closing = exc
            finally:
                tg.cancel_scope.cancel()
        if closing is not None:
            raise closing
    finally:
        record_cancelled(taken.values())
        taken.clear()


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
