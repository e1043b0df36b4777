"""The span API the engine calls: one root span per execution, one per model call and verifier.

Library code uses only the OpenTelemetry API; without an SDK every span is a no-op and nothing
here does any work (values are serialised only when ``span.is_recording()``). Each helper returns a
context manager that starts the span, makes it current, and ends it on exit; an exception escaping
the block marks the span as failed (``error.type``, a sanitised message, status ERROR) and is
re-raised. Open and close each span in the same task.

Example::

    with execution_span(tracer, task_id="t", task_version="1.0.0", execution_id=eid,
                        input=data) as ex:
        with model_call_span(tracer, request, provider="openai") as call:
            response = await provider.complete(request)
            call.set_response(response)
        ex.set_result(output=..., prompt_variant="default", models_used=[...], verdict=None,
                      cost_usd=response.cost_usd, cost_source="catalog",
                      tokens=(10, 20), cache_hit=False, fallback=None, attempts=1)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tlm.telemetry import conventions as c
from tlm.telemetry.redact import redact as redact_value
from tlm.telemetry.redact import sanitize_message, to_json

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from tlm.providers.base import ChatRequest, ChatResponse
    from tlm.verify.base import Verdict

__all__ = (
    "get_tracer",
    "execution_span",
    "model_call_span",
    "verification_span",
    "ExecutionSpan",
    "ModelCallSpan",
    "VerificationSpan",
    "error_type",
)


def get_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """TLM's tracer from ``provider`` (default: the global one, a no-op until an SDK is set)."""
    return trace.get_tracer(
        c.INSTRUMENTATION_NAME, tracer_provider=provider, schema_url=c.SCHEMA_URL
    )


def error_type(exc: BaseException) -> str:
    """The low-cardinality ``error.type`` of ``exc``: its class name."""
    return type(exc).__qualname__


class _SpanScope:
    """Starts ``span`` as current on enter, ends it on exit; failures mark it as an error."""

    __slots__ = ("_token", "span")

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self._token: object = None

    @property
    def recording(self) -> bool:
        """Whether the span records anything (``False`` without an SDK)."""
        return self.span.is_recording()

    def set_error(self, exc: BaseException) -> None:
        """Record ``exc`` on the span: ``error.type``, a sanitised message, status ERROR."""
        span = self.span
        if not span.is_recording():
            return
        message = sanitize_message(str(exc))
        span.set_attributes({c.ERROR_TYPE: error_type(exc), c.TLM_ERROR_MESSAGE: message})
        span.set_status(Status(StatusCode.ERROR, message))

    def __enter__(self) -> Self:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None:
                self.set_error(exc)
        finally:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self.span.end()


class ExecutionSpan(_SpanScope):
    """The root span of one execution (``tlm.execute {task_id}``, INTERNAL)."""

    __slots__ = ("_redact",)

    def __init__(self, span: trace.Span, redact_fields: Collection[str]) -> None:
        super().__init__(span)
        self._redact = redact_fields

    def set_prompt(self, prompt: str, *, system: str | None = None) -> None:
        """Record the rendered prompt (content; needed for fine-tuning export)."""
        span = self.span
        if not span.is_recording():
            return
        if system:
            span.set_attributes({c.TLM_PROMPT: prompt, c.TLM_PROMPT_SYSTEM: system})
        else:
            span.set_attribute(c.TLM_PROMPT, prompt)

    def set_selection(self, explanation: Mapping[str, Any]) -> None:
        """Record why the models were ordered as they were (``tlm.selection``, JSON)."""
        if self.span.is_recording():
            self.span.set_attribute(c.TLM_SELECTION, to_json(explanation))

    def set_result(
        self,
        *,
        output: Any,
        prompt_variant: str | None = None,
        models_used: Iterable[str] = (),
        verdict: Verdict | None = None,
        cost_usd: float = 0.0,
        cost_source: str | None = None,
        tokens: tuple[int, int] = (0, 0),
        cache_hit: bool = False,
        fallback: str | bool | None = None,
        attempts: int = 1,
        budget: Mapping[str, float] | None = None,
    ) -> None:
        """Record the outcome of a successful execution.

        Args:
            output: The final output (JSON-able); stored as ``tlm.output`` after redaction.
            prompt_variant: The prompt variant used.
            models_used: Model ids that contributed, in order.
            verdict: The verification verdict, if verification ran.
            cost_usd: Total cost of the execution in USD (all calls, verification included).
            cost_source: Where the cost comes from (``"catalog"``, ``"provider"``, ``"estimate"``).
            tokens: Total ``(input, output)`` tokens.
            cache_hit: Whether the result came from a cache.
            fallback: The fallback strategy applied (``True`` when unnamed), if any.
            attempts: Model-call attempts made, retries included.
            budget: Budget facts, e.g. ``{"limit_usd": 0.1, "remaining_usd": 0.07}``.
        """
        span = self.span
        if not span.is_recording():
            return
        attrs: dict[str, AttributeValue] = {
            c.TLM_OUTPUT: to_json(redact_value(output, self._redact)),
            c.TLM_MODELS_USED: tuple(models_used),
            c.TLM_COST_USD: float(cost_usd),
            c.TLM_USAGE_INPUT_TOKENS: int(tokens[0]),
            c.TLM_USAGE_OUTPUT_TOKENS: int(tokens[1]),
            c.TLM_CACHE_HIT: bool(cache_hit),
            c.TLM_ATTEMPTS: int(attempts),
            c.TLM_STATUS: "ok",
        }
        if prompt_variant is not None:
            attrs[c.TLM_PROMPT_VARIANT] = prompt_variant
        if cost_source is not None:
            attrs[c.TLM_COST_SOURCE] = cost_source
        if fallback:
            attrs[c.TLM_FALLBACK] = fallback if isinstance(fallback, str) else "fallback"
        if verdict is not None:
            _verdict_attributes(verdict, attrs, self._redact)
        if budget:
            for key, value in budget.items():
                attrs[c.TLM_BUDGET_PREFIX + key] = value
        span.set_attributes(attrs)

    def set_error(self, exc: BaseException) -> None:
        """Record a failed execution; the record is still written, with ``status="error"``."""
        if self.span.is_recording():
            self.span.set_attribute(c.TLM_STATUS, "error")
            super().set_error(exc)


class ModelCallSpan(_SpanScope):
    """A CLIENT span per model call, named ``{gen_ai.operation.name} {gen_ai.request.model}``."""

    __slots__ = ()

    def set_response(self, response: ChatResponse) -> None:
        """Record the response: id, model, finish reason, token usage, cost and attempts."""
        span = self.span
        if not span.is_recording():
            return
        usage = response.usage
        attrs: dict[str, AttributeValue] = {
            c.GEN_AI_RESPONSE_MODEL: response.model,
            c.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
            c.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
            c.TLM_COST_USD: response.cost_usd,
            c.TLM_ATTEMPTS: response.attempts,
        }
        if usage.cached_input_tokens:
            attrs[c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_input_tokens
        if usage.reasoning_tokens:
            attrs[c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
        if response.response_id is not None:
            attrs[c.GEN_AI_RESPONSE_ID] = response.response_id
        if response.finish_reason is not None:
            attrs[c.GEN_AI_RESPONSE_FINISH_REASONS] = (response.finish_reason,)
        span.set_attributes(attrs)


class VerificationSpan(_SpanScope):
    """A verifier's span (``tlm.verify {method}``, INTERNAL)."""

    __slots__ = ("_redact",)

    def __init__(self, span: trace.Span, redact_fields: Collection[str]) -> None:
        super().__init__(span)
        self._redact = redact_fields

    def set_verdict(self, verdict: Verdict) -> None:
        """Record the verdict as ``gen_ai.evaluation.*`` and ``tlm.verification.*``."""
        if not self.span.is_recording():
            return
        attrs: dict[str, AttributeValue] = {}
        _verdict_attributes(verdict, attrs, self._redact)
        self.span.set_attributes(attrs)


def _verdict_attributes(
    verdict: Verdict, attrs: dict[str, AttributeValue], redact_fields: Collection[str]
) -> None:
    passed = verdict.passed
    label = "pending" if passed is None else ("pass" if passed else "fail")
    attrs[c.GEN_AI_EVALUATION_NAME] = verdict.method
    attrs[c.GEN_AI_EVALUATION_SCORE_VALUE] = float(verdict.confidence)
    attrs[c.GEN_AI_EVALUATION_SCORE_LABEL] = label
    attrs[c.TLM_VERIFICATION_METHOD] = verdict.method
    attrs[c.TLM_VERIFICATION_CONFIDENCE] = float(verdict.confidence)
    if passed is not None:
        attrs[c.TLM_VERIFICATION_PASSED] = passed
    details = verdict.details
    if details:
        explanation = details.get("explanation") or details.get("reason")
        if isinstance(explanation, str):
            attrs[c.GEN_AI_EVALUATION_EXPLANATION] = explanation
        attrs[c.TLM_VERIFICATION_DETAILS] = to_json(redact_value(details, redact_fields))


def execution_span(
    tracer: trace.Tracer,
    *,
    task_id: str,
    task_version: str,
    execution_id: str,
    input: Any,
    options: Mapping[str, Any] | None = None,
    redact: Collection[str] = (),
) -> ExecutionSpan:
    """Start the root span of one execution: ``with execution_span(...) as ex: ...``.

    ``input`` (and ``options``) are stored as compact JSON with every field named in ``redact``
    replaced by ``"[REDACTED]"``; the same redaction applies to the output and verification
    details given later.
    """
    redact_fields = frozenset(redact) if redact else frozenset()
    span = tracer.start_span(f"{c.EXECUTE_SPAN} {task_id}", kind=SpanKind.INTERNAL)
    if span.is_recording():
        attrs: dict[str, AttributeValue] = {
            c.TLM_TASK_ID: task_id,
            c.TLM_TASK_VERSION: task_version,
            c.TLM_EXECUTION_ID: execution_id,
            c.TLM_INPUT: to_json(redact_value(input, redact_fields)),
        }
        if options:
            attrs[c.TLM_OPTIONS] = to_json(redact_value(options, redact_fields))
        span.set_attributes(attrs)
    return ExecutionSpan(span, redact_fields)


def model_call_span(
    tracer: trace.Tracer, request: ChatRequest, *, provider: str, operation: str = "chat"
) -> ModelCallSpan:
    """Start a CLIENT span for one model call: ``with model_call_span(...) as call: ...``."""
    attrs: dict[str, AttributeValue] = {
        c.GEN_AI_OPERATION_NAME: operation,
        c.GEN_AI_PROVIDER_NAME: provider,
        c.GEN_AI_REQUEST_MODEL: request.model,
    }
    if request.temperature is not None:
        attrs[c.GEN_AI_REQUEST_TEMPERATURE] = request.temperature
    if request.max_tokens is not None:
        attrs[c.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
    if request.seed is not None:
        attrs[c.GEN_AI_REQUEST_SEED] = request.seed
    span = tracer.start_span(f"{operation} {request.model}", kind=SpanKind.CLIENT, attributes=attrs)
    return ModelCallSpan(span)


def verification_span(
    tracer: trace.Tracer, method: str, *, redact: Collection[str] = ()
) -> VerificationSpan:
    """Start a verifier's span: ``with verification_span(tracer, "consensus") as v: ...``."""
    span = tracer.start_span(
        f"{c.VERIFY_SPAN} {method}",
        kind=SpanKind.INTERNAL,
        attributes={c.TLM_VERIFICATION_METHOD: method},
    )
    return VerificationSpan(span, frozenset(redact) if redact else frozenset())
