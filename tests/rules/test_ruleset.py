"""RuleSet: rules looked up once, applied many times, with the same problems as apply_rules."""

from __future__ import annotations

from typing import Any

from tlm.rules import RuleFailure, RuleSet, apply_rules, default_registry


def test_a_rule_set_reports_exactly_what_apply_rules_reports() -> None:
    registry = default_registry()
    names = ["non_empty_text", "min_length_10", "no_such_rule"]
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    rules = RuleSet.resolve(registry, names)
    for value in ({"text": "long enough text"}, {"text": "  "}, {"text": "short"}):
        assert rules.problems(value, source="input", schema=schema) == apply_rules(
            registry, names, value, source="input", schema=schema
        )
    problems = rules.problems({"text": "short"}, source="input", schema=schema)
    assert [str(p) for p in problems] == [
        "input: $.text: rule min_length_10: $.text has 5 characters, fewer than 10 "
        '(value: "short")',
        "input: $: unknown validation rule 'no_such_rule'",
    ]


def test_rules_are_looked_up_once() -> None:
    registry = default_registry()

    @registry.register("house_rule")
    def first(value: Any) -> list[RuleFailure]:
        return [RuleFailure("$", "first version")]

    rules = RuleSet.resolve(registry, ["house_rule"])

    @registry.register("house_rule", replace=True)
    def second(value: Any) -> list[RuleFailure]:
        return []

    # The set keeps the rule it resolved; a fresh lookup sees the replacement.
    assert [p.message for p in rules.problems({})] == ["rule house_rule: $ first version"]
    assert apply_rules(registry, ["house_rule"], {}) == []
