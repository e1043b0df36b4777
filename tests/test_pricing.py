"""Pricing once: adapters return usage, :func:`tlm.pricing.price` prices it.

Over real sockets against the fake OpenAI and Anthropic servers: an adapter's response carries
its usage and the card's prices but no fixed cost, and its ``cost_usd`` (for direct provider
users) is ``price`` of the two; the engine prices each call once, with the usage it bills, and
ignores whatever cost a provider claims.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task
from tlm.catalog import Catalog, ModelCard
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.pricing import price
from tlm.providers.anthropic import AnthropicProvider
from tlm.providers.base import ChatRequest, ChatResponse, EmbeddingResponse, Usage
from tlm.providers.openai_compat import OpenAICompatProvider
from tlm.store import ExecutionStore
from tlm.testing import (
    FakeAnthropicServer,
    FakeOpenAIServer,
    anthropic_message,
    chat_completion,
)

CARD = {
    "id": "priced",
    "provider": "fake",
    "api": "openai",
    "provider_model": "priced-model",
    "base_url": "http://127.0.0.1:9/v1",
    "context_window": 32_768,
    "input_price_per_mtok": 2.0,
    "output_price_per_mtok": 8.0,
    "cached_input_price_per_mtok": 0.5,
    "batch_input_price_per_mtok": 1.0,
    "batch_output_price_per_mtok": 4.0,
    "structured_output": "json_schema",
    "embeddings": True,
}


def catalog(base_url: str = "http://127.0.0.1:9/v1", **changes: Any) -> Catalog:
    entry = {k: v for k, v in {**CARD, "base_url": base_url, **changes}.items() if v is not None}
    return Catalog.from_data({"version": 1, "models": [entry]})


def test_price_is_the_formula_every_card_uses() -> None:
    card = catalog().get("priced")
    usage = Usage(input_tokens=1000, output_tokens=200, cached_input_tokens=400)
    expected = (600 * 2.0 + 400 * 0.5 + 200 * 8.0) / 1e6
    assert price(card, usage) == pytest.approx(expected)
    assert card.cost(usage) == price(card, usage)
    # batch: cached input at the lower of the cached and the batch input price
    assert price(card, usage, batch=True) == pytest.approx((600 * 1.0 + 400 * 0.5 + 800) / 1e6)
    assert price(None, usage) == 0.0
    plain = catalog(batch_input_price_per_mtok=None, batch_output_price_per_mtok=None)
    with pytest.raises(ValueError, match="'priced' has no batch prices"):
        price(plain.get("priced"), usage, batch=True)


async def test_the_openai_adapter_returns_usage_and_prices_not_a_cost() -> None:
    reply = chat_completion("Chef", prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
    async with FakeOpenAIServer(lambda body: reply) as server:
        cards = catalog(server.base_url)
        async with OpenAICompatProvider(
            name="fake", base_url=server.base_url, catalog=cards
        ) as adapter:
            response = await adapter.complete(ChatRequest.from_prompt("priced", "Title?"))
            embedded = await _embed(adapter, server)
    card = cards.get("priced")
    assert response.fixed_cost_usd is None  # the adapter did not price it ...
    assert response.prices == card  # ... it says which prices apply
    assert response.cost_usd == price(card, response.usage)  # what a direct caller reads
    assert response.cost_usd == pytest.approx((600 * 2.0 + 400 * 0.5 + 200 * 8.0) / 1e6)
    assert embedded.fixed_cost_usd is None
    assert embedded.cost_usd == price(card, Usage(input_tokens=3)) > 0


async def _embed(adapter: OpenAICompatProvider, server: FakeOpenAIServer) -> EmbeddingResponse:
    server.push(
        {
            "data": [{"index": 0, "embedding": [1.0, 0.0]}],
            "usage": {"prompt_tokens": 3, "total_tokens": 3},
        }
    )
    return await adapter.embed("priced", ["alpha beta gamma"])


async def test_the_anthropic_adapter_returns_usage_and_prices_not_a_cost() -> None:
    cards = catalog(api="anthropic", provider="fake-anthropic", base_url="http://127.0.0.1:9")
    reply = anthropic_message("Chef", input_tokens=700, output_tokens=30)
    async with FakeAnthropicServer(lambda body: reply) as server:
        async with AnthropicProvider(
            name="fake-anthropic", base_url=server.base_url, catalog=cards, api_key="k"
        ) as adapter:
            response = await adapter.complete(ChatRequest.from_prompt("priced", "Title?"))
    assert response.fixed_cost_usd is None
    assert response.cost_usd == price(cards.get("priced"), response.usage)
    assert response.cost_usd == pytest.approx((700 * 2.0 + 30 * 8.0) / 1e6)


async def test_the_engine_prices_each_call_once_with_the_usage_it_bills(tmp_path: Path) -> None:
    """A server claiming 10 M output tokens for a 300-token request: the engine bills 300."""
    answer = json.dumps({"title": "Chef"})
    lying = chat_completion(answer, prompt_tokens=50, completion_tokens=10**7)
    async with FakeOpenAIServer(lambda body: lying) as server:
        cards = catalog(server.base_url)
        async with Engine(
            EngineConfig(data_dir=tmp_path / "data", models=("priced",), cache=False),
            registry=DefinitionRegistry([make_task()]),
            catalog=cards,
        ) as engine:
            result = await engine.execute(
                "title_extraction", {"posting": "Chef"}, options={"max_tokens": 300}
            )
            engine.flush()
    card: ModelCard = cards.get("priced")
    billed = price(card, Usage(input_tokens=50, output_tokens=300))
    assert result.cost_usd == pytest.approx(billed)
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        record = store.get(result.execution_id)
    assert record is not None
    assert record.performance.cost == pytest.approx(billed)


async def test_the_engine_ignores_a_providers_own_cost(tmp_path: Path) -> None:
    models = ScriptedModels(usage=Usage(input_tokens=100, output_tokens=50))

    def claim(request: ChatRequest) -> ChatResponse:
        text = json.dumps({"title": "Chef"})
        usage = Usage(input_tokens=100, output_tokens=50)
        return ChatResponse(text, request.model, "custom", usage=usage, cost_usd=99.0)

    models.handlers["*"] = claim
    cards = Catalog.from_data(catalog_data())
    async with Engine(
        EngineConfig(data_dir=tmp_path / "data", models=MODELS, cache=False),
        registry=DefinitionRegistry([make_task()]),
        catalog=cards,
        providers=dict.fromkeys(MODELS, models),
    ) as engine:
        result = await engine.execute("title_extraction", {"posting": "Chef"})
    assert result.cost_usd == pytest.approx(price(cards.get("model-a"), Usage(100, 50)))
