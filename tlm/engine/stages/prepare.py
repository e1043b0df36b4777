"""Stage 1, prepare: validate the input, choose and render the prompt, rank models, look up
the cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlm.engine.cache import cache_key
from tlm.engine.job import Job
from tlm.errors import (
    ConfigurationError,
    InputInvalid,
)
from tlm.verify.base import Verdict

if TYPE_CHECKING:
    pass


__all__ = ("prepare",)


async def prepare(job: Job) -> None:
    """Validate the input, choose and render the prompt, rank models, and look up the cache.

    Raises a :class:`~tlm.errors.TLMError` to fail the execution (run it with ``run_stage``).
    """
    task = job.task
    problems = task.input_problems(job.input)
    if problems:
        raise InputInvalid(job.definition.id, problems)
    job.variant = task.choose_variant(job.input, job.options)
    job.prompt = task.render(job.variant, job.input)
    job.ranked, selection = job.runtime.rank_explained(job.task, job.prompt, job.options)
    if selection is not None and job.span is not None:
        job.span.set_selection(selection)
    if not job.ranked:
        raise ConfigurationError(
            f"no configured model can run task {job.definition.id!r} "
            f"(configured: {', '.join(job.runtime.model_ids) or 'none'})"
        )
    if job.runtime.cache is not None and job.options.cache and job.definition.cache.enabled:
        job.key = cache_key(
            task_id=job.definition.id,
            task_version=job.definition.version,
            prompt_variant=job.variant.id,
            model=job.ranked[0],
            parameters={
                "temperature": job.options.temperature,
                "max_tokens": job.options.max_tokens,
                "seed": job.options.seed,
                "structured_output": job.options.structured_output,
            },
            input=job.input,
        )
        hit = await job.runtime.cache.get(job.key)
        if hit is not None:
            job.cache_hit = True
            job.output = hit.output
            job.status = "cached"
            job.models_used = list(hit.meta.get("models_used", []))
            verdict = hit.meta.get("verdict") or {}
            job.verdict = Verdict(
                passed=verdict.get("passed", True),
                confidence=float(verdict.get("confidence", 1.0)),
                method=str(verdict.get("method", job.definition.verification.method)),
                details={"cached": True, "stored_at": hit.stored_at},
            )
