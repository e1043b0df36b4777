"""One execution as data, and the stage functions that move it along.

A :class:`Job` carries one execution through the stages — prepare (validate input, choose the
variant, render the prompt, rank models, look up the cache) → generate (call the primary model,
parse, repair, re-ask) → verify → fallback → finish (result, cache, record). The same stage
functions run inline for a one-off ``execute()`` and as actors in the ``map()`` pipeline.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from tlm.budget import BudgetLedger, merge_budgets
from tlm.definition.model import Budget, PromptVariant, TaskDefinition
from tlm.engine.cache import cache_key
from tlm.engine.json_values import json_safe, json_value_problems
from tlm.engine.output import format_problems_for_model, parse_json_reply
from tlm.engine.reservation import billable_usage, estimate_tokens, reserve_call
from tlm.engine.result import ExecuteOptions, ExecutionResult, Status
from tlm.errors import (
    BudgetExceeded,
    ConfigurationError,
    ContextLengthExceeded,
    ExecutionError,
    InputInvalid,
    InputNotJSON,
    OutputInvalid,
    Problem,
    ProviderError,
    ProviderTimeout,
    TLMError,
    VerificationFailed,
)
from tlm.providers.base import ChatRequest, ChatResponse, Message, Usage
from tlm.providers.limits import measure_queue_wait
from tlm.providers.retry import Attempt, recording_attempts
from tlm.verify.base import Candidate, NoVerifier, Verdict, VerificationContext

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from tlm.catalog import ModelCard
    from tlm.engine.compiled import CompiledTask
    from tlm.engine.runtime import Runtime
    from tlm.telemetry.spans import ExecutionSpan

__all__ = (
    "Job",
    "Prefetched",
    "new_job",
    "candidate_messages",
    "build_request",
    "run_inline",
    "run_stage",
    "prepare",
    "generate",
    "verify",
    "fallback",
    "finish",
    "finish_recorded",
    "finish_unawaited",
)

_REASK = (
    "Your previous answer was not acceptable:\n{problems}\n"
    "Reply again with corrected JSON only, satisfying the schema."
)


@attrs.frozen
class Prefetched:
    """A model call's outcome obtained ahead of the job (a provider batch): a response or the
    error the call met, costed at ``batch`` prices when set."""

    outcome: ChatResponse | ProviderError
    batch: bool = True


@attrs.define(eq=False)
class Job:
    """The mutable state of one execution while it moves through the stages."""

    runtime: Runtime
    task: CompiledTask
    input: Any
    options: ExecuteOptions
    ledger: BudgetLedger
    execution_id: str
    index: int | None = None
    span: ExecutionSpan | None = None
    variant: PromptVariant | None = None
    prompt: str = ""
    ranked: list[str] = attrs.Factory(list)
    key: str | None = None
    primary: Candidate | None = None
    primary_problems: tuple[Problem, ...] = ()
    verdict: Verdict | None = None
    output: Any = None
    status: Status = "unverified"
    fallback_used: str | None = None
    cache_hit: bool = False
    models_used: list[str] = attrs.Factory(list)
    tried: set[str] = attrs.Factory(set)
    voters: dict[str, _Voter] = attrs.Factory(dict)
    """Consensus voters started with the primary call, by model, until someone takes them."""
    speculation: TaskGroup | None = None
    """Where voters run; opened around the model-bound stages by :func:`model_stages`."""
    prefetched: dict[tuple[str, tuple[Message, ...]], Prefetched] = attrs.Factory(dict)
    """Answers obtained before the job ran (a provider batch), by (model, messages): the call
    they answer takes them instead of calling the model."""
    usage: Usage = attrs.Factory(Usage)
    cost_usd: float = 0.0
    attempts: int = 0
    error: TLMError | None = None
    """Why the execution failed: an execution error, or a configuration error met at run time."""
    result: ExecutionResult | None = None
    started_at: float = 0.0
    default_deadline: bool = False
    """Whether the deadline is the engine's ``default_deadline_s`` (no budget set one)."""

    @property
    def definition(self) -> TaskDefinition:
        """The task definition being executed."""
        return self.task.definition

    @property
    def done(self) -> bool:
        """Whether later stages have nothing to do (finished early or failed)."""
        return self.error is not None or self.cache_hit


def new_job(
    runtime: Runtime,
    task: CompiledTask,
    input: Any,
    options: ExecuteOptions,
    *,
    index: int | None = None,
    parent_ledger: BudgetLedger | None = None,
) -> Job:
    """A job for one execution, with its budget ledger opened now."""
    limits = merge_budgets(task.definition.budget, options.budget)
    default_deadline = limits.deadline_s is None
    if default_deadline:  # bounded time even without a budget (config: default_deadline_s)
        deadline = runtime.config.default_deadline_s
        limits = Budget(limits.max_cost_usd, deadline, limits.max_attempts)
    ledger = BudgetLedger(limits, clock=runtime.clock, parent=parent_ledger)
    if runtime.recorder is not None:
        runtime.recorder.started()
    job = Job(
        runtime=runtime,
        task=task,
        input=input,
        options=options,
        ledger=ledger,
        execution_id=f"{random.getrandbits(128):032x}",  # fork-safe; cheaper than uuid4
        index=index,
        started_at=runtime.clock(),
        default_deadline=default_deadline,
    )
    problems = json_value_problems(input)
    if problems:  # refused, and recorded with a stand-in every consumer can carry
        job.error = InputNotJSON(task.definition.id, problems)
        job.input = json_safe(input)
    return job


async def run_inline(job: Job) -> ExecutionResult:
    """Run every stage of ``job`` in the calling task; raise the execution's error, if any.

    A cancelled execution is recorded as failed ("cancelled") before the cancellation goes on.
    """
    tracing = job.runtime.tracing
    tracing.open(job)
    try:
        with tracing.active(job):
            await prepare(job)
            if not job.done:
                async with model_stages(job):
                    for stage in (generate, verify, fallback):
                        await run_stage(job, stage)
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


async def run_stage(job: Job, stage: Callable[[Job], Awaitable[None]]) -> None:
    """Run one stage under the job's remaining deadline; a timeout becomes BudgetExceeded.

    The engine's default deadline opens no cancel scope (one costs more than the rest of a
    cached execution): it bounds every model request instead, each sent with the time left as
    its timeout (:func:`call_model` reports that timeout as the deadline passing).
    """
    if job.done:
        return
    remaining = job.ledger.remaining_s()
    if not math.isfinite(remaining) or job.default_deadline:
        await stage(job)
        return
    with anyio.CancelScope(deadline=anyio.current_time() + max(remaining, 0.0)) as scope:
        await stage(job)
    if scope.cancelled_caught and job.error is None:
        job.error = deadline_exceeded(job)


def deadline_exceeded(job: Job) -> BudgetExceeded:
    """The error of an execution whose deadline passed (saying when it is the default one)."""
    partial = job.primary.output if job.primary else None
    deadline = job.ledger.limits.deadline_s
    what = (
        f"the default deadline of {deadline:g}s passed (no deadline_s in the task's or the "
        "call's budget; set default_deadline_s in tlm.toml to change it)"
        if job.default_deadline
        else f"deadline of {deadline}s passed"
    )
    return job.ledger.exceeded(what, partial=partial)


# --- prepare ----------------------------------------------------------------------------------


async def prepare(job: Job) -> None:
    """Validate the input, choose and render the prompt, rank models, and look up the cache."""
    if job.done:
        return
    try:
        _prepare(job)
    except TLMError as exc:
        job.error = exc


def _prepare(job: Job) -> None:
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
        hit = job.runtime.cache.get(job.key)
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


# --- generate ---------------------------------------------------------------------------------


async def generate(job: Job) -> None:
    """Obtain the primary candidate: the best-ranked model that answers with a valid output.

    Provider failures move on to the next ranked model (a context-length error to a model with a
    larger window); an output that stays invalid after repair and re-asks goes to the fallback.
    """
    if job.done:
        return
    try:
        await _generate(job)
    except TLMError as exc:
        job.error = exc


async def _generate(job: Job) -> None:
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


@attrs.define(eq=False)
class _Voter:
    """A consensus voter's call started early: its outcome, once done, and how to stop it."""

    scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    done: anyio.Event = attrs.Factory(anyio.Event)
    outcome: Candidate | TLMError | None = None


def _start_voters(job: Job) -> None:
    """Start the consensus voters beside the primary call (they would be asked next anyway)."""
    group = job.speculation
    if group is None:
        return
    variant = job.variant
    assert variant is not None
    reasks = min(job.runtime.config.max_reasks, 1)
    for model in _speculative_voters(job):
        voter = job.voters[model] = _Voter()

        async def run(model: str = model, voter: _Voter = voter) -> None:
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
        self._group = anyio.create_task_group()

    async def __aenter__(self) -> None:
        if self._job.task.voters:
            self._job.speculation = await self._group.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        job = self._job
        if job.speculation is None:
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


def candidate_messages(
    job: Job, model: str, variant: PromptVariant, *, feedback: str | None = None
) -> list[Message]:
    """The system and user messages that ask ``model`` for the task's output with ``variant``."""
    task = job.task
    prompt = job.prompt if variant is job.variant else task.render(variant, job.input)
    if feedback:
        prompt = (
            f"{prompt}\n\nA reviewer found these issues in a previous answer; fix them:\n{feedback}"
        )
    structured = job.options.structured_output
    # Providers whose structured output cannot carry a schema put it in the prompt themselves.
    provider_adds_schema = structured and job.runtime.card(model).structured_output in (
        "json_object",
        "none",
    )
    system = task.system_message(variant, with_schema=not provider_adds_schema)
    return [Message("system", system), Message("user", prompt)]


def build_request(
    job: Job,
    model: str,
    messages: list[Message],
    *,
    output_schema: Mapping[str, Any] | None,
    max_tokens: int | None = None,
) -> ChatRequest:
    """The request :func:`call_model` sends (a provider batch sends the same one); ``max_tokens``
    lowered to what the budget's reservation allows, when given."""
    remaining = job.ledger.remaining_s()
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        temperature=job.options.temperature,
        max_tokens=job.options.max_tokens if max_tokens is None else max_tokens,
        seed=job.options.seed,
        output_schema=output_schema,
        timeout_s=remaining if math.isfinite(remaining) else None,
    )


async def call_model(
    job: Job,
    model: str,
    messages: list[Message],
    *,
    output_schema: Mapping[str, Any] | None,
) -> ChatResponse:
    """One model call under the job's budget, traced, costed and counted.

    A provider timeout that is the execution's deadline running out is reported as that.
    """
    try:
        return await _call_model(job, model, messages, output_schema)
    except ProviderTimeout as exc:
        if job.ledger.remaining_s() <= _DEADLINE_SLACK_S:
            raise deadline_exceeded(job) from exc
        raise


_DEADLINE_SLACK_S = 0.05
"""A call that timed out this close to the deadline was stopped by the deadline."""


async def _call_model(
    job: Job,
    model: str,
    messages: list[Message],
    output_schema: Mapping[str, Any] | None,
) -> ChatResponse:
    card = job.runtime.card(model)
    prefetched = job.prefetched.pop((model, tuple(messages)), None) if job.prefetched else None
    if prefetched is not None:
        response, usage, cost = await _take_prefetched(
            job, card, model, messages, output_schema, prefetched
        )
    else:
        response, usage, cost = await _send(job, card, model, messages, output_schema)
    job.usage = job.usage + usage
    job.cost_usd += cost
    job.ledger.charge(cost)
    job.ledger.check_after()
    return response


async def _send(
    job: Job,
    card: ModelCard,
    model: str,
    messages: list[Message],
    output_schema: Mapping[str, Any] | None,
) -> tuple[ChatResponse, Usage, float]:
    """Send one call to its provider: worst case reserved first, attempts and wait recorded."""
    runtime = job.runtime
    reservation = reserve_call(job.ledger, card, messages, job.options.max_tokens)
    request = build_request(
        job, model, messages, output_schema=output_schema, max_tokens=reservation.max_tokens
    )
    provider = None
    response: ChatResponse | None = None
    with recording_attempts() as tries:
        try:
            provider = await runtime.provider_for(model)
            with runtime.tracing.model_call(request, provider, card) as call_span:
                with measure_queue_wait() as waited:
                    try:
                        response = await provider.complete(request)
                    finally:
                        call_span.set_attempts(tries)
                        call_span.set_queue_wait(waited.seconds)
                usage = billable_usage(response.usage, model=model, max_tokens=request.max_tokens)
                cost = card.cost(usage)
                response = attrs.evolve(response, cost_usd=cost)
                call_span.set_response(response)
        except ProviderError as exc:
            _note_attempts(exc, tries)
            raise
        finally:
            job.ledger.release(reservation.estimate_usd)
            made = len(tries) or (0 if provider is None else _attempts_of(response))
            job.attempts += made
            job.ledger.count_retries(made - 1)
    return response, usage, cost


async def _take_prefetched(
    job: Job,
    card: ModelCard,
    model: str,
    messages: list[Message],
    output_schema: Mapping[str, Any] | None,
    prefetched: Prefetched,
) -> tuple[ChatResponse, Usage, float]:
    """Take an answer obtained ahead (a provider batch) as this call's, at its price."""
    batch = prefetched.batch
    estimate = card.cost(Usage(estimate_tokens(messages), job.options.max_tokens or 0), batch=batch)
    job.ledger.before_call(estimate)
    request = build_request(job, model, messages, output_schema=output_schema)
    provider = await job.runtime.provider_for(model)  # names the span's provider and server
    try:
        with job.runtime.tracing.model_call(request, provider, card) as call_span:
            if isinstance(prefetched.outcome, ProviderError):
                raise prefetched.outcome
            response = prefetched.outcome
            cost = card.cost(response.usage, batch=batch)
            response = attrs.evolve(response, cost_usd=cost)
            call_span.set_response(response)
    finally:
        job.ledger.release(estimate)
    job.attempts += response.attempts
    job.ledger.count_retries(response.attempts - 1)
    return response, response.usage, cost


def _note_attempts(exc: ProviderError, tries: list[Attempt]) -> None:
    """Put the real attempt count, and each attempt's outcome and cost, on a failed call."""
    if not tries:
        return
    exc.attempts = len(tries)
    summary = "; ".join(t.describe() for t in tries)
    message = exc.args[0] if exc.args else str(exc)
    exc.args = (f"{message} [{len(tries)} attempt(s): {summary}]",)


def _attempts_of(response: ChatResponse | None) -> int:
    """Requests a provider without retry accounting made: its response's count, else one."""
    return response.attempts if response is not None else 1


# --- verify -----------------------------------------------------------------------------------


async def verify(job: Job) -> None:
    """Verify the primary candidate with the task's verifier."""
    if job.done or job.primary is None:
        return
    if not job.options.verify:
        job.output = job.primary.output
        job.status = "unverified"
        return
    try:
        job.verdict = await _verify_candidate(job, job.primary)
    except TLMError as exc:
        job.error = exc
        return
    _accept_verdict(job)


_UNVERIFIED = Verdict(
    passed=True, confidence=1.0, method="none", details={"reason": "no verification configured"}
)


async def _verify_candidate(job: Job, candidate: Candidate) -> Verdict:
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


def _accept_verdict(job: Job) -> None:
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


# --- fallback ---------------------------------------------------------------------------------


async def fallback(job: Job) -> None:
    """Apply the definition's fallback strategy after invalid output or failed verification."""
    if job.done:
        return
    needs = job.primary is None or (job.verdict is not None and job.verdict.passed is False)
    if not needs:
        return
    strategy = job.task.fallback_strategy
    try:
        await _fallback(job, strategy)
    except TLMError as exc:
        job.error = exc


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
            details={"review_id": review_id, "previous": _verdict_summary(job.verdict)},
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
        job.verdict = await _verify_candidate(job, candidate)
        _accept_verdict(job)
        if job.verdict.passed is False:
            job.status = "fallback"
    else:
        job.output = candidate.output
        job.status = "fallback"


def _verdict_summary(verdict: Verdict | None) -> dict[str, Any] | None:
    if verdict is None:
        return None
    return {"passed": verdict.passed, "confidence": verdict.confidence, "method": verdict.method}


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
    job.error = error


# --- finish -----------------------------------------------------------------------------------


async def finish_recorded(job: Job) -> ExecutionResult:
    """:func:`finish`, then wait for the record as the durability contract says.

    A successful execution whose record cannot be kept gets ``result.error`` set to
    :class:`~tlm.errors.RecordNotCommitted` (output kept); a failed one keeps its own error,
    with a note saying where its record went.
    """
    recorder = job.runtime.recorder
    result = finish(job)
    if recorder is None:
        return result
    problem = await recorder.settle(result)
    if problem is None:
        return result
    if job.error is not None:
        job.error.add_note(str(problem))
        return result
    job.result = attrs.evolve(result, error=problem)
    return job.result


def finish_unawaited(job: Job) -> ExecutionResult:
    """:func:`finish` for an execution nobody will wait for (cancelled): its record is written,
    without back-pressure on the caller."""
    result = finish(job)
    if job.runtime.recorder is not None:
        job.runtime.recorder.discard(job.execution_id)
    return result


def finish(job: Job) -> ExecutionResult:
    """Build the result, store a verified output in the cache, and close the execution's trace.

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
    if (
        job.key is not None
        and runtime.cache is not None
        and not job.cache_hit
        and result.status == "verified"
        and not (job.span is not None and job.span.redaction.holds_value(result.output))
    ):  # an output holding a redacted value or a key is never written to the cache file
        runtime.cache.put(
            job.key,
            task_id=result.task_id,
            task_version=result.task_version,
            output=result.output,
            meta={
                "models_used": list(result.models_used),
                "verdict": _verdict_summary(result.verdict),
                "execution_id": result.execution_id,
            },
            ttl_s=job.definition.cache.ttl_s,
        )
    if runtime.recorder is not None:
        runtime.recorder.expect(job.execution_id)
    runtime.tracing.close(job, result)
    return result
