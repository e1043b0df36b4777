"""Stage 3, check: verify the primary candidate with the task's verifier (named ``check`` so
it does not shadow the :mod:`tlm.verify` package)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from tlm.engine.job import Job
from tlm.engine.output import parse_json_reply
from tlm.engine.stages.call import call_model
from tlm.engine.stages.generate import obtain_candidate
from tlm.providers.base import ChatResponse, Message
from tlm.verify.base import Candidate, NoVerifier, Verdict, VerificationContext

if TYPE_CHECKING:
    pass


__all__ = ("verify", "verify_candidate", "accept_verdict")


async def verify(job: Job) -> None:
    """Verify the primary candidate with the task's verifier (raises to fail the execution)."""
    if job.primary is None:
        return
    if not job.options.verify:
        job.output = job.primary.output
        job.status = "unverified"
        return
    job.verdict = await verify_candidate(job, job.primary)
    accept_verdict(job)


_UNVERIFIED = Verdict(
    passed=True, confidence=1.0, method="none", details={"reason": "no verification configured"}
)


async def verify_candidate(job: Job, candidate: Candidate) -> Verdict:
    if isinstance(job.task.verifier, NoVerifier):
        return _UNVERIFIED  # schema and rules passed; there is nothing more to run or trace
    context = VerificationContext(
        task=job.definition,
        input=job.input,
        primary=candidate,
        ranked_models=tuple(job.ranked),
        source=_Source(job),
        ask=_Ask(job),
        execution_id=job.execution_id,
        charge=_Charge(job),
    )
    verifier = job.task.verifier
    with job.runtime.tracing.verification(verifier.method) as span:
        verdict = await verifier.verify(context)
        span.set_verdict(verdict)
    return verdict


def accept_verdict(job: Job) -> None:
    verdict = job.verdict
    assert verdict is not None
    assert job.primary is not None
    job.output = verdict.output if verdict.output is not None else job.primary.output
    if verdict.passed is True:
        job.status = "verified"
    elif verdict.passed is None:
        job.status = "pending"


@attrs.frozen
class _Source:
    """The task run on another model, for verifiers (budgeted, traced, counted)."""

    job: Job

    async def __call__(self, model: str, /, *, feedback: str | None = None) -> Candidate:
        variant = self.job.variant
        assert variant is not None
        # A second opinion that cannot produce valid output is a non-vote: one re-ask at most.
        reasks = min(self.job.runtime.config.max_reasks, 1)
        return await obtain_candidate(self.job, model, variant, feedback=feedback, reasks=reasks)


@attrs.frozen
class _Ask:
    """A free-form prompt to a model, for verifiers such as a hierarchical reviewer."""

    job: Job

    async def __call__(
        self, model: str, prompt: str, /, *, output_schema: Mapping[str, Any] | None = None
    ) -> ChatResponse:
        if model not in self.job.models_used:
            self.job.models_used.append(model)
        messages = [Message("user", prompt)]
        response = await call_model(self.job, model, messages, output_schema=output_schema)
        if output_schema is not None and response.parsed is None:
            parsed = parse_json_reply(response.text)
            if parsed.ok:
                response = attrs.evolve(response, parsed=parsed.value)
        return response


@attrs.frozen
class _Charge:
    """A verifier's own spending (a semantic metric's embeddings), charged to the job's budget."""

    job: Job

    def __call__(self, cost_usd: float, /) -> None:
        self.job.cost_usd += cost_usd
        self.job.ledger.charge(cost_usd)
        self.job.ledger.check_after()
