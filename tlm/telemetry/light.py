"""A lightweight OpenTelemetry API implementation for when the store is the only consumer.

When nothing but TLM's own execution log consumes the spans (no OTLP exporter, no application
processors), the SDK's general machinery — sampling, span limits, attribute validation, processor
fan-out — is pure cost. :class:`LightTracerProvider` implements the OpenTelemetry *API* (real
span contexts, parenting through the current context, so spans still nest under an application's
spans) and hands each span straight to an :class:`ExecutionRecordProcessor`. Library code is
unchanged: it only ever sees the API. Attribute values are not validated here; TLM's span helpers
only set well-formed values.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from opentelemetry import trace
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util.types import Attributes, AttributeValue

from tlm.telemetry.processor import ExecutionRecordProcessor, RecordSink

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace import Span as SdkSpan

__all__ = ("LightSpan", "LightTracer", "LightTracerProvider")

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)


class _Attributes:
    """The attribute holder, laid out as the record processor reads it (``._dict``)."""

    __slots__ = ("_dict",)

    def __init__(self, initial: Attributes) -> None:
        self._dict: dict[str, AttributeValue] = dict(initial) if initial else {}


class LightSpan(trace.Span):
    """A recording span that reports to one processor when it ends."""

    __slots__ = (
        "_attributes",
        "_events",
        "_processor",
        "context",
        "end_time",
        "kind",
        "name",
        "parent",
        "start_time",
        "status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Attributes,
        processor: ExecutionRecordProcessor,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self._attributes = _Attributes(attributes)
        self._events: list[Event] | None = None
        self._processor = processor
        self.status = _UNSET
        self.start_time = time.time_ns()
        self.end_time: int | None = None

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        """The span's attributes."""
        return self._attributes._dict

    @property
    def events(self) -> tuple[Event, ...]:
        """The span's events (e.g. ``gen_ai.evaluation.result``), in the order added."""
        return tuple(self._events) if self._events else ()

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self.end_time is None:
            self._attributes._dict[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self.end_time is None:
            self._attributes._dict.update(attributes)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None:
            return
        self.status = status if isinstance(status, Status) else Status(status, description)

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        """Keep an event (a record may read it), like the SDK's spans do."""
        if self.end_time is not None:
            return
        event = Event(name, attributes, timestamp if timestamp is not None else time.time_ns())
        if self._events is None:
            self._events = [event]
        else:
            self._events.append(event)

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        """Links are not part of the execution record; they are dropped."""

    def update_name(self, name: str) -> None:
        self.name = name

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """TLM records errors as attributes (``error.type``); exception events are dropped."""

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time if end_time is not None else time.time_ns()
        self._processor.on_end(cast("ReadableSpan", self))


class LightTracer(trace.Tracer):
    """Starts :class:`LightSpan` objects parented through the OpenTelemetry context."""

    def __init__(self, processor: ExecutionRecordProcessor) -> None:
        self._processor = processor
        self._random = random.Random()

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> LightSpan:
        parent = trace.get_current_span(context).get_span_context()
        bits = self._random.getrandbits
        if parent.is_valid:
            trace_id = parent.trace_id
            parent_context: SpanContext | None = parent
        else:
            trace_id = bits(128) or 1
            parent_context = None
        span_context = SpanContext(trace_id, bits(64) or 1, is_remote=False, trace_flags=_SAMPLED)
        span = LightSpan(name, span_context, parent_context, kind, attributes, self._processor)
        if start_time is not None:
            span.start_time = start_time
        self._processor.on_start(cast("SdkSpan", span))
        return span

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(span, end_on_exit=end_on_exit) as current:
            yield current


class LightTracerProvider(trace.TracerProvider):
    """Tracers whose spans go to the execution-record processor only."""

    def __init__(self, store: RecordSink) -> None:
        self._processor = ExecutionRecordProcessor(store)

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> LightTracer:
        return LightTracer(self._processor)

    @property
    def open_executions(self) -> int:
        """Execution root spans started and not yet ended."""
        return self._processor.open_executions

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every finished execution is in the store."""
        return self._processor.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush the store (it is closed by whoever opened it)."""
        self._processor.shutdown()
