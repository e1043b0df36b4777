"""The fake servers speak the real wire formats: the official SDKs parse their bodies."""

from __future__ import annotations

import anthropic
import openai
import pytest
from anthropic.types import ErrorResponse, Message
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.shared import ErrorObject

from tlm.testing import (
    FakeAnthropicServer,
    FakeOpenAIServer,
    Reply,
    anthropic_error,
    anthropic_message,
    anthropic_rate_limited,
    anthropic_unauthorized,
    chat_completion,
    context_length_exceeded,
    openai_error,
    overloaded,
    prompt_too_long,
    rate_limited,
    server_error,
    unauthorized,
)

OPENAI_ERRORS = {
    "429": rate_limited(2),
    "500": server_error(500),
    "503": server_error(503),
    "401": unauthorized("sk-test-abcdefghijkl"),
    "context": context_length_exceeded(),
    "404": openai_error(404, "The model `x` does not exist", code="model_not_found"),
}
ANTHROPIC_ERRORS = {
    "429": anthropic_rate_limited(),
    "529": overloaded(),
    "401": anthropic_unauthorized(),
    "context": prompt_too_long(),
    "500": anthropic_error(500, "api_error", "Internal server error"),
}


def test_chat_completion_body_is_an_sdk_chat_completion() -> None:
    parsed = ChatCompletion.model_validate(
        chat_completion("hi", cached_tokens=3, reasoning_tokens=2)
    )
    assert parsed.choices[0].message.content == "hi"
    assert parsed.usage is not None
    assert parsed.usage.prompt_tokens_details is not None
    assert parsed.usage.prompt_tokens_details.cached_tokens == 3


@pytest.mark.parametrize("case", list(OPENAI_ERRORS))
def test_openai_error_bodies_are_sdk_error_objects(case: str) -> None:
    reply = OPENAI_ERRORS[case]
    error = ErrorObject.model_validate(reply.body["error"])
    assert error.message


@pytest.mark.parametrize("case", list(ANTHROPIC_ERRORS))
def test_anthropic_error_bodies_are_sdk_error_responses(case: str) -> None:
    reply = ANTHROPIC_ERRORS[case]
    assert ErrorResponse.model_validate(reply.body).type == "error"


def test_anthropic_message_bodies_are_sdk_messages() -> None:
    text = Message.model_validate(anthropic_message("hello", cache_read_input_tokens=5))
    assert text.content[0].type == "text"
    tool = Message.model_validate(anthropic_message(tool_input={"a": 1}))
    assert tool.stop_reason == "tool_use"
    assert tool.content[0].type == "tool_use"


async def test_the_openai_sdk_talks_to_the_fake_server() -> None:
    async with FakeOpenAIServer(api_key="sk-fake-0123456789") as server:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="sk-fake-0123456789", max_retries=0
        ) as client:
            server.push("hello from the fake")
            completion = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
            assert completion.choices[0].message.content == "hello from the fake"
            embeddings = await client.embeddings.create(model="e", input=["a", "b"])
            assert CreateEmbeddingResponse.model_validate(embeddings.model_dump())
            assert len(embeddings.data) == 2
            server.push(rate_limited(2))
            with pytest.raises(openai.RateLimitError) as limited:
                await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
            assert limited.value.code == "rate_limit_exceeded"
            server.push(context_length_exceeded())
            with pytest.raises(openai.BadRequestError) as too_long:
                await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
            assert too_long.value.code == "context_length_exceeded"
            server.push(server_error(503))
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="sk-wrong-0123456789", max_retries=0
        ) as wrong:
            with pytest.raises(openai.AuthenticationError) as denied:
                await wrong.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
            assert denied.value.code == "invalid_api_key"


async def test_the_anthropic_sdk_talks_to_the_fake_server() -> None:
    async with FakeAnthropicServer(api_key="sk-ant-fake-0123") as server:
        async with anthropic.AsyncAnthropic(
            base_url=server.base_url, api_key="sk-ant-fake-0123", max_retries=0
        ) as client:
            server.push("hello from the fake")
            message = await client.messages.create(
                model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
            assert message.content[0].type == "text"
            assert message.content[0].text == "hello from the fake"
            server.push(overloaded())
            with pytest.raises(anthropic.APIStatusError) as busy:
                await client.messages.create(
                    model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
                )
            assert busy.value.status_code == 529
            server.push(anthropic_rate_limited())
            with pytest.raises(anthropic.RateLimitError):
                await client.messages.create(
                    model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
                )
        assert server.requests[0].headers["anthropic-version"]


async def test_scripts_may_be_callables_and_latency_applies() -> None:
    def script(body: dict[str, object]) -> Reply | str:
        return "echo:" + str(body["model"])

    async with FakeOpenAIServer(script) as server:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as c:
            completion = await c.chat.completions.create(
                model="abc", messages=[{"role": "user", "content": "x"}]
            )
    assert completion.choices[0].message.content == "echo:abc"
    assert server.bodies == [{"model": "abc", "messages": [{"role": "user", "content": "x"}]}]
