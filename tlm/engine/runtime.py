"""The engine's shared, long-lived parts that every stage uses: catalog, providers, cache, tracing.

A :class:`Runtime` is built and owned by :class:`tlm.Engine`; stage functions reach everything
through ``job.runtime``. Nothing here is global: two engines never share state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace

from tlm.catalog import Catalog, ModelCard
from tlm.engine.cache import ResultCache
from tlm.engine.config import EngineConfig
from tlm.engine.result import ExecuteOptions, ExecutionResult
from tlm.engine.selection import ModelEstimate, estimate_tokens, rank_models
from tlm.errors import ConfigurationError, TLMError
from tlm.providers.base import ChatRequest, Provider
from tlm.telemetry.spans import (
    ModelCallSpan,
    VerificationSpan,
    execution_span,
    model_call_span,
    verification_span,
)

if TYPE_CHECKING:
    from tlm.engine.compiled import CompiledTask
    from tlm.engine.execution import Job
    from tlm.providers.pool import ProviderPool
    from tlm.verify.review_queue import ReviewQueue

__all__ = ("Runtime", "Tracing")


@attrs.define(eq=False)
class Tracing:
    """Opens one root span per execution and activates it around each stage.

    The root span is started without being made current, so a job may move between actor tasks;
    each stage runs with the root span attached to the task's context and detaches it after, so
    model-call and verification spans nest under the right execution.
    """

    tracer: trace.Tracer
    redact: tuple[str, ...] = ()

    def open(self, job: Job) -> None:
        """Start the execution's root span."""
        job.span = execution_span(
            self.tracer,
            task_id=job.definition.id,
            task_version=job.definition.version,
            execution_id=job.execution_id,
            input=job.input,
            redact=self.redact,
        )

    @contextmanager
    def active(self, job: Job) -> Iterator[None]:
        """Make the job's root span current in this task for the duration of a stage."""
        if job.span is None:
            yield
            return
        token = otel_context.attach(trace.set_span_in_context(job.span.span))
        try:
            yield
        finally:
            otel_context.detach(token)

    def model_call(self, request: ChatRequest, provider: str) -> ModelCallSpan:
        """A CLIENT span for one model call (enter it with ``with``)."""
        return model_call_span(self.tracer, request, provider=provider)

    def verification(self, method: str) -> VerificationSpan:
        """A span for one verifier run (enter it with ``with``)."""
        return verification_span(self.tracer, method, redact=self.redact)

    def _recorded_prompt(self, job: Job) -> tuple[str, str]:
        """The prompt and system message as sent, re-rendered without the redacted fields."""
        assert job.variant is not None
        prompt = job.prompt
        if self.redact and isinstance(job.input, Mapping):
            from tlm.telemetry.redact import redact

            try:
                prompt = job.task.render(job.variant, redact(job.input, self.redact))
            except TLMError:
                prompt = "[REDACTED]"
        return prompt, job.task.system_message(job.variant)

    def close(self, job: Job, result: ExecutionResult) -> None:
        """Record the outcome on the root span and end it (the record is written from it)."""
        span = job.span
        if span is None:
            return
        if span.recording:
            if job.prompt and job.variant is not None:
                prompt, system = self._recorded_prompt(job)
                span.set_prompt(prompt, system=system)
            span.set_result(
                output=result.output,
                prompt_variant=result.prompt_variant,
                models_used=result.models_used,
                verdict=result.verdict,
                cost_usd=result.cost_usd,
                cost_source="catalog",
                tokens=(result.usage.input_tokens, result.usage.output_tokens),
                cache_hit=result.cache_hit,
                fallback=result.fallback,
                attempts=result.attempts,
                budget=_budget_facts(job),
            )
            if result.error is not None:
                span.set_error(result.error)
        span.span.end()


def _budget_facts(job: Job) -> dict[str, float]:
    limits = job.ledger.limits
    facts: dict[str, float] = {"spent_usd": job.ledger.spent_usd}
    if limits.max_cost_usd is not None:
        facts["limit_usd"] = limits.max_cost_usd
    if limits.deadline_s is not None:
        facts["deadline_s"] = limits.deadline_s
    if limits.max_attempts is not None:
        facts["max_attempts"] = float(limits.max_attempts)
    return facts


@attrs.define(eq=False)
class Runtime:
    """Catalog, providers, cache, review queue and tracing shared by every job of one engine."""

    config: EngineConfig
    catalog: Catalog
    tracing: Tracing
    pool: ProviderPool | None = None
    providers: Mapping[str, Provider] = attrs.Factory(dict)
    """Providers given explicitly per model id (tests, benchmarks); checked before the pool."""
    cache: ResultCache | None = None
    review_queue: ReviewQueue | None = None
    estimates: Callable[[str], Mapping[str, ModelEstimate]] | None = None
    """Learned per-task model estimates (the learning system), by task id."""
    clock: Callable[[], float] = time.monotonic
    model_ids: tuple[str, ...] = ()
    _rankings: dict[str, list[tuple[str, int]]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        unknown = [m for m in self.config.models if m not in self.catalog]
        if unknown:
            raise ConfigurationError(
                f"configured model(s) not in the catalog: {', '.join(unknown)} "
                f"(known: {', '.join(self.catalog.ids())})"
            )
        self.model_ids = tuple(self.config.models)

    def card(self, model_id: str) -> ModelCard:
        """The catalog card of ``model_id``."""
        return self.catalog.get(model_id)

    async def provider_for(self, model_id: str) -> Provider:
        """The provider that serves ``model_id``."""
        given = self.providers.get(model_id)
        if given is not None:
            return given
        if self.pool is None:
            raise ConfigurationError(f"no provider configured for model {model_id!r}")
        return await self.pool.provider_for(model_id)

    def rank(self, task: CompiledTask, prompt: str, options: ExecuteOptions) -> list[str]:
        """Model ids for this execution, best first (the options may restrict and order them)."""
        return self.rank_explained(task, prompt, options)[0]

    def rank_explained(
        self, task: CompiledTask, prompt: str, options: ExecuteOptions
    ) -> tuple[list[str], Mapping[str, Any] | None]:
        """:meth:`rank`, plus the input-aware selector's explanation when one decided.

        A cascade asks its first rung first; an estimates hook with a ``select`` method (the
        learning system's :class:`~tlm.learn.selector.InputAwareSelector`) reorders the models
        for this prompt once the task has enough history.
        """
        ranked = self._rank(task, prompt, options)
        if options.models:
            return ranked, None
        explanation: Mapping[str, Any] | None = None
        select = getattr(self.estimates, "select", None)
        if select is not None and ranked:
            criteria = task.definition.model_ranking_criteria
            weight = criteria.cost_priority / (criteria.quality_priority or 1.0)
            selection = select(task.definition.id, prompt, ranked, cost_weight=weight)
            ranked = list(selection.order)
            explanation = selection.to_dict()
        first = getattr(task.verifier, "first_models", None)
        if first is not None:
            leading = [m for m in first(task.definition.id) if m in ranked]
            ranked = leading + [m for m in ranked if m not in leading]
        return ranked, explanation

    def _rank(self, task: CompiledTask, prompt: str, options: ExecuteOptions) -> list[str]:
        if options.models:
            unknown = [m for m in options.models if m not in self.catalog]
            if unknown:
                raise ConfigurationError(f"unknown model(s) in options: {', '.join(unknown)}")
            candidates = [self.card(m) for m in options.models]
            criteria = attrs.evolve(
                task.definition.model_ranking_criteria, preferred_models=tuple(options.models)
            )
        else:
            candidates = [self.card(m) for m in self.model_ids]
            criteria = task.definition.model_ranking_criteria
        estimates = self.estimates(task.definition.id) if self.estimates else None
        prompt_tokens = estimate_tokens(prompt) + estimate_tokens(task.json_instructions)
        needed = prompt_tokens + (options.max_tokens or 0)
        if estimates is None and not options.models:
            # Priors only: the order is the task's own; reuse it while every model fits.
            cached = self._rankings.get(task.definition.key)
            if cached is None:
                order = rank_models(candidates, criteria, estimates=None)
                cached = [(r.id, self.card(r.id).context_window) for r in order]
                self._rankings[task.definition.key] = cached
            if all(window >= needed for _, window in cached):
                return [model_id for model_id, _ in cached]
        ranked = rank_models(
            candidates,
            criteria,
            prompt_tokens=prompt_tokens,
            max_output_tokens=options.max_tokens or 0,
            estimates=estimates,
        )
        return [r.id for r in ranked]

    async def enqueue_review(self, job: Job, output: Any) -> str:
        """Put ``job``'s output in the human review queue; returns the review id."""
        if self.review_queue is None:
            raise ConfigurationError("human review needs a review queue (a data directory)")
        queue = self.review_queue
        review_id = await anyio.to_thread.run_sync(
            lambda: queue.enqueue(
                job.execution_id, job.definition.id, job.definition.version, job.input, output
            )
        )
        return str(review_id)
