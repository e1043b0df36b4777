"""Issue 12 items 13 and 14 end to end, over a real socket through the provider pool.

Failed provider calls are recorded with the real number of requests sent and what each cost; a
reply past the response-size limit fails as ``ResponseTooLarge`` (not retried); a hanging
provider is stopped by the default execution deadline with a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.engine.conftest import make_task
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.errors import BudgetExceeded, ProviderError, ResponseTooLarge
from tlm.providers.retry import RetryPolicy
from tlm.store import ExecutionStore
from tlm.testing import (
    FakeOpenAIServer,
    ReplyLike,
    chat_completion,
    hang,
    malformed,
    rate_limited,
    reset,
    server_error,
    truncated,
)

CHEF = json.dumps({"title": "Chef"})


async def _no_sleep(seconds: float) -> None:
    return None


def _engine(
    server: FakeOpenAIServer, data_dir: Path, exporter: InMemorySpanExporter, **config: Any
) -> Engine:
    catalog = {
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
    return Engine(
        EngineConfig(data_dir=data_dir, models=("wire",), **config),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog),
        retry=RetryPolicy(max_attempts=4, sleep=_no_sleep),
        span_processors=[SimpleSpanProcessor(exporter)],
    )


def _call_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get("tlm.request.model") == "wire" and s.name.startswith("chat ")
    ]


FAULTS: list[tuple[list[ReplyLike], type[ProviderError], tuple[str, ...]]] = [
    ([rate_limited(retry_after=0.0)] * 4, ProviderError, ("RateLimited 429",) * 4),
    ([server_error(500)] * 4, ProviderError, ("ProviderUnavailable 500",) * 4),
    (
        [server_error(503), reset(), truncated(), malformed()],
        ProviderError,
        (
            "ProviderUnavailable 503",
            "ProviderConnectionError",
            "MalformedResponse 200",
            "MalformedResponse 200",
        ),
    ),
]


@pytest.mark.parametrize(("script", "error", "outcomes"), FAULTS)
async def test_failed_calls_are_recorded_with_every_attempt(
    tmp_path: Path,
    script: list[ReplyLike],
    error: type[ProviderError],
    outcomes: tuple[str, ...],
) -> None:
    exporter = InMemorySpanExporter()
    async with FakeOpenAIServer(script) as server:
        async with _engine(server, tmp_path, exporter) as engine:
            with pytest.raises(error) as caught:
                await engine.execute("title_extraction", {"posting": "Chef"})
            engine.flush()
        requests = len(server.requests)
    assert requests == 4
    assert caught.value.attempts == 4
    assert "[4 attempt(s): " in str(caught.value)
    assert "$0.000000" in str(caught.value)
    (span,) = _call_spans(exporter)
    assert span.attributes["tlm.attempts"] == 4
    assert span.attributes["tlm.attempt.outcomes"] == outcomes
    assert span.attributes["tlm.attempt.costs_usd"] == (0.0,) * 4
    with ExecutionStore(tmp_path / "tlm.db") as store:
        record = store.get(caught.value.execution_id or "")
    assert record is not None
    assert record.status == "error"
    assert record.attempts == 4
    assert record.error is not None
    assert "4 attempt(s)" in record.error.message


async def test_a_call_that_succeeds_after_failures_counts_them_and_their_costs(
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    ok = chat_completion(CHEF, prompt_tokens=1000, completion_tokens=100)
    async with FakeOpenAIServer([server_error(502), reset(), ok]) as server:
        async with _engine(server, tmp_path, exporter) as engine:
            result = await engine.execute("title_extraction", {"posting": "Chef"})
            engine.flush()
    assert result.attempts == 3
    cost = (1000 * 1.0 + 100 * 4.0) / 1e6
    assert result.cost_usd == pytest.approx(cost)
    (span,) = _call_spans(exporter)
    assert span.attributes["tlm.attempt.outcomes"] == (
        "ProviderUnavailable 502",
        "ProviderConnectionError",
        "ok",
    )
    assert span.attributes["tlm.attempt.costs_usd"] == pytest.approx((0.0, 0.0, cost))
    with ExecutionStore(tmp_path / "tlm.db") as store:
        record = store.get(result.execution_id)
    assert record is not None
    assert record.attempts == 3


async def test_a_reply_past_the_size_limit_fails_once_and_is_recorded(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    big = chat_completion("x" * 200_000)
    async with FakeOpenAIServer([big, big]) as server:
        engine = _engine(server, tmp_path, exporter, max_response_bytes=64 * 1024)
        async with engine:
            with pytest.raises(ResponseTooLarge) as caught:
                await engine.execute("title_extraction", {"posting": "Chef"})
            engine.flush()
        requests = len(server.requests)
    assert requests == 1  # not retried: the same request would bring the same reply
    assert caught.value.limit_bytes == 64 * 1024
    assert "response-size limit of 64 KiB" in str(caught.value)
    assert "max_response_bytes" in str(caught.value)
    with ExecutionStore(tmp_path / "tlm.db") as store:
        record = store.get(caught.value.execution_id or "")
    assert record is not None
    assert record.error is not None
    assert record.error.type == "ResponseTooLarge"
    assert record.attempts == 1


async def test_a_hanging_provider_meets_the_default_deadline(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    async with FakeOpenAIServer([hang()]) as server:
        engine = _engine(server, tmp_path, exporter, default_deadline_s=0.5)
        async with engine:
            with anyio.fail_after(30), pytest.raises(BudgetExceeded) as caught:
                await engine.execute("title_extraction", {"posting": "Chef"})
            engine.flush()
    message = str(caught.value)
    assert "the default deadline of 0.5s passed" in message
    assert "default_deadline_s in tlm.toml" in message
    with ExecutionStore(tmp_path / "tlm.db") as store:
        record = store.get(caught.value.execution_id or "")
    assert record is not None
    assert record.status == "error"
    assert record.attempts == 1  # the request that hung was sent, and is counted
    (span,) = _call_spans(exporter)
    # the request's timeout is the time left, so its own timeout or the deadline stops it
    (outcome,) = span.attributes["tlm.attempt.outcomes"]
    assert outcome in ("cancelled", "ProviderTimeout")


async def test_a_budget_deadline_wins_over_the_default(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    async with FakeOpenAIServer([hang()]) as server:
        engine = _engine(server, tmp_path, exporter, default_deadline_s=600.0)
        async with engine:
            with anyio.fail_after(30), pytest.raises(BudgetExceeded) as caught:
                await engine.execute(
                    "title_extraction",
                    {"posting": "Chef"},
                    options={"budget": {"deadline_s": 0.3}},
                )
    assert "deadline of 0.3s passed" in str(caught.value)
    assert "default" not in str(caught.value)
