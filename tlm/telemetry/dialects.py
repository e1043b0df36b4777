"""What OpenInference (Arize Phoenix) and Langfuse read, derived from TLM's spans at export.

TLM's spans carry the GenAI conventions and ``tlm.*``. Backends read more: OpenInference's span
kind, ``input.value``/``output.value`` with MIME types, ``llm.token_count.*`` and ``llm.cost.*``;
Langfuse's ``langfuse.observation.*`` (type, usage and cost details) and trace fields. This module
computes those attributes from a finished span's own, in the exporter's thread (never on the
execution's path), after content was stripped: a name derived from content (``input.value``) is
only there when the content is. :data:`DIALECTS` are the names the ``telemetry_compat`` setting
takes.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

from tlm.telemetry import conventions as c
from tlm.telemetry.redact import to_json

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

__all__ = ("DIALECTS", "OPENINFERENCE", "LANGFUSE", "span_role", "dialect_attributes")

OPENINFERENCE: Final = "openinference"
LANGFUSE: Final = "langfuse"
DIALECTS: Final = (OPENINFERENCE, LANGFUSE)

_JSON = "application/json"
_TEXT = "text/plain"
_ROLES = {"chat": "LLM", "text_completion": "LLM", c.EMBEDDINGS_SPAN_OPERATION: "EMBEDDING"}
_LANGFUSE_TYPES = {
    "CHAIN": "chain",
    "LLM": "generation",
    "EMBEDDING": "embedding",
    "EVALUATOR": "evaluator",
}


def span_role(name: str, attrs: Mapping[str, Any]) -> str | None:
    """The OpenInference span kind of one of TLM's spans (``None``: not one of ours)."""
    operation = attrs.get(c.GEN_AI_OPERATION_NAME)
    if operation in _ROLES:
        return _ROLES[operation]
    if name.startswith((c.EXECUTE_SPAN + " ", "tlm.workflow ")):
        return "CHAIN"
    if name.startswith(c.VERIFY_SPAN + " "):
        return "EVALUATOR"
    return None


def _present(value: Any) -> Any:
    """``value``, unless it is JSON ``null`` (a failed execution has no output)."""
    return None if value == "null" else value


def _reply_text(messages: Any) -> str | None:
    """The text of the first output message (``gen_ai.output.messages`` as JSON)."""
    try:
        loaded = json.loads(messages)
        return "".join(part.get("content", "") for part in loaded[0]["parts"])
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        return None


def _verdict(attrs: Mapping[str, Any]) -> str | None:
    method = attrs.get(c.TLM_VERIFICATION_METHOD)
    if method is None or c.TLM_VERIFICATION_CONFIDENCE not in attrs:
        return None
    passed = attrs.get(c.TLM_VERIFICATION_PASSED)
    label = "pending" if passed is None else ("pass" if passed else "fail")
    verdict = {
        "method": method,
        "passed": passed,
        "label": label,
        "confidence": attrs[c.TLM_VERIFICATION_CONFIDENCE],
    }
    return to_json(verdict)


def _openinference(role: str, attrs: Mapping[str, Any], out: dict[str, AttributeValue]) -> None:
    out["openinference.span.kind"] = role
    value_in: Any = None
    value_out: Any = None
    mime_out = _JSON
    if role == "CHAIN":
        value_in, value_out = attrs.get(c.TLM_INPUT), _present(attrs.get(c.TLM_OUTPUT))
    elif role == "LLM":
        value_in = attrs.get(c.GEN_AI_INPUT_MESSAGES)
        value_out = _reply_text(attrs.get(c.GEN_AI_OUTPUT_MESSAGES))
        mime_out = _TEXT
    elif role == "EVALUATOR":
        value_in = attrs.get(c.TLM_VERIFICATION_DETAILS)
        value_out = _verdict(attrs)
    if value_in is not None:
        out["input.value"] = value_in
        out["input.mime_type"] = _JSON
    if value_out is not None:
        out["output.value"] = value_out
        out["output.mime_type"] = mime_out
    if role not in ("LLM", "EMBEDDING"):
        return
    model = attrs.get(c.GEN_AI_REQUEST_MODEL)
    if model is not None:
        out["llm.model_name" if role == "LLM" else "embedding.model_name"] = model
    provider = attrs.get(c.GEN_AI_PROVIDER_NAME)
    if provider is not None:
        out["llm.provider"] = provider
    prompt = attrs.get(c.GEN_AI_USAGE_INPUT_TOKENS)
    completion = attrs.get(c.GEN_AI_USAGE_OUTPUT_TOKENS, 0)
    if prompt is not None:
        out["llm.token_count.prompt"] = prompt
        out["llm.token_count.completion"] = completion
        out["llm.token_count.total"] = prompt + completion
    for ours, theirs in (
        (c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "llm.token_count.prompt_details.cache_read"),
        (c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, "llm.token_count.prompt_details.cache_write"),
        (c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "llm.token_count.completion_details.reasoning"),
        (c.TLM_COST_INPUT_USD, "llm.cost.prompt"),
        (c.TLM_COST_OUTPUT_USD, "llm.cost.completion"),
        (c.TLM_COST_USD, "llm.cost.total"),
    ):
        if ours in attrs:
            out[theirs] = attrs[ours]


def _langfuse(
    role: str, attrs: Mapping[str, Any], failed: bool, out: dict[str, AttributeValue]
) -> None:
    out["langfuse.observation.type"] = _LANGFUSE_TYPES[role]
    if failed:
        out["langfuse.observation.level"] = "ERROR"
        message = attrs.get(c.TLM_ERROR_MESSAGE)
        if message is not None:
            out["langfuse.observation.status_message"] = message
    if role == "CHAIN":
        _langfuse_trace(attrs, out)
        return
    if role not in ("LLM", "EMBEDDING"):
        return
    model = attrs.get(c.GEN_AI_REQUEST_MODEL)
    if model is not None:
        out["langfuse.observation.model.name"] = model
    prompt = attrs.get(c.GEN_AI_USAGE_INPUT_TOKENS)
    if prompt is not None:
        completion = attrs.get(c.GEN_AI_USAGE_OUTPUT_TOKENS, 0)
        usage = {"input": prompt, "output": completion, "total": prompt + completion}
        out["langfuse.observation.usage_details"] = to_json(usage)
    if c.TLM_COST_USD in attrs:
        cost = {"total": attrs[c.TLM_COST_USD]}
        if c.TLM_COST_INPUT_USD in attrs:
            cost["input"] = attrs[c.TLM_COST_INPUT_USD]
            cost["output"] = attrs.get(c.TLM_COST_OUTPUT_USD, 0.0)
        out["langfuse.observation.cost_details"] = to_json(cost)


def _langfuse_trace(attrs: Mapping[str, Any], out: dict[str, AttributeValue]) -> None:
    """The root of an execution also names and groups the Langfuse trace."""
    name = attrs.get(c.GEN_AI_WORKFLOW_NAME)
    if name is not None:
        out["langfuse.trace.name"] = name
    for ours, theirs in (
        (c.SESSION_ID, "langfuse.session.id"),
        (c.USER_ID, "langfuse.user.id"),
        (c.TAG_TAGS, "langfuse.trace.tags"),
        (c.TLM_INPUT, "langfuse.trace.input"),
        (c.TLM_OUTPUT, "langfuse.trace.output"),
    ):
        value = _present(attrs.get(ours))
        if value is not None:
            out[theirs] = value
    metadata = attrs.get(c.METADATA)
    if isinstance(metadata, str):
        try:
            loaded = json.loads(metadata)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            for key, value in loaded.items():
                out[f"langfuse.trace.metadata.{key}"] = str(value)


def dialect_attributes(
    name: str, attrs: Mapping[str, Any], *, failed: bool, dialects: Collection[str]
) -> dict[str, AttributeValue]:
    """The extra attributes ``dialects`` read on a finished span named ``name``.

    Empty for spans that are not TLM's. Never overrides: callers add only the keys the span
    does not already have.
    """
    role = span_role(name, attrs)
    out: dict[str, AttributeValue] = {}
    if role is None:
        return out
    if OPENINFERENCE in dialects:
        _openinference(role, attrs, out)
    if LANGFUSE in dialects:
        _langfuse(role, attrs, failed, out)
    return out
