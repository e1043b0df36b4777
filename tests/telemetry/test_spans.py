"""Span names, kinds, parents and attributes, checked with an in-memory exporter."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tlm.errors import AuthenticationFailed
from tlm.providers.base import ChatRequest, ChatResponse, Usage
from tlm.telemetry import conventions as c
from tlm.telemetry import execution_span, get_tracer, model_call_span, verification_span
from tlm.verify.base import Verdict


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def _request() -> ChatRequest:
    return ChatRequest.from_prompt("gpt-x", "hello", temperature=0.2, max_tokens=64, seed=7)


def test_span_tree_names_kinds_parents_and_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = get_tracer(provider)
    response = ChatResponse(
        text="{}",
        model="gpt-x-2024",
        provider="openai",
        finish_reason="stop",
        usage=Usage(100, 20, cached_input_tokens=40, reasoning_tokens=5),
        response_id="resp-1",
        cost_usd=0.0012,
        attempts=2,
    )
    verdict = Verdict(
        passed=True, confidence=0.9, method="consensus", details={"reason": "3 of 3 agree"}
    )
    with execution_span(
        tracer,
        task_id="job_extract",
        task_version="1.2.0",
        execution_id="ex-1",
        input={"job_posting": "text", "api_token": "s3cret"},
        redact=("api_token",),
    ) as ex:
        ex.set_prompt("Extract from: text", system="You extract.")
        with model_call_span(tracer, _request(), provider="openai") as call:
            call.set_response(response)
        with verification_span(tracer, "consensus") as v:
            v.set_verdict(verdict)
        ex.set_result(
            output={"title": "Engineer"},
            prompt_variant="default",
            models_used=["gpt-x"],
            verdict=verdict,
            cost_usd=0.0012,
            cost_source="catalog",
            tokens=(100, 20),
            cache_hit=False,
            fallback=None,
            attempts=2,
            budget={"limit_usd": 0.1, "remaining_usd": 0.0988},
        )

    spans = _by_name(exporter)
    assert set(spans) == {"tlm.execute job_extract", "chat gpt-x", "tlm.verify consensus"}
    root, call_span, verify = (
        spans["tlm.execute job_extract"],
        spans["chat gpt-x"],
        spans["tlm.verify consensus"],
    )
    assert root.kind is SpanKind.INTERNAL
    assert call_span.kind is SpanKind.CLIENT
    assert verify.kind is SpanKind.INTERNAL
    assert root.context is not None
    assert call_span.parent is not None
    assert verify.parent is not None
    assert call_span.parent.span_id == root.context.span_id
    assert verify.parent.span_id == root.context.span_id

    ra = dict(root.attributes or {})
    assert ra[c.TLM_TASK_ID] == "job_extract"
    assert ra[c.TLM_TASK_VERSION] == "1.2.0"
    assert ra[c.TLM_EXECUTION_ID] == "ex-1"
    assert json.loads(str(ra[c.TLM_INPUT])) == {"job_posting": "text", "api_token": "[REDACTED]"}
    assert json.loads(str(ra[c.TLM_OUTPUT])) == {"title": "Engineer"}
    assert ra[c.TLM_PROMPT] == "Extract from: text"
    assert ra[c.TLM_PROMPT_SYSTEM] == "You extract."
    assert ra[c.TLM_PROMPT_VARIANT] == "default"
    assert ra[c.TLM_MODELS_USED] == ("gpt-x",)
    assert ra[c.TLM_COST_USD] == pytest.approx(0.0012)
    assert ra[c.TLM_COST_SOURCE] == "catalog"
    assert ra[c.TLM_CACHE_HIT] is False
    assert c.TLM_FALLBACK not in ra
    assert ra[c.TLM_ATTEMPTS] == 2
    assert ra["tlm.budget.limit_usd"] == 0.1
    assert ra[c.TLM_VERIFICATION_PASSED] is True
    assert ra[c.TLM_STATUS] == "ok"
    assert ra["gen_ai.operation.name"] == "invoke_workflow"
    assert ra["gen_ai.workflow.name"] == "job_extract"
    assert not any(key.startswith("gen_ai.evaluation") for key in ra)
    (event,) = root.events
    assert event.name == "gen_ai.evaluation.result"
    assert dict(event.attributes or {}) == {
        "gen_ai.evaluation.name": "consensus",
        "gen_ai.evaluation.score.value": 0.9,
        "gen_ai.evaluation.score.label": "pass",
        "gen_ai.evaluation.explanation": "3 of 3 agree",
    }

    ca = dict(call_span.attributes or {})
    assert ca == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-x",
        "tlm.request.model": "gpt-x",
        "gen_ai.output.type": "text",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.seed": 7,
        "gen_ai.response.model": "gpt-x-2024",
        "gen_ai.response.id": "resp-1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.usage.cache_read.input_tokens": 40,
        "gen_ai.usage.reasoning.output_tokens": 5,
        "tlm.cost.usd": 0.0012,
        "tlm.attempts": 2,
    }

    va = dict(verify.attributes or {})
    assert not any(key.startswith("gen_ai.evaluation") for key in va)  # an event on the root
    assert not verify.events
    assert va[c.TLM_VERIFICATION_METHOD] == "consensus"
    assert va[c.TLM_VERIFICATION_CONFIDENCE] == 0.9


async def test_failed_model_call_and_execution_are_marked_as_errors(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = get_tracer(provider)
    with (
        pytest.raises(AuthenticationFailed),
        execution_span(tracer, task_id="t", task_version="1.0.0", execution_id="e", input={}),
        model_call_span(tracer, _request(), provider="openai"),
    ):
        raise AuthenticationFailed(
            "bad key sk-abcdefghijklmnop1234", provider="openai", model="gpt-x", status=401
        )
    spans = _by_name(exporter)
    for name in ("tlm.execute t", "chat gpt-x"):
        span = spans[name]
        assert span.status.status_code is StatusCode.ERROR
        attrs = dict(span.attributes or {})
        assert attrs["error.type"] == "AuthenticationFailed"
        assert "sk-abcdefghijklmnop1234" not in str(attrs[c.TLM_ERROR_MESSAGE])
        assert "sk-abcdefghijklmnop1234" not in (span.status.description or "")
    assert dict(spans["tlm.execute t"].attributes or {})[c.TLM_STATUS] == "error"


def test_spans_nest_under_the_applications_current_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app_tracer = provider.get_tracer("app")
    with app_tracer.start_as_current_span("handle request") as parent:
        with execution_span(
            get_tracer(provider), task_id="t", task_version="1", execution_id="e", input={}
        ):
            pass
    root = _by_name(exporter)["tlm.execute t"]
    assert root.parent is not None
    assert root.parent.span_id == parent.get_span_context().span_id


def test_without_an_sdk_nothing_is_recorded() -> None:
    from opentelemetry.trace import NoOpTracerProvider

    tracer = get_tracer(NoOpTracerProvider())
    with execution_span(
        tracer, task_id="t", task_version="1", execution_id="e", input={"x": object()}
    ) as ex:
        assert not ex.recording
        ex.set_result(output={"y": 1})
