"""The span tree stored with a record is valid JSON, whatever floats the spans carried."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from tlm.providers.base import ChatRequest, ChatResponse, Usage
from tlm.store import ExecutionStore
from tlm.telemetry.light import LightTracerProvider
from tlm.telemetry.spans import execution_span, get_tracer, model_call_span


def _refuse_constant(name: str) -> float:
    raise ValueError(f"not JSON: {name}")


@pytest.mark.parametrize("odd", [math.nan, math.inf, -math.inf])
def test_a_non_finite_span_attribute_is_stored_as_text(tmp_path: Path, odd: float) -> None:
    store = ExecutionStore(tmp_path / "tlm.db")
    try:
        tracer = get_tracer(LightTracerProvider(store))
        request = ChatRequest.from_prompt("m1", "hello", max_tokens=8)
        response = ChatResponse(text="{}", model="m1", provider="p", usage=Usage(3, 2))
        with execution_span(
            tracer, task_id="t", task_version="1", execution_id="e1", input={"a": "\u00e9"}
        ) as execution:
            with model_call_span(tracer, request, provider="p") as call:
                call.set_response(response)
                call.span.set_attribute("tlm.test.odd", odd)
                call.span.set_attribute("tlm.test.big", 2**70)
                call.span.set_attribute("tlm.test.text", "caf\u00e9 \u2603")
            execution.set_result(
                output={"b": [1.5, None]}, prompt_variant="v", models_used=["m1"],
                cost_usd=0.0, tokens=(3, 2), attempts=1,
            )  # fmt: skip
        assert store.flush(10)
        with sqlite3.connect(tmp_path / "tlm.db") as conn:
            (text,) = conn.execute("SELECT spans FROM executions").fetchone()
        spans = json.loads(text, parse_constant=_refuse_constant)  # strict JSON
        attributes = spans[1]["attributes"]
        assert attributes["tlm.test.odd"] == str(odd)
        assert attributes["tlm.test.big"] == 2**70  # past 64 bits: the standard library wrote it
        assert attributes["tlm.test.text"] == "caf\u00e9 \u2603"
        assert spans[0]["parent"] is None
        assert spans[1]["parent"] == 0
        record = store.get("e1")
        assert record is not None
        assert record.spans == tuple(spans)
        assert record.input == {"a": "\u00e9"}
        assert record.output == {"b": [1.5, None]}
    finally:
        store.close()
