"""Issue 14: a model call's span splits the cost it was billed into input and output parts.

A fake OpenAI server over a real socket reports far more output tokens than the ``max_tokens``
sent. The call is billed output capped at ``max_tokens`` (``tlm.cost.usd``); its input and
output parts are priced from that billed usage too, so they add up to the cost, while the span's
token counts keep the provider's own report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from attrs import evolve as attrs_evolve
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.engine.conftest import make_task
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.pricing import price
from tlm.providers.base import ChatRequest, ChatResponse, Usage
from tlm.telemetry import conventions as c
from tlm.telemetry.calls import model_call_span
from tlm.telemetry.spans import get_tracer
from tlm.telemetry.targets import call_target
from tlm.testing import FakeOpenAIServer, chat_completion

INPUT_PRICE, CACHED_PRICE, OUTPUT_PRICE = 3.0, 0.5, 15.0


def _catalog(base_url: str) -> dict[str, Any]:
    model = {
        "id": "over",
        "provider": "fake",
        "api": "openai",
        "provider_model": "over-model",
        "base_url": base_url,
        "context_window": 32_768,
        "input_price_per_mtok": INPUT_PRICE,
        "cached_input_price_per_mtok": CACHED_PRICE,
        "output_price_per_mtok": OUTPUT_PRICE,
        "structured_output": "json_schema",
    }
    return {"version": 1, "models": [model]}


@pytest.mark.parametrize("reported_output", [90_000, 40])
async def test_the_cost_parts_add_up_to_the_billed_cost(
    tmp_path: Path, reported_output: int
) -> None:
    def reply(body: dict[str, Any]) -> dict[str, Any]:
        answer = chat_completion(
            json.dumps({"title": "Chef"}), prompt_tokens=700, completion_tokens=reported_output
        )
        answer["usage"]["prompt_tokens_details"] = {"cached_tokens": 300}
        return answer

    exporter = InMemorySpanExporter()
    async with FakeOpenAIServer(reply) as server:
        engine = Engine(
            EngineConfig(data_dir=tmp_path, models=("over",)),
            registry=DefinitionRegistry([make_task()]),
            catalog=Catalog.from_data(_catalog(server.base_url)),
            span_processors=[SimpleSpanProcessor(exporter)],
        )
        async with engine:
            result = await engine.execute(
                "title_extraction", {"posting": "Chef wanted"}, options={"max_tokens": 128}
            )
    (call,) = [s for s in exporter.get_finished_spans() if s.name == "chat over-model"]
    attrs: dict[str, Any] = dict(call.attributes or {})
    billed_output = min(reported_output, 128)
    assert attrs[c.GEN_AI_USAGE_OUTPUT_TOKENS] == reported_output  # the provider's report
    assert attrs[c.TLM_COST_OUTPUT_USD] == pytest.approx(billed_output * OUTPUT_PRICE / 1e6)
    assert attrs[c.TLM_COST_INPUT_USD] == pytest.approx(
        (400 * INPUT_PRICE + 300 * CACHED_PRICE) / 1e6
    )
    assert attrs[c.TLM_COST_INPUT_USD] + attrs[c.TLM_COST_OUTPUT_USD] == pytest.approx(
        attrs[c.TLM_COST_USD]
    )
    assert attrs[c.TLM_COST_USD] == pytest.approx(result.cost_usd)


def test_a_batch_answer_is_split_at_the_batch_prices() -> None:
    data = _catalog("http://127.0.0.1:9/v1")
    data["models"][0].update(batch_input_price_per_mtok=1.5, batch_output_price_per_mtok=7.5)
    card = Catalog.from_data(data).get("over")
    usage = Usage(1000, 200, cached_input_tokens=100)
    cost = price(card, usage, batch=True)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    request = ChatRequest.from_prompt("over", "hi")
    target = call_target("fake", "over", card)
    with model_call_span(
        get_tracer(tracer_provider), request, provider="fake", target=target
    ) as span:
        response = ChatResponse(text="x", model="over-model", provider="fake", usage=usage)
        span.set_response(attrs_evolve(response, cost_usd=cost), batch=True)
    tracer_provider.shutdown()
    (finished,) = exporter.get_finished_spans()
    attrs: dict[str, Any] = dict(finished.attributes or {})
    assert attrs[c.TLM_COST_OUTPUT_USD] == pytest.approx(200 * 7.5 / 1e6)
    assert attrs[c.TLM_COST_INPUT_USD] + attrs[c.TLM_COST_OUTPUT_USD] == pytest.approx(cost)
    assert cost < price(card, usage)  # the batch prices, not the interactive ones
