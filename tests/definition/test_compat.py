"""Compatibility between versions: breaking changes need a major bump, and say what broke."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tlm.definition import TaskDefinition, check_compatibility, check_history, parse_definition

from .support import definition


def _task(version: str, change: Callable[[dict[str, Any]], None] | None = None) -> TaskDefinition:
    document = definition(version=version)
    document["input"]["schema"]["properties"]["text"]["minLength"] = 1
    document["input"]["schema"]["properties"]["meta"] = {
        "type": "object",
        "properties": {"lang": {"type": "string", "enum": ["en", "fr"]}, "n": {"type": "integer"}},
    }
    document["output"]["schema"]["properties"]["details"] = {
        "type": "object",
        "properties": {"score": {"type": "number"}, "notes": {"type": "string"}},
        "required": ["score"],
    }
    if change is not None:
        change(document)
    return parse_definition(document, source=f"{version}.json")


def _input(d: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = d["input"]["schema"]
    return schema


def _output(d: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = d["output"]["schema"]
    return schema


def _set(
    target: Callable[[dict[str, Any]], dict[str, Any]], **changes: Any
) -> Callable[[dict[str, Any]], None]:
    return lambda d: target(d).update(changes)


def _props(schema: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        schema = schema["properties"][name]
    return schema


def _remove_closed_input(d: dict[str, Any]) -> None:
    _input(d)["properties"].pop("meta")
    _input(d)["additionalProperties"] = False


BREAKING: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    "new-required-input": (
        _set(_input, required=["text", "audience"]),
        "$.input.schema.required",
        "input property 'audience' is newly required",
    ),
    "input-removed-while-closed": (
        _remove_closed_input,
        "$.input.schema.properties",
        "input property 'meta' was removed and additional properties are not allowed",
    ),
    "additional-properties-newly-false": (
        _set(_input, additionalProperties=False),
        "$.input.schema.additionalProperties",
        "additional input properties are no longer allowed",
    ),
    "type-narrowed": (
        lambda d: _props(_input(d), "meta", "n").update(type="string"),
        "$.input.schema.properties.meta.properties.n.type",
        "input type narrowed from integer to string",
    ),
    "min-length-raised": (
        lambda d: _props(_input(d), "text").update(minLength=10),
        "$.input.schema.properties.text.minLength",
        "input minLength tightened from 1 to 10",
    ),
    "nested-enum-narrowed": (
        lambda d: _props(_input(d), "meta", "lang").update(enum=["en"]),
        "$.input.schema.properties.meta.properties.lang.enum",
        "input enum narrowed: ['fr'] no longer accepted",
    ),
    "max-length-added": (
        lambda d: _props(_input(d), "text").update(maxLength=5000),
        "$.input.schema.properties.text.maxLength",
        "input maxLength 5000 added",
    ),
    "bound-tightened": (
        lambda d: _props(_input(d), "meta", "n").update(minimum=1),
        "$.input.schema.properties.meta.properties.n.minimum",
        "input minimum 1 added",
    ),
    "output-field-removed": (
        lambda d: _output(d)["properties"].pop("keywords"),
        "$.output.schema.properties",
        "output field 'keywords' was removed",
    ),
    "output-field-made-optional": (
        _set(_output, required=[]),
        "$.output.schema.required",
        "output field 'summary' is no longer required",
    ),
    "nested-output-field-made-optional": (
        lambda d: _props(_output(d), "details").update(required=[]),
        "$.output.schema.properties.details.required",
        "output field 'score' is no longer required",
    ),
    "output-type-changed": (
        lambda d: _props(_output(d), "details", "score").update(type="string"),
        "$.output.schema.properties.details.properties.score.type",
        "output type changed from number to string",
    ),
}


@pytest.mark.parametrize(("change", "path", "message"), BREAKING.values(), ids=BREAKING.keys())
def test_breaking_change_without_major_bump(
    change: Callable[[dict[str, Any]], None], path: str, message: str
) -> None:
    old, new = _task("1.0.0"), _task("1.1.0", change)
    problems = check_compatibility(old, new)
    assert any(
        p.path == path
        and p.source == "1.1.0.json"
        and p.message.endswith(message)
        and "without a major version bump (1.0.0 -> 1.1.0)" in p.message
        for p in problems
    ), [str(p) for p in problems]
    assert check_compatibility(old, _task("2.0.0", change)) == []


def test_compatible_changes_pass() -> None:
    def widen(d: dict[str, Any]) -> None:
        _input(d)["properties"]["tone"] = {"type": "string"}  # new optional input
        _input(d)["properties"]["meta"]["properties"]["lang"]["enum"].append("de")  # widened
        _input(d)["properties"]["meta"]["properties"]["n"]["type"] = "number"  # widened
        _output(d)["properties"]["extra"] = {"type": "string"}  # new output field
        _output(d)["required"].append("keywords")  # output made stricter: fine for consumers

    assert check_compatibility(_task("1.0.0"), _task("1.1.0", widen)) == []


def test_version_must_increase() -> None:
    (problem,) = check_compatibility(_task("1.1.0"), _task("1.0.0"))
    assert problem.path == "$.version"
    assert problem.message == "version 1.0.0 is not greater than the previous version 1.1.0"
    assert check_compatibility(_task("1.0.0"), _task("1.0.0"))[0].path == "$.version"


def test_history_checks_consecutive_versions_in_order() -> None:
    breaking = BREAKING["new-required-input"][0]
    history = [_task("1.1.0", breaking), _task("1.0.0"), _task("2.0.0", breaking)]
    problems = check_history(history)
    assert [p.source for p in problems] == ["1.1.0.json"]
