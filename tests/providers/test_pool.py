"""The provider pool: lazy creation per provider, keys from the environment, clean closing."""

from __future__ import annotations

from typing import Any

import pytest

from tlm.catalog import Catalog
from tlm.errors import ConfigurationError
from tlm.providers.anthropic import AnthropicProvider
from tlm.providers.base import ChatRequest
from tlm.providers.limits import ProviderLimits, RateLimitedProvider
from tlm.providers.openai_compat import OpenAICompatProvider
from tlm.providers.pool import ProviderPool
from tlm.providers.retry import RetryingProvider
from tlm.testing import FakeAnthropicServer, FakeOpenAIServer

from .support import API_KEY, card, make_catalog


def url_card(model_id: str, **extra: Any) -> dict[str, Any]:
    data = card(model_id, **extra)
    data.pop("base_url")
    return data


def adapter_of(provider: Any) -> Any:
    assert isinstance(provider, RetryingProvider)
    assert isinstance(provider.inner, RateLimitedProvider)
    return provider.inner.inner


async def test_one_provider_per_name_created_lazily() -> None:
    env = {"FAKE_API_KEY": API_KEY, "FAKE_ANTHROPIC_KEY": "sk-ant-x-123456789"}
    async with ProviderPool(make_catalog(), env=env) as pool:
        assert pool.providers == {}
        first = await pool.provider_for("m-schema")
        assert await pool.provider_for("m-object") is first
        assert isinstance(adapter_of(first), OpenAICompatProvider)
        claude = await pool.provider_for("claude")
        assert isinstance(adapter_of(claude), AnthropicProvider)
        assert set(pool.providers) == {"fake", "fake-anthropic"}
        assert API_KEY not in repr(pool) + repr(first)
    with pytest.raises(ConfigurationError, match="closed"):
        await pool.provider_for("m-schema")


async def test_missing_key_names_the_variable_only() -> None:
    async with ProviderPool(make_catalog(), env={}) as pool:
        with pytest.raises(ConfigurationError, match="FAKE_API_KEY") as caught:
            await pool.provider_for("m-schema")
    assert "m-schema" in str(caught.value)


async def test_missing_base_url_variable() -> None:
    entry = url_card("v", base_url_env="V_URL")
    del entry["api_key_env"]
    catalog = Catalog.from_data({"version": 1, "models": [entry]})
    async with ProviderPool(catalog, env={}) as pool:
        with pytest.raises(ConfigurationError, match="V_URL"):
            await pool.provider_for("v")


async def test_pool_calls_through_retries_and_limits_over_sockets() -> None:
    async with FakeOpenAIServer(api_key=API_KEY) as openai, FakeAnthropicServer() as anthropic:
        catalog = Catalog.from_data(
            {
                "version": 1,
                "models": [
                    url_card("gpt", base_url_env="GPT_URL"),
                    url_card(
                        "claude",
                        provider="anth",
                        api="anthropic",
                        base_url_env="ANTH_URL",
                        api_key_env="ANTH_KEY",
                    ),
                ],
            }
        )
        env = {
            "GPT_URL": openai.base_url,
            "ANTH_URL": anthropic.base_url,
            "FAKE_API_KEY": API_KEY,
            "ANTH_KEY": "sk-ant-k-0123456789",
        }
        limits = {"fake": ProviderLimits(max_concurrency=1, requests_per_minute=100)}
        async with ProviderPool(catalog, env=env, limits=limits) as pool:
            gpt = await pool.provider_for("gpt")
            openai.push("from gpt")
            assert (await gpt.complete(ChatRequest.from_prompt("gpt", "hi"))).text == "from gpt"
            claude = await pool.provider_for("claude")
            anthropic.push("from claude")
            reply = await claude.complete(ChatRequest.from_prompt("claude", "hi"))
            assert reply.text == "from claude"
            assert adapter_of(gpt).base_url == openai.base_url
            assert gpt.inner.limiter.total_tokens == 1  # type: ignore[attr-defined]
        assert anthropic.requests[0].headers["x-api-key"] == "sk-ant-k-0123456789"


async def test_inconsistent_cards_of_one_provider_are_rejected() -> None:
    catalog = Catalog.from_data(
        {
            "version": 1,
            "models": [card("a"), card("b", base_url="http://elsewhere:1/v1")],
        }
    )
    async with ProviderPool(catalog, env={"FAKE_API_KEY": "k"}) as pool:
        with pytest.raises(ConfigurationError, match="distinct providers"):
            await pool.provider_for("a")


async def test_only_the_configured_models_must_agree_on_their_providers_endpoint() -> None:
    """A project pointing one packaged model elsewhere need not move its unused siblings; a
    sibling used later that would share the provider built for another endpoint is refused."""
    catalog = Catalog.from_data(
        {
            "version": 1,
            "models": [card("a"), card("b", base_url="http://elsewhere:1/v1")],
        }
    )
    async with ProviderPool(catalog, env={"FAKE_API_KEY": "k"}, models=("a",)) as pool:
        provider = await pool.provider_for("a")
        assert await pool.provider_for("a") is provider
        with pytest.raises(ConfigurationError, match="distinct providers"):
            await pool.provider_for("b")


async def test_local_models_use_the_local_provider(tmp_path: Any) -> None:
    catalog = Catalog.load()
    async with ProviderPool(catalog, env={}, data_dir=tmp_path) as pool:
        provider = await pool.provider_for("qwen2.5-coder-0.5b-instruct")
        assert provider.name == "local"
        assert type(adapter_of(provider)).__name__ == "LocalProvider"
        assert await pool.provider_for("smollm2-135m-instruct") is provider
