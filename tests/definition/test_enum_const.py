"""``enum`` and ``const`` together allow what both allow: one rule for definitions and workflows."""

from __future__ import annotations

from typing import Any

import pytest

from tlm.definition import check_compatibility, parse_definition
from tlm.definition.schema import allowed_values
from tlm.workflow.compat import schema_problems, schema_types

from .support import definition


@pytest.mark.parametrize(
    ("schema", "allowed"),
    [
        ({"enum": ["a", "b"], "const": "a"}, ["a"]),
        ({"const": "z", "enum": ["a", "b"]}, []),  # nothing satisfies both
        ({"enum": [1, 2], "const": True}, []),  # true is not 1 in JSON
        ({"enum": [1.0, 2], "const": 1}, [1]),  # 1 is 1.0
        ({"const": {"k": [1]}}, [{"k": [1]}]),
        ({"enum": ["x"]}, ["x"]),
        ({"type": "string"}, None),
    ],
)
def test_allowed_values(schema: dict[str, Any], allowed: list[Any] | None) -> None:
    assert allowed_values(schema) == allowed


def test_a_workflow_input_with_const_and_enum_accepts_only_the_const() -> None:
    accepted = {"type": "string", "enum": ["a", "b"], "const": "a"}
    problems = schema_problems({"type": "string", "enum": ["a", "b"]}, accepted)
    assert len(problems) == 1
    assert "'b'" in problems[0][1]
    assert schema_problems({"const": "a"}, accepted) == []
    assert schema_types({"enum": ["a", 1], "const": 1}) == frozenset({"integer"})


def test_adding_a_const_inside_the_enum_narrows_a_definition_input() -> None:
    def task(version: str, lang: dict[str, Any]) -> Any:
        document = definition(version=version)
        document["input"]["schema"]["properties"]["lang"] = lang
        return parse_definition(document, source=f"{version}.json")

    old = task("1.0.0", {"type": "string", "enum": ["en", "fr"]})
    new = task("1.1.0", {"type": "string", "enum": ["en", "fr"], "const": "en"})
    problems = check_compatibility(old, new)
    assert any("['fr'] no longer accepted" in p.message for p in problems), problems
    assert check_compatibility(old, task("1.1.0", {"type": "string", "enum": ["fr", "en"]})) == []
