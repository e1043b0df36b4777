"""Span → record: a span processor that turns each finished execution into one record.

:class:`ExecutionRecordProcessor` watches span starts to learn which spans belong to which
``tlm.execute`` root (children, grandchildren, at any depth), keeps the ended descendants until
the root ends, then builds one :class:`~tlm.telemetry.records.ExecutionRecord` and hands it to a
:class:`RecordSink` (the store). The hand-off never drops: when the sink is behind, its ``write``
blocks the thread ending the root span, unless the record was announced to the store (the engine
does, then awaits the commit on its event loop instead: see :mod:`tlm.engine.recording`). Failed
executions are records too, and so is one whose spans cannot be read (a ``RecordBuildError``
record keeps its id, task, time and input). Thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

import tlm.json_codec as json_codec
from tlm.telemetry import conventions as c
from tlm.telemetry.records import (
    ErrorInfo,
    ExecutionRecord,
    Performance,
    VerificationResults,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span

__all__ = ("RecordSink", "ExecutionRecordProcessor", "record_from_spans", "span_tree")

_log = logging.getLogger(__name__)
_ROOT_PREFIX = c.EXECUTE_SPAN + " "
_VERIFY_PREFIX = c.VERIFY_SPAN + " "


class RecordSink(Protocol):
    """Where records go: :class:`tlm.store.ExecutionStore` is one."""

    def write(self, record: ExecutionRecord, /) -> None:
        """Take ``record``; may block (back-pressure), must not drop it."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything written is durable; ``False`` on timeout."""
        ...


class ExecutionRecordProcessor(SpanProcessor):
    """Builds one record per ``tlm.execute`` root span and writes it to ``sink``.

    ``shutdown`` flushes the sink but does not close it: whoever opened the store closes it.
    """

    def __init__(self, sink: RecordSink) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._owner: dict[int, int] = {}
        """span id → id of the root span it belongs to (the root maps to itself)."""
        self._children: dict[int, list[ReadableSpan]] = {}
        """root span id → its ended descendants."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        span_id = span.context.span_id
        if span.name.startswith(_ROOT_PREFIX):
            with self._lock:
                self._owner[span_id] = span_id
                self._children[span_id] = []
            return
        parent = span.parent
        if parent is None:
            return
        with self._lock:
            root = self._owner.get(parent.span_id)
            if root is not None:
                self._owner[span_id] = root

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        span_id = context.span_id
        with self._lock:
            root = self._owner.pop(span_id, None)
            if root is None:
                return
            if root != span_id:
                bucket = self._children.get(root)
                if bucket is not None:
                    bucket.append(span)
                return
            children = self._children.pop(span_id, [])
        try:
            record = record_from_spans(span, children)
        except Exception as exc:  # a hook must not raise; the span itself was malformed
            _log.exception("cannot build an execution record from span %r", span.name)
            record = _failure_record(span, exc)
        try:
            self._sink.write(record)
        except Exception:
            _log.exception("cannot write execution record %s", record.execution_id)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self._sink.flush(timeout_millis / 1000)
        except Exception:
            _log.exception("cannot flush execution records")
            return False

    def shutdown(self) -> None:
        self.force_flush()

    @property
    def open_executions(self) -> int:
        """Root spans started and not yet ended."""
        with self._lock:
            return len(self._children)


def _attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """A finished span's attributes, read without copying when the SDK allows it."""
    # ReadableSpan.attributes wraps a BoundedAttributes (frozen once the span ended) in a proxy
    # whose every lookup goes through Python code; its plain dict is much cheaper to read.
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return dict(span.attributes or {})


def _load(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json_codec.loads(text)
    except ValueError:  # truncated by an attribute length limit: keep what there is
        return text


def _timestamp(ns: int) -> str:
    # same text as records.format_timestamp, faster
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _verification(attrs: Mapping[str, Any]) -> VerificationResults | None:
    method = attrs.get(c.TLM_VERIFICATION_METHOD)
    confidence = attrs.get(c.TLM_VERIFICATION_CONFIDENCE)
    if method is None or confidence is None:
        return None
    details = attrs.get(c.TLM_VERIFICATION_DETAILS)
    loaded = _load(details) if details is not None else {}
    return VerificationResults(
        method_used=str(method),
        passed=attrs.get(c.TLM_VERIFICATION_PASSED),
        confidence=float(confidence),
        details=loaded if isinstance(loaded, dict) else {"raw": loaded},
    )


def _failure_record(root: ReadableSpan, exc: Exception) -> ExecutionRecord:
    """What can be kept of an execution whose spans do not make a record: who, when, and why."""
    attrs = _attributes(root)
    context = root.context
    span_id = format(context.span_id, "016x") if context is not None else "unknown"
    return ExecutionRecord(
        execution_id=str(attrs.get(c.TLM_EXECUTION_ID, span_id)),
        task_id=str(attrs.get(c.TLM_TASK_ID, root.name.removeprefix(_ROOT_PREFIX))),
        task_version=str(attrs.get(c.TLM_TASK_VERSION, "")),
        input=attrs.get(c.TLM_INPUT),
        output=None,
        models_used=(),
        verification_results=None,
        performance=Performance(0.0, 0, 0.0),
        timestamp=_timestamp(root.start_time or 0),
        error=ErrorInfo("RecordBuildError", f"{type(exc).__name__}: {exc}"[:500]),
        status="error",
    )


def record_from_spans(root: ReadableSpan, children: Sequence[ReadableSpan]) -> ExecutionRecord:
    """One record from a finished ``tlm.execute`` span and its ended descendants.

    Totals set on the root (``tlm.usage.*``, ``tlm.cost.usd``, ``tlm.attempts``) win; without them
    (an execution that failed before ``set_result``) the model-call spans are summed.
    """
    attrs = _attributes(root)
    models: list[str] = list(attrs.get(c.TLM_MODELS_USED, ()))
    in_tokens = out_tokens = attempts = 0
    cost = queue_wait_ms = 0.0
    verification: VerificationResults | None = None
    for child in children:
        cattrs = _attributes(child)
        # the catalog id (gen_ai.request.model is the provider's name for the model)
        model = cattrs.get(c.TLM_REQUEST_MODEL) or cattrs.get(c.GEN_AI_REQUEST_MODEL)
        if model is not None:
            embeds = cattrs.get(c.GEN_AI_OPERATION_NAME) == c.EMBEDDINGS_SPAN_OPERATION
            if model not in models and not embeds:
                models.append(str(model))
            in_tokens += cattrs.get(c.GEN_AI_USAGE_INPUT_TOKENS, 0)
            out_tokens += cattrs.get(c.GEN_AI_USAGE_OUTPUT_TOKENS, 0)
            cost += cattrs.get(c.TLM_COST_USD, 0.0)
            attempts += cattrs.get(c.TLM_ATTEMPTS, 1)
            queue_wait_ms += cattrs.get(c.TLM_QUEUE_WAIT_MS, 0.0)
        elif child.name.startswith(_VERIFY_PREFIX):
            verification = _verification(cattrs) or verification
    if c.TLM_VERIFICATION_METHOD in attrs:
        verification = _verification(attrs) or verification
    if c.TLM_USAGE_INPUT_TOKENS in attrs:
        in_tokens = attrs[c.TLM_USAGE_INPUT_TOKENS]
        out_tokens = attrs.get(c.TLM_USAGE_OUTPUT_TOKENS, 0)
    cost = attrs.get(c.TLM_COST_USD, cost)
    attempts = attrs.get(c.TLM_ATTEMPTS, attempts)

    failed = root.status.status_code is StatusCode.ERROR
    error = (
        ErrorInfo(str(attrs.get(c.ERROR_TYPE, "Error")), str(attrs.get(c.TLM_ERROR_MESSAGE, "")))
        if failed
        else None
    )
    output = attrs.get(c.TLM_OUTPUT)
    start = root.start_time or 0
    end = root.end_time or start
    context = root.context
    return ExecutionRecord(
        execution_id=str(attrs[c.TLM_EXECUTION_ID]),
        task_id=str(attrs[c.TLM_TASK_ID]),
        task_version=str(attrs[c.TLM_TASK_VERSION]),
        input=_load(attrs.get(c.TLM_INPUT, "null")),
        output=None if output is None else _load(output),
        models_used=tuple(models),
        verification_results=verification,
        performance=Performance(
            execution_time=(end - start) / 1e9,
            tokens_used=int(in_tokens) + int(out_tokens),
            cost=float(cost),
        ),
        timestamp=_timestamp(start),
        prompt_variant=attrs.get(c.TLM_PROMPT_VARIANT),
        attempts=int(attempts),
        error=error,
        status="error" if failed else "ok",
        cache_hit=bool(attrs.get(c.TLM_CACHE_HIT, False)),
        fallback=attrs.get(c.TLM_FALLBACK),
        trace_id=None if context is None else format(context.trace_id, "032x"),
        prompt=attrs.get(c.TLM_PROMPT),
        system_prompt=attrs.get(c.TLM_PROMPT_SYSTEM),
        queue_wait_ms=float(queue_wait_ms),
        batch_id=attrs.get(c.TLM_BATCH_ID),
        batch_custom_id=attrs.get(c.TLM_BATCH_CUSTOM_ID),
        session_id=attrs.get(c.SESSION_ID),
        user_id=attrs.get(c.USER_ID),
        tags=tuple(attrs.get(c.TAG_TAGS, ())),
        metadata=_metadata(attrs.get(c.METADATA)),
        selection=_selection(attrs.get(c.TLM_SELECTION)),
        spans=span_tree(root, children),
    )


def _metadata(text: Any) -> dict[str, str]:
    loaded = _load(text) if text is not None else {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def _selection(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    loaded = _load(text)
    return loaded if isinstance(loaded, dict) else {"raw": loaded}


_CONTENT = c.CONTENT_ATTRIBUTES
_PLAIN = (str, int, bool)


def _scalar_attributes(span: ReadableSpan) -> dict[str, Any]:
    """The span's scalar, non-content attributes; a float JSON cannot hold (NaN, infinity)
    is kept as its text, so the span tree is always valid JSON."""
    kept: dict[str, Any] = {}
    for key, value in _attributes(span).items():
        if key in _CONTENT:
            continue
        kind = type(value)
        if kind is float:
            kept[key] = value if value - value == 0.0 else str(value)
        elif kind in _PLAIN or isinstance(value, _PLAIN):
            kept[key] = value
        elif isinstance(value, float):
            kept[key] = float(value) if value - value == 0.0 else str(value)
    return kept


def _span_entry(span: ReadableSpan, parent: int | None, origin: int) -> dict[str, Any]:
    start = span.start_time or origin
    end = span.end_time or start
    status = span.status.status_code
    attributes = _scalar_attributes(span)
    return {
        "name": span.name,
        "parent": parent,
        "start_ms": round((start - origin) / 1e6, 3),
        "duration_ms": round((end - start) / 1e6, 3),
        "status": "error" if status is StatusCode.ERROR else "ok",
        "kind": getattr(span.kind, "name", str(span.kind)).lower(),
        "attributes": attributes,
    }


def span_tree(root: ReadableSpan, children: Sequence[ReadableSpan]) -> tuple[dict[str, Any], ...]:
    """The root and its descendants as plain data, parents before children, by start time.

    Content attributes (:data:`~tlm.telemetry.conventions.CONTENT_ATTRIBUTES`) and non-scalar
    values are left out: the record keeps the redacted input, output and prompt on its own. A
    NaN or infinite float is kept as its text (``"nan"``), so the tree is valid JSON.
    """
    origin = root.start_time or 0
    index: dict[int, int] = {}
    entries = [_span_entry(root, None, origin)]
    if root.context is not None:
        index[root.context.span_id] = 0
    pending = sorted(children, key=lambda s: s.start_time or 0)
    while pending:  # parents first: a child ending before its parent still finds it
        left: list[ReadableSpan] = []
        for span in pending:
            parent = span.parent.span_id if span.parent is not None else None
            if parent not in index:
                left.append(span)
                continue
            if span.context is not None:
                index[span.context.span_id] = len(entries)
            entries.append(_span_entry(span, index[parent], origin))
        if len(left) == len(pending):  # orphans (their parent never ended): hang on the root
            for span in left:
                entries.append(_span_entry(span, 0, origin))
            break
        pending = left
    return tuple(entries)
