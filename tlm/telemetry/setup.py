"""Wiring for applications: an SDK tracer provider that logs executions and exports spans.

:func:`create_tracer_provider` returns a provider (never set globally) with the execution-record
processor and, when an OTLP endpoint is configured, a batch OTLP/HTTP exporter whose spans lose
their message content unless ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` allows it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from tlm.telemetry.conventions import CONTENT_ATTRIBUTES
from tlm.telemetry.processor import ExecutionRecordProcessor, RecordSink

__all__ = (
    "CAPTURE_CONTENT_ENV",
    "OTLP_ENDPOINT_ENV",
    "capture_content_from_env",
    "ContentFilteringExporter",
    "create_otlp_exporter",
    "create_tracer_provider",
    "create_execution_tracer_provider",
    "otlp_endpoint_from_env",
)

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
_OTLP_TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
_CAPTURE_VALUES = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})


def capture_content_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the opt-in variable allows message content on exported spans (default: no).

    Accepts ``true``/``1``/``yes``/``on`` and the newer ``SPAN_ONLY``/``SPAN_AND_EVENT`` values.
    """
    env = os.environ if environ is None else environ
    return env.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CAPTURE_VALUES


class ContentFilteringExporter(SpanExporter):
    """Wraps an exporter; strips content attributes from spans unless ``capture_content``."""

    def __init__(
        self,
        inner: SpanExporter,
        *,
        capture_content: bool,
        content_attributes: Iterable[str] = CONTENT_ATTRIBUTES,
    ) -> None:
        self._inner = inner
        self._capture = capture_content
        self._content = frozenset(content_attributes)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._capture:
            spans = [self._strip(span) for span in spans]
        return self._inner.export(spans)

    def _strip(self, span: ReadableSpan) -> ReadableSpan:
        attrs = span.attributes or {}
        if self._content.isdisjoint(attrs):
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes={k: v for k, v in attrs.items() if k not in self._content},
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def create_otlp_exporter(endpoint: str) -> SpanExporter:
    """The standard OTLP/HTTP (protobuf) span exporter for the collector at ``endpoint``.

    ``endpoint`` is the base URL (``http://host:4318``); ``/v1/traces`` is appended unless the
    URL already has a path. Headers (e.g. credentials) come from ``OTEL_EXPORTER_OTLP_HEADERS``.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = endpoint.rstrip("/")
    traces = base if base.endswith("/v1/traces") else f"{base}/v1/traces"
    exporter: SpanExporter = OTLPSpanExporter(endpoint=traces)
    return exporter


def create_tracer_provider(
    *,
    store: RecordSink | None,
    otlp_endpoint: str | None = None,
    capture_content: bool | None = None,
    extra_processors: Iterable[SpanProcessor] = (),
    resource: Resource | None = None,
) -> TracerProvider:
    """An SDK tracer provider that records every execution in ``store`` and exports spans.

    Args:
        store: Where execution records go (``None``: no records).
        otlp_endpoint: OTLP/HTTP collector base URL; default ``OTEL_EXPORTER_OTLP_ENDPOINT``
            (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); no export when neither is set.
        capture_content: Whether exported spans keep message content; default from
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (off). The store always keeps it.
        extra_processors: More processors, added after TLM's own.
        resource: The OpenTelemetry resource (default: from the ``OTEL_*`` environment).

    Every span is sampled (so no execution goes unrecorded) and attribute values are never
    truncated. Shutting the provider down flushes the store but does not close it.
    """
    provider = TracerProvider(
        sampler=ALWAYS_ON,
        resource=resource if resource is not None else Resource.create(),
        span_limits=SpanLimits(
            max_attribute_length=SpanLimits.UNSET, max_span_attribute_length=SpanLimits.UNSET
        ),
        shutdown_on_exit=False,
    )
    if store is not None:
        provider.add_span_processor(ExecutionRecordProcessor(store))
    endpoint = otlp_endpoint_from_env() if otlp_endpoint is None else otlp_endpoint
    if endpoint:
        capture = capture_content_from_env() if capture_content is None else capture_content
        exporter = ContentFilteringExporter(create_otlp_exporter(endpoint), capture_content=capture)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    for processor in extra_processors:
        provider.add_span_processor(processor)
    return provider


def otlp_endpoint_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The OTLP endpoint from ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``..._ENDPOINT``."""
    env = os.environ if environ is None else environ
    return env.get(_OTLP_TRACES_ENDPOINT_ENV) or env.get(OTLP_ENDPOINT_ENV) or None


def create_execution_tracer_provider(
    *,
    store: RecordSink | None,
    otlp_endpoint: str | None = None,
    extra_processors: Sequence[SpanProcessor] = (),
) -> trace.TracerProvider:
    """The cheapest tracer provider that serves every configured consumer of TLM's spans.

    With an OTLP endpoint (argument or environment) or extra processors: the SDK provider of
    :func:`create_tracer_provider`. With only the store: :class:`LightTracerProvider`, which
    feeds the execution-record processor directly. With neither: the API's no-op provider.
    Each returned provider has ``force_flush()`` and ``shutdown()``.
    """
    endpoint = otlp_endpoint_from_env() if otlp_endpoint is None else otlp_endpoint
    if endpoint or extra_processors:
        return create_tracer_provider(
            store=store, otlp_endpoint=endpoint or "", extra_processors=extra_processors
        )
    if store is not None:
        from tlm.telemetry.light import LightTracerProvider

        return LightTracerProvider(store)
    return _NoOpProvider()


class _NoOpProvider(trace.NoOpTracerProvider):
    """The API's no-op provider, with the flush and shutdown the engine calls."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        return None
