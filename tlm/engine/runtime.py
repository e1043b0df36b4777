"""The engine's shared, long-lived parts that every stage uses: catalog, providers, cache, tracing.

A :class:`Runtime` is built and owned by :class:`tlm.Engine`; stage functions reach everything
through ``job.runtime``. Nothing here is global: two engines never share state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio
import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace

from tlm.catalog import Catalog, ModelCard
from tlm.engine.cache import ResultCache
from tlm.engine.config import EngineConfig
from tlm.engine.result import ExecuteOptions, ExecutionResult
from tlm.engine.selection import rank_models
from tlm.errors import ConfigurationError, InputTooLarge, TLMError
from tlm.estimates import ModelEstimate
from tlm.providers.base import ChatRequest, Provider
from tlm.telemetry.metrics import ExecutionMetrics
from tlm.telemetry.redact import REDACTED, Redaction
from tlm.telemetry.spans import (
    Instruments,
    ModelCallSpan,
    VerificationSpan,
    execution_span,
    get_tracer,
    model_call_span,
    verification_span,
    with_instruments,
)
from tlm.telemetry.targets import CallTarget, call_target
from tlm.usage import estimate_tokens

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from tlm.engine.compiled import CompiledTask
    from tlm.engine.job import Job
    from tlm.engine.recording import Recorder
    from tlm.providers.pool import ProviderPool
    from tlm.verify.review_queue import ReviewQueue

__all__ = ("Runtime", "Tracing", "ManagedProvider", "open_tracing", "configured_redaction")

_SCOPE: ContextVar[Redaction | None] = ContextVar("tlm_redaction_scope", default=None)
"""The running execution's redaction (its input's redacted values), for its verifier spans."""


@runtime_checkable
class ManagedProvider(Protocol):
    """A tracer provider the engine flushes and shuts down (the SDK's, or TLM's light one)."""

    def force_flush(self, timeout_millis: int = 30000) -> bool: ...

    def shutdown(self) -> None: ...


def configured_redaction(
    config: EngineConfig, catalog: Catalog, providers: Iterable[Provider] = ()
) -> Redaction:
    """The configured redacted fields, masking the configured API keys' values too: the values
    of every catalog card's key variable and of the variables external verifiers may expand, and
    the keys of providers given explicitly (the HTTP adapters', through ``inner`` wrappers)."""
    names = {card.api_key_env for card in catalog if card.api_key_env} | set(config.external_env)
    secrets = [config.env.get(name, "").strip() for name in sorted(names)]
    for provider in providers:
        seen: object = provider
        while seen is not None:
            held = getattr(seen, "_secrets", ())
            if isinstance(held, tuple):
                secrets.extend(s for s in held if isinstance(s, str))
            seen = getattr(seen, "inner", None)
    return Redaction(fields=frozenset(config.redact)).with_secrets(secrets)


@attrs.define(eq=False)
class Tracing:
    """Opens one root span per execution and activates it around each stage.

    The root span is started without being made current, so a job may move between actor tasks;
    each stage runs with the root span attached to the task's context and detaches it after, so
    model-call and verification spans nest under the right execution.
    """

    tracer: trace.Tracer
    redact: tuple[str, ...] = ()
    metrics: ExecutionMetrics | None = None
    """GenAI client metrics and TLM's own, when a meter provider is configured."""
    capture_content: bool = False
    """Record prompts and replies on model-call spans (the store keeps them regardless)."""
    _targets: dict[tuple[str, str], CallTarget] = attrs.field(factory=dict, init=False)
    _instruments: Instruments | None = attrs.field(default=None, init=False)
    redaction: Redaction | None = None
    """What recorded content is cleaned of (default: the ``redact`` fields)."""

    def __attrs_post_init__(self) -> None:
        if self.redaction is None:
            self.redaction = Redaction(fields=frozenset(self.redact))

    def open(self, job: Job) -> None:
        """Start the execution's root span."""
        options = job.options
        job.span = execution_span(
            self.tracer,
            task_id=job.definition.id,
            task_version=job.definition.version,
            execution_id=job.execution_id,
            input=job.input,
            redaction=self.redaction,
            session_id=options.session_id,
            user_id=options.user_id,
            tags=options.tags,
            metadata=options.metadata,
        )

    @contextmanager
    def active(self, job: Job) -> Iterator[None]:
        """Make the job's root span current in this task for the duration of a stage."""
        if job.span is None:
            yield
            return
        instruments = self._instruments
        if instruments is None:
            instruments = self._instruments = Instruments(
                self.tracer, self.metrics, self.capture_content
            )
        context = with_instruments(instruments, trace.set_span_in_context(job.span.span))
        token = otel_context.attach(context)
        scope = _SCOPE.set(job.span.redaction)
        try:
            yield
        finally:
            _SCOPE.reset(scope)
            otel_context.detach(token)

    def model_call(
        self, request: ChatRequest, provider: Provider, card: ModelCard | None = None
    ) -> ModelCallSpan:
        """A CLIENT span for one model call (enter it with ``with``)."""
        key = (provider.name, request.model)
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = call_target(provider, request.model, card)
        return model_call_span(
            self.tracer,
            request,
            provider=provider.name,
            target=target,
            capture_content=self.capture_content,
            metrics=self.metrics,
            redaction=_SCOPE.get() or self.redaction,
        )

    def verification(self, method: str) -> VerificationSpan:
        """A span for one verifier run (enter it with ``with``)."""
        return verification_span(self.tracer, method, redaction=_SCOPE.get() or self.redaction)

    def _recorded_prompt(self, job: Job) -> tuple[str, str]:
        """The prompt and system message as sent, re-rendered without the redacted fields."""
        assert job.variant is not None
        prompt = job.prompt
        fields = self.redaction.fields if self.redaction else ()
        if fields and isinstance(job.input, Mapping):
            from tlm.telemetry.redact import redact

            try:
                prompt = job.task.render(job.variant, redact(job.input, fields))
            except TLMError:
                prompt = REDACTED
        return prompt, job.task.system_message(job.variant)

    def close(self, job: Job, result: ExecutionResult) -> None:
        """Record the outcome on the root span and end it (the record is written from it)."""
        span = job.span
        if span is None:
            return
        if result.error is not None and span.redaction.masks_values:
            _clean_error(result.error, span.redaction)
        if self.metrics is not None:
            self.metrics.record_execution(
                job.definition.id, result.status, result.cost_usd, result.verdict
            )
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
                evaluated_response_id=_judged_response_id(job),
            )
            if result.error is not None:
                span.set_error(result.error)
        span.span.end()


def _clean_error(error: TLMError, redaction: Redaction) -> None:
    """Mask the execution's redacted values in the error the caller receives (message, problems)."""
    problems = getattr(error, "problems", None)
    if isinstance(problems, tuple):
        error.problems = tuple(  # type: ignore[attr-defined]
            type(p)(p.source, p.path, redaction.text(p.message)) for p in problems
        )
    text = str(error)
    clean = redaction.text(text)
    if clean != text and len(error.args) <= 1:
        error.args = (clean,)


def open_tracing(
    config: EngineConfig,
    tracer_provider: trace.TracerProvider | None,
    meter_provider: MeterProvider | None,
    redaction: Redaction | None = None,
) -> tuple[Tracing, MeterProvider | None, bool]:
    """The engine's :class:`Tracing`, its meter provider and whether the engine made (owns) it.

    Without a meter provider one is made when an OTLP endpoint is configured. Message content
    is recorded on model-call spans only when something exports them (not into the light
    store-only provider) and ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` allows it.
    The ``OTEL_*`` variables are read from the process environment, as the exporters read them.
    """
    from tlm.telemetry.light import LightTracerProvider
    from tlm.telemetry.setup import capture_content_from_env, create_meter_provider

    owned = False
    if meter_provider is None:
        meter_provider = create_meter_provider(config.otlp_endpoint)
        owned = meter_provider is not None
    exported = not isinstance(tracer_provider, trace.NoOpTracerProvider | LightTracerProvider)
    tracing = Tracing(
        get_tracer(tracer_provider),
        redact=config.redact,
        metrics=None if meter_provider is None else ExecutionMetrics(meter_provider),
        capture_content=exported and capture_content_from_env(),
        redaction=redaction,
    )
    return tracing, meter_provider, owned


def _judged_response_id(job: Job) -> str | None:
    primary = job.primary
    response = getattr(primary, "response", None) if primary is not None else None
    return getattr(response, "response_id", None)


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
    recorder: Recorder | None = None
    """Holds executions until their records are safe (the durability contract)."""
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
            self._check_requested(options.models)
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
        if not ranked and candidates:  # none of their windows holds the prompt
            raise InputTooLarge(
                task.definition.id,
                estimated_tokens=needed,
                output_tokens=options.max_tokens or 0,
                windows={card.id: card.context_window for card in candidates},
            )
        return [r.id for r in ranked]

    def _check_requested(self, requested: Sequence[str]) -> None:
        """Models named in the options must be configured ones (``TLM_MODELS``/``tlm.toml``)."""
        configured = set(self.model_ids)
        outside = [m for m in requested if m not in configured]
        if not outside:
            return
        unknown = [m for m in outside if m not in self.catalog]
        what = "unknown model(s)" if unknown == outside else "model(s) not configured"
        raise ConfigurationError(
            f"{what} in options.models: {', '.join(outside)}; only configured models may be "
            f"used (configured: {', '.join(self.model_ids) or 'none'}; "
            "set TLM_MODELS or models in tlm.toml)"
        )

    async def enqueue_review(self, job: Job, output: Any) -> str:
        """Put ``job``'s output in the human review queue; returns the review id."""
        if self.review_queue is None:
            raise ConfigurationError("human review needs a review queue (a data directory)")
        from tlm.verify.human import output_spec

        queue = self.review_queue
        review_id = await anyio.to_thread.run_sync(
            lambda: queue.enqueue(
                job.execution_id,
                job.definition.id,
                job.definition.version,
                job.input,
                output,
                output_spec=output_spec(job.definition),
            )
        )
        return str(review_id)
