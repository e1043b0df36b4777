"""The light tracer provider: the same execution records as the SDK, real span contexts."""

from __future__ import annotations

from typing import Any

import attrs
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tlm.providers.base import ChatRequest, ChatResponse, Usage
from tlm.telemetry.light import LightTracerProvider
from tlm.telemetry.records import ExecutionRecord
from tlm.telemetry.setup import create_execution_tracer_provider, create_tracer_provider
from tlm.telemetry.spans import execution_span, get_tracer, model_call_span, verification_span
from tlm.verify.base import Verdict


class ListSink:
    def __init__(self) -> None:
        self.records: list[ExecutionRecord] = []

    def write(self, record: ExecutionRecord, /) -> None:
        self.records.append(record)

    def flush(self, timeout: float | None = None) -> bool:
        return True


def run_one(provider: trace.TracerProvider, *, fail: bool = False) -> None:
    tracer = get_tracer(provider)
    request = ChatRequest.from_prompt("m1", "hello", temperature=0.0, max_tokens=64)
    response = ChatResponse(
        text="{}", model="m1", provider="p", usage=Usage(30, 12), cost_usd=0.5, response_id="r1"
    )
    try:
        with execution_span(
            tracer, task_id="t", task_version="1.0.0", execution_id="e1", input={"a": 1}
        ) as execution:
            with model_call_span(tracer, request, provider="p") as call:
                call.set_response(response)
            with verification_span(tracer, "consensus") as check:
                check.set_verdict(Verdict(passed=True, confidence=0.8, method="consensus"))
            if fail:
                raise ValueError("boom")
            execution.set_result(
                output={"b": 2}, prompt_variant="v", models_used=["m1"], cost_usd=0.5,
                tokens=(30, 12), attempts=1,
            )  # fmt: skip
    except ValueError:
        pass


def comparable(record: ExecutionRecord) -> dict[str, Any]:
    data = attrs.asdict(record)
    for volatile in ("timestamp", "trace_id", "performance"):
        data.pop(volatile)
    data["spans"] = [  # the span tree, without its timings
        {k: v for k, v in span.items() if k not in ("start_ms", "duration_ms")}
        for span in data["spans"]
    ]
    return data


def test_light_and_sdk_providers_give_the_same_records() -> None:
    light_sink, sdk_sink = ListSink(), ListSink()
    for fail in (False, True):
        run_one(LightTracerProvider(light_sink), fail=fail)
        run_one(create_tracer_provider(store=sdk_sink, otlp_endpoint=""), fail=fail)
    assert [comparable(r) for r in light_sink.records] == [comparable(r) for r in sdk_sink.records]
    ok, failed = light_sink.records
    assert ok.output == {"b": 2}
    assert ok.verification_results is not None
    assert ok.verification_results.confidence == 0.8
    names = [(s["name"], s["parent"], s["status"]) for s in failed.spans]
    assert names == [("tlm.execute t", None, "error"), ("chat m1", 0, "ok"),
                     ("tlm.verify consensus", 0, "ok")]  # fmt: skip
    assert ok.spans[1]["attributes"]["gen_ai.usage.input_tokens"] == 30
    assert all("tlm.input" not in s["attributes"] for s in ok.spans)
    assert failed.status == "error"
    assert failed.error is not None
    assert failed.error.type == "ValueError"


def test_light_spans_nest_under_the_applications_current_span() -> None:
    sink = ListSink()
    app_tracer = TracerProvider().get_tracer("app")
    with app_tracer.start_as_current_span("request") as app_span:
        run_one(LightTracerProvider(sink))
    assert sink.records[0].trace_id == format(app_span.get_span_context().trace_id, "032x")


def test_the_cheapest_provider_is_chosen_for_the_consumers_configured() -> None:
    sink = ListSink()
    assert isinstance(
        create_execution_tracer_provider(store=sink, otlp_endpoint=""), LightTracerProvider
    )
    with_export = create_execution_tracer_provider(store=sink, otlp_endpoint="http://127.0.0.1:9")
    assert isinstance(with_export, TracerProvider)
    with_export.shutdown()
    nothing = create_execution_tracer_provider(store=None, otlp_endpoint="")
    assert not get_tracer(nothing).start_span("x").is_recording()
