"""The adapter for OpenAI-compatible chat completions (OpenAI, vLLM, llama.cpp, Ollama, OpenRouter).

Structured output follows the model card's ``structured_output`` capability:

- ``json_schema``: ``response_format: {"type": "json_schema", "json_schema": {...}}``
- ``json_object``: ``{"type": "json_object"}`` plus the schema in the system prompt
- ``json_object_schema`` (llama.cpp's server): ``{"type": "json_object", "schema": ...}``
- ``none``: the schema in the system prompt only
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from tlm.catalog import Catalog, ModelCard
from tlm.errors import MalformedResponse
from tlm.json_reply import parse_json_reply, schema_instruction
from tlm.providers._http import DEFAULT_MAX_RESPONSE_BYTES, HttpAdapter
from tlm.providers.base import ChatRequest, ChatResponse, EmbeddingResponse, Message, Usage
from tlm.providers.errors import error_from_status

__all__ = ("OpenAICompatProvider", "build_chat_body", "parse_chat_completion")

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def _messages_with_schema(
    messages: Sequence[Message], schema: Mapping[str, Any]
) -> list[dict[str, str]]:
    out = [{"role": m.role, "content": m.content} for m in messages]
    instruction = schema_instruction(schema)
    if out and out[0]["role"] == "system":
        out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{instruction}"}
    else:
        out.insert(0, {"role": "system", "content": instruction})
    return out


def _schema_name(schema: Mapping[str, Any]) -> str:
    title = schema.get("title")
    name = _NAME_CHARS.sub("_", title).strip("_")[:64] if isinstance(title, str) else ""
    return name or "output"


def build_chat_body(request: ChatRequest, card: ModelCard) -> dict[str, Any]:
    """The ``/chat/completions`` body for ``request`` to the model on ``card``."""
    schema = request.output_schema
    style = card.structured_output
    if schema is not None and style in ("json_object", "none"):
        messages = _messages_with_schema(request.messages, schema)
    else:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
    body: dict[str, Any] = {"model": card.provider_model, "messages": messages}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop:
        body["stop"] = list(request.stop)
    if schema is not None:
        if style == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(schema), "schema": schema, "strict": False},
            }
        elif style == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif style == "json_object_schema":
            body["response_format"] = {"type": "json_object", "schema": schema}
    body.update(request.extra)
    return body


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_usage(raw: Any) -> Usage:
    """OpenAI ``usage`` (with prompt/completion token details) as :class:`Usage`."""
    if not isinstance(raw, Mapping):
        return Usage()
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=_int(raw.get("prompt_tokens")),
        output_tokens=_int(raw.get("completion_tokens")),
        cached_input_tokens=_int(
            prompt_details.get("cached_tokens") if isinstance(prompt_details, Mapping) else 0
        ),
        reasoning_tokens=_int(
            completion_details.get("reasoning_tokens")
            if isinstance(completion_details, Mapping)
            else 0
        ),
    )


def parse_chat_completion(
    data: Mapping[str, Any],
    request: ChatRequest,
    card: ModelCard,
    *,
    provider: str,
    latency_s: float = 0.0,
    secrets: Sequence[str | None] = (),
) -> ChatResponse:
    """A ``/chat/completions`` reply body (or a provider batch's response body) as a response.

    Raises:
        ProviderError: the body is an error, or has no choices.
    """
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        err = data.get("error")
        if err is not None:
            code = err.get("code") if isinstance(err, Mapping) else None
            status = code if isinstance(code, int) and code >= 400 else 502
            raise error_from_status(
                status, data, provider=provider, model=request.model, secrets=secrets
            )
        raise MalformedResponse(
            "reply has no choices", provider=provider, model=request.model, status=200
        )
    choice = choices[0]
    message = choice.get("message") or {}
    content = message.get("content") if isinstance(message, Mapping) else None
    text = content if isinstance(content, str) else ""
    usage = parse_usage(data.get("usage"))
    finish = choice.get("finish_reason")
    reply_model = data.get("model")
    return ChatResponse(
        text=text,
        model=reply_model if isinstance(reply_model, str) else card.provider_model,
        provider=provider,
        finish_reason=finish if isinstance(finish, str) else None,
        usage=usage,
        response_id=data.get("id") if isinstance(data.get("id"), str) else None,
        latency_s=latency_s,
        parsed=parse_json_reply(text).value if request.output_schema is not None else None,
        prices=card,
    )


class OpenAICompatProvider(HttpAdapter):
    """A :class:`~tlm.providers.base.Provider` for one OpenAI-compatible endpoint.

    Request models are catalog ids; the card's ``provider_model`` is sent. Use one instance per
    provider (it pools connections) and close it with :meth:`aclose` or ``async with``.
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        catalog: Catalog,
        api_key: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 120.0,
        default_headers: Mapping[str, str] | None = None,
        connector_limit: int = 100,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        headers = {"Content-Type": "application/json", **(default_headers or {})}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
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
        """Send one chat completion; raise a :class:`tlm.errors.ProviderError` on failure."""
        card = self.catalog.get(request.model)
        body = build_chat_body(request, card)
        data, latency = await self._transport.post(
            f"{self.base_url}/chat/completions",
            body,
            model=request.model,
            timeout_s=request.timeout_s,
        )
        return parse_chat_completion(
            data, request, card, provider=self.name, latency_s=latency, secrets=self._secrets
        )

    async def embed(self, model: str, texts: Sequence[str], /) -> EmbeddingResponse:
        """Embed ``texts`` with the catalog model ``model`` via ``/embeddings``."""
        card = self.catalog.get(model)
        data, _ = await self._transport.post(
            f"{self.base_url}/embeddings",
            {"model": card.provider_model, "input": list(texts)},
            model=model,
        )
        items = data.get("data")
        try:
            if not isinstance(items, list) or len(items) != len(texts):
                raise TypeError
            ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
            vectors = tuple(tuple(float(x) for x in item["embedding"]) for item in ordered)
        except (AttributeError, KeyError, TypeError, ValueError):
            raise MalformedResponse(
                f"expected {len(texts)} embeddings", provider=self.name, model=model, status=200
            ) from None
        raw_usage = data.get("usage")
        usage = Usage(
            input_tokens=_int(raw_usage.get("prompt_tokens"))
            if isinstance(raw_usage, Mapping)
            else 0
        )
        return EmbeddingResponse(vectors=vectors, model=model, usage=usage, prices=card)
