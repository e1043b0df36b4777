"""Engine.execute through the public API: results, validation, repair and re-ask, cache, budgets."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.engine.conftest import ScriptedModels, catalog_data, make_task, reply
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig, ExecuteOptions
from tlm.errors import BudgetExceeded, ConfigurationError, InputInvalid, OutputInvalid
from tlm.providers.base import ChatRequest

EngineFactory = Callable[..., Engine]


async def test_execute_returns_a_complete_result(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Senior Engineer"})
    async with engine_factory() as engine:
        result = await engine.execute("title_extraction", {"posting": "Senior Engineer, Berlin"})
    assert result.output == {"title": "Senior Engineer"}
    assert result.status == "verified"
    assert result.task_id == "title_extraction"
    assert result.task_version == "1.0.0"
    assert result.prompt_variant == "standard"
    assert result.models_used == ("model-a",)
    assert result.verdict is not None
    assert result.verdict.method == "none"
    # 100 input tokens at $1/M + 50 output tokens at $2/M
    assert result.cost_usd == pytest.approx(100e-6 + 100e-6)
    assert result.tokens == 150
    assert result.attempts == 1
    assert len(result.execution_id) == 32
    assert result.latency_s >= 0
    assert not result.cache_hit
    request = models.requests[0]
    assert request.messages[-1].content == "Extract the job title from: Senior Engineer, Berlin"
    assert request.output_schema is not None


async def test_invalid_input_is_rejected_before_any_model_call(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "x"})
    async with engine_factory() as engine:
        with pytest.raises(InputInvalid) as caught:
            await engine.execute("title_extraction", {"posting": "   ", "context": 5})
    assert models.calls() == 0
    paths = sorted(p.path for p in caught.value.problems)
    assert "$.context" in paths  # schema: 5 is not a string
    assert "$.posting" in paths  # rule non_empty_text
    assert caught.value.execution_id is not None


async def test_code_fences_are_repaired_without_a_reask(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply('Sure! Here it is:\n```json\n{"title": "Chef"}\n```')
    async with engine_factory() as engine:
        result = await engine.execute("title_extraction", {"posting": "Chef wanted"})
    assert result.output == {"title": "Chef"}
    assert models.calls() == 1


async def test_invalid_output_is_reasked_with_the_validation_errors(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    replies = iter(['{"name": "Chef"}', '{"title": "Chef"}'])
    models.handlers["*"] = lambda request: next(replies)
    async with engine_factory() as engine:
        result = await engine.execute("title_extraction", {"posting": "Chef wanted"})
    assert result.output == {"title": "Chef"}
    assert models.calls() == 2
    assert result.attempts == 2
    assert result.cost_usd == pytest.approx(2 * 200e-6)
    reask = models.requests[1].messages
    assert reask[-2].role == "assistant"
    assert reask[-2].content == '{"name": "Chef"}'
    assert "'title' is a required property" in reask[-1].content


async def test_reasks_are_bounded_then_the_fallback_decides(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["model-a"] = reply("no json here")
    async with engine_factory(max_reasks=1) as engine:
        with pytest.raises(OutputInvalid) as caught:
            await engine.execute("title_extraction", {"posting": "Chef wanted"})
    assert models.calls("model-a") == 2
    assert caught.value.problems[0].path == "$"


async def test_cache_hit_costs_nothing_and_is_marked(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    async with engine_factory() as engine:
        first = await engine.execute("title_extraction", {"posting": "Chef wanted", "context": "x"})
        # the same input with another key order is the same canonical input
        second = await engine.execute(
            "title_extraction", {"context": "x", "posting": "Chef wanted"}
        )
        third = await engine.execute("title_extraction", {"posting": "Cook wanted"})
        uncached = await engine.execute(
            "title_extraction", {"posting": "Chef wanted", "context": "x"}, options={"cache": False}
        )
    assert not first.cache_hit
    assert second.cache_hit
    assert second.status == "cached"
    assert second.cost_usd == 0
    assert second.output == first.output
    assert not third.cache_hit
    assert not uncached.cache_hit
    assert models.calls() == 3


async def test_cache_can_be_disabled_by_the_task(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    task = make_task(cache={"enabled": False})
    async with engine_factory(task) as engine:
        await engine.execute("title_extraction", {"posting": "Chef wanted"})
        again = await engine.execute("title_extraction", {"posting": "Chef wanted"})
    assert not again.cache_hit
    assert models.calls() == 2


async def test_usage_conditions_choose_the_prompt_variant(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    async with engine_factory() as engine:
        result = await engine.execute(
            "title_extraction", {"posting": "Chef"}, options={"alternate": True}
        )
        forced = await engine.execute(
            "title_extraction",
            {"posting": "Cook"},
            options=ExecuteOptions(prompt_variant="alternate"),
        )
    assert result.prompt_variant == "alternate"
    assert forced.prompt_variant == "alternate"
    assert models.requests[0].messages[-1].content == "What is the title of this job? Chef"


async def test_provider_failure_moves_to_the_next_ranked_model(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    from tlm.errors import AuthenticationFailed

    def refuse(request: ChatRequest) -> str:
        raise AuthenticationFailed("bad key", provider="fake", model=request.model, status=401)

    models.handlers["model-a"] = refuse
    models.handlers["model-b"] = reply({"title": "Chef"})
    async with engine_factory() as engine:
        result = await engine.execute("title_extraction", {"posting": "Chef"})
    assert result.models_used == ("model-a", "model-b")
    assert result.output == {"title": "Chef"}


async def test_cost_budget_is_checked_before_the_call(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    async with engine_factory() as engine:
        with pytest.raises(BudgetExceeded) as caught:
            await engine.execute(
                "title_extraction",
                {"posting": "Chef"},
                options={"budget": {"max_cost_usd": 1e-7}},
            )
    assert models.calls() == 0
    assert caught.value.spent_usd == 0
    assert "cost budget" in str(caught.value)


async def test_attempt_budget_stops_reasks(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply('{"name": "wrong"}')
    task = make_task(budget={"max_attempts": 2})
    async with engine_factory(task, max_reasks=5) as engine:
        with pytest.raises(BudgetExceeded) as caught:
            await engine.execute("title_extraction", {"posting": "Chef"})
    assert models.calls() == 2
    assert caught.value.attempts == 2
    assert caught.value.spent_usd == pytest.approx(2 * 200e-6)


async def test_deadline_cancels_the_call_in_flight(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    async def slow(request: ChatRequest) -> str:
        await anyio.sleep(30)
        return json.dumps({"title": "late"})

    models.handlers["*"] = slow
    async with engine_factory() as engine:
        with pytest.raises(BudgetExceeded) as caught:
            await engine.execute(
                "title_extraction", {"posting": "Chef"}, options={"budget": {"deadline_s": 0.05}}
            )
    assert models.cancelled == ["model-a"]
    assert models.completed == []
    assert "deadline" in str(caught.value)


async def test_cancelling_execute_cancels_the_model_call(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    started = anyio.Event()

    async def blocked(request: ChatRequest) -> str:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    models.handlers["*"] = blocked
    async with engine_factory() as engine:
        before = len(asyncio.all_tasks())
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.execute, "title_extraction", {"posting": "Chef"})
            await started.wait()
            tg.cancel_scope.cancel()
        assert len(asyncio.all_tasks()) == before  # no task outlives the cancelled call
        assert engine.store is not None
        cancelled = engine.store.query(task_id="title_extraction")
    assert models.cancelled == ["model-a"]
    assert [r.error.message for r in cancelled if r.error] == ["execution cancelled"]


async def test_a_consensus_voter_with_invalid_output_gets_one_reask_only(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    consensus = {
        "method": "consensus",
        "parameters": {"similarity_threshold": 0.9, "min_models": 2, "max_models": 3},
        "fallback_strategy": "fail",
    }
    models.handlers["model-a"] = reply({"title": "Chef"})
    models.handlers["model-b"] = reply("not json")
    models.handlers["model-c"] = reply({"title": "Chef"})
    async with engine_factory(make_task(verification=consensus), max_reasks=3) as engine:
        result = await engine.execute("title_extraction", {"posting": "Chef"})
    assert result.status == "verified"
    assert models.calls("model-b") == 2
    assert result.models_used == ("model-a", "model-b", "model-c")
    assert result.verdict is not None
    assert result.verdict.details["failures"][0]["model"] == "model-b"


async def test_a_failed_open_releases_what_it_opened(tmp_path: Path) -> None:
    engine = Engine(
        EngineConfig(data_dir=tmp_path, models=("no-such-model",)),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data()),
    )
    with pytest.raises(ConfigurationError, match="not in the catalog: no-such-model"):
        await engine.open()
    writers = [t for t in threading.enumerate() if t.name == "tlm-store-writer"]
    assert writers == []  # the store opened before the failure was closed again
    assert (tmp_path / "tlm.db").is_file()


async def test_consensus_voters_run_beside_the_primary_call(
    engine_factory: EngineFactory, models: ScriptedModels
) -> None:
    consensus = {
        "method": "consensus",
        "parameters": {"similarity_threshold": 0.9, "min_models": 2, "max_models": 3},
        "fallback_strategy": "fail",
    }
    voter_started = anyio.Event()

    async def primary(request: ChatRequest) -> str:
        # Answers only once the second opinion is on its way: a sequential engine would stall.
        await voter_started.wait()
        return json.dumps({"title": "Chef"})

    def voter(request: ChatRequest) -> str:
        voter_started.set()
        return json.dumps({"title": "Chef"})

    models.handlers["model-a"] = primary
    models.handlers["model-b"] = voter
    models.handlers["model-c"] = reply({"title": "Chef"})
    async with engine_factory(make_task(verification=consensus)) as engine:
        result = await engine.execute(
            "title_extraction", {"posting": "Chef"}, options={"budget": {"deadline_s": 10}}
        )
    assert result.status == "verified"
    assert result.models_used == ("model-a", "model-b")
    assert models.calls("model-c") == 0  # the quorum of two agreed: no third call
