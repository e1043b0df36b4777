"""Telemetry is the execution log: OpenTelemetry spans, turned into one record per execution.

This package's top level needs only the OpenTelemetry API. The SDK parts live in
:mod:`tlm.telemetry.processor` (span → record) and :mod:`tlm.telemetry.setup` (tracer provider,
OTLP export), imported on demand.
"""

from tlm.telemetry.spans import (
    EmbeddingSpan,
    ExecutionSpan,
    ModelCallSpan,
    VerificationSpan,
    embedding_span,
    execution_span,
    get_tracer,
    model_call_span,
    traced_embed,
    verification_span,
)

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
)
