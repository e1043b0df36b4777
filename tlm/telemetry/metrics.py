"""GenAI client metrics and TLM's own, through the OpenTelemetry metrics API.

``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration`` are histograms with the
conventions' advisory bucket boundaries, one measurement per model or embeddings call.
``tlm.executions`` (by task and status), ``tlm.verifications`` (by task, method and outcome) and
``tlm.cost`` (USD, by task) are counters. Nothing is created or recorded unless a meter provider
is configured (:func:`tlm.telemetry.setup.create_meter_provider`): without one the engine holds
``None`` and the hot path skips every call here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import metrics

from tlm.telemetry import conventions as c

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from tlm.providers.base import Usage
    from tlm.verify.base import Verdict

__all__ = ("ExecutionMetrics", "METRIC_CALL_KEYS", "verdict_label")

METRIC_CALL_KEYS = (
    c.GEN_AI_OPERATION_NAME,
    c.GEN_AI_PROVIDER_NAME,
    c.GEN_AI_REQUEST_MODEL,
    c.SERVER_ADDRESS,
    c.SERVER_PORT,
)
"""The span attributes a call's measurements carry (plus the response model and error type)."""


class ExecutionMetrics:
    """The instruments TLM records into, from one meter provider."""

    def __init__(self, provider: metrics.MeterProvider) -> None:
        meter = provider.get_meter(c.INSTRUMENTATION_NAME, schema_url=c.SCHEMA_URL)
        self.token_usage = meter.create_histogram(
            c.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=c.TOKEN_USAGE_BUCKETS,
        )
        self.duration = meter.create_histogram(
            c.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=c.DURATION_BUCKETS,
        )
        self.executions = meter.create_counter(
            c.TLM_EXECUTIONS, unit="{execution}", description="Task executions, by status."
        )
        self.verifications = meter.create_counter(
            c.TLM_VERIFICATIONS,
            unit="{verification}",
            description="Verification outcomes, by method and label (pass, fail, pending).",
        )
        self.cost = meter.create_counter(
            c.TLM_COST, unit="USD", description="What executions cost, verification included."
        )

    def record_call(
        self,
        span_attributes: Mapping[str, AttributeValue],
        duration_s: float,
        *,
        usage: Usage | None,
        response_model: str | None,
        error_type: str | None,
    ) -> None:
        """One model or embeddings call: its duration, and its tokens when it succeeded."""
        attributes = {k: span_attributes[k] for k in METRIC_CALL_KEYS if k in span_attributes}
        if response_model:
            attributes[c.GEN_AI_RESPONSE_MODEL] = response_model
        if error_type:
            attributes[c.ERROR_TYPE] = error_type
        self.duration.record(duration_s, attributes)
        if usage is None:
            return
        self.token_usage.record(usage.input_tokens, {**attributes, c.GEN_AI_TOKEN_TYPE: "input"})
        if span_attributes.get(c.GEN_AI_OPERATION_NAME) != c.EMBEDDINGS_SPAN_OPERATION:
            self.token_usage.record(
                usage.output_tokens, {**attributes, c.GEN_AI_TOKEN_TYPE: "output"}
            )

    def record_execution(
        self, task_id: str, status: str, cost_usd: float, verdict: Verdict | None
    ) -> None:
        """One finished execution: its status, its cost and its verdict (when verified)."""
        self.executions.add(1, {c.TLM_TASK_ID: task_id, c.TLM_STATUS: status})
        if cost_usd > 0:
            self.cost.add(cost_usd, {c.TLM_TASK_ID: task_id})
        if verdict is not None and verdict.method != "none":
            self.verifications.add(
                1,
                {
                    c.TLM_TASK_ID: task_id,
                    c.TLM_VERIFICATION_METHOD: verdict.method,
                    c.GEN_AI_EVALUATION_SCORE_LABEL: verdict_label(verdict.passed),
                },
            )


def verdict_label(passed: bool | None) -> str:
    """``pass``, ``fail`` or ``pending``."""
    return "pending" if passed is None else ("pass" if passed else "fail")
