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

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tlm.telemetry import conventions as c
from tlm.telemetry.calls import (
    EmbeddingSpan,
    ModelCallSpan,
    embedding_span,
    model_call_span,
    traced_embed,
)
from tlm.telemetry.metrics import verdict_label
from tlm.telemetry.redact import Redaction, sanitize_message, to_json
from tlm.telemetry.scope import (
    Instruments,
    SpanScope,
    current_instruments,
    error_type,
    get_tracer,
    with_instruments,
)

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from tlm.verify.base import Verdict

__all__ = (
    "get_tracer",
    "execution_span",
    "model_call_span",
    "embedding_span",
    "verification_span",
    "traced_embed",
    "ExecutionSpan",
    "ModelCallSpan",
    "EmbeddingSpan",
    "VerificationSpan",
    "Instruments",
    "current_instruments",
    "with_instruments",
    "error_type",
)


class ExecutionSpan(SpanScope):
    """The root span of one execution (``tlm.execute {task_id}``, INTERNAL).

    Everything it records passes through its :class:`~tlm.telemetry.redact.Redaction` (the
    configured one plus this execution's redacted values): input, options, prompt, output,
    verification details and the error message.
    """

    __slots__ = ("redaction",)

    def __init__(self, span: trace.Span, redaction: Redaction) -> None:
        super().__init__(span)
        self.redaction = redaction

    def _message(self, exc: BaseException) -> str:
        return sanitize_message(self.redaction.text(str(exc)))

    def set_prompt(self, prompt: str, *, system: str | None = None) -> None:
        """Record the rendered prompt (content; needed for fine-tuning export)."""
        span = self.span
        if not span.is_recording():
            return
        prompt = self.redaction.text(prompt)
        if system:
            system = self.redaction.fixed_text(system)  # the variant's, the same every time
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
        evaluated_response_id: str | None = None,
    ) -> None:
        """Record the outcome of an execution (a failed one too, before :meth:`set_error`).

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
            evaluated_response_id: The ``gen_ai.response.id`` of the reply the verdict judged.

        A verdict of a method other than ``none`` becomes a ``gen_ai.evaluation.result`` event
        on this span (whose output it judges); ``none`` (nothing verified) reports no score.
        """
        span = self.span
        if not span.is_recording():
            return
        attrs: dict[str, AttributeValue] = {
            c.TLM_OUTPUT: self.redaction.json(output),
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
            _verdict_attributes(verdict, attrs, self.redaction)
        if budget:
            for key, value in budget.items():
                attrs[c.TLM_BUDGET_PREFIX + key] = value
        span.set_attributes(attrs)
        if verdict is not None and verdict.method != "none":
            span.add_event(
                c.GEN_AI_EVALUATION_RESULT,
                _evaluation_event(verdict, evaluated_response_id, self.redaction),
            )

    def set_error(self, exc: BaseException) -> None:
        """Record a failed execution; the record is still written, with ``status="error"``."""
        if self.span.is_recording():
            self.span.set_attribute(c.TLM_STATUS, "error")
            super().set_error(exc)


class VerificationSpan(SpanScope):
    """A verifier's span (``tlm.verify {method}``, INTERNAL)."""

    __slots__ = ("redaction",)

    def __init__(self, span: trace.Span, redaction: Redaction) -> None:
        super().__init__(span)
        self.redaction = redaction

    def _message(self, exc: BaseException) -> str:
        return sanitize_message(self.redaction.text(str(exc)))

    def set_verdict(self, verdict: Verdict) -> None:
        """Record the verdict as ``tlm.verification.*`` (the evaluation event goes on the root)."""
        if not self.span.is_recording():
            return
        attrs: dict[str, AttributeValue] = {}
        _verdict_attributes(verdict, attrs, self.redaction)
        self.span.set_attributes(attrs)


def _verdict_attributes(
    verdict: Verdict, attrs: dict[str, AttributeValue], redaction: Redaction
) -> None:
    attrs[c.TLM_VERIFICATION_METHOD] = verdict.method
    attrs[c.TLM_VERIFICATION_CONFIDENCE] = float(verdict.confidence)
    if verdict.passed is not None:
        attrs[c.TLM_VERIFICATION_PASSED] = verdict.passed
    if verdict.details:
        attrs[c.TLM_VERIFICATION_DETAILS] = redaction.json(verdict.details)


def _explanation(details: Mapping[str, Any]) -> str | None:
    """Why the verdict is what it is: an explanation, a reason, or the issues found."""
    for key in ("explanation", "reason", "error"):
        value = details.get(key)
        if isinstance(value, str) and value:
            return value
    issues = details.get("issues")
    if isinstance(issues, list | tuple) and issues:
        return "; ".join(str(issue) for issue in issues)
    return None


def _evaluation_event(
    verdict: Verdict, response_id: str | None, redaction: Redaction
) -> dict[str, AttributeValue]:
    """The attributes of a ``gen_ai.evaluation.result`` event."""
    attrs: dict[str, AttributeValue] = {
        c.GEN_AI_EVALUATION_NAME: verdict.method,
        c.GEN_AI_EVALUATION_SCORE_VALUE: float(verdict.confidence),
        c.GEN_AI_EVALUATION_SCORE_LABEL: verdict_label(verdict.passed),
    }
    explanation = _explanation(verdict.details)
    if explanation is not None:
        attrs[c.GEN_AI_EVALUATION_EXPLANATION] = redaction.text(explanation)
    if response_id:
        attrs[c.GEN_AI_RESPONSE_ID] = response_id
    return attrs


def execution_span(
    tracer: trace.Tracer,
    *,
    task_id: str,
    task_version: str,
    execution_id: str,
    input: Any,
    options: Mapping[str, Any] | None = None,
    redact: Collection[str] = (),
    redaction: Redaction | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    tags: Sequence[str] = (),
    metadata: Mapping[str, str] | None = None,
) -> ExecutionSpan:
    """Start the root span of one execution: ``with execution_span(...) as ex: ...``.

    The root is a GenAI ``invoke_workflow`` operation named after the task. ``input`` (and
    ``options``) are stored as compact JSON with every field named in ``redact`` (or
    ``redaction.fields``) replaced by ``"[REDACTED]"``, and the values those fields hold in
    ``input`` masked wherever else they appear; the same applies to the prompt, output,
    verification details and error message given later. Strings shaped like API keys, and the
    ``redaction``'s secrets, are masked too. ``session_id``, ``user_id``, ``tags`` and
    ``metadata`` group executions in a backend.
    """
    base = redaction if redaction is not None else Redaction(fields=frozenset(redact))
    scope = base.for_input(input)
    span = tracer.start_span(
        f"{c.EXECUTE_SPAN} {task_id}",
        kind=SpanKind.INTERNAL,
        attributes={c.GEN_AI_OPERATION_NAME: "invoke_workflow", c.GEN_AI_WORKFLOW_NAME: task_id},
    )
    if span.is_recording():
        attrs: dict[str, AttributeValue] = {
            c.TLM_TASK_ID: task_id,
            c.TLM_TASK_VERSION: task_version,
            c.TLM_EXECUTION_ID: execution_id,
            c.TLM_INPUT: scope.json(input),
        }
        if options:
            attrs[c.TLM_OPTIONS] = scope.json(options)
        if session_id:
            attrs[c.SESSION_ID] = session_id
            attrs[c.GEN_AI_CONVERSATION_ID] = session_id
        if user_id:
            attrs[c.USER_ID] = user_id
        if tags:
            attrs[c.TAG_TAGS] = tuple(tags)
        if metadata:
            attrs[c.METADATA] = to_json(dict(metadata))
        span.set_attributes(attrs)
    return ExecutionSpan(span, scope)


def verification_span(
    tracer: trace.Tracer,
    method: str,
    *,
    redact: Collection[str] = (),
    redaction: Redaction | None = None,
) -> VerificationSpan:
    """Start a verifier's span: ``with verification_span(tracer, "consensus") as v: ...``.

    ``redaction`` (default: the ``redact`` fields) applies to the verdict's details.
    """
    scope = redaction if redaction is not None else Redaction(fields=frozenset(redact))
    span = tracer.start_span(
        f"{c.VERIFY_SPAN} {method}",
        kind=SpanKind.INTERNAL,
        attributes={c.TLM_VERIFICATION_METHOD: method},
    )
    return VerificationSpan(span, scope)
