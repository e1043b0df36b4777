"""Stage 4, fallback: the definition's fallback strategy after invalid output or a failed
verification; failing the execution when none applies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlm.definition.model import PromptVariant
from tlm.engine.job import Job
from tlm.engine.stages.check import accept_verdict, verify_candidate
from tlm.engine.stages.finish import verdict_summary
from tlm.engine.stages.generate import obtain_candidate, run_candidate
from tlm.errors import (
    ExecutionError,
    OutputInvalid,
    ProviderError,
    VerificationFailed,
)
from tlm.verify.base import Candidate, Verdict

if TYPE_CHECKING:
    pass


__all__ = ("fallback",)


async def fallback(job: Job) -> None:
    """Apply the definition's fallback strategy after invalid output or failed verification
    (raises, the strategy's error or the execution's, when nothing acceptable is left)."""
    needs = job.primary is None or (job.verdict is not None and job.verdict.passed is False)
    if not needs:
        return
    await _fallback(job, job.task.fallback_strategy)


async def _fallback(job: Job, strategy: str) -> None:
    definition = job.definition
    spec = definition.verification.fallback
    if strategy == "default_value":
        _settle(job, spec.value, strategy)
        return
    if strategy == "use_highest_ranked_model":
        candidates = _valid_candidates(job)
        if candidates:
            rank = {m: i for i, m in enumerate(job.ranked)}
            best = min(candidates, key=lambda c: rank.get(c.model, len(rank)))
            _settle(job, best.output, strategy)
            return
        untried = [m for m in job.ranked if m not in job.tried]
        if untried:
            candidate = await run_candidate(job, untried[0], _variant(job))
            _settle(job, candidate.output, strategy)
            return
    elif strategy == "next_model":
        for model in job.ranked:
            if model in job.tried and model not in job.voters:
                continue
            try:
                candidate = await obtain_candidate(job, model, _variant(job))
            except (OutputInvalid, ProviderError):
                continue
            await _retry_verified(job, candidate, strategy)
            return
    elif strategy == "retry_with_variant":
        current = _variant(job)
        others = [p for p in definition.prompts if p.id != current.id]
        model = job.primary.model if job.primary else job.ranked[0]
        for variant in others:
            try:
                candidate = await run_candidate(job, model, variant)
            except OutputInvalid:
                continue
            job.variant = variant
            await _retry_verified(job, candidate, strategy)
            return
    elif strategy == "human_review":
        output = job.primary.output if job.primary else None
        review_id = await job.runtime.enqueue_review(job, output)
        job.output = output
        job.status = "pending"
        job.fallback_used = strategy
        job.verdict = Verdict(
            passed=None,
            confidence=job.verdict.confidence if job.verdict else 0.0,
            method=job.verdict.method if job.verdict else "human",
            details={"review_id": review_id, "previous": verdict_summary(job.verdict)},
        )
        return
    _fail(job)


def _variant(job: Job) -> PromptVariant:
    assert job.variant is not None
    return job.variant


def _valid_candidates(job: Job) -> list[Candidate]:
    found = [job.primary] if job.primary is not None else []
    if job.verdict is not None:
        found.extend(job.verdict.candidates)
    found.extend(v.outcome for v in job.voters.values() if isinstance(v.outcome, Candidate))
    return [c for c in found if c is not None]


def _settle(job: Job, output: Any, strategy: str) -> None:
    job.output = output
    job.status = "fallback"
    job.fallback_used = strategy


async def _retry_verified(job: Job, candidate: Candidate, strategy: str) -> None:
    job.primary = candidate
    job.primary_problems = ()
    job.fallback_used = strategy
    if job.options.verify:
        job.verdict = await verify_candidate(job, candidate)
        accept_verdict(job)
        if job.verdict.passed is False:
            job.status = "fallback"
    else:
        job.output = candidate.output
        job.status = "fallback"


def _fail(job: Job) -> None:
    definition = job.definition
    if job.primary is None:
        error: ExecutionError = OutputInvalid(definition.id, job.primary_problems)
    elif job.verdict is not None and job.verdict.details.get("budget_exhausted"):
        # Issue 5 item 4: a fan-out that would exceed the budget stops and says so.
        reason = job.verdict.details.get("reason") or "the budget ran out"
        error = job.ledger.exceeded(
            f"verification of task {definition.id!r} ({job.verdict.method}) stopped "
            f"undecided: {reason}",
            partial=job.primary.output,
        )
    else:
        error = VerificationFailed(
            f"verification of task {definition.id!r} failed "
            f"({job.verdict.method if job.verdict else 'unknown'}, "
            f"confidence {job.verdict.confidence if job.verdict else 0:.2f})",
            verdict=job.verdict,
        )
    raise error
