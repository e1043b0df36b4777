"""The adapter for Anthropic's Messages API (``POST /v1/messages``).

System messages become the top-level ``system`` field; ``max_tokens`` is required (the request's,
else the card's). Structured output is a forced tool call whose ``input_schema`` is the output
schema; the answer is the ``tool_use`` block's input. Non-object schemas are wrapped in an object
with one ``value`` property and unwrapped on the way back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from tlm.catalog import Catalog, ModelCard
from tlm.errors import MalformedResponse
from tlm.json_reply import parse_json_reply, schema_instruction
from tlm.providers._http import DEFAULT_MAX_RESPONSE_BYTES, HttpAdapter
from tlm.providers.base import ChatRequest, ChatResponse, Usage

__all__ = (
    "AnthropicProvider",
    "build_messages_body",
    "parse_message",
    "ANTHROPIC_VERSION",
    "OUTPUT_TOOL",
)

ANTHROPIC_VERSION = "2023-06-01"
OUTPUT_TOOL = "emit_output"
"""Name of the tool TLM forces the model to call for structured output."""
_DEFAULT_MAX_TOKENS = 4096
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _wraps(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") != "object"


def _tool_schema(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    if _wraps(schema):
        return {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    return schema


def build_messages_body(request: ChatRequest, card: ModelCard) -> dict[str, Any]:
    """The ``/v1/messages`` body for ``request`` to the model on ``card``."""
    system = [m.content for m in request.messages if m.role == "system"]
    schema = request.output_schema
    if schema is not None and card.structured_output == "none":
        system.append(schema_instruction(schema))
    body: dict[str, Any] = {
        "model": card.provider_model,
        "max_tokens": request.max_tokens or card.max_output_tokens or _DEFAULT_MAX_TOKENS,
        "messages": [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ],
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if schema is not None and card.structured_output != "none":
        body["tools"] = [
            {
                "name": OUTPUT_TOOL,
                "description": "Return the answer as structured data matching the schema.",
                "input_schema": _tool_schema(schema),
            }
        ]
        body["tool_choice"] = {"type": "tool", "name": OUTPUT_TOOL}
    body.update(request.extra)
    return body


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_usage(raw: Any) -> Usage:
    """Anthropic usage as :class:`Usage`; input includes cache reads and cache writes.

    Cache writes are also counted apart (``cache_creation_input_tokens``), as the GenAI
    conventions' ``gen_ai.usage.cache_creation.input_tokens``.
    """
    if not isinstance(raw, Mapping):
        return Usage()
    cache_read = _int(raw.get("cache_read_input_tokens"))
    cache_write = _int(raw.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=_int(raw.get("input_tokens")) + cache_read + cache_write,
        output_tokens=_int(raw.get("output_tokens")),
        cached_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
    )


class AnthropicProvider(HttpAdapter):
    """A :class:`~tlm.providers.base.Provider` for Anthropic's Messages API.

    ``base_url`` is the API root without ``/v1`` (as in Anthropic's SDK).
    """

    def __init__(
        self,
        *,
        name: str = "anthropic",
        base_url: str = "https://api.anthropic.com",
        catalog: Catalog,
        api_key: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 120.0,
        default_headers: Mapping[str, str] | None = None,
        connector_limit: int = 100,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            **(default_headers or {}),
        }
        if api_key:
            headers["x-api-key"] = api_key
        super().__init__(
            name=name,
            base_url=base_url,
            catalog=catalog,
            headers=headers,
            api_key=api_key,
            session=session,
            timeout_s=timeout_s,
            connector_limit=connector_limit,
            max_response_bytes=max_response_bytes,
        )

    async def complete(self, request: ChatRequest, /) -> ChatResponse:
        """Send one message request; raise a :class:`tlm.errors.ProviderError` on failure."""
        card = self.catalog.get(request.model)
        body = build_messages_body(request, card)
        data, latency = await self._transport.post(
            f"{self.base_url}/v1/messages", body, model=request.model, timeout_s=request.timeout_s
        )
        return parse_message(data, request, card, provider=self.name, latency_s=latency)


def parse_message(
    data: Mapping[str, Any],
    request: ChatRequest,
    card: ModelCard,
    *,
    provider: str,
    latency_s: float = 0.0,
) -> ChatResponse:
    """A Messages API reply (or a message batch's succeeded message) as a response.

    Raises:
        MalformedResponse: the body has no content.
    """
    content = data.get("content")
    if not isinstance(content, list):
        raise MalformedResponse(
            "reply has no content", provider=provider, model=request.model, status=200
        )
    texts = [
        b["text"]
        for b in content
        if isinstance(b, Mapping) and b.get("type") == "text" and isinstance(b.get("text"), str)
    ]
    tool_inputs = [
        b.get("input")
        for b in content
        if isinstance(b, Mapping) and b.get("type") == "tool_use" and b.get("name") == OUTPUT_TOOL
    ]
    stop_reason = data.get("stop_reason")
    finish = _STOP_REASONS.get(stop_reason, stop_reason) if isinstance(stop_reason, str) else None
    parsed: Any = None
    text = "".join(texts)
    schema = request.output_schema
    if schema is not None and tool_inputs:
        parsed = tool_inputs[0]
        if _wraps(schema) and isinstance(parsed, Mapping):
            parsed = parsed.get("value")
        text = json.dumps(parsed, ensure_ascii=False)
        if finish == "tool_calls":
            finish = "stop"
    elif schema is not None:
        parsed = parse_json_reply(text).value
    usage = parse_usage(data.get("usage"))
    reply_model = data.get("model")
    return ChatResponse(
        text=text,
        model=reply_model if isinstance(reply_model, str) else card.provider_model,
        provider=provider,
        finish_reason=finish,
        usage=usage,
        response_id=data.get("id") if isinstance(data.get("id"), str) else None,
        latency_s=latency_s,
        parsed=parsed,
        prices=card,
    )
