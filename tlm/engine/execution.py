"""One execution from start to finish: the stage list, run inline for ``execute()``.

A :class:`~tlm.engine.job.Job` carries one execution through the stages in
:mod:`tlm.engine.stages` — prepare (validate input, choose the variant, render the prompt, rank
models, look up the cache) → generate (call the primary model, parse, repair, re-ask) → check
(verify) → fallback → finish (result, cache, record). :data:`MODEL_STAGES` is the one list of the
model-bound stages: :func:`run_inline` runs it for ``execute()``, and ``map()`` runs the same
list through :func:`run_model_stages`, one task per input (:mod:`tlm.engine.mapping`).
"""

from __future__ import annotations

import anyio

from tlm.engine.job import Job, Prefetched, new_job, run_stage
from tlm.engine.result import ExecutionResult
from tlm.engine.stages.call import build_request, candidate_messages
from tlm.engine.stages.check import verify
from tlm.engine.stages.fallback import fallback
from tlm.engine.stages.finish import cache_output, finish, finish_recorded, finish_unawaited
from tlm.engine.stages.generate import generate, model_stages
from tlm.engine.stages.prepare import prepare
from tlm.errors import ExecutionError

__all__ = (
    "Job",
    "Prefetched",
    "new_job",
    "candidate_messages",
    "build_request",
    "MODEL_STAGES",
    "run_inline",
    "run_model_stages",
    "run_stage",
    "model_stages",
    "prepare",
    "generate",
    "verify",
    "fallback",
    "finish",
    "finish_recorded",
    "finish_unawaited",
    "cache_output",
)

MODEL_STAGES = (generate, verify, fallback)
"""The model-bound stages, in order, run after :func:`prepare` and before :func:`finish`."""


async def run_model_stages(job: Job) -> None:
    """Run :data:`MODEL_STAGES` on a prepared ``job``, voters' task group open around them."""
    if job.done:
        return
    async with model_stages(job):
        for stage in MODEL_STAGES:
            await run_stage(job, stage)


async def run_inline(job: Job) -> ExecutionResult:
    """Run every stage of ``job`` in the calling task; raise the execution's error, if any.

    A cancelled execution is recorded as failed ("cancelled") before the cancellation goes on.
    """
    tracing = job.runtime.tracing
    tracing.open(job)
    try:
        with tracing.active(job):
            await run_stage(job, prepare)
            await run_model_stages(job)
    except anyio.get_cancelled_exc_class():
        job.error = ExecutionError("execution cancelled")
        finish_unawaited(job)
        raise
    result = await finish_recorded(job)
    if job.error is not None:
        raise job.error
    if result.error is not None:
        raise result.error  # RecordNotCommitted: it carries the result
    return result
