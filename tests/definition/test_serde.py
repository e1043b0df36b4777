"""The one converter: JSON -> TaskDefinition -> the same JSON shape."""

from __future__ import annotations

from typing import Any

import pytest

from tlm.definition import (
    ChainParams,
    ConsensusParams,
    ExternalParams,
    FallbackSpec,
    HierarchicalParams,
    HumanParams,
    NoParams,
    TaskDefinition,
    make_converter,
)
from tlm.definition.schema import schema_problems

from .support import JOB_DETAIL, SKILL_DECOMPOSITION, definition, fixture

CONVERTER = make_converter()

CHAIN = definition(
    verification={
        "method": "chain",
        "parameters": {
            "steps": [
                {"method": "consensus", "parameters": {"min_models": 3, "max_models": 3}},
                {"method": "external", "parameters": {"function": "pkg:check"}},
                {
                    "method": "chain",
                    "parameters": {"steps": [{"method": "human", "parameters": {"queue": "q"}}]},
                },
            ]
        },
        "fallback_strategy": {"strategy": "default_value", "value": {"summary": "n/a"}},
    },
    budget={"max_cost_usd": 0.25, "deadline_s": 10, "max_attempts": 2},
    cache={"enabled": False, "ttl_s": None},
    tags=["t"],
    depends_on=["other@^1"],
)


@pytest.mark.parametrize(
    "document",
    [fixture(JOB_DETAIL), fixture(SKILL_DECOMPOSITION), definition(), CHAIN],
    ids=["job_detail", "skill_decomposition", "summarise", "chain"],
)
def test_round_trip(document: dict[str, Any]) -> None:
    task = CONVERTER.structure(document, TaskDefinition)
    json_again = CONVERTER.unstructure(task)
    assert schema_problems(json_again) == []
    assert CONVERTER.structure(json_again, TaskDefinition) == task
    # What was written comes back unchanged; unstructuring only adds omitted defaults.
    written = {k: v for k, v in document.items() if k != "$schema"}
    assert _contains(json_again, written)


def _contains(big: Any, small: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            k in big and _contains(big[k], v) for k, v in small.items()
        )
    if isinstance(small, list):
        return (
            isinstance(big, list)
            and len(big) == len(small)
            and all(_contains(b, s) for b, s in zip(big, small, strict=True))
        )
    return bool(big == small)


def test_parameters_follow_the_method_and_chain_steps_recurse() -> None:
    task = CONVERTER.structure(CHAIN, TaskDefinition)
    params = task.verification.parameters
    assert isinstance(params, ChainParams)
    first, second, third = params.steps
    assert first.parameters == ConsensusParams(min_models=3, max_models=3)
    assert second.parameters == ExternalParams(function="pkg:check")
    assert isinstance(third.parameters, ChainParams)
    assert isinstance(third.parameters.steps[0].parameters, HumanParams)
    assert task.verification.fallback == FallbackSpec("default_value", {"summary": "n/a"})
    assert task.budget.max_cost_usd == 0.25
    assert task.cache.ttl_s is None
    assert task.tags == ("t",)


def test_fallback_strategy_string_and_defaults() -> None:
    job = CONVERTER.structure(fixture(JOB_DETAIL), TaskDefinition)
    assert job.verification.fallback == FallbackSpec("use_highest_ranked_model")
    assert job.verification.parameters == ConsensusParams(
        similarity_threshold=0.75, min_models=2, max_models=3
    )
    assert job.input.validations == ("non_empty_text", "min_length_100")
    skill = CONVERTER.structure(fixture(SKILL_DECOMPOSITION), TaskDefinition)
    assert isinstance(skill.verification.parameters, HierarchicalParams)
    assert skill.verification.fallback.strategy == "human_review"
    bare = CONVERTER.structure(
        {k: v for k, v in definition().items() if k != "verification"}, TaskDefinition
    )
    assert bare.verification.method == "none"
    assert bare.verification.parameters == NoParams()


def test_unstructure_writes_json_types() -> None:
    data = CONVERTER.unstructure(CONVERTER.structure(CHAIN, TaskDefinition))
    assert isinstance(data["prompts"], list)
    assert isinstance(data["prompts"][0]["template_variables"], list)
    assert data["verification"]["fallback_strategy"] == {
        "strategy": "default_value",
        "value": {"summary": "n/a"},
    }
    assert "fallback_strategy" not in data["verification"]["parameters"]["steps"][0]
    assert "source" not in data
