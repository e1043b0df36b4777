"""One model call for a stage: the messages, the request, the budget reservation, the provider
call (or an answer prefetched by a provider batch), its usage priced and charged."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from tlm.definition.model import PromptVariant
from tlm.engine.job import Job, Prefetched, deadline_exceeded
from tlm.engine.reservation import billable_usage, reserve_call
from tlm.errors import (
    ProviderError,
    ProviderTimeout,
)
from tlm.pricing import price
from tlm.providers.base import ChatRequest, ChatResponse, Message, Usage
from tlm.providers.limits import measure_queue_wait
from tlm.providers.retry import Attempt, recording_attempts
from tlm.usage import estimate_prompt_tokens

if TYPE_CHECKING:
    from tlm.catalog import ModelCard


__all__ = ("candidate_messages", "build_request", "call_model")


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
                cost = price(card, usage)  # the one place a call is priced
                response = attrs.evolve(response, cost_usd=cost)
                call_span.set_response(response, billed=usage)
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
    prompt_tokens = estimate_prompt_tokens(messages)
    estimate = card.cost(Usage(prompt_tokens, job.options.max_tokens or 0), batch=batch)
    job.ledger.before_call(estimate)
    request = build_request(job, model, messages, output_schema=output_schema)
    provider = await job.runtime.provider_for(model)  # names the span's provider and server
    try:
        with job.runtime.tracing.model_call(request, provider, card) as call_span:
            if isinstance(prefetched.outcome, ProviderError):
                raise prefetched.outcome
            response = prefetched.outcome
            cost = price(card, response.usage, batch=batch)
            response = attrs.evolve(response, cost_usd=cost)
            call_span.set_response(response, batch=batch)
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
