"""Prompt templates: strict rendering, the condition language and the choice of variant."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tlm.definition.model import IOSpec, PromptVariant, TaskDefinition
from tlm.errors import PromptError
from tlm.prompts import (
    choose_variant,
    condition_of,
    parse_condition,
    render,
    render_variant,
    template_variables,
)


def test_template_variables_finds_placeholders() -> None:
    text = "Decompose '{{skill_name}}' for {{ context }}; again {{skill_name}}. {{not valid}} {x}"
    assert template_variables(text) == {"skill_name", "context"}
    assert template_variables("no placeholders") == set()


def test_render_substitutes_once_and_never_expands_again() -> None:
    text = "Posting: {{job_posting}} / id {{job_id}}"
    out = render(text, {"job_posting": "Contains {{job_id}} and {{job_posting}}", "job_id": "7"})
    assert out == "Posting: Contains {{job_id}} and {{job_posting}} / id 7"


def test_render_inserts_non_strings_as_compact_json() -> None:
    out = render(
        "{{a}}|{{b}}|{{c}}|{{d}}",
        {"a": [{"skill": "Python", "rating": 4}], "b": 3, "c": True, "d": "Zoë"},
    )
    assert out == '[{"skill":"Python","rating":4}]|3|true|Zoë'


def test_render_names_every_missing_variable() -> None:
    with pytest.raises(PromptError, match="missing value for template variable"):
        render("{{a}} {{b}}", {"a": "x"})
    with pytest.raises(PromptError) as info:
        render("{{b}} {{a}} {{c}}", {"c": None})
    assert "a, b, c" in str(info.value)


def test_render_rejects_undeclared_placeholders_but_allows_extra_values() -> None:
    with pytest.raises(PromptError, match="unexpected template variable\\(s\\) secret"):
        render("{{a}} {{secret}}", {"a": 1, "secret": 2}, declared=["a"])
    assert render("{{a}}", {"a": 1, "unused": 2}, declared=["a"]) == "1"


def test_render_variant_names_the_variant() -> None:
    variant = PromptVariant("standard", "Hi {{name}}", ("name",))
    assert render_variant(variant, {"name": "Ada"}) == "Hi Ada"
    with pytest.raises(PromptError, match=r"prompt variant 'standard': missing .* name"):
        render_variant(variant, {})


@pytest.mark.parametrize(
    ("expr", "input", "options", "expected"),
    [
        ("context_provided", {"context": "finance"}, {}, True),
        ("context_provided", {"context": "   "}, {}, False),
        ("context_provided", {}, {}, False),
        ("structured_output_required", {}, {"structured_output": True}, True),
        ("structured_output_required", {}, {}, False),
        ("exists(input.context)", {"context": ""}, {}, True),
        ("exists(input.context)", {"context": None}, {}, False),
        ("len(input.job_posting) > 5", {"job_posting": "abcdef"}, {}, True),
        ("len(input.job_posting) > 5", {}, {}, False),
        ("len(input.skills) >= 2", {"skills": [1, 2]}, {}, True),
        ('input.tone == "direct"', {"tone": "direct"}, {}, True),
        ("input.tone != 'direct'", {"tone": "direct"}, {}, False),
        ("input.n < 3.5", {"n": 3}, {}, True),
        ("input.n <= -1", {"n": 3}, {}, False),
        ("input.n > 'a'", {"n": 3}, {}, False),
        ('"python" in input.skills', {"skills": ["python", "go"]}, {}, True),
        ('"py" in input.text', {"text": "numpy"}, {}, True),
        ('"x" not in input.tags', {"tags": ["x"]}, {}, False),
        ("'a' in input.missing", {}, {}, False),
        ("input.a.b == 1", {"a": {"b": 1}}, {}, True),
        ("input.a.b.c == 1", {"a": {"b": 1}}, {}, False),
        ("not options.fast", {}, {}, True),
        ("options.fast and context_provided", {"context": "x"}, {"fast": True}, True),
        ("(options.a or options.b) and not options.c", {}, {"b": 1}, True),
        ("options.a or options.b and options.c", {}, {"a": 1}, True),
        ("input.flag == true or input.flag == null", {}, {}, True),
        ("input.x == false", {"x": False}, {}, True),
    ],
)
def test_condition_language(
    expr: str, input: dict[str, Any], options: dict[str, Any], expected: bool
) -> None:
    assert parse_condition(expr).holds(input, options) is expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "empty condition"),
        ("input", "expected '.<field>' after 'input' or 'options'"),
        ("foo", "unknown name 'foo'"),
        ("len(input.x", "expected ')', found nothing at end of condition"),
        ("input.x ==", "expected a value, found nothing"),
        ("1 + 2", "unexpected character '+' at position 2"),
        ("input.x == 1 2", "unexpected '2' at position 13"),
        ("__import__('os')", "unknown name '__import__'"),
        ("input.", "expected a field name after '.'"),
        ("(" * 40 + "true" + ")" * 40, "nested deeper than 32 levels"),
        ("true or " * 400 + "true", "longer than 2000 characters"),
    ],
    ids=lambda v: v[:30] if isinstance(v, str) else str(v),
)
def test_bad_conditions_raise_clear_value_errors(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_condition(expr)


def test_conditions_are_data_not_code() -> None:
    # attribute-looking names are only keys of the input mapping
    condition = parse_condition("input.__class__ == 1 or exists(input.__dict__)")
    assert condition.holds({"__class__": 1})
    assert not condition.holds({})
    assert condition.source == "input.__class__ == 1 or exists(input.__dict__)"


def test_usage_conditions_mapping() -> None:
    assert condition_of({"default": True}) is None
    condition = condition_of({"when": "context_provided"})
    assert condition is not None
    assert condition.holds({"context": "x"})
    with pytest.raises(ValueError, match="unknown usage condition key"):
        condition_of({"if": "x"})
    with pytest.raises(ValueError, match=re.escape('needs {"default": true}')):
        condition_of({"default": False})


def _task(*prompts: PromptVariant) -> TaskDefinition:
    return TaskDefinition(
        id="t",
        name="T",
        description="",
        version="1.0.0",
        input=IOSpec(schema={"type": "object"}),
        output=IOSpec(schema={"type": "object"}),
        prompts=prompts,
    )


TASK = _task(
    PromptVariant("long", "L {{text}}", ("text",), {"when": "len(input.text) > 10"}),
    PromptVariant("standard", "S {{text}}", ("text",), {"default": True}),
    PromptVariant("structured", "J {{text}}", ("text",), {"when": "structured_output_required"}),
    PromptVariant(
        "with_context", "C {{text}} {{context}}", ("text", "context"), {"when": "context_provided"}
    ),
)


@pytest.mark.parametrize(
    ("input", "options", "chosen"),
    [
        ({"text": "short"}, None, "standard"),
        ({"text": "short"}, {"structured_output": True}, "structured"),
        ({"text": "short", "context": "finance"}, {}, "with_context"),
        ({"text": "short", "context": ""}, {}, "standard"),
        ({"text": "a much longer text"}, {"structured_output": True}, "long"),
        ({"text": "short", "context": "x"}, {"structured_output": True}, "structured"),
        ({"text": "a much longer text"}, {"prompt_variant": "with_context"}, "with_context"),
    ],
    ids=["default", "structured", "context", "blank-context", "first-wins", "order", "forced"],
)
def test_choose_variant(input: dict[str, Any], options: dict[str, Any] | None, chosen: str) -> None:
    assert choose_variant(TASK, input, options).id == chosen


def test_forcing_an_unknown_variant_is_an_error() -> None:
    with pytest.raises(PromptError, match=r"no prompt variant 'nope' .*standard"):
        choose_variant(TASK, {"text": "x"}, {"prompt_variant": "nope"})


def test_a_bad_condition_at_run_time_is_a_prompt_error() -> None:
    task = _task(
        PromptVariant("standard", "S", (), {"default": True}),
        PromptVariant("bad", "B", (), {"when": "len("}),
    )
    with pytest.raises(PromptError, match="prompt variant 'bad' of task 't'"):
        choose_variant(task, {})


def test_public_names_resolve() -> None:
    import tlm.prompts

    for name in tlm.prompts.__all__:
        assert hasattr(tlm.prompts, name), name


def test_long_flat_conditions_and_non_strings() -> None:
    expr = " or ".join(["options.x"] * 150 + ["true"])
    assert parse_condition(expr).holds({})
    assert not parse_condition(" and ".join(["true"] * 150 + ["false"])).holds({})
    with pytest.raises(ValueError, match="must be a string"):
        parse_condition({"when": "x"})  # type: ignore[arg-type]
