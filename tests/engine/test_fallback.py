"""Each fallback strategy, driven by an external verifier that rejects some outputs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tlm.catalog import Catalog
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.errors import OutputInvalid, VerificationFailed


def external(strategy: str | dict[str, Any]) -> dict[str, Any]:
    return {
        "method": "external",
        "parameters": {"function": "title_checker"},
        "fallback_strategy": strategy,
    }


async def good_titles_only(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Accept an output only when its title is "Good"."""
    passed = payload["output"].get("title") == "Good"
    return {
        "passed": passed,
        "confidence": 0.9 if passed else 0.2,
        "issues": [] if passed else ["bad title"],
    }


def build(tmp_path: Path, models: ScriptedModels, strategy: str | dict[str, Any]) -> Engine:
    task = make_task(verification=external(strategy))
    return Engine(
        EngineConfig(data_dir=tmp_path / "data", models=MODELS, cache=False),
        registry=DefinitionRegistry([task]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
        functions={"title_checker": good_titles_only},
    )


def per_model(**titles: str) -> Callable[[Any], str]:
    return lambda request: json.dumps({"title": titles[request.model.replace("-", "_")]})


async def test_verified_output_needs_no_fallback(tmp_path: Path, models: ScriptedModels) -> None:
    models.handlers["*"] = reply({"title": "Good"})
    async with build(tmp_path, models, "fail") as engine:
        result = await engine.execute("title_extraction", {"posting": "x"})
    assert result.status == "verified"
    assert result.fallback is None
    assert result.verdict is not None
    assert result.verdict.confidence == pytest.approx(0.9)


async def test_fail_raises_verification_failed(tmp_path: Path, models: ScriptedModels) -> None:
    models.handlers["*"] = reply({"title": "Bad"})
    async with build(tmp_path, models, "fail") as engine:
        with pytest.raises(VerificationFailed) as caught:
            await engine.execute("title_extraction", {"posting": "x"})
    assert caught.value.verdict.passed is False


async def test_next_model_tries_the_next_ranked_model(
    tmp_path: Path, models: ScriptedModels
) -> None:
    models.handlers["*"] = per_model(model_a="Bad", model_b="Good", model_c="Good")
    async with build(tmp_path, models, "next_model") as engine:
        result = await engine.execute("title_extraction", {"posting": "x"})
    assert result.output == {"title": "Good"}
    assert result.fallback == "next_model"
    assert result.status == "verified"
    assert result.models_used == ("model-a", "model-b")


async def test_retry_with_variant_uses_another_prompt(
    tmp_path: Path, models: ScriptedModels
) -> None:
    def by_prompt(request: Any) -> str:
        good = request.messages[-1].content.startswith("What is the title")
        return json.dumps({"title": "Good" if good else "Bad"})

    models.handlers["*"] = by_prompt
    async with build(tmp_path, models, "retry_with_variant") as engine:
        result = await engine.execute("title_extraction", {"posting": "x"})
    assert result.output == {"title": "Good"}
    assert result.prompt_variant == "alternate"
    assert result.fallback == "retry_with_variant"


async def test_default_value_is_returned_and_marked(tmp_path: Path, models: ScriptedModels) -> None:
    models.handlers["*"] = reply({"title": "Bad"})
    strategy = {"strategy": "default_value", "value": {"title": "unknown"}}
    async with build(tmp_path, models, strategy) as engine:
        result = await engine.execute("title_extraction", {"posting": "x"})
    assert result.output == {"title": "unknown"}
    assert result.status == "fallback"
    assert result.fallback == "default_value"


async def test_use_highest_ranked_model_returns_its_output_unverified(
    tmp_path: Path, models: ScriptedModels
) -> None:
    models.handlers["*"] = per_model(model_a="Bad A", model_b="Bad B", model_c="Bad C")
    async with build(tmp_path, models, "use_highest_ranked_model") as engine:
        result = await engine.execute("title_extraction", {"posting": "x"})
    assert result.output == {"title": "Bad A"}
    assert result.status == "fallback"
    assert result.fallback == "use_highest_ranked_model"
    assert result.verdict is not None
    assert result.verdict.passed is False


async def test_use_highest_ranked_model_after_invalid_output_runs_the_next_model(
    tmp_path: Path, models: ScriptedModels
) -> None:
    models.handlers["model-a"] = reply("not json")
    models.handlers["model-b"] = reply({"title": "B"})
    async with build(tmp_path, models, "use_highest_ranked_model") as engine:
        result = await engine.execute("title_extraction", {"posting": "x"})
    assert result.output == {"title": "B"}
    assert result.fallback == "use_highest_ranked_model"


async def test_human_review_returns_a_pending_result_decided_later(
    tmp_path: Path, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Bad"})
    async with build(tmp_path, models, "human_review") as engine:
        result = await engine.execute("title_extraction", {"posting": "x"})
        assert result.status == "pending"
        assert result.fallback == "human_review"
        assert result.verdict is not None
        review_id = result.verdict.details["review_id"]
        assert engine.review_queue is not None
        engine.review_queue.edit(review_id, new_output={"title": "Good"}, note="fixed")
        decided = await engine.wait_for_review(result, timeout_s=5)
    assert decided.status == "verified"
    assert decided.output == {"title": "Good"}


async def test_invalid_output_with_fail_raises_output_invalid(
    tmp_path: Path, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply("[]")
    async with build(tmp_path, models, "fail") as engine:
        with pytest.raises(OutputInvalid):
            await engine.execute("title_extraction", {"posting": "x"})


async def test_a_review_decision_is_recorded_as_feedback_on_the_execution(
    tmp_path: Path, models: ScriptedModels
) -> None:
    models.handlers["*"] = reply({"title": "Bad"})
    async with build(tmp_path, models, "human_review") as engine:
        result = await engine.execute("title_extraction", {"posting": "x"})
        assert result.verdict is not None
        assert engine.review_queue is not None
        engine.review_queue.reject(result.verdict.details["review_id"], note="wrong title")
        assert engine.store is not None
        record = engine.store.get(result.execution_id)
    assert record is not None
    assert [(f.source, f.correct) for f in record.feedback] == [("human", False)]
    assert record.feedback[0].note == "review reject: wrong title"
