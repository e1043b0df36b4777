"""The engine's retry policy reaches the provider pool: a 503 and a 429 retried over a socket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine.conftest import make_task
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.providers.retry import RetryPolicy
from tlm.testing import (
    FakeOpenAIServer,
    ReplyLike,
    chat_completion,
    rate_limited,
    server_error,
)


async def test_retries_are_counted_costed_and_honour_retry_after(tmp_path: Path) -> None:
    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    script: list[ReplyLike] = [
        server_error(503),
        rate_limited(retry_after=7.0),
        chat_completion(json.dumps({"title": "Chef"}), prompt_tokens=1000, completion_tokens=100),
    ]
    async with FakeOpenAIServer(script) as server:
        catalog = Catalog.from_data(
            {
                "version": 1,
                "models": [
                    {
                        "id": "wire",
                        "provider": "fake",
                        "api": "openai",
                        "provider_model": "wire-model",
                        "base_url": server.base_url,
                        "context_window": 8192,
                        "input_price_per_mtok": 1.0,
                        "output_price_per_mtok": 4.0,
                        "structured_output": "json_schema",
                    }
                ],
            }
        )
        engine = Engine(
            EngineConfig(data_dir=tmp_path, models=("wire",)),
            registry=DefinitionRegistry([make_task()]),
            catalog=catalog,
            retry=RetryPolicy(base_delay_s=0.5, jitter=0.0, sleep=record_sleep),
        )
        async with engine:
            result = await engine.execute("title_extraction", {"posting": "Chef"})
        bodies = server.bodies
    assert result.output == {"title": "Chef"}
    assert result.attempts == 3
    assert len(bodies) == 3
    assert bodies[0]["model"] == "wire-model"
    assert slept[0] == pytest.approx(0.5)
    assert slept[1] == pytest.approx(7.0)  # the server's Retry-After wins over the backoff
    assert result.cost_usd == pytest.approx((1000 * 1.0 + 100 * 4.0) / 1e6)
