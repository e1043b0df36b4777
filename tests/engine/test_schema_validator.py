"""The fast schema check never accepts what draft 2020-12 rejects, and errors keep their paths."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tlm.engine.output import parse_json_reply
from tlm.json_schema import SchemaValidator

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    {"type": "object", "properties": {"s": {"type": "string", "pattern": "^[A-Z]{3}$"}}},
    {"type": "object", "properties": {"e": {"format": "email"}}, "additionalProperties": False},
    {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 1},
    {"type": "object", "properties": {"k": {"enum": ["a", "b"]}}, "minProperties": 1},
    # 2020-12 only: prefixItems and $defs/$ref (checked by jsonschema alone)
    {"type": "array", "prefixItems": [{"type": "string"}], "items": False},
    {
        "$defs": {"p": {"type": "integer"}},
        "type": "object",
        "properties": {"x": {"$ref": "#/$defs/p"}},
    },
]
VALUES: list[Any] = [
    {"n": 1}, {"n": 1.0}, {"n": True}, {"n": "1"}, {}, {"s": "EUR"}, {"s": "eur"},
    {"e": "not an email"}, {"e": "a@b.example", "x": 1}, [1, 2.5], [], [-1], ["a"], ["a", "b"],
    {"k": "a"}, {"k": "c"}, {"x": 3}, {"x": "3"}, None, "text", 3,
]  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: ",".join(sorted(s)))
def test_fast_check_agrees_with_draft_2020_12(schema: dict[str, Any]) -> None:
    reference = Draft202012Validator(schema)
    validator = SchemaValidator(schema)
    for value in VALUES:
        assert validator.is_valid(value) == reference.is_valid(value), value


def test_problems_are_located_with_json_paths() -> None:
    validator = SchemaValidator(
        {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"type": "string"}}},
            "required": ["title"],
        }
    )
    problems = validator.problems({"items": ["a", 2]}, source="output")
    assert [(p.source, p.path) for p in problems] == [("output", "$"), ("output", "$.items[1]")]
    assert "'title' is a required property" in problems[0].message


@pytest.mark.parametrize(
    ("text", "value", "repaired"),
    [
        ('{"a": 1}', {"a": 1}, False),
        ('```json\n{"a": 1}\n```', {"a": 1}, True),
        ('Here you go: {"a": [1, 2]} Hope it helps!', {"a": [1, 2]}, True),
        ("[1, 2] and more", [1, 2], True),
    ],
)
def test_replies_are_repaired_deterministically(text: str, value: Any, repaired: bool) -> None:
    parsed = parse_json_reply(text)
    assert parsed.ok
    assert parsed.value == value
    assert parsed.repaired is repaired


def test_a_reply_without_json_is_reported() -> None:
    parsed = parse_json_reply("I cannot help with that.")
    assert not parsed.ok
    assert parsed.error is not None
    assert parsed.error.startswith("not valid JSON")
