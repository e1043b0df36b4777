"""Provider and model limits from configuration, and the time calls wait for them.

Limits come from tlm.toml and catalog cards; the hosted default lets 256 calls be in flight at
once; the wait for a slot is on the model-call span (``tlm.queue_wait_ms``) and the record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tlm
from tlm.catalog import Catalog
from tlm.cli.init import EXAMPLE_TASK_ID, example_task
from tlm.engine.config import load_config
from tlm.errors import ConfigurationError
from tlm.providers.base import ChatRequest
from tlm.providers.limits import (
    HOSTED_MAX_IN_FLIGHT,
    ProviderLimits,
    RateLimitedProvider,
    measure_queue_wait,
)
from tlm.providers.pool import ProviderPool
from tlm.telemetry.conventions import TLM_QUEUE_WAIT_MS
from tlm.testing import FakeOpenAIServer, FakeProvider

from .support import card


def project(root: Path, toml: str = "", models: list[dict[str, Any]] | None = None) -> Path:
    """A project with the example task, ``toml`` and a catalog adding ``models``."""
    task_dir = root / "definitions" / "tasks" / EXAMPLE_TASK_ID
    task_dir.mkdir(parents=True)
    (task_dir / "1.0.0.json").write_text(json.dumps(example_task()))
    (root / "tlm.toml").write_text(toml)
    catalog = {"version": 1, "models": models or []}
    (root / "definitions" / "models.json").write_text(json.dumps(catalog))
    return root


@pytest.fixture(autouse=True)
def no_outside_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TLM_CONFIG", "TLM_DEFINITIONS", "TLM_CATALOG", "TLM_DATA_DIR", "TLM_MODELS"):
        monkeypatch.delenv(name, raising=False)


def test_limits_come_from_the_defaults_the_card_and_tlm_toml(tmp_path: Path) -> None:
    toml = (
        "[tlm.provider_limits.openai]\nmax_in_flight = 64\ntokens_per_minute = 90000\n"
        "[tlm.provider_limits.anthropic]\nmax_in_flight = 0\n"
        '[tlm.model_limits."gpt-4o"]\nrequests_per_minute = 30\n'
    )
    project(tmp_path, toml)
    overlay = {"id": "gpt-4o", "limits": {"max_in_flight": 4, "requests_per_minute": 500}}
    (tmp_path / "definitions" / "models.json").write_text(
        json.dumps({"version": 1, "models": [overlay]})
    )
    config = load_config(tmp_path / "tlm.toml", env={})
    assert config.catalog_path is None  # the implicit one: definitions/models.json
    catalog = Catalog.layered(tmp_path / "definitions" / "models.json")
    configured = ProviderPool(
        catalog, provider_limits=config.provider_limits, model_limits=config.model_limits
    )
    limits, models = configured.limits_for("openai")
    assert limits == ProviderLimits(64, None, 90000)
    assert models["gpt-4o"] == ProviderLimits(4, 30, None)  # card, then tlm.toml over it
    assert models["gpt-4o-mini"].unlimited
    assert configured.limits_for("anthropic")[0] == ProviderLimits(None, None, None)
    default = ProviderPool(Catalog.packaged())
    assert default.limits_for("openai")[0] == ProviderLimits(HOSTED_MAX_IN_FLIGHT)
    assert HOSTED_MAX_IN_FLIGHT >= 256
    assert default.limits_for("local")[0].max_concurrency == 2  # the local server stays small


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[tlm.provider_limits.openai]\nburst = 3\n", r"unknown limit 'burst'"),
        ("[tlm.provider_limits.openai]\nmax_in_flight = -1\n", r"max_in_flight must be a whole"),
        ("[tlm.provider_limits.openai]\nmax_in_flight = 2.5\n", r"max_in_flight must be a whole"),
        ('[tlm.model_limits."gpt-4o"]\nrequests_per_minute = "many"\n', r"must be a number"),
        ("[tlm]\nprovider_limits = 3\n", r"\[tlm.provider_limits\] must be a table"),
    ],
)
def test_bad_limits_are_errors_that_say_where(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "tlm.toml").write_text(table)
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_config(tmp_path / "tlm.toml", env={})
    assert str(tmp_path / "tlm.toml") in str(caught.value)


async def test_a_models_limit_holds_within_an_unlimited_provider() -> None:
    release = anyio.Event()
    in_flight: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}

    async def handler(request: ChatRequest) -> str:
        in_flight[request.model] += 1
        peak[request.model] = max(peak[request.model], in_flight[request.model])
        await release.wait()
        in_flight[request.model] -= 1
        return "ok"

    limited = RateLimitedProvider.from_limits(
        FakeProvider(handler),
        ProviderLimits(max_concurrency=None),
        model_limits={"a": ProviderLimits(max_concurrency=1)},
    )
    waits: list[float] = []

    async def call(model: str) -> None:
        with measure_queue_wait() as waited:
            await limited.complete(ChatRequest.from_prompt(model, "x"))
        waits.append(waited.seconds)

    async with anyio.create_task_group() as tg:
        for model in ("a", "a", "a", "b", "b", "b"):
            tg.start_soon(call, model)
        await anyio.wait_all_tasks_blocked()
        assert in_flight == {"a": 1, "b": 3}
        await anyio.sleep(0.05)
        release.set()
    assert peak == {"a": 1, "b": 3}
    assert sum(w >= 0.04 for w in waits) == 2  # the two queued calls of model a waited


async def test_256_calls_are_in_flight_at_once_with_the_default_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = 256
    arrived = anyio.Event()
    in_flight = peak = 0

    async def answer(body: dict[str, Any]) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight >= wanted:
            arrived.set()
        with anyio.move_on_after(10):
            await arrived.wait()
        in_flight -= 1
        return '{"sentiment": "positive"}'

    async with FakeOpenAIServer(answer) as server:
        hosted = card("hosted", base_url=server.base_url, api_key_env=None)
        project(tmp_path, '[tlm]\nmodels = ["hosted"]\ncache = false\n', [hosted])
        monkeypatch.chdir(tmp_path)
        inputs = [{"review": f"review number {i}"} for i in range(wanted)]
        async with (
            tlm.Engine() as engine,
            engine.map(EXAMPLE_TASK_ID, inputs, max_in_flight=wanted) as results,
        ):
            outputs = [result.output async for result in results]
    assert outputs == [{"sentiment": "positive"}] * wanted
    assert peak == wanted  # neither a slot limit nor the connection pool held calls back


async def test_time_waiting_for_a_slot_is_on_the_span_and_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    toml = (
        '[tlm]\nmodels = ["hosted"]\ncache = false\n[tlm.provider_limits.fake]\nmax_in_flight = 1\n'
    )
    async with FakeOpenAIServer(
        latency_s=0.2, script=lambda body: '{"sentiment": "neutral"}'
    ) as server:
        project(tmp_path, toml, [card("hosted", base_url=server.base_url, api_key_env=None)])
        monkeypatch.chdir(tmp_path)
        engine = tlm.Engine(span_processors=[SimpleSpanProcessor(exporter)])
        async with engine:
            results: list[tlm.ExecutionResult] = []

            async def one(i: int) -> None:
                results.append(await engine.execute(EXAMPLE_TASK_ID, {"review": f"r{i}"}))

            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(one, i)
            engine.flush()
            assert engine.store is not None
            records = {r.execution_id: engine.store.get(r.execution_id) for r in results}
    calls = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert len(calls) == 3
    span_waits = sorted(_number((s.attributes or {})[TLM_QUEUE_WAIT_MS]) for s in calls)
    assert span_waits[0] < 150  # the first call got the slot at once
    assert span_waits[1] >= 150  # the others waited for the one slot, 200 ms per call
    assert span_waits[2] >= 350
    record_waits = sorted(r.queue_wait_ms for r in records.values() if r is not None)
    assert record_waits == pytest.approx(span_waits)


def _number(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)
