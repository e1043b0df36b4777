"""Fake executions through the span API, shared by the telemetry and store tests."""

from __future__ import annotations

import anyio
from opentelemetry import trace

from tlm.errors import ProviderUnavailable
from tlm.providers.base import ChatRequest, ChatResponse, Usage
from tlm.telemetry import execution_span, model_call_span, verification_span
from tlm.verify.base import Verdict

__all__ = ("run_execution", "arun_execution", "REQUEST", "response_for")

REQUEST = ChatRequest.from_prompt("small-model", "Extract: hello", temperature=0.0, max_tokens=32)


def response_for(i: int) -> ChatResponse:
    return ChatResponse(
        text="{}",
        model="small-model",
        provider="fake",
        finish_reason="stop",
        usage=Usage(10, 5),
        response_id=f"r{i}",
        cost_usd=0.001,
    )


def run_execution(
    tracer: trace.Tracer, i: int, *, task_id: str = "extract", fail: bool = False
) -> str:
    """One execution with a model call and a verification; returns its execution id."""
    execution_id = f"ex-{task_id}-{i:06d}"
    try:
        with execution_span(
            tracer,
            task_id=task_id,
            task_version="1.0.0",
            execution_id=execution_id,
            input={"text": f"input {i}", "secret": "hunter2"},
            redact=("secret",),
        ) as ex:
            ex.set_prompt(f"Extract: input {i}", system="You extract.")
            with model_call_span(tracer, REQUEST, provider="fake") as call:
                if fail:
                    raise ProviderUnavailable("overloaded", provider="fake", model="small-model")
                call.set_response(response_for(i))
            verdict = Verdict(passed=i % 2 == 0, confidence=0.8, method="consensus")
            with verification_span(tracer, "consensus") as v:
                v.set_verdict(verdict)
            ex.set_result(
                output={"value": i},
                prompt_variant="default",
                models_used=["small-model"],
                verdict=verdict,
                cost_usd=0.001,
                cost_source="catalog",
                tokens=(10, 5),
                attempts=1,
            )
    except ProviderUnavailable:
        pass
    return execution_id


async def arun_execution(tracer: trace.Tracer, i: int, *, task_id: str = "extract") -> str:
    """One execution that yields to other tasks while its spans are open."""
    execution_id = f"ex-{task_id}-{i:06d}"
    with execution_span(
        tracer,
        task_id=task_id,
        task_version="1.0.0",
        execution_id=execution_id,
        input={"i": i},
    ) as ex:
        with model_call_span(tracer, REQUEST, provider="fake") as call:
            await anyio.lowlevel.checkpoint()  # every execution is open at once
            call.set_response(response_for(i))
        ex.set_result(output={"i": i}, models_used=["small-model"], tokens=(10, 5))
    return execution_id
