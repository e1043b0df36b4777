"""The execution record: one per execution, the design document's ``TaskExecution``.

``task_id``, ``task_version``, ``input``, ``output``, ``models_used``, ``verification_results``
``{method_used, passed, confidence, details}``, ``performance {execution_time, tokens_used,
cost}``, ``timestamp`` (ISO 8601, UTC) and ``feedback`` are the design document's fields; TLM adds
``execution_id``, ``prompt_variant``, ``attempts``, ``error``, ``status``, ``cache_hit``,
``fallback``, ``trace_id``, ``queue_wait_ms``, ``batch_id`` and ``batch_custom_id``, the rendered
``prompt``/``system_prompt`` (for fine-tuning export), the caller's ``session_id``, ``user_id``,
``tags`` and ``metadata``, the selector's ``selection``, and ``spans``: the execution's span tree
as plain data, without message content (for the console's timing waterfall).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import attrs
import cattrs

__all__ = (
    "VerificationResults",
    "Performance",
    "ErrorInfo",
    "Feedback",
    "ExecutionRecord",
    "converter",
    "format_timestamp",
    "parse_timestamp",
)

Status = Literal["ok", "error"]
FeedbackSource = Literal["human", "system"]


def format_timestamp(when: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z``: fixed width, so it sorts as text."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """The inverse of :func:`format_timestamp` (accepts any ISO 8601 form)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@attrs.frozen
class VerificationResults:
    """How the output was verified."""

    method_used: str
    passed: bool | None
    """``None`` while pending (human review not yet decided)."""
    confidence: float
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Performance:
    """What the execution took."""

    execution_time: float
    """Wall-clock seconds of the whole execution."""
    tokens_used: int
    """Input plus output tokens over every call, verification included."""
    cost: float
    """USD over every call, verification included."""


@attrs.frozen
class ErrorInfo:
    """Why an execution failed (message sanitised: no secrets)."""

    type: str
    message: str


@attrs.frozen
class Feedback:
    """Feedback on one execution, from a person or a system."""

    source: FeedbackSource
    at: str
    """When it was given (ISO 8601, UTC)."""
    score: float | None = None
    correct: bool | None = None
    note: str | None = None


@attrs.frozen
class ExecutionRecord:
    """One execution, as logged."""

    execution_id: str
    task_id: str
    task_version: str
    input: Any
    output: Any
    models_used: tuple[str, ...]
    verification_results: VerificationResults | None
    performance: Performance
    timestamp: str
    """Start of the execution (ISO 8601, UTC)."""
    feedback: tuple[Feedback, ...] = ()
    prompt_variant: str | None = None
    attempts: int = 0
    error: ErrorInfo | None = None
    status: Status = "ok"
    cache_hit: bool = False
    fallback: str | None = None
    """The fallback strategy that produced the output, if one did."""
    trace_id: str | None = None
    """The OpenTelemetry trace id (32 hex digits), to find the spans in a tracing backend."""
    prompt: str | None = None
    """The rendered user prompt (kept for fine-tuning export)."""
    system_prompt: str | None = None
    """The rendered system prompt, if any."""
    queue_wait_ms: float = 0.0
    """Milliseconds the model calls waited for provider or model limits (slots, rate buckets),
    summed: how much of ``performance.execution_time`` was throttling."""
    batch_id: str | None = None
    """The provider batch that answered the primary call (``tlm batch --provider-batch``)."""
    batch_custom_id: str | None = None
    """The request's ``custom_id`` in that provider batch."""
    session_id: str | None = None
    """The caller's session (``ExecuteOptions.session_id``)."""
    user_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    selection: Mapping[str, Any] | None = None
    """Why the models were ordered as they were (the input-aware selector's explanation)."""
    spans: tuple[Mapping[str, Any], ...] = ()
    """The span tree, root first: ``{"name", "parent"`` (index, ``None`` for the root),
    ``"start_ms"`` (from the root's start), ``"duration_ms"``, ``"status"``, ``"kind"``,
    ``"attributes"}``; content attributes (input, output, prompts) are left out."""

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        data: dict[str, Any] = converter.unstructure(self)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        """Build a record from :meth:`to_dict` data."""
        return converter.structure(data, cls)

    def to_json(self) -> str:
        """The record as compact JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ExecutionRecord:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    @property
    def passed(self) -> bool | None:
        """Whether verification passed (``None`` when not verified or pending)."""
        return None if self.verification_results is None else self.verification_results.passed


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    return conv


converter = _make_converter()
"""The one converter for records (cattrs)."""
