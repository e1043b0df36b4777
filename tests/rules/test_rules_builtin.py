"""The built-in rules and families, through the registry and ``apply_rules``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tlm.errors import Problem
from tlm.rules import apply_rules, default_registry

JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"job_posting": {"type": "string"}, "job_id": {"type": "string"}},
    "required": ["job_posting"],
}
SKILLS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "elementary_skills": {"type": "array", "items": {"type": "string"}},
        "relationships": {"type": "array"},
    },
    "required": ["elementary_skills"],
}


def check(
    names: str | list[str], value: Any, schema: dict[str, Any] | None = None
) -> list[Problem]:
    rules = [names] if isinstance(names, str) else names
    return apply_rules(default_registry(), rules, value, schema=schema)


def messages(problems: list[Problem]) -> list[str]:
    return [p.message for p in problems]


def test_min_length_message_names_rule_field_and_value() -> None:
    problems = check("min_length_100", {"job_posting": "x" * 42, "job_id": "1"}, JOB_SCHEMA)
    assert len(problems) == 1
    assert problems[0].path == "$.job_posting"
    assert problems[0].message.startswith(
        'rule min_length_100: $.job_posting has 42 characters, fewer than 100 (value: "xxx'
    )


def test_min_length_checks_only_required_text_when_schema_known() -> None:
    value = {"job_posting": "p" * 120, "job_id": "12345"}
    assert check("min_length_100", value, JOB_SCHEMA) == []
    # without a schema every top-level string counts, so the short id fails
    assert [p.path for p in check("min_length_100", value)] == ["$.job_id"]


def test_min_length_counts_stripped_text_and_handles_strings_and_non_text() -> None:
    assert messages(check("min_length_5", "   ab   ")) == [
        'rule min_length_5: $ has 2 characters, fewer than 5 (value: "   ab   ")'
    ]
    assert check("min_length_5", "abcde") == []
    assert messages(check("min_length_5", 42)) == [
        "rule min_length_5: $ is a number, expected an object (value: 42)"
    ]
    assert messages(check("min_length_5", {"n": 1})) == [
        "rule min_length_5: $ has no text field to check"
    ]


def test_max_length_and_named_field_length() -> None:
    assert messages(check("max_length_3", {"a": "abcd"})) == [
        'rule max_length_3: $.a has 4 characters, more than 3 (value: "abcd")'
    ]
    assert check("max_length_3", {"n": 1}) == []
    value = {"job_title": "Dev", "job_description": "short"}
    assert [p.path for p in check("min_job_description_length_10", value)] == ["$.job_description"]
    assert check("max_job_title_length_10", value) == []
    assert messages(check("min_nothing_length_1", value)) == [
        "rule min_nothing_length_1: $ has no field 'nothing' (nor a single field ending in "
        "'_nothing')"
    ]


def test_long_values_are_truncated_in_messages() -> None:
    (problem,) = check("max_length_10", {"text": "y" * 500})
    assert len(problem.message) < 150
    assert problem.message.endswith("…)")


def test_non_empty_text_finds_blank_strings_anywhere() -> None:
    value = {"a": "ok", "b": " \n", "c": [{"d": ""}], "e": 3}
    assert [p.path for p in check("non_empty_text", value)] == ["$.b", "$.c[0].d"]
    assert [p.path for p in check("non_empty_text", "  ")] == ["$"]
    assert check("non_empty_text", {"odd key": "fine"}) == []
    assert [p.path for p in check("non_empty_text", {"odd key": ""})] == ['$["odd key"]']


def test_has_required_fields_uses_the_schema_at_every_level() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "items": {
                "type": "array",
                "items": {"type": "object", "required": ["name"]},
            },
        },
        "required": ["a", "b"],
    }
    value = {"a": None, "items": [{"name": "x"}, {}]}
    assert messages(check("has_required_fields", value, schema)) == [
        "rule has_required_fields: $.a is null",
        "rule has_required_fields: $.b is missing",
        "rule has_required_fields: $.items[1].name is missing",
    ]
    # without a schema only top-level nulls can be seen
    assert [p.path for p in check("has_required_fields", value)] == ["$.a"]


def test_no_empty_arrays_and_non_negative_numbers() -> None:
    assert [p.path for p in check("no_empty_arrays", {"a": [], "b": [[1], []]})] == [
        "$.a",
        "$.b[1]",
    ]
    value = {"a": -1, "b": [2, -0.5], "c": True}
    assert [p.path for p in check("non_negative_numbers", value)] == [
        "$.a",
        "$.b[1]",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"skill_name": "Python"}, []),
        ({"skill_name": "  "}, ['rule non_empty_skill: $.skill_name is blank (value: "  ")']),
        ({"context": "x"}, ["rule non_empty_skill: $.skill_name is missing"]),
        (
            {"skill_name": 3},
            ["rule non_empty_skill: $.skill_name is a number, expected a string (value: 3)"],
        ),
        ("", ['rule non_empty_skill: $ is blank (value: "")']),
    ],
    ids=["ok", "blank", "missing", "wrong-type", "blank-string-value"],
)
def test_non_empty_skill(value: Any, expected: list[str]) -> None:
    assert messages(check("non_empty_skill", value)) == expected


def test_min_skills_count_resolves_elementary_skills() -> None:
    value = {"elementary_skills": ["Statistics", "Python"]}
    assert messages(check("min_skills_count_3", value, SKILLS_SCHEMA)) == [
        "rule min_skills_count_3: $.elementary_skills has 2 items, needs at least 3 "
        '(value: ["Statistics","Python"])'
    ]
    assert check("min_skills_count_3", {"elementary_skills": ["a", "b", "c"]}, SKILLS_SCHEMA) == []
    # an exact field name wins over the suffix match
    assert check("min_skills_count_1", {"skills": ["a"], "elementary_skills": []}) == []
    assert messages(check("min_skills_count_1", {})) == [
        "rule min_skills_count_1: $ has no field 'skills' (nor a single field ending in '_skills')"
    ]


def test_count_families_on_absent_and_wrong_types() -> None:
    schema = {"properties": {"tags": {"type": "array"}}}
    assert messages(check("min_tags_count_1", {}, schema)) == [
        "rule min_tags_count_1: $.tags is missing, needs at least 1"
    ]
    assert check("max_tags_count_1", {}, schema) == []
    assert messages(check("max_tags_count_1", {"tags": ["a", "b"]})) == [
        'rule max_tags_count_1: $.tags has 2 items, more than 1 (value: ["a","b"])'
    ]
    assert messages(check("max_tags_count_1", {"tags": "a"})) == [
        'rule max_tags_count_1: $.tags is a string, expected an array (value: "a")'
    ]


def test_no_duplicate_skills_ignores_case_and_whitespace() -> None:
    value = {"elementary_skills": ["Linear Algebra", "Python", "linear  algebra ", "PYTHON"]}
    assert messages(check("no_duplicate_skills", value, SKILLS_SCHEMA)) == [
        "rule no_duplicate_skills: $.elementary_skills[2] duplicates $.elementary_skills[0] "
        '(value: "linear  algebra ")',
        "rule no_duplicate_skills: $.elementary_skills[3] duplicates $.elementary_skills[1] "
        '(value: "PYTHON")',
    ]
    objects = {"items": [{"a": 1, "b": 2}, {"b": 2, "a": 1}]}
    assert [p.path for p in check("no_duplicate_items", objects)] == ["$.items[1]"]


def test_non_empty_field_email_currency_and_ordering() -> None:
    assert messages(check("non_empty_rationale", {"rationale": ""})) == [
        'rule non_empty_rationale: $.rationale is blank (value: "")'
    ]
    assert messages(check("non_empty_rationale", {"rationale": None})) == [
        "rule non_empty_rationale: $.rationale is null"
    ]
    assert check("valid_email_contact", {"contact": "jobs@example.org"}) == []
    assert check("valid_email_contact", {"contact": None}) == []
    assert [p.path for p in check("valid_email_contacts", {"contacts": ["a@b.io", "nope"]})] == [
        "$.contacts[1]"
    ]
    assert check("valid_currency_currency", {"currency": "EUR"}) == []
    assert messages(check("valid_currency_currency", {"currency": "euro"})) == [
        'rule valid_currency_currency: $.currency is not an ISO 4217 currency code (value: "euro")'
    ]
    assert check("min_amount_not_above_max_amount", {"min_amount": 1, "max_amount": 2}) == []
    assert check("min_amount_not_above_max_amount", {"min_amount": 1, "max_amount": None}) == []
    bad_range = {"min_amount": 5, "max_amount": 2}
    assert messages(check("min_amount_not_above_max_amount", bad_range)) == [
        "rule min_amount_not_above_max_amount: $.min_amount is above $.max_amount (2) (value: 5)"
    ]


def test_base_path_and_source_locate_problems() -> None:
    (problem,) = apply_rules(
        default_registry(),
        ["non_empty_text"],
        {"a": ""},
        source="tasks/x/1.0.0.json",
        base_path="$.input.examples[2]",
    )
    assert str(problem) == (
        "tasks/x/1.0.0.json: $.input.examples[2].a: rule non_empty_text: "
        '$.input.examples[2].a is blank (value: "")'
    )


def test_every_design_document_rule_is_known() -> None:
    registry = default_registry()
    for name in (
        "non_empty_text",
        "min_length_100",
        "has_required_fields",
        "no_empty_arrays",
        "non_empty_skill",
        "min_skills_count_3",
        "no_duplicate_skills",
    ):
        assert name in registry, name
    assert "min_length_" not in registry
    assert "min_length_abc" not in registry
    assert "frobnicate" not in registry


class _FrozenMap(Mapping[str, Any]):
    """A read-only mapping that is not a dict (the rules see ``Mapping``, not only ``dict``)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class _Text(str):
    pass


def test_tree_rules_walk_mappings_tuples_and_subclasses_like_dicts_and_lists() -> None:
    value = _FrozenMap(
        {
            "deep": _FrozenMap({"empty": (), "blank": _Text(" "), "n": [1, (-2,)]}),
            "fine": ["x", _Text("y")],
            "flag": False,
        }
    )
    assert [p.path for p in check("no_empty_arrays", value)] == ["$.deep.empty"]
    assert [p.path for p in check("non_empty_text", value)] == ["$.deep.blank"]
    assert [p.path for p in check("non_negative_numbers", value)] == ["$.deep.n[1][0]"]
    clean = _FrozenMap({"a": ("x",), "b": _FrozenMap({"c": 1.5, "d": None})})
    for rule in ("no_empty_arrays", "non_empty_text", "non_negative_numbers"):
        assert check(rule, clean) == []


def test_has_required_fields_reads_mappings_that_are_not_dicts() -> None:
    schema = _FrozenMap(
        {
            "required": ["a"],
            "properties": _FrozenMap({"a": {"required": ["b"]}, "c": _FrozenMap({"items": {}})}),
        }
    )
    value = _FrozenMap({"a": _FrozenMap({"b": None}), "c": [{}]})
    assert [p.path for p in check("has_required_fields", value, schema)] == ["$.a.b"]  # type: ignore[arg-type]
    assert check("has_required_fields", {"a": {"b": 1}}, schema) == []  # type: ignore[arg-type]


def test_has_required_fields_walks_through_schemas_that_only_nest() -> None:
    schema: dict[str, Any] = {
        "properties": {
            "grid": {"items": {"items": {"required": ["a"]}}},
            "wrap": {"properties": {"inner": {"required": ["b"]}}},
            "free": {"type": "array", "items": {"type": "string"}},
        }
    }
    value = {"grid": [[{"a": 1}, {}]], "wrap": {"inner": {"b": None}}, "free": ["x", ""]}
    assert [p.path for p in check("has_required_fields", value, schema)] == [
        "$.grid[0][1].a",
        "$.wrap.inner.b",
    ]
