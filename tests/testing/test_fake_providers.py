"""The in-process fake providers satisfy the Provider protocol and script replies and errors."""

from __future__ import annotations

import anyio
import pytest

from tlm.errors import ConfigurationError, RateLimited
from tlm.providers.base import ChatRequest, ChatResponse, EmbeddingProvider, Provider, Usage
from tlm.testing import FakeProvider, ScriptedModels, ScriptedProvider

SCHEMA = {"type": "object"}


async def test_fake_provider_answers_from_its_handler() -> None:
    async def handler(request: ChatRequest) -> str:
        return f'{{"echo": "{request.messages[-1].content}"}}'

    provider = FakeProvider(handler, name="f")
    assert isinstance(provider, Provider)
    assert isinstance(provider, EmbeddingProvider)
    response = await provider.complete(ChatRequest.from_prompt("m", "hi", output_schema=SCHEMA))
    assert response.parsed == {"echo": "hi"}
    assert response.provider == "f"
    assert provider.requests[0].messages[-1].content == "hi"
    await provider.aclose()
    with pytest.raises(ConfigurationError, match="closed"):
        await provider.complete(ChatRequest.from_prompt("m", "again"))


async def test_scripted_provider_plays_its_script_then_complains() -> None:
    canned = ChatResponse(text="canned", model="m", provider="x")
    provider = ScriptedProvider(
        [
            "first",
            RateLimited("slow", provider="scripted", model="m", retry_after=1),
            canned,
            lambda request: request.model.upper(),
        ]
    )
    request = ChatRequest.from_prompt("m", "hi")
    assert (await provider.complete(request)).text == "first"
    with pytest.raises(RateLimited):
        await provider.complete(request)
    assert await provider.complete(request) is canned
    assert (await provider.complete(request)).text == "M"
    assert provider.remaining == 0
    with pytest.raises(AssertionError, match="ran out of replies"):
        await provider.complete(request)
    provider.push("more")
    assert (await provider.complete(request)).text == "more"


async def test_fake_embeddings_are_deterministic() -> None:
    provider = FakeProvider(lambda request: "x")
    first = await provider.embed("e", ["abc", "xyz"])
    second = await provider.embed("e", ["abc", "xyz"])
    assert first.vectors == second.vectors
    assert first.vectors[0] != first.vectors[1]


async def test_scripted_models_answers_each_model_from_its_handler() -> None:
    async def slow(request: ChatRequest) -> str:
        await anyio.sleep(10)
        return "never"

    models = ScriptedModels({"a": lambda r: '{"x": 1}', "*": lambda r: r.model})
    assert isinstance(models, Provider)
    first = await models.complete(ChatRequest.from_prompt("a", "hi", output_schema=SCHEMA))
    assert (first.parsed, first.usage) == ({"x": 1}, Usage(input_tokens=100, output_tokens=50))
    assert (await models.complete(ChatRequest.from_prompt("other", "hi"))).text == "other"
    models.handlers["a"] = slow
    with anyio.move_on_after(0.01):
        await models.complete(ChatRequest.from_prompt("a", "hi"))
    assert (models.completed, models.cancelled) == (["a", "other"], ["a"])
    assert (models.calls(), models.calls("a")) == (3, 2)
    del models.handlers["*"]
    with pytest.raises(AssertionError, match="no handler for 'b'"):
        await models.complete(ChatRequest.from_prompt("b", "hi"))
