"""Issue 14: one estimate of a prompt's tokens, shared by the cost reservation and the rate limits.

The engine reserves a call's worst case from the prompt estimate (the capped ``max_tokens`` the
server receives shows which estimate was used), and the token bucket of a rate-limited provider
takes the same estimate plus ``max_tokens``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import make_task
from tests.providers.clock import VirtualTime
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.providers.base import ChatRequest, ChatResponse, Message, Usage
from tlm.providers.limits import RateLimitedProvider, estimate_tokens
from tlm.testing import FakeOpenAIServer, FakeProvider, chat_completion
from tlm.usage import MESSAGE_OVERHEAD_CHARS, estimate_prompt_tokens, tokens_for_chars

PRICE = 100.0  # USD per million tokens, input and output alike: one token is $0.0001


def _catalog(base_url: str) -> dict[str, Any]:
    model = {
        "id": "even",
        "provider": "fake",
        "api": "openai",
        "provider_model": "even-model",
        "base_url": base_url,
        "context_window": 32_768,
        "input_price_per_mtok": PRICE,
        "output_price_per_mtok": PRICE,
        "structured_output": "json_schema",
    }
    return {"version": 1, "models": [model]}


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    return chat_completion(json.dumps({"title": "Chef"}), prompt_tokens=10, completion_tokens=5)


@pytest.mark.parametrize("posting", ["Chef", "Chef wanted in Lyon, " * 40])
async def test_the_reservation_caps_max_tokens_with_the_one_prompt_estimate(
    tmp_path: Path, posting: str
) -> None:
    budget = 0.05005  # 500.5 tokens' worth: the capped max_tokens is 500 - the prompt estimate
    async with FakeOpenAIServer(_reply) as server:
        engine = Engine(
            EngineConfig(data_dir=tmp_path, models=("even",)),
            registry=DefinitionRegistry([make_task()]),
            catalog=Catalog.from_data(_catalog(server.base_url)),
        )
        async with engine:
            await engine.execute(
                "title_extraction",
                {"posting": posting},
                options={"budget": {"max_cost_usd": budget}, "max_tokens": 4000},
            )
        (body,) = server.bodies
    messages = [Message(m["role"], m["content"]) for m in body["messages"]]
    prompt = estimate_prompt_tokens(messages)
    chars = sum(len(m.content) + MESSAGE_OVERHEAD_CHARS for m in messages)
    assert prompt == tokens_for_chars(chars)
    assert body["max_tokens"] == 500 - prompt
    # the rate limiter counts the same request the same way
    request = ChatRequest(model="even", messages=tuple(messages), max_tokens=body["max_tokens"])
    assert estimate_tokens(request) == prompt + body["max_tokens"]


async def test_the_token_bucket_takes_the_one_prompt_estimate_plus_max_tokens() -> None:
    time = VirtualTime()
    messages = (
        Message("system", "You extract titles."),
        Message("user", "x" * 300),
        Message("assistant", "{}"),
        Message("user", "again"),
    )
    request = ChatRequest(model="m", messages=messages, max_tokens=50)

    seen: list[int] = []

    def handler(request: ChatRequest) -> ChatResponse:
        assert limited.tokens is not None
        seen.append(round(1000 - limited.tokens.level))
        return ChatResponse(text="ok", model="m", provider="p", usage=Usage(1, 1))

    limited = RateLimitedProvider(
        FakeProvider(handler), tokens_per_minute=1000, clock=time.clock, sleep=time.sleep
    )
    await limited.complete(request)
    assert seen == [estimate_prompt_tokens(messages) + 50]
    # four messages: 16 characters of framing beyond the text, counted once, in one place
    text_only = tokens_for_chars(sum(len(m.content) for m in messages))
    assert estimate_prompt_tokens(messages) == tokens_for_chars(
        sum(len(m.content) for m in messages) + 4 * MESSAGE_OVERHEAD_CHARS
    )
    assert estimate_prompt_tokens(messages) > text_only
