"""Wiring for applications: an SDK tracer provider that logs executions and exports spans.

:func:`create_tracer_provider` returns a provider (never set globally) with the execution-record
processor and, when an OTLP endpoint is configured, a batch OTLP/HTTP exporter whose spans lose
their message content unless ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` allows it and
gain the attributes OpenInference and Langfuse read (:mod:`tlm.telemetry.dialects`).
:func:`create_meter_provider` does the same for the GenAI client metrics. The resource's
``service.name`` is ``tlm`` unless ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` name one.
Signal-specific endpoints (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``..._METRICS_ENDPOINT``) are
used as given; the base ``OTEL_EXPORTER_OTLP_ENDPOINT`` gets ``/v1/traces`` or ``/v1/metrics``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanLimits,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import StatusCode

from tlm.telemetry.conventions import CONTENT_ATTRIBUTES
from tlm.telemetry.dialects import DIALECTS, dialect_attributes
from tlm.telemetry.processor import ExecutionRecordProcessor, RecordSink

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider

__all__ = (
    "CAPTURE_CONTENT_ENV",
    "OTLP_ENDPOINT_ENV",
    "capture_content_from_env",
    "ContentFilteringExporter",
    "create_otlp_exporter",
    "create_tracer_provider",
    "create_execution_tracer_provider",
    "create_meter_provider",
    "default_resource",
    "otlp_endpoint_from_env",
    "otlp_signal_url",
)

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
_OTLP_TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
_SIGNAL_ENV = {
    "traces": _OTLP_TRACES_ENDPOINT_ENV,
    "metrics": "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
}
DEFAULT_SERVICE_NAME = "tlm"
_CAPTURE_VALUES = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})


def capture_content_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the opt-in variable allows message content on exported spans (default: no).

    Accepts ``true``/``1``/``yes``/``on`` and the newer ``SPAN_ONLY``/``SPAN_AND_EVENT`` values.
    """
    env = os.environ if environ is None else environ
    return env.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CAPTURE_VALUES


class ContentFilteringExporter(SpanExporter):
    """Wraps an exporter: strips content unless ``capture_content``, then adds ``dialects``.

    Content attributes go from spans and their events; the dialects' attributes
    (:func:`tlm.telemetry.dialects.dialect_attributes`) are computed from what is left, so
    nothing derived from content survives its removal. Runs in the exporter's thread.
    """

    def __init__(
        self,
        inner: SpanExporter,
        *,
        capture_content: bool,
        content_attributes: Iterable[str] = CONTENT_ATTRIBUTES,
        dialects: Collection[str] = DIALECTS,
    ) -> None:
        self._inner = inner
        self._capture = capture_content
        self._content = frozenset(content_attributes)
        self._dialects = frozenset(dialects)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._rewrite(span) for span in spans])

    def _rewrite(self, span: ReadableSpan) -> ReadableSpan:
        attrs = dict(span.attributes or {})
        events = span.events
        if not self._capture:
            attrs = {k: v for k, v in attrs.items() if k not in self._content}
            events = tuple(self._strip_event(event) for event in events)
        if self._dialects:
            failed = span.status.status_code is StatusCode.ERROR
            extra = dialect_attributes(span.name, attrs, failed=failed, dialects=self._dialects)
            for key, value in extra.items():
                attrs.setdefault(key, value)
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attrs,
            events=events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _strip_event(self, event: Event) -> Event:
        attrs = event.attributes or {}
        if self._content.isdisjoint(attrs):
            return event
        kept = {k: v for k, v in attrs.items() if k not in self._content}
        return Event(event.name, kept, event.timestamp)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def create_otlp_exporter(endpoint: str) -> SpanExporter:
    """The standard OTLP/HTTP (protobuf) span exporter posting to the URL ``endpoint``.

    Headers (e.g. credentials) come from ``OTEL_EXPORTER_OTLP_HEADERS``.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint)
    return exporter


def otlp_signal_url(
    signal: str, base: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The URL a ``signal`` (``traces``, ``metrics``) is posted to, or ``None``.

    ``base`` (an explicit base URL such as ``http://host:4318``) gets ``/v1/{signal}`` appended
    (unless it already ends with it); ``""`` means no export. With ``None``:
    ``OTEL_EXPORTER_OTLP_{SIGNAL}_ENDPOINT`` as given, else ``OTEL_EXPORTER_OTLP_ENDPOINT`` with
    ``/v1/{signal}`` appended, as the OTLP exporter specification says.
    """
    env = os.environ if environ is None else environ
    path = f"/v1/{signal}"
    if base == "":
        return None  # explicitly no export
    if base is None:
        specific = env.get(_SIGNAL_ENV[signal], "").strip()
        if specific:
            return specific
        base = env.get(OTLP_ENDPOINT_ENV, "").strip()
        if not base:
            return None
    base = base.rstrip("/")
    for other in _SIGNAL_ENV:
        if other != signal and base.endswith(f"/v1/{other}"):
            base = base[: -len(f"/v1/{other}")]
    return base if base.endswith(path) else base + path


def default_resource() -> Resource:
    """The ``OTEL_*`` environment's resource, with ``service.name`` ``tlm`` unless it names one."""
    resource = Resource.create()
    name = str(resource.attributes.get("service.name", ""))
    if not name or name.startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    return resource


def create_tracer_provider(
    *,
    store: RecordSink | None,
    otlp_endpoint: str | None = None,
    capture_content: bool | None = None,
    extra_processors: Iterable[SpanProcessor] = (),
    resource: Resource | None = None,
    dialects: Collection[str] = DIALECTS,
) -> TracerProvider:
    """An SDK tracer provider that records every execution in ``store`` and exports spans.

    Args:
        store: Where execution records go (``None``: no records).
        otlp_endpoint: OTLP/HTTP collector base URL (``/v1/traces`` is appended); default
            ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as given, else ``OTEL_EXPORTER_OTLP_ENDPOINT``
            plus ``/v1/traces``; no export when none is set.
        capture_content: Whether exported spans keep message content; default from
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (off). The store always keeps it.
        extra_processors: More processors, added after TLM's own.
        resource: The OpenTelemetry resource (default: :func:`default_resource`).
        dialects: Backend dialects added to exported spans (``openinference``, ``langfuse``).

    Every span is sampled (so no execution goes unrecorded) and attribute values are never
    truncated. Shutting the provider down flushes the store but does not close it.
    """
    provider = TracerProvider(
        sampler=ALWAYS_ON,
        resource=resource if resource is not None else default_resource(),
        span_limits=SpanLimits(
            max_attribute_length=SpanLimits.UNSET, max_span_attribute_length=SpanLimits.UNSET
        ),
        shutdown_on_exit=False,
    )
    if store is not None:
        provider.add_span_processor(ExecutionRecordProcessor(store))
    url = otlp_signal_url("traces", otlp_endpoint)
    if url:
        capture = capture_content_from_env() if capture_content is None else capture_content
        exporter = ContentFilteringExporter(
            create_otlp_exporter(url), capture_content=capture, dialects=dialects
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
    for processor in extra_processors:
        provider.add_span_processor(processor)
    return provider


def otlp_endpoint_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The traces URL from the environment (see :func:`otlp_signal_url`), or ``None``."""
    return otlp_signal_url("traces", None, environ)


def create_meter_provider(
    otlp_endpoint: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    export_interval_s: float = 60.0,
    resource: Resource | None = None,
) -> MeterProvider | None:
    """An SDK meter provider exporting over OTLP/HTTP, or ``None`` when nothing would read it.

    ``None`` when no endpoint is configured (argument or environment) or
    ``OTEL_METRICS_EXPORTER`` is ``none`` (e.g. Phoenix, which takes no metrics). Shut it down
    to flush the last measurements.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        return None
    url = otlp_signal_url("metrics", otlp_endpoint, env)
    if not url:
        return None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=url), export_interval_millis=export_interval_s * 1000
    )
    return MeterProvider(
        metric_readers=[reader],
        resource=resource if resource is not None else default_resource(),
        shutdown_on_exit=False,
    )


def create_execution_tracer_provider(
    *,
    store: RecordSink | None,
    otlp_endpoint: str | None = None,
    extra_processors: Sequence[SpanProcessor] = (),
    dialects: Collection[str] = DIALECTS,
) -> trace.TracerProvider:
    """The cheapest tracer provider that serves every configured consumer of TLM's spans.

    With an OTLP endpoint (argument or environment) or extra processors: the SDK provider of
    :func:`create_tracer_provider`. With only the store: :class:`LightTracerProvider`, which
    feeds the execution-record processor directly. With neither: the API's no-op provider.
    Each returned provider has ``force_flush()`` and ``shutdown()``.
    """
    if otlp_signal_url("traces", otlp_endpoint) or extra_processors:
        return create_tracer_provider(
            store=store,
            otlp_endpoint=otlp_endpoint,
            extra_processors=extra_processors,
            dialects=dialects,
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
