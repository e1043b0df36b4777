"""Verified cascades and input-aware selection through the Engine, models on real sockets."""

from __future__ import annotations

from typing import Any

import pytest

from tlm.learn.cascade import CascadePlan
from tlm.learn.rankings import build_rankings
from tlm.learn.selector import InputAwareSelector
from tlm.learn.updates import save_cascade_plans

from .support import CALL_USD, POSTING, EngineFactory, Fleet, task
from .support import answer as reply_with

ENGINEER = {"title": "Senior Engineer"}
MANAGER = {"title": "Engineering Manager"}


def cascade(ladder: Any, fallback: str = "fail", **parameters: Any) -> dict[str, Any]:
    return {
        "method": "cascade",
        "parameters": {"ladder": ladder, **parameters},
        "fallback_strategy": fallback,
    }


def always(value: Any) -> Any:
    return lambda body: reply_with(value)


async def test_cheap_rung_agreeing_is_accepted_without_asking_the_top(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    fleet.handlers["model-c"] = always(ENGINEER)
    fleet.handlers["model-d"] = always({"title": "senior engineer"})
    fleet.handlers["model-a"] = always(MANAGER)
    definition = task(cascade([["model-c", "model-d"], "model-a"]))
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING)
        engine.flush()
        assert engine.store is not None
        record = engine.store.get(result.execution_id)

    assert result.status == "verified"
    assert result.output == ENGINEER
    assert result.models_used[0] == "model-c"  # the first rung answers first, not the best-ranked
    assert (fleet.calls("model-c"), fleet.calls("model-d"), fleet.calls("model-a")) == (1, 1, 0)
    assert result.cost_usd == pytest.approx(2 * CALL_USD)
    assert result.verdict is not None
    assert result.verdict.details["rung"] == 0
    assert result.verdict.details["clusters"] == [["model-c", "model-d"]]
    assert record is not None
    assert record.verification_results is not None
    assert record.verification_results.method_used == "cascade"
    assert [v["model"] for v in record.verification_results.details["votes"]] == [
        "model-c",
        "model-d",
    ]


async def test_disagreement_escalates_and_every_answer_becomes_evidence(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    fleet.handlers["model-c"] = always(MANAGER)
    fleet.handlers["model-d"] = always(ENGINEER)
    fleet.handlers["model-a"] = always(ENGINEER)
    definition = task(cascade([["model-c", "model-d"], ["model-a"]]))
    async with engine_factory(definition) as engine:
        results = [await engine.execute("title_extraction", POSTING) for _ in range(3)]
        engine.flush()
        assert engine.store is not None
        records = list(engine.store.iter_query(task_id="title_extraction"))

    for result in results:
        assert result.status == "verified"
        assert result.output == ENGINEER
        assert result.verdict is not None
        assert result.verdict.details["rung"] == 1
        assert result.verdict.details["unchecked"] is False
    assert fleet.calls("model-a") == 3
    rankings = build_rankings(records).tasks["title_extraction"]
    # the primary (model-c) disagreed with the accepted answer: failures; the others succeeded
    assert rankings.models["model-c"].failures == pytest.approx(3.0, rel=0.01)
    assert rankings.models["model-c"].successes == 0.0
    assert rankings.models["model-d"].samples == 3
    assert rankings.models["model-d"].successes == pytest.approx(3.0, rel=0.01)
    assert rankings.models["model-a"].successes == pytest.approx(3.0, rel=0.01)


async def test_top_of_the_ladder_without_agreement_is_unchecked(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    fleet.handlers["model-c"] = always(MANAGER)
    fleet.handlers["model-b"] = always(ENGINEER)
    definition = task(cascade(["model-c", "model-b"], accept={"agreement": 2}))
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING)
    assert result.output == ENGINEER  # the top model's own answer
    assert result.verdict is not None
    assert result.verdict.details["unchecked"] is True
    assert result.verdict.confidence <= 0.5


async def test_learned_ladder_comes_from_the_plan_file(
    engine_factory: EngineFactory, fleet: Fleet, tmp_path: Any
) -> None:
    data_dir = tmp_path / "learned"
    plan = CascadePlan(
        ladder=(("model-d",), ("model-b",)),
        agreement=1,
        min_confidence=0.6,
        table={(0, 1, 1): (9.0, 10.0)},
    )
    save_cascade_plans(data_dir, {"title_extraction": plan})
    fleet.handlers["model-d"] = always(ENGINEER)
    fleet.handlers["model-b"] = always(MANAGER)
    definition = task(cascade("learned", models=["model-d", "model-b", "model-a"]))
    async with engine_factory(definition, data_dir=data_dir) as engine:
        result = await engine.execute("title_extraction", POSTING)
    assert result.status == "verified"
    assert result.output == ENGINEER
    assert result.verdict is not None
    assert result.verdict.details["learned"] is True
    assert result.verdict.details["rung"] == 0
    assert (fleet.calls("model-d"), fleet.calls("model-b"), fleet.calls("model-a")) == (1, 0, 0)


async def test_input_aware_selection_is_used_and_explained_in_the_record(
    engine_factory: EngineFactory, fleet: Fleet, tmp_path: Any
) -> None:
    selector = InputAwareSelector(min_history=10, policy="greedy")
    for _ in range(20):  # model-c does postings about engineers well, model-a does not
        selector.learn("title_extraction", "engineer posting berlin", "model-c", 1.0)
        selector.learn("title_extraction", "engineer posting berlin", "model-a", 0.0)
    data_dir = tmp_path / "selecting"
    selector.save(data_dir / "selector.json")
    fleet.handlers["model-c"] = always(ENGINEER)
    definition = task({"method": "none"})
    async with engine_factory(definition, data_dir=data_dir) as engine:
        result = await engine.execute("title_extraction", POSTING)
        engine.flush()
        assert engine.store is not None
        record = engine.store.get(result.execution_id)

    assert result.models_used == ("model-c",)
    assert fleet.calls("model-a") == 0
    assert record is not None
    assert record.selection is not None
    assert record.selection["learned"] is True
    assert record.selection["chosen"] == "model-c"
    considered = {c["model"]: c for c in record.selection["considered"]}
    assert set(considered) == {"model-a", "model-b", "model-c", "model-d"}
    assert considered["model-c"]["quality"] > considered["model-a"]["quality"]
    assert "model-c" in record.selection["reason"]


async def test_selector_without_history_falls_back_and_says_so(
    engine_factory: EngineFactory, fleet: Fleet, tmp_path: Any
) -> None:
    data_dir = tmp_path / "cold"
    InputAwareSelector(min_history=50).save(data_dir / "selector.json")
    fleet.handlers["model-a"] = always(ENGINEER)
    async with engine_factory(task({"method": "none"}), data_dir=data_dir) as engine:
        result = await engine.execute("title_extraction", POSTING)
        engine.flush()
        assert engine.store is not None
        record = engine.store.get(result.execution_id)
    assert result.models_used == ("model-a",)  # today's per-task ranking (priors)
    assert record is not None
    assert record.selection is not None
    assert record.selection["learned"] is False
    assert "fallback" in record.selection["reason"]


async def test_a_failing_model_is_a_non_answer_and_the_climb_goes_on(
    engine_factory: EngineFactory, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools

    from tlm.providers import pool as pool_module
    from tlm.providers.retry import RetryPolicy
    from tlm.testing.replies import server_error

    async def no_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(pool_module, "RetryPolicy", functools.partial(RetryPolicy, sleep=no_sleep))
    fleet.handlers["model-c"] = always(ENGINEER)
    fleet.handlers["model-d"] = lambda body: server_error(503)
    fleet.handlers["model-b"] = always(ENGINEER)
    definition = task(cascade([["model-c", "model-d"], "model-b"]))
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING)
    assert result.status == "verified"
    assert result.verdict is not None
    assert result.verdict.details["rung"] == 1
    assert [f["model"] for f in result.verdict.details["failures"]] == ["model-d"]
    assert result.cost_usd == pytest.approx(2 * CALL_USD)  # the failed calls are not paid


async def test_budget_stops_the_climb_and_says_so(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    from tlm.errors import BudgetExceeded

    fleet.handlers["model-c"] = always(ENGINEER)
    fleet.handlers["model-d"] = always(MANAGER)
    fleet.handlers["model-a"] = always(ENGINEER)
    definition = task(cascade([["model-c", "model-d"], "model-a"]))
    budget = {"max_cost_usd": 2 * CALL_USD + 1e-7}  # the first rung, not the top
    async with engine_factory(definition) as engine:
        with pytest.raises(BudgetExceeded) as caught:
            await engine.execute("title_extraction", POSTING, options={"budget": budget})
    assert "cascade" in str(caught.value)
    assert fleet.calls("model-a") == 0


async def test_the_selector_keeps_learning_from_the_running_engine(
    engine_factory: EngineFactory, fleet: Fleet, tmp_path: Any
) -> None:
    data_dir = tmp_path / "online"
    InputAwareSelector(min_history=12, policy="greedy").save(data_dir / "selector.json")
    fleet.handlers["model-c"] = always(MANAGER)
    fleet.handlers["model-d"] = always(ENGINEER)
    fleet.handlers["model-a"] = always(ENGINEER)
    definition = task(cascade([["model-c", "model-d"], "model-a"]))
    async with engine_factory(definition, data_dir=data_dir) as engine:
        first = await engine.execute("title_extraction", POSTING)
        for _ in range(4):  # three answers each: 15 learned outcomes after five executions
            await engine.execute("title_extraction", POSTING)
        later = await engine.execute("title_extraction", POSTING)
        engine.flush()
        assert engine.store is not None
        first_record = engine.store.get(first.execution_id)
        later_record = engine.store.get(later.execution_id)
    assert first_record is not None
    assert first_record.selection is not None
    assert first_record.selection["learned"] is False
    assert later_record is not None
    assert later_record.selection is not None
    assert later_record.selection["learned"] is True  # no update-rankings in between
    considered = {c["model"]: c["quality"] for c in later_record.selection["considered"]}
    assert considered["model-d"] > considered["model-c"]


async def test_a_failed_top_without_agreement_fails_verification_then_the_fallback(
    engine_factory: EngineFactory, fleet: Fleet
) -> None:
    fleet.handlers["model-c"] = always(MANAGER)  # model-b is not scripted: it answers HTTP 400
    definition = task(cascade(["model-c", "model-b"], fallback="use_highest_ranked_model"))
    async with engine_factory(definition) as engine:
        result = await engine.execute("title_extraction", POSTING)
    assert result.status == "fallback"
    assert result.output == MANAGER
    assert result.verdict is not None
    assert result.verdict.passed is False
    assert result.verdict.details["reason"] == "the top of the ladder failed and nothing agreed"
    assert [f["model"] for f in result.verdict.details["failures"]] == ["model-b"]
