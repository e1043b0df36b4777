"""CPU cost of telemetry per execution: spans alone, and spans plus the durable record.

Runs N executions through TLM's span API (a root span, one model call, one verification) with
realistic attributes and fake data, and reports CPU microseconds per execution
(``time.process_time``, all threads, the store's writer included) for:

- ``noop``: no SDK installed (what a library user without telemetry pays),
- ``spans``: an SDK tracer provider without the store,
- ``store``: the SDK provider with the execution-record processor and the SQLite store
  (flushed before the clock stops).

Usage: ``python benchmarks/telemetry_cost.py [-n 5000]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tlm.providers.base import ChatRequest, ChatResponse, Usage
from tlm.store import ExecutionStore
from tlm.telemetry import execution_span, get_tracer, model_call_span, verification_span
from tlm.telemetry.setup import create_tracer_provider
from tlm.verify.base import Verdict

__all__ = ("run_executions", "measure", "main")

_INPUT = {
    "job_posting": "Senior Python engineer, remote, 5+ years, asyncio, PostgreSQL. " * 8,
    "company": "Example Corp",
}
_OUTPUT = {
    "title": "Senior Python Engineer",
    "skills": ["python", "asyncio", "postgresql"],
    "remote": True,
    "years": 5,
}
_REQUEST = ChatRequest.from_prompt(
    "gpt-4o-mini", "Extract the job details from: ...", temperature=0.0, max_tokens=512, seed=1
)
_RESPONSE = ChatResponse(
    text="{}",
    model="gpt-4o-mini-2024-07-18",
    provider="openai",
    finish_reason="stop",
    usage=Usage(420, 80, cached_input_tokens=128),
    response_id="chatcmpl-123",
    cost_usd=0.000111,
)
_VERDICT = Verdict(
    passed=True, confidence=0.92, method="consensus", details={"votes": 3, "agreeing": 3}
)


def run_executions(tracer: trace.Tracer, n: int) -> None:
    """Run ``n`` fake executions through the span API."""
    for _ in range(n):
        with execution_span(
            tracer,
            task_id="job_detail_extraction",
            task_version="1.2.0",
            execution_id=uuid.uuid4().hex,
            input=_INPUT,
            redact=("company",),
        ) as ex:
            ex.set_prompt("Extract the job details from: ...", system="You extract job details.")
            with model_call_span(tracer, _REQUEST, provider="openai") as call:
                call.set_response(_RESPONSE)
            with verification_span(tracer, "consensus") as v:
                v.set_verdict(_VERDICT)
            ex.set_result(
                output=_OUTPUT,
                prompt_variant="default",
                models_used=("gpt-4o-mini",),
                verdict=_VERDICT,
                cost_usd=0.000111,
                cost_source="catalog",
                tokens=(420, 80),
                cache_hit=False,
                fallback=None,
                attempts=1,
                budget={"limit_usd": 0.01, "remaining_usd": 0.009889},
            )


def measure(mode: str, n: int, data_dir: Path) -> float:
    """CPU µs per execution in ``mode`` (``noop``, ``spans`` or ``store``)."""
    store: ExecutionStore | None = None
    provider: TracerProvider | None = None
    if mode == "noop":
        tracer = get_tracer(trace.NoOpTracerProvider())
    elif mode == "spans":
        provider = create_tracer_provider(store=None, otlp_endpoint="")
        tracer = get_tracer(provider)
    else:
        store = ExecutionStore(data_dir / f"{mode}.db")
        provider = create_tracer_provider(store=store, otlp_endpoint="")
        tracer = get_tracer(provider)
    run_executions(tracer, 200)  # warm up
    if store is not None:
        store.flush()
    start = time.process_time()
    run_executions(tracer, n)
    if store is not None:
        store.flush()
    elapsed = time.process_time() - start
    if provider is not None:
        provider.shutdown()
    if store is not None:
        assert store.count() == n + 200
        store.close()
    return elapsed / n * 1e6


def main() -> None:
    """Print CPU µs per execution for each mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="executions per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {mode: measure(mode, args.n, Path(tmp)) for mode in ("noop", "spans", "store")}
    for mode, micros in results.items():
        print(f"{mode:>6}: {micros:7.1f} µs CPU per execution")
    print(f"record overhead (store - spans): {results['store'] - results['spans']:.1f} µs")


if __name__ == "__main__":
    main()
