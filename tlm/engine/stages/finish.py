"""Stage 5, finish: the result, the trace closed, the record announced (and waited for as the
durability contract says), then a verified output cached.

A cached output always names an execution that is on record: the output is put in the cache only
once its record is committed (``durable``) or queued (``relaxed``, which promises no more), never
before. So a process killed between the two leaves no cache entry for an execution the store
does not know, and a resumed batch runs that input again instead of answering it from the cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from tlm.engine.job import Job
from tlm.engine.result import ExecutionResult
from tlm.errors import (
    BudgetExceeded,
    ExecutionError,
)
from tlm.verify.base import Verdict

if TYPE_CHECKING:
    pass


__all__ = ("cache_output", "finish", "finish_recorded", "finish_unawaited", "verdict_summary")


def verdict_summary(verdict: Verdict | None) -> dict[str, Any] | None:
    if verdict is None:
        return None
    return {"passed": verdict.passed, "confidence": verdict.confidence, "method": verdict.method}


async def finish_recorded(job: Job) -> ExecutionResult:
    """:func:`finish`, then wait for the record as the durability contract says.

    A successful execution whose record cannot be kept gets ``result.error`` set to
    :class:`~tlm.errors.RecordNotCommitted` (output kept); a failed one keeps its own error,
    with a note saying where its record went.
    """
    recorder = job.runtime.recorder
    result = finish(job)
    if recorder is None:
        cache_output(job, result)
        return result
    problem = await recorder.settle(result)
    if problem is None:
        cache_output(job, result)  # its record is safe: the cache may name it now
        return result
    if job.error is not None:
        job.error.add_note(str(problem))
        return result
    job.result = attrs.evolve(result, error=problem)
    return job.result


def finish_unawaited(job: Job) -> ExecutionResult:
    """:func:`finish` for an execution nobody will wait for (cancelled): its record is written,
    without back-pressure on the caller. Nothing is cached: whoever makes the record durable
    later calls :func:`cache_output` then."""
    result = finish(job)
    if job.runtime.recorder is not None:
        job.runtime.recorder.discard(job.execution_id)
    return result


def finish(job: Job) -> ExecutionResult:
    """Build the result and close the execution's trace (its output is cached later, by
    :func:`cache_output`, once the record is safe).

    The record is announced to the runtime's recorder first; follow with
    :func:`finish_recorded`'s wait, or use :func:`finish_unawaited`.
    """
    runtime = job.runtime
    if isinstance(job.error, ExecutionError):
        job.error.execution_id = job.execution_id
        if isinstance(job.error, BudgetExceeded) and job.error.partial is None and job.primary:
            job.error.partial = job.primary.output
    result = ExecutionResult(
        output=None if job.error is not None else job.output,
        execution_id=job.execution_id,
        task_id=job.definition.id,
        task_version=job.definition.version,
        prompt_variant=job.variant.id if job.variant else None,
        models_used=tuple(job.models_used),
        verdict=job.verdict,
        cost_usd=job.cost_usd,
        usage=job.usage,
        latency_s=runtime.clock() - job.started_at,
        status="failed" if job.error is not None else job.status,
        cache_hit=job.cache_hit,
        fallback=job.fallback_used,
        attempts=job.attempts,
        index=job.index,
        error=job.error,
    )
    job.result = result
    if runtime.recorder is not None:
        runtime.recorder.expect(job.execution_id)
    runtime.tracing.close(job, result)
    return result


def cache_output(job: Job, result: ExecutionResult) -> None:
    """Store ``result``'s output in the cache if it is a verified one that may be kept there.

    Call it once the execution's record is committed (see the module doc): the cached entry
    names the execution it came from.
    """
    runtime = job.runtime
    if (
        job.key is not None
        and runtime.cache is not None
        and not job.cache_hit
        and result.status == "verified"
        and not (job.span is not None and job.span.redaction.holds_value(result.output))
    ):  # an output holding a redacted value or a key is never written to the cache file
        runtime.cache.put_nowait(
            job.key,
            task_id=result.task_id,
            task_version=result.task_version,
            output=result.output,
            meta={
                "models_used": list(result.models_used),
                "verdict": verdict_summary(result.verdict),
                "execution_id": result.execution_id,
            },
            ttl_s=job.definition.cache.ttl_s,
        )
