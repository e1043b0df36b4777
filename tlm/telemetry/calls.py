"""CLIENT spans of provider calls: chat completions and embeddings, with the GenAI metrics.

Each span starts with its :class:`~tlm.telemetry.targets.CallTarget`'s attributes (provider, the
model name sent, server), the request parameters and ``gen_ai.output.type``; with content capture
on, the messages in the conventions' JSON shapes. On exit the call's duration (and, when it
succeeded, its tokens) go to the metrics, when there are any.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from attrs import evolve as attrs_evolve
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tlm.pricing import price
from tlm.providers.base import Usage
from tlm.telemetry import conventions as c
from tlm.telemetry.content import input_messages, output_messages
from tlm.telemetry.metrics import ExecutionMetrics
from tlm.telemetry.redact import Redaction, sanitize_message
from tlm.telemetry.scope import SpanScope, current_instruments, error_type
from tlm.telemetry.targets import CallTarget, call_target

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from tlm.providers.base import ChatRequest, ChatResponse, EmbeddingResponse
    from tlm.providers.retry import Attempt

__all__ = (
    "ModelCallSpan",
    "EmbeddingSpan",
    "model_call_span",
    "embedding_span",
    "traced_embed",
)


class _CallScope(SpanScope):
    """A CLIENT span of one provider call; records the GenAI client metrics on exit."""

    __slots__ = (
        "_capture",
        "_metrics",
        "_operation",
        "_response_model",
        "_started",
        "_target",
        "_usage",
    )

    def __init__(
        self,
        span: trace.Span,
        target: CallTarget,
        metrics: ExecutionMetrics | None,
        capture_content: bool,
        operation: str = "chat",
    ) -> None:
        super().__init__(span)
        self._operation = operation
        self._target = target
        self._metrics = metrics
        self._capture = capture_content
        self._started = 0.0
        self._usage: Usage | None = None
        self._response_model: str | None = None

    def __enter__(self) -> Self:
        if self._metrics is not None:
            self._started = time.perf_counter()
        return super().__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        metrics = self._metrics
        if metrics is not None:
            attributes = getattr(self.span, "attributes", None) or {}
            metrics.record_call(
                {c.GEN_AI_OPERATION_NAME: self._operation, **self._target.attributes, **attributes},
                time.perf_counter() - self._started,
                usage=None if exc is not None else self._usage,
                response_model=self._response_model,
                error_type=None if exc is None else error_type(exc),
            )
        super().__exit__(exc_type, exc, tb)

    def _cost_attributes(
        self, attrs: dict[str, AttributeValue], billed: Usage, cost: float, batch: bool = False
    ) -> None:
        """The cost, and its input and output parts priced (:func:`tlm.pricing.price`) from the
        usage billed, so the parts add up to the cost."""
        attrs[c.TLM_COST_USD] = cost
        card = self._target.card
        if card is not None:
            output = Usage(output_tokens=billed.output_tokens)
            attrs[c.TLM_COST_OUTPUT_USD] = price(card, output, batch=batch)
            prompt = Usage(billed.input_tokens, 0, billed.cached_input_tokens)
            attrs[c.TLM_COST_INPUT_USD] = price(card, prompt, batch=batch)


class ModelCallSpan(_CallScope):
    """A CLIENT span per model call, named ``{gen_ai.operation.name} {gen_ai.request.model}``.

    A provider's error text may quote the prompt, and captured messages hold it: both are
    cleaned by ``redaction`` (the execution's redacted values and API keys), when given.
    """

    __slots__ = ("redaction",)

    def __init__(
        self,
        span: trace.Span,
        target: CallTarget,
        metrics: ExecutionMetrics | None,
        capture_content: bool,
        operation: str = "chat",
        redaction: Redaction | None = None,
    ) -> None:
        super().__init__(span, target, metrics, capture_content, operation)
        self.redaction = redaction

    def _message(self, exc: BaseException) -> str:
        text = str(exc)
        return sanitize_message(self.redaction.text(text) if self.redaction else text)

    def set_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Record every request sent for this call: count, outcomes and what each cost."""
        if not attempts or not self.span.is_recording():
            return
        self.span.set_attributes(
            {
                c.TLM_ATTEMPTS: len(attempts),
                c.TLM_ATTEMPT_OUTCOMES: tuple(
                    a.outcome if a.status is None else f"{a.outcome} {a.status}" for a in attempts
                ),
                c.TLM_ATTEMPT_COSTS_USD: tuple(float(a.cost_usd) for a in attempts),
            }
        )

    def set_queue_wait(self, seconds: float) -> None:
        """Record the time this call waited for a slot or a rate-limit bucket."""
        if self.span.is_recording():
            self.span.set_attribute(c.TLM_QUEUE_WAIT_MS, round(seconds * 1000, 3))

    def set_response(
        self, response: ChatResponse, *, billed: Usage | None = None, batch: bool = False
    ) -> None:
        """Record the response: id, model, finish reason, token usage, cost and attempts.

        The tokens are the provider's report; the cost (``response.cost_usd``) is split into its
        input and output parts from ``billed``, the usage it was priced from (default: the
        response's own), at the batch prices with ``batch``.
        """
        usage = response.usage
        self._usage = usage
        self._response_model = response.model
        span = self.span
        if not span.is_recording():
            return
        attrs: dict[str, AttributeValue] = {
            c.GEN_AI_RESPONSE_MODEL: response.model,
            c.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
            c.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
            c.TLM_ATTEMPTS: response.attempts,
        }
        self._cost_attributes(attrs, billed or usage, response.cost_usd, batch)
        if usage.cached_input_tokens:
            attrs[c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_input_tokens
        if usage.cache_creation_input_tokens:
            attrs[c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_creation_input_tokens
        if usage.reasoning_tokens:
            attrs[c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
        if response.response_id is not None:
            attrs[c.GEN_AI_RESPONSE_ID] = response.response_id
        if response.finish_reason is not None:
            attrs[c.GEN_AI_RESPONSE_FINISH_REASONS] = (response.finish_reason,)
        if self._capture:
            text = response.text
            if self.redaction is not None and text:
                text = self.redaction.text(text)
            attrs[c.GEN_AI_OUTPUT_MESSAGES] = output_messages(text, response.finish_reason)
        span.set_attributes(attrs)


class EmbeddingSpan(_CallScope):
    """A CLIENT span per embeddings call, named ``embeddings {gen_ai.request.model}``."""

    __slots__ = ()

    def set_response(self, response: EmbeddingResponse) -> None:
        """Record the usage, cost and vector size of an embeddings reply."""
        self._usage = response.usage
        span = self.span
        if not span.is_recording():
            return
        attrs: dict[str, AttributeValue] = {
            c.GEN_AI_USAGE_INPUT_TOKENS: response.usage.input_tokens,
        }
        self._cost_attributes(attrs, response.usage, response.cost_usd)
        if response.vectors:
            attrs["gen_ai.embeddings.dimension.count"] = len(response.vectors[0])
        span.set_attributes(attrs)


def model_call_span(
    tracer: trace.Tracer,
    request: ChatRequest,
    *,
    provider: str,
    operation: str = "chat",
    target: CallTarget | None = None,
    capture_content: bool = False,
    metrics: ExecutionMetrics | None = None,
    redaction: Redaction | None = None,
) -> ModelCallSpan:
    """Start a CLIENT span for one model call: ``with model_call_span(...) as call: ...``.

    ``target`` (default: from ``provider`` and the request's catalog id) names the provider's
    model and server. With ``capture_content`` the messages are recorded in the conventions'
    shapes (cleaned by ``redaction``); with ``metrics`` the call's duration and tokens are
    measured. ``redaction`` also cleans the error message if the call fails.
    """
    target = target or call_target(provider, request.model)
    attrs: dict[str, AttributeValue] = {c.GEN_AI_OPERATION_NAME: operation, **target.attributes}
    attrs[c.GEN_AI_OUTPUT_TYPE] = "text" if request.output_schema is None else "json"
    if request.temperature is not None:
        attrs[c.GEN_AI_REQUEST_TEMPERATURE] = request.temperature
    if request.max_tokens is not None:
        attrs[c.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
    if request.seed is not None:
        attrs[c.GEN_AI_REQUEST_SEED] = request.seed
    span = tracer.start_span(
        f"{operation} {target.provider_model}", kind=SpanKind.CLIENT, attributes=attrs
    )
    if capture_content and span.is_recording():
        messages = request.messages
        if redaction is not None:
            messages = tuple(attrs_evolve(m, content=redaction.text(m.content)) for m in messages)
        history, system = input_messages(messages, system_separate=target.system_separate)
        span.set_attribute(c.GEN_AI_INPUT_MESSAGES, history)
        if system is not None:
            span.set_attribute(c.GEN_AI_SYSTEM_INSTRUCTIONS, system)
    return ModelCallSpan(span, target, metrics, capture_content, operation, redaction)


def embedding_span(
    tracer: trace.Tracer,
    target: CallTarget,
    count: int,
    *,
    metrics: ExecutionMetrics | None = None,
) -> EmbeddingSpan:
    """Start a CLIENT span for one embeddings call of ``count`` texts."""
    attrs: dict[str, AttributeValue] = {
        c.GEN_AI_OPERATION_NAME: c.EMBEDDINGS_SPAN_OPERATION,
        **target.attributes,
        c.TLM_EMBEDDING_COUNT: count,
    }
    span = tracer.start_span(
        f"{c.EMBEDDINGS_SPAN_OPERATION} {target.provider_model}",
        kind=SpanKind.CLIENT,
        attributes=attrs,
    )
    return EmbeddingSpan(span, target, metrics, False, c.EMBEDDINGS_SPAN_OPERATION)


async def traced_embed(provider: Any, model: str, texts: Sequence[str]) -> EmbeddingResponse:
    """``provider.embed(model, texts)`` inside an embeddings span of the current instruments."""
    instruments = current_instruments()
    target = call_target(provider, model)
    with embedding_span(
        instruments.tracer, target, len(texts), metrics=instruments.metrics
    ) as span:
        response: EmbeddingResponse = await provider.embed(model, texts)
        span.set_response(response)
    return response
