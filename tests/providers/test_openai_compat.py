"""The OpenAI-compatible adapter end to end over a loopback socket against the fake server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tlm.catalog import Catalog
from tlm.errors import (
    AuthenticationFailed,
    BadRequest,
    ConfigurationError,
    ContextLengthExceeded,
    MalformedResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from tlm.json_reply import schema_instruction
from tlm.providers.base import ChatRequest, Message
from tlm.providers.openai_compat import OpenAICompatProvider
from tlm.testing import (
    FakeOpenAIServer,
    Reply,
    chat_completion,
    context_length_exceeded,
    hang,
    malformed,
    openai_error,
    rate_limited,
    reset,
    server_error,
    truncated,
)

from .support import API_KEY, make_catalog

SCHEMA = {
    "title": "Job detail",
    "type": "object",
    "properties": {"title": {"type": "string"}},
    "required": ["title"],
}


@pytest.fixture
def catalog() -> Catalog:
    return make_catalog()


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def provider(
    server: FakeOpenAIServer, catalog: Catalog
) -> AsyncIterator[OpenAICompatProvider]:
    async with OpenAICompatProvider(
        name="fake", base_url=server.base_url, catalog=catalog, api_key=API_KEY
    ) as adapter:
        yield adapter


def ask(model: str = "m-schema", **kwargs: Any) -> ChatRequest:
    return ChatRequest.from_prompt(model, "Extract the job title.", system="Be exact.", **kwargs)


async def test_plain_completion_round_trip(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.push(
        chat_completion(
            "Senior engineer",
            model="wire-m-schema",
            prompt_tokens=1000,
            completion_tokens=200,
            cached_tokens=400,
            reasoning_tokens=50,
            finish_reason="length",
            response_id="chatcmpl-42",
        )
    )
    response = await provider.complete(
        ask(temperature=0.0, max_tokens=64, seed=7, stop=("\n\n",), extra={"cache_prompt": False})
    )
    assert response.text == "Senior engineer"
    assert response.finish_reason == "length"
    assert response.response_id == "chatcmpl-42"
    assert response.model == "wire-m-schema"
    assert response.provider == "fake"
    assert response.parsed is None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1000, 200)
    assert (response.usage.cached_input_tokens, response.usage.reasoning_tokens) == (400, 50)
    assert response.latency_s > 0
    # 600 fresh input at $2, 400 cached at $0.5, 200 output at $8 per million
    assert response.cost_usd == pytest.approx((600 * 2 + 400 * 0.5 + 200 * 8) / 1e6)
    (received,) = server.requests
    assert received.path == "/v1/chat/completions"
    assert received.headers["Authorization"] == f"Bearer {API_KEY}"
    assert received.body == {
        "model": "wire-m-schema",
        "messages": [
            {"role": "system", "content": "Be exact."},
            {"role": "user", "content": "Extract the job title."},
        ],
        "temperature": 0.0,
        "max_tokens": 64,
        "seed": 7,
        "stop": ["\n\n"],
        "cache_prompt": False,
    }


@pytest.mark.parametrize(
    ("model", "response_format", "schema_in_prompt"),
    [
        pytest.param(
            "m-schema",
            {
                "type": "json_schema",
                "json_schema": {"name": "Job_detail", "schema": SCHEMA, "strict": False},
            },
            False,
            id="json_schema",
        ),
        pytest.param("m-object", {"type": "json_object"}, True, id="json_object"),
        pytest.param(
            "m-llama", {"type": "json_object", "schema": SCHEMA}, False, id="json_object_schema"
        ),
        pytest.param("m-none", None, True, id="none"),
    ],
)
async def test_structured_output_follows_the_card(
    server: FakeOpenAIServer,
    provider: OpenAICompatProvider,
    model: str,
    response_format: dict[str, Any] | None,
    schema_in_prompt: bool,
) -> None:
    server.push('```json\n{"title": "Engineer"}\n```')
    response = await provider.complete(ask(model, output_schema=SCHEMA))
    assert response.parsed == {"title": "Engineer"}
    body = server.requests[0].body
    assert body.get("response_format") == response_format
    system = body["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("Be exact.")
    assert (schema_instruction(SCHEMA) in system["content"]) is schema_in_prompt


async def test_unparseable_structured_reply_leaves_parsed_empty(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.push("Sorry, I cannot do that.")
    response = await provider.complete(ask(output_schema=SCHEMA))
    assert response.text == "Sorry, I cannot do that."
    assert response.parsed is None


async def test_embeddings(server: FakeOpenAIServer, provider: OpenAICompatProvider) -> None:
    result = await provider.embed("m-embed", ["alpha", "beta gamma"])
    assert len(result.vectors) == 2
    assert result.vectors[0] != result.vectors[1]
    assert result.usage.input_tokens == 3
    assert result.cost_usd == pytest.approx(3 * 0.02 / 1e6)
    assert server.requests[0].body == {"model": "wire-m-embed", "input": ["alpha", "beta gamma"]}


ERROR_CASES = {
    "401": (None, AuthenticationFailed, 401),
    "403": (
        openai_error(403, "You are not allowed to sample from this model"),
        AuthenticationFailed,
        403,
    ),
    "400": (openai_error(400, "Invalid value for 'temperature'"), BadRequest, 400),
    "404": (
        openai_error(404, "The model `gpt-9` does not exist", code="model_not_found"),
        BadRequest,
        404,
    ),
    "422": (openai_error(422, "Unprocessable"), BadRequest, 422),
    "context-openai": (context_length_exceeded(), ContextLengthExceeded, 400),
    "context-vllm": (context_length_exceeded("vllm"), ContextLengthExceeded, 400),
    "context-llama.cpp": (context_length_exceeded("llama.cpp"), ContextLengthExceeded, 400),
    "429": (rate_limited(3), RateLimited, 429),
    "quota": (
        openai_error(
            429,
            "You exceeded your current quota",
            type="insufficient_quota",
            code="insufficient_quota",
        ),
        ProviderRejected,
        429,
    ),
    "500": (server_error(500), ProviderUnavailable, 500),
    "502": (server_error(502), ProviderUnavailable, 502),
    "503": (server_error(503), ProviderUnavailable, 503),
    "504": (server_error(504), ProviderUnavailable, 504),
    "malformed": (malformed(), MalformedResponse, 200),
    "truncated": (truncated(), MalformedResponse, 200),
    "not-json-error-page": (
        Reply(status=502, body=b"<html>Bad Gateway</html>"),
        ProviderUnavailable,
        502,
    ),
    "no-choices": (Reply(body={"id": "x", "object": "chat.completion"}), MalformedResponse, 200),
    "error-in-200": (
        Reply(body={"error": {"message": "upstream overloaded", "code": 503}}),
        ProviderUnavailable,
        503,
    ),
    "reset": (reset(), ProviderConnectionError, None),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
async def test_every_error_class_over_the_socket(
    server: FakeOpenAIServer,
    catalog: Catalog,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    reply, error_class, status = ERROR_CASES[case]
    key = "sk-wrong-KEY9876543210zyx" if reply is None else API_KEY
    if reply is not None:
        server.push(reply)
    async with OpenAICompatProvider(
        name="fake", base_url=server.base_url, catalog=catalog, api_key=key
    ) as adapter:
        with pytest.raises(ProviderError) as caught:
            await adapter.complete(ask())
    error = caught.value
    assert type(error) is error_class
    assert (error.provider, error.model, error.status) == ("fake", "m-schema", status)
    assert str(error).startswith("fake/m-schema")
    for text in (str(error), repr(error), repr(adapter), caplog.text):
        assert key not in text
        assert key[6:-4] not in text
        assert key[-4:] + "." not in text


async def test_auth_error_scrubs_the_masked_key_openai_echoes(
    server: FakeOpenAIServer, catalog: Catalog
) -> None:
    key = "sk-proj-ABCDEFGHIJKLMNOP"
    async with OpenAICompatProvider(
        name="fake", base_url=server.base_url, catalog=catalog, api_key=key
    ) as adapter:
        with pytest.raises(AuthenticationFailed) as caught:
            await adapter.complete(ask())
    assert "Incorrect API key provided: ***" in str(caught.value)
    assert "MNOP" not in str(caught.value)
    assert not caught.value.retryable


async def test_retry_after_is_parsed(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.push(rate_limited(2.5), rate_limited(None, retry_after_ms=750))
    for expected in (2.5, 0.75):
        with pytest.raises(RateLimited) as caught:
            await provider.complete(ask())
        assert caught.value.retry_after == pytest.approx(expected)
        assert caught.value.retryable


async def test_timeout_from_the_request(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.push(hang())
    with pytest.raises(ProviderTimeout) as caught:
        await provider.complete(ask(timeout_s=0.2))
    assert caught.value.retryable


async def test_connection_refused(catalog: Catalog) -> None:
    async with FakeOpenAIServer() as fake:
        url = fake.base_url
    async with OpenAICompatProvider(name="fake", base_url=url, catalog=catalog) as adapter:
        with pytest.raises(ProviderConnectionError):
            await adapter.complete(ask())


async def test_unknown_model_is_a_configuration_error(provider: OpenAICompatProvider) -> None:
    with pytest.raises(ConfigurationError, match=r"known: .*m-schema"):
        await provider.complete(ask("nope"))


async def test_refuses_use_after_close(provider: OpenAICompatProvider) -> None:
    await provider.aclose()
    with pytest.raises(ConfigurationError, match="closed"):
        await provider.complete(ask())


async def test_borrowed_session_is_not_closed(server: FakeOpenAIServer, catalog: Catalog) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        adapter = OpenAICompatProvider(
            name="fake", base_url=server.base_url, catalog=catalog, api_key=API_KEY, session=session
        )
        await adapter.complete(ask())
        await adapter.aclose()
        assert not session.closed


def test_messages_keep_their_order() -> None:
    from tlm.providers.openai_compat import build_chat_body

    catalog = make_catalog()
    request = ChatRequest(
        "m-object",
        (Message("user", "a"), Message("assistant", "b"), Message("user", "c")),
        output_schema={"type": "array"},
    )
    body = build_chat_body(request, catalog.get("m-object"))
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
