"""``Engine.map``: many executions streamed through stage actors, and the :class:`ResultStream`
the caller reads. The stages are the same as ``execute``'s (:mod:`tlm.engine.execution`)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from tlm.budget import BudgetLedger
from tlm.definition.model import TaskDefinition
from tlm.engine.compiled import CompiledTask
from tlm.engine.execution import finish_recorded, new_job, prepare, run_model_stages
from tlm.engine.job import Job
from tlm.engine.pipeline import Pipeline, Stage, open_pipeline
from tlm.engine.recording import record_cancelled
from tlm.engine.result import ExecuteOptions, ExecutionResult
from tlm.engine.runtime import Runtime

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectStreamStatistics

    from tlm.rollout.router import RolloutRouter

__all__ = ("MapSource", "ResultStream", "stream_results")


@attrs.frozen
class MapSource:
    """What a map needs of its engine: the open runtime, compiled tasks, the rollout router."""

    open_runtime: Callable[[], Awaitable[Runtime]]
    compile: Callable[[str | TaskDefinition, str | None], CompiledTask]
    rollouts: RolloutRouter | None
    """Routes each input to a version; ``None`` when the version is pinned."""


class ResultStream(AsyncIterator[ExecutionResult]):
    """Results of :meth:`Engine.map`; an async iterator and an async context manager."""

    def __init__(self, results: Callable[[ResultStream], AsyncIterator[ExecutionResult]]) -> None:
        self._pipeline: Pipeline[Job] | None = None
        self._agen = results(self)

    def attach(self, pipeline: Pipeline[Job]) -> None:
        """Note the pipeline producing the results (for :attr:`fed` and :meth:`statistics`)."""
        self._pipeline = pipeline

    async def __aenter__(self) -> ResultStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> ExecutionResult:
        return await self._agen.__anext__()

    async def aclose(self) -> None:
        """Stop the pipeline's actors."""
        aclose = getattr(self._agen, "aclose", None)
        if aclose is not None:
            await aclose()

    @property
    def fed(self) -> int:
        """How many inputs have been taken from the input iterable so far."""
        return self._pipeline.fed if self._pipeline else 0

    def statistics(self) -> dict[str, MemoryObjectStreamStatistics]:
        """Per stage, the statistics of the stream that feeds it."""
        return self._pipeline.statistics() if self._pipeline else {}


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
    """The results of ``inputs`` run through three stage actors (prepare, model, finish)."""
    runtime = await source.open_runtime()
    compiled = source.compile(task, version)
    admitted = anyio.Semaphore(max_in_flight)
    taken: dict[int, Job] = {}
    """Jobs whose input was taken and whose record is not written yet, by ``id()``."""

    rollouts = source.rollouts

    async def jobs() -> AsyncIterator[Job]:
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
            yield job
            index += 1

    async def do_prepare(job: Job) -> Job:
        runtime.tracing.open(job)
        with runtime.tracing.active(job):
            await prepare(job)
        return job

    async def do_model(job: Job) -> Job:
        with runtime.tracing.active(job):
            await run_model_stages(job)
        return job

    async def do_finish(job: Job) -> Job:
        del taken[id(job)]
        await finish_recorded(job)
        return job

    # One actor per kind of work: CPU-light preparation (validate, select, render, cache
    # lookup); model-bound work (the primary call, verification and fallback calls, which
    # share the per-provider limits); recording (its workers wait for their commits
    # together, so one transaction serves many executions).
    stages = [
        Stage("prepare", do_prepare, 1),
        Stage("model", do_model, max_in_flight),
        Stage("finish", do_finish, max_in_flight),
    ]
    try:
        async with open_pipeline(jobs(), stages) as pipeline:
            holder.attach(pipeline)
            waiting: dict[int, Job] = {}
            next_index = 0
            async for job in pipeline.results:
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
