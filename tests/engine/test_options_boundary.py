"""Issue 12 items 9, 11, 12: options, budgets and feedback are checked before anything runs.

NaN, infinite and negative budgets, a string where a model list belongs, ``max_tokens=-5``,
``temperature="hot"`` and malformed budget dicts raise :class:`InvalidArgument` naming the field
and call nothing; ``options.models`` may only name configured models; an input too large for
every configured window says so, with its estimate and each window.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tlm
from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tlm.catalog import Catalog
from tlm.definition.model import Budget
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig, ExecuteOptions
from tlm.engine.result import coerce_options
from tlm.errors import ConfigurationError, InputTooLarge, InvalidArgument, TLMError
from tlm.store import ExecutionStore

BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"budget": {"max_cost_usd": float("nan")}}, "options.budget.max_cost_usd"),
    ({"budget": {"max_cost_usd": math.inf}}, "options.budget.max_cost_usd"),
    ({"budget": {"max_cost_usd": -0.5}}, "options.budget.max_cost_usd"),
    ({"budget": {"deadline_s": float("nan")}}, "options.budget.deadline_s"),
    ({"budget": {"deadline_s": -1}}, "options.budget.deadline_s"),
    ({"budget": {"deadline_s": 0}}, "options.budget.deadline_s"),
    ({"budget": {"deadline_s": float("inf")}}, "options.budget.deadline_s"),
    ({"budget": {"max_attempts": 0}}, "options.budget.max_attempts"),
    ({"budget": {"max_attempts": 2.5}}, "options.budget.max_attempts"),
    ({"budget": {"max_cost_usd": "0.1"}}, "options.budget.max_cost_usd"),
    ({"budget": {"max_cost": 1.0}}, "options.budget"),
    ({"budget": [1, 2]}, "options.budget"),
    ({"models": "model-a"}, "options.models"),
    ({"models": ["model-a", 3]}, "options.models[1]"),
    ({"max_tokens": -5}, "options.max_tokens"),
    ({"max_tokens": 0}, "options.max_tokens"),
    ({"max_tokens": 10.5}, "options.max_tokens"),
    ({"max_tokens": True}, "options.max_tokens"),
    ({"temperature": "hot"}, "options.temperature"),
    ({"temperature": float("nan")}, "options.temperature"),
    ({"temperature": -0.1}, "options.temperature"),
    ({"seed": "x"}, "options.seed"),
    ({"cache": "no"}, "options.cache"),
]


@pytest.mark.parametrize(("options", "field"), BAD_OPTIONS)
async def test_bad_options_are_refused_before_any_call(
    engine_factory: Callable[..., Engine],
    models: ScriptedModels,
    options: dict[str, Any],
    field: str,
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    async with engine_factory() as engine:
        with pytest.raises(InvalidArgument) as caught:
            await engine.execute("title_extraction", {"posting": "Chef"}, options=options)
        with pytest.raises(InvalidArgument):
            async with engine.map("title_extraction", [{"posting": "Chef"}], options=options):
                pass
    assert caught.value.argument == field
    assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, TLMError)
    assert isinstance(caught.value, ValueError)
    assert models.calls() == 0


def test_execute_options_built_directly_are_checked_too() -> None:
    with pytest.raises(InvalidArgument, match=r"options\.budget\.deadline_s"):
        ExecuteOptions(budget=Budget(deadline_s=float("nan")))
    with pytest.raises(InvalidArgument, match=r"options\.models"):
        ExecuteOptions(models="model-a")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="options"):
        coerce_options(["models"])  # type: ignore[arg-type]
    good = ExecuteOptions(models=("model-b",), budget=Budget(0.0, 5.0, 1), temperature=1.5)
    assert good.models == ("model-b",)


async def test_a_model_list_is_never_split_into_characters(
    engine_factory: Callable[..., Engine], models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    async with engine_factory() as engine:
        result = await engine.execute(
            "title_extraction", {"posting": "Chef"}, options={"models": ["model-b"]}
        )
    assert result.models_used == ("model-b",)


async def test_only_configured_models_may_be_named(tmp_path: Path, models: ScriptedModels) -> None:
    """``model-c`` is in the catalog but not configured: naming it is an error listing both."""
    models.handlers["*"] = reply({"title": "Chef"})
    engine = Engine(
        EngineConfig(data_dir=tmp_path / "data", models=("model-a", "model-b")),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
    )
    async with engine:
        with pytest.raises(ConfigurationError) as caught:
            await engine.execute(
                "title_extraction", {"posting": "Chef"}, options={"models": ["model-c"]}
            )
        with pytest.raises(ConfigurationError, match="unknown model"):
            await engine.execute(
                "title_extraction", {"posting": "Chef"}, options={"models": ["gpt-nope"]}
            )
        engine.flush()
    message = str(caught.value)
    assert "model-c" in message
    assert "configured: model-a, model-b" in message
    assert models.calls() == 0
    with ExecutionStore(tmp_path / "data" / "tlm.db") as store:
        assert store.count() == 2  # refused executions are recorded as failed


async def test_an_input_too_large_for_every_window_says_by_how_much(
    engine_factory: Callable[..., Engine], models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    posting = "word " * 200_000  # about 1 MB: ~286k tokens against 32,768-token windows
    async with engine_factory() as engine:
        with pytest.raises(InputTooLarge) as caught:
            await engine.execute("title_extraction", {"posting": posting})
    error = caught.value
    assert models.calls() == 0
    assert error.windows == dict.fromkeys(MODELS, 32_768)
    assert error.estimated_tokens > 280_000
    assert error.output_tokens == 1024
    message = str(error)
    assert "too large for every configured model's context window" in message
    assert f"{error.estimated_tokens:,} tokens" in message
    assert f"model-a holds 32,768 (over by {error.estimated_tokens - 32_768:,})" in message


@pytest.mark.parametrize("score", [float("nan"), 1e999, -5, 1.5, "0.5", True])
async def test_feedback_scores_outside_0_to_1_are_refused(
    engine_factory: Callable[..., Engine], models: ScriptedModels, score: Any
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    async with engine_factory() as engine:
        result = await engine.execute("title_extraction", {"posting": "Chef"})
        engine.flush()
        with pytest.raises(InvalidArgument, match=r"^score: "):
            await engine.feedback(result.execution_id, score=score)
        await engine.feedback(result.execution_id, score=0.25)
        assert engine.store is not None
        with pytest.raises(InvalidArgument):
            engine.store.add_feedback(result.execution_id, score=score)
        record = engine.store.get(result.execution_id)
    assert record is not None
    assert [f.score for f in record.feedback] == [0.25]


async def test_tlm_feedback_checks_the_score_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TLM_CONFIG", raising=False)
    try:
        with pytest.raises(InvalidArgument, match="score"):
            await tlm.feedback("0" * 32, score=float("nan"))
    finally:
        await tlm.aclose()


async def test_map_and_feedback_arguments_are_checked(
    engine_factory: Callable[..., Engine], models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Chef"})
    async with engine_factory() as engine:
        for bad in (0, -3, 2.5, True):
            with pytest.raises(InvalidArgument, match="max_in_flight"):
                engine.map("title_extraction", [{"posting": "x"}], max_in_flight=bad)  # type: ignore[arg-type]
        result = await engine.execute("title_extraction", {"posting": "Chef"})
        engine.flush()
        with pytest.raises(InvalidArgument, match="correct"):
            await engine.feedback(result.execution_id, correct="yes")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="source"):
            await engine.feedback(result.execution_id, note="n", source="robot")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="note"):
            await engine.feedback(result.execution_id, note=5)  # type: ignore[arg-type]
