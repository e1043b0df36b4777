"""Finish a batch's inputs: each answer goes through the engine's own stages, each input ends as
one execution record and one output line.

The provider batch's answer is handed to the job as the outcome of its primary call
(:class:`~tlm.engine.execution.Prefetched`, costed at the batch price); parsing, repair,
re-asks, verification and the fallback then run exactly as in a synchronous execution, and
their calls are synchronous (standard price). The root span carries ``tlm.batch.*`` attributes,
so the record names its provider batch and custom id.

Output lines are written a chunk at a time, fsynced, and only then are the chunk's items marked
done together with the output file's new length, so a crash never loses or repeats a line (a
resume truncates anything past the committed length and redoes those items under the same
execution ids: a record is replaced, never doubled).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import IO, Any

import anyio
import attrs

from tlm.batch.clients import BatchClient, LineResult
from tlm.batch.requests import parse_line, prepared_job, primary_request, request_sha
from tlm.batch.state import BatchState, Item, Run
from tlm.engine.budget import BudgetLedger
from tlm.engine.compiled import CompiledTask
from tlm.engine.execution import (
    Job,
    Prefetched,
    cache_output,
    finish_unawaited,
    run_model_stages,
)
from tlm.engine.result import ExecuteOptions, ExecutionResult
from tlm.engine.runtime import Runtime
from tlm.errors import ExecutionError, InputInvalid
from tlm.telemetry import conventions as c

__all__ = ("Collector", "output_line", "CANCELLED", "BATCH_ID", "BATCH_CUSTOM_ID", "BATCH_RUN_ID")

CANCELLED = {"cancelled": True}
"""The result stored for an input whose batch run was cancelled before it was answered."""
BATCH_ID = c.TLM_BATCH_ID
BATCH_CUSTOM_ID = c.TLM_BATCH_CUSTOM_ID
BATCH_RUN_ID = c.TLM_BATCH_RUN_ID


def output_line(line: int, result: ExecutionResult, item: Item, note: str | None) -> dict[str, Any]:
    """The output file's line for one input (keyed by the input's line number)."""
    error = result.error
    return {
        "line": line,
        "execution_id": result.execution_id,
        "status": result.status,
        "output": result.output,
        "error": None
        if error is None
        else {"type": type(error).__name__, "message": note or str(error)},
        "cost_usd": result.cost_usd,
        "models_used": list(result.models_used),
        "batch_id": item.submission_id,
        "custom_id": item.custom_id,
    }


@attrs.define(eq=False)
class Collector:
    """Runs finished items through the engine and appends their output lines."""

    runtime: Runtime
    task: CompiledTask
    options: ExecuteOptions
    state: BatchState
    run: Run
    ledger: BudgetLedger
    client_for: Callable[[str], BatchClient]
    output: IO[bytes]
    flush: Callable[[], None]
    """Makes the records written so far durable (the engine's flush)."""
    max_in_flight: int = 16
    on_done: Callable[[ExecutionResult], None] | None = None

    async def collect(self) -> int:
        """Finish every ``answered`` and ``direct`` item; return how many were finished."""
        finished = 0
        for state in ("direct", "answered"):
            while True:
                items = self.state.items(self.run.run_id, state, limit=256)
                if not items:
                    break
                finished += await self._chunk(items)
        return finished

    async def _chunk(self, items: Sequence[Item]) -> int:
        lines: dict[int, bytes] = {}
        done: dict[int, tuple[float, str]] = {}
        requeue: list[int] = []
        finished: list[Job] = []
        limiter = anyio.Semaphore(self.max_in_flight)

        async def one(item: Item) -> None:
            async with limiter:
                outcome = await self._finish(item, finished)
            if outcome is None:
                requeue.append(item.line)
                return
            result, note = outcome
            text = json.dumps(output_line(item.line, result, item, note), ensure_ascii=False)
            lines[item.line] = text.encode() + b"\n"
            done[item.line] = (result.cost_usd, result.status)
            if self.on_done is not None:
                self.on_done(result)

        async with anyio.create_task_group() as group:
            for item in items:
                group.start_soon(one, item)
        for line in sorted(lines):
            self.output.write(lines[line])
        self.output.flush()
        os.fsync(self.output.fileno())
        await anyio.to_thread.run_sync(self.flush)
        for job in finished:  # cached only now that their records are durable
            assert job.result is not None
            cache_output(job, job.result)
        offset = self.output.tell()
        self.state.finish_items(
            self.run.run_id, [(line, *done[line]) for line in sorted(done)], offset
        )
        if requeue:
            self.state.requeue(self.run.run_id, requeue)
        return len(done)

    async def _finish(
        self, item: Item, finished: list[Job]
    ) -> tuple[ExecutionResult, str | None] | None:
        """Run one item (appended to ``finished``); ``None`` when its answer no longer matches
        its request (resubmit)."""
        parsed = parse_line(item.input, source=self.run.input_path, line=item.line)
        answered = item.state == "answered" and item.result != CANCELLED
        options = attrs.evolve(self.options, cache=False) if answered else self.options
        job = await prepared_job(
            self.runtime,
            self.task,
            parsed.value,
            options,
            line=item.line,
            execution_id=item.execution_id,
            parent=self.ledger,
        )
        if answered and not job.done and item.model is not None:
            if not self._prefetch(job, item):
                return None
        self.ledger.release(item.estimate)
        tracing = self.runtime.tracing
        tracing.open(job)
        if job.span is not None and job.span.recording:
            attributes = {BATCH_RUN_ID: self.run.run_id}
            if item.submission_id is not None and item.custom_id is not None:
                attributes[BATCH_ID] = item.submission_id
                attributes[BATCH_CUSTOM_ID] = item.custom_id
            job.span.span.set_attributes(attributes)
        if item.result == CANCELLED and job.error is None:
            job.error = ExecutionError(f"batch run {self.run.run_id} was cancelled")
        try:
            with tracing.active(job):
                await run_model_stages(job)
        except anyio.get_cancelled_exc_class():
            job.error = ExecutionError("execution cancelled")
            finish_unawaited(job)
            raise
        result = finish_unawaited(job)  # the chunk's records are flushed together (_chunk)
        finished.append(job)
        note = parsed.error if isinstance(job.error, InputInvalid) else None
        return result, note

    def _prefetch(self, job: Job, item: Item) -> bool:
        """Hand the batch's answer to the job's primary call; ``False`` if it no longer fits."""
        model = item.model
        assert model is not None
        request = primary_request(job, model)
        if item.request_sha is not None and request_sha(request) != item.request_sha:
            return False
        if model in job.ranked:
            job.ranked.remove(model)
        job.ranked.insert(0, model)
        card = self.runtime.card(model)
        client = self.client_for(model)
        outcome = client.outcome(LineResult.from_json(item.result), request, card)
        job.prefetched[(model, request.messages)] = Prefetched(outcome)
        return True
