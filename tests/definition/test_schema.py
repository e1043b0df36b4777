"""The task-definition JSON Schema: the design examples pass, per-method parameters are checked."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tlm.definition.schema import SCHEMA_ID, json_path, schema_problems, task_definition_schema

from .support import JOB_DETAIL, SKILL_DECOMPOSITION, definition, fixture


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = task_definition_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == SCHEMA_ID


@pytest.mark.parametrize("path", [JOB_DETAIL, SKILL_DECOMPOSITION], ids=lambda p: p.stem)
def test_design_document_examples_validate_unchanged(path: Any) -> None:
    assert schema_problems(fixture(path), source=str(path)) == []


def _verification(method: str, parameters: Any = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"method": method, **extra}
    if parameters is not None:
        spec["parameters"] = parameters
    return definition(verification=spec)


ACCEPTED = {
    "none": _verification("none"),
    "consensus-defaults": _verification("consensus"),
    "consensus-full": _verification(
        "consensus",
        {
            "similarity_threshold": 1,
            "min_models": 1,
            "max_models": 4,
            "consensus_count": 2,
            "similarity_metric": "token_cosine",
            "models": ["a", "b"],
            "field_weights": {"summary": 2},
        },
    ),
    "hierarchical": _verification(
        "hierarchical",
        {"verification_prompt": "Check {{output}}", "min_confidence": 0.5, "verifier_model": "m"},
    ),
    "external-endpoint": _verification(
        "external", {"endpoint": "https://example.com/check", "timeout_s": 3, "retries": 0}
    ),
    "external-function": _verification("external", {"function": "mypkg:check"}),
    "human": _verification(
        "human", {"queue": "q", "timeout_s": 60, "default_action": "approve", "wait": True}
    ),
    "chain": _verification(
        "chain",
        {"steps": [{"method": "consensus"}, {"method": "human", "parameters": {"queue": "q"}}]},
        fallback_strategy="human_review",
    ),
    "default-value-fallback": _verification(
        "none", fallback_strategy={"strategy": "default_value", "value": {"summary": ""}}
    ),
    "all-optional-fields": definition(
        **{
            "$schema": SCHEMA_ID,
            "task_type": "summarisation",
            "tags": ["a"],
            "depends_on": ["other@^1.0"],
            "budget": {"max_cost_usd": 0.5, "deadline_s": 30, "max_attempts": 3},
            "cache": {"enabled": False, "ttl_s": None},
            "risk": "critical",
            "model_ranking_criteria": {
                "quality_priority": 0.5,
                "speed_priority": 0.2,
                "cost_priority": 0.3,
                "context_size": "xlarge",
                "preferred_models": ["m"],
            },
        }
    ),
}


@pytest.mark.parametrize("document", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_valid_documents_pass(document: dict[str, Any]) -> None:
    assert schema_problems(document) == []


REJECTED: dict[str, tuple[dict[str, Any], str, str]] = {
    "threshold-above-1": (
        _verification("consensus", {"similarity_threshold": 1.7}),
        "$.verification.parameters.similarity_threshold",
        "1.7 is greater than the maximum of 1",
    ),
    "min-models-0": (
        _verification("consensus", {"min_models": 0}),
        "$.verification.parameters.min_models",
        "0 is less than the minimum of 1",
    ),
    "consensus-typo": (
        _verification("consensus", {"similarity_treshold": 0.5}),
        "$.verification.parameters",
        "'similarity_treshold' was unexpected",
    ),
    "consensus-param-on-hierarchical": (
        _verification("hierarchical", {"verification_prompt": "x", "min_models": 2}),
        "$.verification.parameters",
        "'min_models' was unexpected",
    ),
    "hierarchical-needs-prompt": (
        _verification("hierarchical", {"min_confidence": 0.5}),
        "$.verification.parameters",
        "'verification_prompt' is a required property",
    ),
    "hierarchical-needs-parameters": (
        _verification("hierarchical"),
        "$.verification",
        "'parameters' is a required property",
    ),
    "min-confidence-range": (
        _verification("hierarchical", {"verification_prompt": "x", "min_confidence": -0.1}),
        "$.verification.parameters.min_confidence",
        "-0.1 is less than the minimum of 0",
    ),
    "external-needs-endpoint-or-function": (
        _verification("external", {"timeout_s": 2}),
        "$.verification.parameters",
        "one of endpoint, function is required",
    ),
    "external-endpoint-not-http": (
        _verification("external", {"endpoint": "ftp://x"}),
        "$.verification.parameters.endpoint",
        "does not match",
    ),
    "human-bad-action": (
        _verification("human", {"default_action": "maybe"}),
        "$.verification.parameters.default_action",
        "'maybe' is not one of",
    ),
    "none-with-parameters": (
        _verification("none", {"min_models": 2}),
        "$.verification.parameters",
        "'min_models' was unexpected",
    ),
    "chain-needs-steps": (
        _verification("chain", {"steps": []}),
        "$.verification.parameters.steps",
        "should be non-empty",
    ),
    "chain-step-with-fallback": (
        _verification("chain", {"steps": [{"method": "consensus", "fallback_strategy": "fail"}]}),
        "$.verification.parameters.steps[0]",
        "'fallback_strategy' was unexpected",
    ),
    "chain-step-params-checked": (
        _verification(
            "chain", {"steps": [{"method": "consensus", "parameters": {"max_models": 0}}]}
        ),
        "$.verification.parameters.steps[0].parameters.max_models",
        "0 is less than the minimum of 1",
    ),
    "unknown-method": (
        _verification("vote"),
        "$.verification.method",
        "'vote' is not one of",
    ),
    "unknown-fallback": (
        _verification("none", fallback_strategy="pray"),
        "$.verification.fallback_strategy",
        "'pray' is not one of",
    ),
    "default-value-needs-value": (
        _verification("none", fallback_strategy={"strategy": "default_value"}),
        "$.verification.fallback_strategy",
        "'value' is a required property",
    ),
    "missing-id": (
        {k: v for k, v in definition().items() if k != "id"},
        "$",
        "'id' is a required property",
    ),
    "version-not-semver": (definition(version="1.0"), "$.version", "does not match"),
    "version-wrong-type": (definition(version=1), "$.version", "1 is not of type 'string'"),
    "top-level-typo": (definition(verfication={}), "$", "'verfication' was unexpected"),
    "prompts-empty": (definition(prompts=[]), "$.prompts", "should be non-empty"),
    "risk": (definition(risk="extreme"), "$.risk", "'extreme' is not one of"),
    "context-size": (
        definition(model_ranking_criteria={"context_size": "huge"}),
        "$.model_ranking_criteria.context_size",
        "'huge' is not one of",
    ),
    "priority-range": (
        definition(model_ranking_criteria={"cost_priority": 2}),
        "$.model_ranking_criteria.cost_priority",
        "2 is greater than the maximum of 1",
    ),
    "budget-attempts": (
        definition(budget={"max_attempts": 0}),
        "$.budget.max_attempts",
        "0 is less than the minimum of 1",
    ),
    "cache-typo": (definition(cache={"ttl": 5}), "$.cache", "'ttl' was unexpected"),
    "usage-condition-typo": (
        definition(
            prompts=[
                {
                    "id": "p",
                    "text": "{{text}}",
                    "template_variables": ["text"],
                    "usage_conditions": {"defualt": True},
                }
            ]
        ),
        "$.prompts[0].usage_conditions",
        "'defualt' was unexpected",
    ),
}


@pytest.mark.parametrize(("document", "path", "message"), REJECTED.values(), ids=REJECTED.keys())
def test_invalid_documents_are_located(document: dict[str, Any], path: str, message: str) -> None:
    problems = schema_problems(document, source="t.json")
    assert any(p.path == path and message in p.message for p in problems), problems
    assert all(p.source == "t.json" for p in problems)


def test_every_problem_is_reported_at_once() -> None:
    document = _verification("consensus", {"similarity_threshold": 1.7, "min_models": 0})
    document["version"] = "one"
    paths = {p.path for p in schema_problems(document)}
    assert {
        "$.version",
        "$.verification.parameters.similarity_threshold",
        "$.verification.parameters.min_models",
    } <= paths


def test_json_path_quotes_keys_that_are_not_identifiers() -> None:
    assert json_path(["a", 0, "b c", "d"]) == '$.a[0]["b c"].d'
