"""The Anthropic Messages adapter end to end over a loopback socket against the fake server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tlm.catalog import Catalog
from tlm.errors import (
    AuthenticationFailed,
    BadRequest,
    ContextLengthExceeded,
    MalformedResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from tlm.json_reply import schema_instruction
from tlm.providers.anthropic import ANTHROPIC_VERSION, OUTPUT_TOOL, AnthropicProvider
from tlm.providers.base import ChatRequest, Message
from tlm.testing import (
    FakeAnthropicServer,
    Reply,
    anthropic_error,
    anthropic_message,
    anthropic_rate_limited,
    hang,
    malformed,
    overloaded,
    prompt_too_long,
    reset,
    truncated,
)

from .support import make_catalog

KEY = "sk-ant-api03-SECRETanthropicKEY0123456789"
SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}


@pytest.fixture
def catalog() -> Catalog:
    return make_catalog()


@pytest.fixture
async def server() -> AsyncIterator[FakeAnthropicServer]:
    async with FakeAnthropicServer(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def provider(
    server: FakeAnthropicServer, catalog: Catalog
) -> AsyncIterator[AnthropicProvider]:
    async with AnthropicProvider(
        name="fake-anthropic", base_url=server.base_url, catalog=catalog, api_key=KEY
    ) as adapter:
        yield adapter


def ask(model: str = "claude", **kwargs: Any) -> ChatRequest:
    return ChatRequest(
        model,
        (
            Message("system", "Be exact."),
            Message("user", "Extract the job title."),
            Message("assistant", "Which posting?"),
            Message("user", "This one."),
        ),
        **kwargs,
    )


async def test_message_round_trip(server: FakeAnthropicServer, provider: AnthropicProvider) -> None:
    server.push(
        anthropic_message(
            "Senior engineer",
            model="wire-claude",
            input_tokens=100,
            output_tokens=20,
            cache_read_input_tokens=900,
            stop_reason="max_tokens",
        )
    )
    response = await provider.complete(ask(temperature=0.2, stop=("END",)))
    assert response.text == "Senior engineer"
    assert response.finish_reason == "length"
    assert str(response.response_id).startswith("msg_")
    assert (response.usage.input_tokens, response.usage.cached_input_tokens) == (1000, 900)
    assert response.usage.output_tokens == 20
    assert response.cost_usd == pytest.approx((100 * 3.0 + 900 * 0.3 + 20 * 15.0) / 1e6)
    (received,) = server.requests
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == KEY
    assert received.headers["anthropic-version"] == ANTHROPIC_VERSION
    assert "Authorization" not in received.headers
    assert received.body == {
        "model": "wire-claude",
        "max_tokens": 1024,
        "system": "Be exact.",
        "messages": [
            {"role": "user", "content": "Extract the job title."},
            {"role": "assistant", "content": "Which posting?"},
            {"role": "user", "content": "This one."},
        ],
        "temperature": 0.2,
        "stop_sequences": ["END"],
    }


async def test_structured_output_is_a_forced_tool_call(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    server.push('{"title": "Engineer"}')
    response = await provider.complete(ask(output_schema=SCHEMA, max_tokens=50))
    assert response.parsed == {"title": "Engineer"}
    assert response.finish_reason == "stop"
    body = server.requests[0].body
    assert body["max_tokens"] == 50
    assert body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": OUTPUT_TOOL}


async def test_non_object_schema_is_wrapped_and_unwrapped(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    server.push('{"value": ["a", "b"]}')
    response = await provider.complete(ask(output_schema=schema))
    assert response.parsed == ["a", "b"]
    assert server.requests[0].body["tools"][0]["input_schema"]["properties"]["value"] == schema


async def test_schema_in_the_prompt_when_the_card_says_none(
    server: FakeAnthropicServer, provider: AnthropicProvider
) -> None:
    server.push('Here: {"title": "Engineer"}')
    response = await provider.complete(ask("claude-plain", output_schema=SCHEMA))
    assert response.parsed == {"title": "Engineer"}
    body = server.requests[0].body
    assert "tools" not in body
    assert schema_instruction(SCHEMA) in body["system"]  # the engine's wording, one place


ERROR_CASES = {
    "401": (None, AuthenticationFailed, 401),
    "403": (anthropic_error(403, "permission_error", "no access"), AuthenticationFailed, 403),
    "400": (anthropic_error(400, "invalid_request_error", "bad field"), BadRequest, 400),
    "404": (anthropic_error(404, "not_found_error", "model: nope"), BadRequest, 404),
    "context": (prompt_too_long(), ContextLengthExceeded, 400),
    "429": (anthropic_rate_limited(3), RateLimited, 429),
    "500": (anthropic_error(500, "api_error", "Internal server error"), ProviderUnavailable, 500),
    "529": (overloaded(), ProviderUnavailable, 529),
    "malformed": (malformed(), MalformedResponse, 200),
    "truncated": (truncated(anthropic_message("x")), MalformedResponse, 200),
    "no-content": (Reply(body={"type": "message"}), MalformedResponse, 200),
    "reset": (reset(), ProviderConnectionError, None),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
async def test_every_error_class_over_the_socket(
    server: FakeAnthropicServer,
    catalog: Catalog,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    reply, error_class, status = ERROR_CASES[case]
    key = "sk-ant-api03-WRONGkey9876543210" if reply is None else KEY
    if reply is not None:
        server.push(reply)
    async with AnthropicProvider(
        name="fake-anthropic", base_url=server.base_url, catalog=catalog, api_key=key
    ) as adapter:
        with pytest.raises(ProviderError) as caught:
            await adapter.complete(ask())
    error = caught.value
    assert type(error) is error_class
    assert (error.provider, error.model, error.status) == ("fake-anthropic", "claude", status)
    for text in (str(error), repr(error), repr(adapter), caplog.text):
        assert key not in text
    if isinstance(error, RateLimited):
        assert error.retry_after == 3.0


async def test_timeout(server: FakeAnthropicServer, provider: AnthropicProvider) -> None:
    server.push(hang())
    with pytest.raises(ProviderTimeout):
        await provider.complete(ask(timeout_s=0.2))
