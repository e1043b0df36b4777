"""Hierarchical review end to end: the reviewer is a fake OpenAI-compatible server on a socket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from tlm.catalog import Catalog
from tlm.definition.model import HierarchicalParams
from tlm.providers.base import ChatRequest, ChatResponse
from tlm.providers.openai_compat import OpenAICompatProvider
from tlm.testing import FakeOpenAIServer
from tlm.verify.hierarchical import HierarchicalVerifier

from .support import FakeSource, make_context


def catalog() -> Catalog:
    card = {
        "provider": "fake",
        "api": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "input_price_per_mtok": 1.0,
        "output_price_per_mtok": 2.0,
        "context_window": 8192,
        "max_output_tokens": 512,
        "structured_output": "json_schema",
    }
    models = [{**card, "id": m, "provider_model": f"wire-{m}"} for m in ("model-a", "model-b")]
    return Catalog.from_data({"version": 1, "models": models})


@pytest.fixture
async def reviewer() -> AsyncIterator[tuple[FakeOpenAIServer, OpenAICompatProvider]]:
    async with (
        FakeOpenAIServer() as server,
        OpenAICompatProvider(name="fake", base_url=server.base_url, catalog=catalog()) as provider,
    ):
        yield server, provider


def asker(provider: OpenAICompatProvider) -> Any:
    async def ask(
        model: str, prompt: str, /, *, output_schema: Mapping[str, Any] | None = None
    ) -> ChatResponse:
        return await provider.complete(
            ChatRequest.from_prompt(model, prompt, output_schema=output_schema)
        )

    return ask


VERIFIER = HierarchicalVerifier(
    HierarchicalParams(
        verification_prompt="Is this decomposition of {{skill_name}} complete? {{decomposition}}",
        correction_round=True,
    )
)


async def test_review_over_socket_passes(
    reviewer: tuple[FakeOpenAIServer, OpenAICompatProvider],
) -> None:
    server, provider = reviewer
    server.push(json.dumps({"passed": True, "confidence": 0.97, "issues": [], "suggestions": []}))
    verdict = await VERIFIER.verify(make_context(ask=asker(provider)))

    assert verdict.passed is True
    assert verdict.confidence == 0.97
    assert verdict.cost_usd > 0  # priced from the catalog card
    (body,) = server.bodies
    assert body["model"] == "wire-model-b"
    assert "decomposition of python" in body["messages"][-1]["content"]


async def test_garbage_then_correction_over_socket(
    reviewer: tuple[FakeOpenAIServer, OpenAICompatProvider],
) -> None:
    server, provider = reviewer
    server.push("Looks good to me, ship it!")
    verdict = await VERIFIER.verify(make_context(ask=asker(provider)))
    assert verdict.passed is False
    assert not verdict.decisive
    assert "not JSON" in verdict.details["error"]

    server.push(
        json.dumps({"passed": False, "confidence": 0.9, "issues": ["no tests"], "suggestions": []}),
        json.dumps({"passed": True, "confidence": 0.9, "issues": [], "suggestions": []}),
    )
    source = FakeSource([{"skills": ["syntax", "testing"]}])
    verdict = await VERIFIER.verify(make_context(ask=asker(provider), source=source))
    assert verdict.passed is True
    assert verdict.output == {"skills": ["syntax", "testing"]}
    assert "no tests" in str(source.calls[0][1])
