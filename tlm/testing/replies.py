"""Scripted replies for the fake servers: real wire bodies (OpenAI, Anthropic) and faults.

A script item is a :class:`Reply`, a JSON object (sent as a 200 body as is) or a string (the
assistant's text, wrapped in the server's success body). The builders here produce bodies that the
official ``openai`` and ``anthropic`` SDK types accept, which the test-suite checks.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import time
from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = (
    "Action",
    "Reply",
    "hang",
    "reset",
    "truncated",
    "malformed",
    "chat_completion",
    "openai_error",
    "rate_limited",
    "server_error",
    "unauthorized",
    "context_length_exceeded",
    "anthropic_message",
    "anthropic_error",
    "anthropic_rate_limited",
    "overloaded",
    "anthropic_unauthorized",
    "prompt_too_long",
)

Action = Literal["respond", "hang", "reset", "truncate"]
_ids = itertools.count(1)


@attrs.frozen
class Reply:
    """One scripted HTTP reply.

    ``action`` is ``respond`` (send it), ``hang`` (never answer, until the server closes),
    ``reset`` (drop the connection without a reply) or ``truncate`` (send headers announcing the
    whole body, half of it, then close).
    """

    status: int = 200
    body: Any = None
    """A JSON value (sent as JSON), or ``bytes``/``str`` sent verbatim."""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay_s: float = 0.0
    """Extra latency before this reply, on top of the server's own."""
    action: Action = "respond"

    def encoded(self) -> bytes:
        """The body as bytes."""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def hang() -> Reply:
    """Never answer (the client's timeout fires)."""
    return Reply(action="hang")


def reset() -> Reply:
    """Close the connection without replying (the client sees a reset/disconnect)."""
    return Reply(action="reset")


def truncated(body: Any = None) -> Reply:
    """Announce ``body`` (default: a chat completion) but send only half of it."""
    return Reply(body=chat_completion("truncated") if body is None else body, action="truncate")


def malformed() -> Reply:
    """A 200 reply whose JSON body is broken."""
    return Reply(
        body=b'{"id": "chatcmpl-broken", "choices": [{"message": ',
        headers={"Content-Type": "application/json"},
    )


# -- OpenAI ------------------------------------------------------------------------------------


def chat_completion(
    content: str | None,
    *,
    model: str = "fake-model",
    finish_reason: str = "stop",
    prompt_tokens: int = 10,
    completion_tokens: int | None = None,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    response_id: str | None = None,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object with one choice and full usage details."""
    if completion_tokens is None:
        completion_tokens = max(1, len((content or "").split()))
    return {
        "id": response_id or f"chatcmpl-fake{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


def openai_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An OpenAI error reply: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return Reply(status=status, body=body, headers=dict(headers or {}))


def rate_limited(
    retry_after: float | None = 1.0,
    *,
    retry_after_ms: float | None = None,
    http_date: float | None = None,
) -> Reply:
    """HTTP 429 as OpenAI sends it, with ``retry-after`` (seconds), ``retry-after-ms`` or a date."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if retry_after_ms is not None:
        headers["retry-after-ms"] = f"{retry_after_ms:g}"
    if http_date is not None:
        headers["retry-after"] = email.utils.formatdate(http_date, usegmt=True)
    return openai_error(
        429,
        "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1.",
        type="requests",
        code="rate_limit_exceeded",
        headers=headers,
    )


def server_error(status: int = 500) -> Reply:
    """A 5xx as OpenAI-compatible servers send it."""
    messages = {
        500: "The server had an error while processing your request. Sorry about that!",
        502: "Bad gateway.",
        503: "The engine is currently overloaded, please try again later.",
        504: "Gateway timeout.",
    }
    return openai_error(status, messages.get(status, "Server error."), type="server_error")


def unauthorized(api_key: str = "") -> Reply:
    """OpenAI's real 401 body, which echoes a masked form of the key it got."""
    masked = f"{api_key[:6]}{'*' * 20}{api_key[-4:]}" if len(api_key) > 10 else "***"
    return openai_error(
        401,
        f"Incorrect API key provided: {masked}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def context_length_exceeded(style: Literal["openai", "vllm", "llama.cpp"] = "openai") -> Reply:
    """A context-length error as OpenAI, vLLM or llama.cpp's server words it."""
    if style == "vllm":
        return Reply(
            status=400,
            body={
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you "
                "requested 5000 tokens (4000 in the messages, 1000 in the completion).",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        )
    if style == "llama.cpp":
        return Reply(
            status=400,
            body={
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 9000,
                    "n_ctx": 8192,
                }
            },
        )
    return openai_error(
        400,
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 130000 tokens. Please reduce the length of the messages.",
        code="context_length_exceeded",
        param="messages",
    )


# -- Anthropic ---------------------------------------------------------------------------------


def anthropic_message(
    text: str | None = None,
    *,
    tool_input: Any = None,
    tool_name: str = "emit_output",
    model: str = "claude-fake",
    stop_reason: str | None = None,
    input_tokens: int = 10,
    output_tokens: int | None = None,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
) -> dict[str, Any]:
    """An Anthropic ``message`` with a text block and/or a ``tool_use`` block."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    if tool_input is not None:
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_fake{next(_ids)}",
                "name": tool_name,
                "input": tool_input,
            }
        )
    if output_tokens is None:
        output_tokens = max(1, len((text or json.dumps(tool_input)).split()))
    return {
        "id": f"msg_fake{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason or ("tool_use" if tool_input is not None else "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read_input_tokens,
            "cache_creation_input_tokens": cache_creation_input_tokens,
        },
    }


def anthropic_error(
    status: int, type: str, message: str, *, headers: Mapping[str, str] | None = None
) -> Reply:
    """An Anthropic error reply: ``{"type": "error", "error": {"type", "message"}}``."""
    return Reply(
        status=status,
        body={"type": "error", "error": {"type": type, "message": message}},
        headers=dict(headers or {}),
    )


def anthropic_rate_limited(retry_after: float = 1.0) -> Reply:
    """Anthropic's 429 with ``retry-after``."""
    return anthropic_error(
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
        headers={"retry-after": f"{retry_after:g}"},
    )


def overloaded() -> Reply:
    """Anthropic's 529 ``overloaded_error``."""
    return anthropic_error(529, "overloaded_error", "Overloaded")


def anthropic_unauthorized() -> Reply:
    """Anthropic's 401 ``authentication_error``."""
    return anthropic_error(401, "authentication_error", "invalid x-api-key")


def prompt_too_long() -> Reply:
    """Anthropic's context-length error."""
    return anthropic_error(
        400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"
    )
