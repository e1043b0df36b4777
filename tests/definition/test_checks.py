"""Load-time checks beyond the schema: each mistake is a located error before any model call."""

from __future__ import annotations

from typing import Any

import pytest

from tlm.definition import parse_definition
from tlm.errors import TaskSchemaError
from tlm.rules import RuleFailure, default_registry

from .support import definition


def _prompt(pid: str, text: str, variables: list[str], **conditions: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "text": text,
        "template_variables": variables,
        "usage_conditions": conditions or {"default": True},
    }


def _verification(method: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"method": method, "parameters": parameters, "fallback_strategy": "fail"}


def _with_input(**changes: Any) -> dict[str, Any]:
    document = definition()
    document["input"].update(changes)
    return document


def _with_output(**changes: Any) -> dict[str, Any]:
    document = definition()
    document["output"].update(changes)
    return document


CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "input-example-violates-its-schema": (
        _with_input(examples=[{"audience": "x"}]),
        "$.input.examples[0]",
        "'text' is a required property",
    ),
    "output-example-violates-its-schema": (
        _with_output(examples=[{"summary": 3}]),
        "$.output.examples[0].summary",
        "3 is not of type 'string'",
    ),
    "input-example-violates-a-rule": (
        _with_input(examples=[{"text": "short"}], validations=["min_length_100"]),
        "$.input.examples[0].text",
        "min_length_100",
    ),
    "output-example-violates-a-rule": (
        _with_output(
            examples=[{"summary": "s", "keywords": ["a", "a", "b"]}],
            validations=["no_duplicate_keywords"],
        ),
        "$.output.examples[0].keywords[1]",
        "no_duplicate_keywords",
    ),
    "unknown-validation-rule": (
        _with_input(validations=["non_empty_text", "is_pretty"]),
        "$.input.validations[1]",
        "unknown validation rule 'is_pretty'",
    ),
    "embedded-schema-is-not-a-schema": (
        _with_input(schema={"type": "strng"}, examples=[]),
        "$.input.schema.type",
        "'strng' is not one of",
    ),
    "declared-variable-not-in-text": (
        definition(prompts=[_prompt("p", "Summarise.", ["text"])]),
        "$.prompts[0].template_variables[0]",
        "'text' is declared but {{text}} does not appear in the text",
    ),
    "text-variable-not-declared": (
        definition(prompts=[_prompt("p", "{{text}} for {{audience}}", ["text"])]),
        "$.prompts[0].text",
        "{{audience}} is used but 'audience' is not in template_variables",
    ),
    "variable-not-an-input-property": (
        definition(prompts=[_prompt("p", "{{text}} {{tone}}", ["text", "tone"])]),
        "$.prompts[0].template_variables[1]",
        "'tone' is not a property of the input schema",
    ),
    "no-default-prompt": (
        definition(prompts=[_prompt("p", "{{text}}", ["text"], when="context_provided")]),
        "$.prompts",
        "no prompt is marked",
    ),
    "two-default-prompts": (
        definition(
            prompts=[_prompt("a", "{{text}}", ["text"]), _prompt("b", "{{text}}", ["text"])]
        ),
        "$.prompts[1].usage_conditions.default",
        "a second default prompt",
    ),
    "duplicate-prompt-ids": (
        definition(
            prompts=[
                _prompt("p", "{{text}}", ["text"]),
                _prompt("p", "{{text}}!", ["text"], when="context_provided"),
            ]
        ),
        "$.prompts[1].id",
        "duplicate prompt id 'p'",
    ),
    "bad-when-condition": (
        definition(
            prompts=[
                _prompt("a", "{{text}}", ["text"]),
                _prompt("b", "{{text}}", ["text"], when="input.text ==="),
            ]
        ),
        "$.prompts[1].usage_conditions.when",
        "",
    ),
    "variant-without-condition": (
        definition(
            prompts=[
                _prompt("a", "{{text}}", ["text"]),
                _prompt("b", "{{text}}", ["text"], default=False),
            ]
        ),
        "$.prompts[1].usage_conditions",
        "needs",
    ),
    "unknown-similarity-metric": (
        definition(verification=_verification("consensus", {"similarity_metric": "vibes"})),
        "$.verification.parameters.similarity_metric",
        "unknown similarity metric 'vibes'",
    ),
    "min-models-above-max": (
        definition(verification=_verification("consensus", {"min_models": 4, "max_models": 3})),
        "$.verification.parameters.min_models",
        "min_models (4) is greater than max_models (3)",
    ),
    "consensus-count-above-max": (
        definition(verification=_verification("consensus", {"consensus_count": 4})),
        "$.verification.parameters.consensus_count",
        "consensus_count (4) is greater than max_models (3)",
    ),
    "too-few-listed-models": (
        definition(verification=_verification("consensus", {"models": ["a"], "min_models": 2})),
        "$.verification.parameters.models",
        "1 distinct model(s) listed but min_models is 2",
    ),
    "field-weight-not-an-output-field": (
        definition(verification=_verification("consensus", {"field_weights": {"title": 2}})),
        "$.verification.parameters.field_weights",
        "'title' is not a property of the output schema",
    ),
    "hierarchical-prompt-with-two-unknown-names": (
        definition(
            verification=_verification(
                "hierarchical", {"verification_prompt": "Is {{summary}} right for {{reader}}?"}
            )
        ),
        "$.verification.parameters.verification_prompt",
        "unknown variables reader, summary",
    ),
    "chain-steps-are-checked": (
        definition(
            verification=_verification(
                "chain",
                {
                    "steps": [
                        {"method": "none"},
                        {"method": "consensus", "parameters": {"similarity_metric": "vibes"}},
                    ]
                },
            )
        ),
        "$.verification.parameters.steps[1].parameters.similarity_metric",
        "unknown similarity metric",
    ),
    "depends-on-bad-range": (
        definition(depends_on=["other@^x.y"]),
        "$.depends_on[0]",
        "is not a version range",
    ),
}


@pytest.mark.parametrize(("document", "path", "message"), CASES.values(), ids=CASES.keys())
def test_each_mistake_is_a_located_error(document: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(TaskSchemaError) as info:
        parse_definition(document, source="t.json")
    problems = info.value.problems
    assert any(p.path == path and message in p.message for p in problems), [
        str(p) for p in problems
    ]
    assert all(p.source == "t.json" for p in problems)


def test_every_check_problem_is_reported_together() -> None:
    document = definition(prompts=[_prompt("p", "{{text}} {{x}}", ["text"])])
    document["input"]["validations"] = ["is_pretty"]
    document["verification"]["parameters"]["min_models"] = 5
    with pytest.raises(TaskSchemaError) as info:
        parse_definition(document, source="t.json")
    assert {p.path for p in info.value.problems} == {
        "$.input.validations[0]",
        "$.prompts[0].text",
        "$.verification.parameters.min_models",
    }


def test_hierarchical_prompt_may_name_the_output_once() -> None:
    for prompt in (
        "Check {{output}} for {{text}}",
        "Is this summary of {{text}} right: {{summary}}",
    ):
        document = definition(
            verification=_verification("hierarchical", {"verification_prompt": prompt})
        )
        assert parse_definition(document).verification.method == "hierarchical"


def test_custom_metrics_and_rules_are_accepted_when_registered() -> None:
    document = definition(verification=_verification("consensus", {"similarity_metric": "vibes"}))
    document["input"]["validations"] = ["is_pretty"]
    rules = default_registry()

    def is_pretty(value: Any) -> list[RuleFailure]:
        return []

    rules.register("is_pretty", is_pretty)
    task = parse_definition(document, rules=rules, metrics={"vibes"})
    assert task.input.validations == ("is_pretty",)


def test_a_failing_custom_rule_names_rule_field_and_value() -> None:
    rules = default_registry()

    def no_lorem(value: Any) -> list[RuleFailure]:
        return [RuleFailure("$.text", "contains placeholder text", value["text"])]

    rules.register("no_lorem", no_lorem)
    with pytest.raises(TaskSchemaError) as info:
        parse_definition(_with_input(validations=["no_lorem"]), source="t.json", rules=rules)
    (problem,) = info.value.problems
    assert problem.path == "$.input.examples[0].text"
    assert "no_lorem" in problem.message
    assert "A long text to summarise." in problem.message
