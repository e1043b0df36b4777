"""Stage 2, generate: the primary candidate from the best-ranked model that answers validly,
with consensus voters started beside it (:class:`model_stages`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from tlm.definition.model import PromptVariant
from tlm.engine.job import Job, Voter
from tlm.engine.output import format_problems_for_model
from tlm.engine.stages.call import call_model, candidate_messages
from tlm.errors import (
    ConfigurationError,
    ContextLengthExceeded,
    OutputInvalid,
    Problem,
    ProviderError,
    TLMError,
)
from tlm.providers.base import ChatResponse, Message
from tlm.verify.base import Candidate

if TYPE_CHECKING:
    pass


__all__ = ("generate", "model_stages", "obtain_candidate", "run_candidate")


_REASK = (
    "Your previous answer was not acceptable:\n{problems}\n"
    "Reply again with corrected JSON only, satisfying the schema."
)


async def generate(job: Job) -> None:
    """Obtain the primary candidate: the best-ranked model that answers with a valid output.

    Provider failures move on to the next ranked model (a context-length error to a model with a
    larger window); an output that stays invalid after repair and re-asks goes to the fallback.
    """
    assert job.variant is not None
    last_error: ProviderError | None = None
    _start_voters(job)
    for model in job.ranked:
        if model in job.tried and model not in job.voters:
            continue
        try:
            job.primary = await obtain_candidate(job, model, job.variant)
            return
        except OutputInvalid as exc:
            job.primary_problems = exc.problems
            return
        except ContextLengthExceeded as exc:
            last_error = exc
            continue
        except ProviderError as exc:
            last_error = exc
            continue
    if last_error is not None:
        raise last_error
    raise ConfigurationError(f"no model left to try for task {job.definition.id!r}")


def _speculative_voters(job: Job) -> list[str]:
    """The consensus voters the verifier will ask first, when they may be started now."""
    if not job.task.voters or not job.options.verify or not job.ranked:
        return []
    params = job.definition.verification.parameters
    order = list(getattr(params, "models", ()) or job.ranked)
    return [m for m in order if m != job.ranked[0]][: job.task.voters]


def _start_voters(job: Job) -> None:
    """Start the consensus voters beside the primary call (they would be asked next anyway)."""
    group = job.speculation
    if group is None:
        return
    variant = job.variant
    assert variant is not None
    reasks = min(job.runtime.config.max_reasks, 1)
    for model in _speculative_voters(job):
        voter = job.voters[model] = Voter()

        async def run(model: str = model, voter: Voter = voter) -> None:
            with voter.scope:
                try:
                    voter.outcome = await run_candidate(job, model, variant, reasks=reasks)
                except TLMError as exc:
                    voter.outcome = exc
            voter.done.set()

        group.start_soon(run, name=f"voter {model}")


class model_stages:
    """Around generate → verify → fallback: a task group for early voters, cancelled on exit.

    A voter nobody took (the primary failed, the verifier decided early) is cancelled here and,
    having not completed, is not paid for.
    """

    def __init__(self, job: Job) -> None:
        self._job = job
        self._group: anyio.abc.TaskGroup | None = None  # only a task with voters needs one

    async def __aenter__(self) -> None:
        if self._job.task.voters:
            self._group = anyio.create_task_group()
            self._job.speculation = await self._group.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        job = self._job
        if job.speculation is None or self._group is None:
            return None
        job.speculation = None
        for voter in job.voters.values():
            voter.scope.cancel()
        return await self._group.__aexit__(*exc_info)


async def obtain_candidate(
    job: Job,
    model: str,
    variant: PromptVariant,
    *,
    feedback: str | None = None,
    reasks: int | None = None,
) -> Candidate:
    """An early-started voter's outcome for ``model`` if there is one, else a new call."""
    voter = job.voters.pop(model, None) if feedback is None and variant is job.variant else None
    if voter is None:
        return await run_candidate(job, model, variant, feedback=feedback, reasks=reasks)
    try:
        await voter.done.wait()
    except anyio.get_cancelled_exc_class():
        voter.scope.cancel()  # the asker gave up (e.g. consensus decided): stop the call too
        raise
    if isinstance(voter.outcome, TLMError):
        raise voter.outcome
    assert voter.outcome is not None
    return voter.outcome


async def run_candidate(
    job: Job,
    model: str,
    variant: PromptVariant,
    *,
    feedback: str | None = None,
    reasks: int | None = None,
) -> Candidate:
    """Run the task on ``model``: render, call, parse, repair, re-ask; return a valid candidate.

    ``reasks`` bounds the re-asks (default: the engine's ``max_reasks``).

    Raises :class:`OutputInvalid` when the output is still invalid after the bounded re-asks, and
    :class:`ProviderError` or :class:`BudgetExceeded` as the call does.
    """
    task = job.task
    definition = job.definition
    job.tried.add(model)
    if model not in job.models_used:
        job.models_used.append(model)
    schema = definition.output.schema
    structured = job.options.structured_output
    messages = candidate_messages(job, model, variant, feedback=feedback)
    cost = 0.0
    problems: tuple[Problem, ...] = ()
    response: ChatResponse | None = None
    rounds = 1 + (job.runtime.config.max_reasks if reasks is None else reasks)
    for _round in range(rounds):
        response = await call_model(
            job, model, messages, output_schema=schema if structured else None
        )
        cost += response.cost_usd
        value, problems = task.output_problems(response)
        if not problems:
            return Candidate(model, value, cost, response, variant.id)
        messages.append(Message("assistant", response.text))
        messages.append(
            Message("user", _REASK.format(problems=format_problems_for_model(problems)))
        )
    raise OutputInvalid(definition.id, problems, raw=response.text if response else None)
