"""The span machinery every TLM span shares: instruments in the context, scopes, error marks."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from tlm.telemetry import conventions as c
from tlm.telemetry.metrics import ExecutionMetrics
from tlm.telemetry.redact import sanitize_message

__all__ = (
    "Instruments",
    "with_instruments",
    "current_instruments",
    "get_tracer",
    "error_type",
    "SpanScope",
)

_INSTRUMENTS_KEY = otel_context.create_key("tlm.telemetry.instruments")


@attrs.frozen
class Instruments:
    """What TLM's spans are made with: the tracer, the metrics (if any) and the content rule.

    The engine puts its own into the OpenTelemetry context while a job's stages run, so code
    deep in a verifier (an embeddings call) traces into the engine's provider.
    """

    tracer: trace.Tracer
    metrics: ExecutionMetrics | None = None
    capture_content: bool = False
    """Record prompts and replies on model-call spans (``gen_ai.input.messages``, ...)."""


def with_instruments(
    instruments: Instruments, context: otel_context.Context | None = None
) -> otel_context.Context:
    """``context`` (default: the current one) carrying ``instruments``."""
    return otel_context.set_value(_INSTRUMENTS_KEY, instruments, context)


def current_instruments() -> Instruments:
    """The instruments in the current context, else the global tracer without metrics."""
    found = otel_context.get_value(_INSTRUMENTS_KEY)
    return found if isinstance(found, Instruments) else Instruments(get_tracer())


def get_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """TLM's tracer from ``provider`` (default: the global one, a no-op until an SDK is set)."""
    return trace.get_tracer(
        c.INSTRUMENTATION_NAME, tracer_provider=provider, schema_url=c.SCHEMA_URL
    )


def error_type(exc: BaseException) -> str:
    """The low-cardinality ``error.type`` of ``exc``: its class name."""
    return type(exc).__qualname__


class SpanScope:
    """Starts ``span`` as current on enter, ends it on exit; failures mark it as an error."""

    __slots__ = ("_token", "span")

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self._token: object = None

    @property
    def recording(self) -> bool:
        """Whether the span records anything (``False`` without an SDK)."""
        return self.span.is_recording()

    def _message(self, exc: BaseException) -> str:
        """The error message recorded for ``exc`` (subclasses clean it further)."""
        return sanitize_message(str(exc))

    def set_error(self, exc: BaseException) -> None:
        """Record ``exc`` on the span: ``error.type``, a sanitised message, status ERROR."""
        span = self.span
        if not span.is_recording():
            return
        message = self._message(exc)
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
