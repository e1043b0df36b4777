"""The GenAI conventions on every span: messages under the capture rule, targets, events, usage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tlm.catalog import Catalog
from tlm.providers.anthropic import AnthropicProvider, parse_usage
from tlm.providers.base import ChatRequest, ChatResponse, EmbeddingResponse, Message, Usage
from tlm.providers.openai_compat import OpenAICompatProvider
from tlm.providers.retry import RetryingProvider
from tlm.telemetry import conventions as c
from tlm.telemetry.spans import (
    Instruments,
    execution_span,
    get_tracer,
    model_call_span,
    traced_embed,
    with_instruments,
)
from tlm.telemetry.targets import call_target
from tlm.testing import FakeProvider
from tlm.verify.base import Verdict

CATALOG = Catalog.from_data(
    {
        "version": 1,
        "models": [
            {
                "id": "mini",
                "provider": "openai",
                "api": "openai",
                "provider_model": "gpt-4o-mini-2024-07-18",
                "base_url": "https://api.openai.com/v1",
                "context_window": 128000,
                "input_price_per_mtok": 0.15,
                "output_price_per_mtok": 0.6,
            },
            {
                "id": "haiku",
                "provider": "anthropic",
                "api": "anthropic",
                "provider_model": "claude-haiku-4-5-20251001",
                "base_url": "http://10.0.0.7:8443",
                "context_window": 200000,
                "input_price_per_mtok": 1.0,
                "output_price_per_mtok": 5.0,
            },
        ],
    }
)
MESSAGES = (Message("system", "You extract titles."), Message("user", "Chef wanted"))
REPLY = ChatResponse(
    text='{"title": "Chef"}',
    model="gpt-4o-mini-2024-07-18",
    provider="openai",
    finish_reason="stop",
    usage=Usage(1000, 20, cached_input_tokens=200),
    response_id="resp-9",
    cost_usd=CATALOG.get("mini").cost(Usage(1000, 20, cached_input_tokens=200)),
)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield tp
    tp.shutdown()


def _call(
    provider: TracerProvider, model: str, *, capture: bool, schema: bool = True
) -> ReadableSpan:
    adapter = OpenAICompatProvider(
        name="openai", base_url="https://api.openai.com/v1", catalog=CATALOG
    )
    if model == "haiku":
        adapter = AnthropicProvider(base_url="http://10.0.0.7:8443", catalog=CATALOG)  # type: ignore[assignment]
    target = call_target(RetryingProvider(adapter), model)
    request = ChatRequest(
        model=model,
        messages=MESSAGES,
        temperature=0.0,
        output_schema={"type": "object"} if schema else None,
    )
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = get_tracer(provider)
    with model_call_span(
        tracer, request, provider=target.provider, target=target, capture_content=capture
    ) as span:
        span.set_response(REPLY)
    (finished,) = exporter.get_finished_spans()
    return finished


def test_a_model_call_names_the_model_sent_the_server_and_the_output_type(
    provider: TracerProvider,
) -> None:
    span = _call(provider, "mini", capture=False)
    attrs: dict[str, Any] = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini-2024-07-18"
    assert span.kind is SpanKind.CLIENT
    assert attrs[c.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini-2024-07-18"
    assert attrs[c.TLM_REQUEST_MODEL] == "mini"
    assert attrs[c.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[c.SERVER_ADDRESS] == "api.openai.com"
    assert attrs[c.SERVER_PORT] == 443
    assert attrs[c.GEN_AI_OUTPUT_TYPE] == "json"
    assert attrs[c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 200
    # the catalog prices split the cost: input (cached at the input price) and output
    assert attrs[c.TLM_COST_OUTPUT_USD] == pytest.approx(20 * 0.6 / 1e6)
    assert attrs[c.TLM_COST_INPUT_USD] == pytest.approx(1000 * 0.15 / 1e6)
    assert attrs[c.TLM_COST_INPUT_USD] + attrs[c.TLM_COST_OUTPUT_USD] == pytest.approx(
        attrs[c.TLM_COST_USD]
    )
    assert (
        _call(provider, "mini", capture=False, schema=False).attributes[  # type: ignore[index]
            c.GEN_AI_OUTPUT_TYPE
        ]
        == "text"
    )
    anthropic = dict(_call(provider, "haiku", capture=False).attributes or {})
    assert anthropic[c.SERVER_ADDRESS] == "10.0.0.7"
    assert anthropic[c.SERVER_PORT] == 8443


def test_messages_are_recorded_in_the_conventions_shapes_only_when_capture_is_on(
    provider: TracerProvider,
) -> None:
    off = dict(_call(provider, "mini", capture=False).attributes or {})
    assert not {
        c.GEN_AI_INPUT_MESSAGES,
        c.GEN_AI_OUTPUT_MESSAGES,
        c.GEN_AI_SYSTEM_INSTRUCTIONS,
    } & set(off)

    on = dict(_call(provider, "mini", capture=True).attributes or {})
    assert json.loads(str(on[c.GEN_AI_INPUT_MESSAGES])) == [
        {"role": "system", "parts": [{"type": "text", "content": "You extract titles."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Chef wanted"}]},
    ]
    assert c.GEN_AI_SYSTEM_INSTRUCTIONS not in on  # OpenAI's system prompt is in the history
    assert json.loads(str(on[c.GEN_AI_OUTPUT_MESSAGES])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": '{"title": "Chef"}'}],
            "finish_reason": "stop",
        }
    ]

    separate = dict(_call(provider, "haiku", capture=True).attributes or {})
    assert json.loads(str(separate[c.GEN_AI_SYSTEM_INSTRUCTIONS])) == [
        {"type": "text", "content": "You extract titles."}
    ]
    assert json.loads(str(separate[c.GEN_AI_INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Chef wanted"}]}
    ]


def test_anthropic_cache_writes_are_reported_apart() -> None:
    usage = parse_usage(
        {
            "input_tokens": 50,
            "cache_read_input_tokens": 400,
            "cache_creation_input_tokens": 1000,
            "output_tokens": 12,
        }
    )
    assert usage.input_tokens == 1450  # the conventions: input tokens include cached ones
    assert usage.cached_input_tokens == 400
    assert usage.cache_creation_input_tokens == 1000
    assert (usage + usage).cache_creation_input_tokens == 2000


def test_cache_creation_tokens_reach_the_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    response = ChatResponse(
        text="x", model="m", provider="anthropic", usage=Usage(1450, 12, 400, 0, 1000)
    )
    request = ChatRequest.from_prompt("haiku", "hi")
    with model_call_span(get_tracer(provider), request, provider="anthropic") as span:
        span.set_response(response)
    (finished,) = exporter.get_finished_spans()
    attrs = dict(finished.attributes or {})
    assert attrs[c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 1000
    assert attrs[c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 400
    assert attrs[c.GEN_AI_USAGE_INPUT_TOKENS] == 1450


@pytest.mark.parametrize(
    ("verdict", "label"),
    [
        (
            Verdict(
                passed=False, confidence=0.4, method="hierarchical", details={"issues": ["a", "b"]}
            ),
            "fail",
        ),
        (Verdict(passed=None, confidence=0.0, method="human"), "pending"),
        (Verdict(passed=True, confidence=1.0, method="none"), None),
    ],
)
def test_a_verdict_is_an_evaluation_event_on_the_root_and_none_reports_no_score(
    provider: TracerProvider, exporter: InMemorySpanExporter, verdict: Verdict, label: str | None
) -> None:
    tracer = get_tracer(provider)
    with execution_span(
        tracer,
        task_id="t",
        task_version="1",
        execution_id="e",
        input={},
        session_id="s-1",
        user_id="u-1",
        tags=["nightly", "eu"],
        metadata={"team": "search"},
    ) as ex:
        ex.set_result(output={"x": 1}, verdict=verdict, evaluated_response_id="resp-1")
    (root,) = exporter.get_finished_spans()
    attrs = dict(root.attributes or {})
    assert attrs[c.GEN_AI_OPERATION_NAME] == "invoke_workflow"
    assert attrs[c.SESSION_ID] == attrs[c.GEN_AI_CONVERSATION_ID] == "s-1"
    assert attrs[c.USER_ID] == "u-1"
    assert attrs[c.TAG_TAGS] == ("nightly", "eu")
    assert json.loads(str(attrs[c.METADATA])) == {"team": "search"}
    events = [e for e in root.events if e.name == c.GEN_AI_EVALUATION_RESULT]
    if label is None:
        assert events == []
        return
    (event,) = events
    event_attrs = dict(event.attributes or {})
    assert event_attrs[c.GEN_AI_EVALUATION_SCORE_LABEL] == label
    assert event_attrs[c.GEN_AI_EVALUATION_NAME] == verdict.method
    assert event_attrs[c.GEN_AI_RESPONSE_ID] == "resp-1"
    if label == "fail":
        assert event_attrs[c.GEN_AI_EVALUATION_EXPLANATION] == "a; b"


async def test_an_embeddings_call_gets_a_span_under_the_current_one(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    embedder = FakeProvider(lambda request: "", name="openai", catalog=CATALOG)
    tracer = get_tracer(provider)
    with tracer.start_as_current_span("verify") as parent:
        token = otel_context.attach(with_instruments(Instruments(tracer)))
        try:
            response = await traced_embed(embedder, "mini", ["a b", "c"])
        finally:
            otel_context.detach(token)
    assert len(response.vectors) == 2
    span = next(s for s in exporter.get_finished_spans() if s.name.startswith("embeddings"))
    assert span.name == "embeddings gpt-4o-mini-2024-07-18"
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    attrs = dict(span.attributes or {})
    assert attrs[c.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs[c.GEN_AI_USAGE_INPUT_TOKENS] == 3
    assert attrs[c.TLM_EMBEDDING_COUNT] == 2
    assert attrs["gen_ai.embeddings.dimension.count"] == 26


def test_records_name_models_by_catalog_id_and_leave_the_embedder_out(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from tlm.telemetry.processor import record_from_spans
    from tlm.telemetry.spans import embedding_span

    tracer = get_tracer(provider)
    target = call_target(FakeProvider(lambda request: "", catalog=CATALOG), "mini")
    request = ChatRequest(model="mini", messages=MESSAGES)

    def fail_after_calls() -> None:
        with execution_span(tracer, task_id="t", task_version="1", execution_id="e", input={}):
            with embedding_span(tracer, target, 2) as embed:
                embed.set_response(
                    EmbeddingResponse(vectors=((1.0,), (0.0,)), model="mini", usage=Usage(4))
                )
            with model_call_span(tracer, request, provider="openai", target=target) as call:
                call.set_response(REPLY)
            raise RuntimeError("failed before its result")

    with pytest.raises(RuntimeError):
        fail_after_calls()
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.name.startswith("tlm.execute"))
    record = record_from_spans(root, [s for s in spans if s is not root])
    assert record.models_used == ("mini",)  # not "gpt-4o-mini-2024-07-18", not the embedder
    assert record.performance.tokens_used == 4 + 1020
