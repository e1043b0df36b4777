"""The loader: every problem at once, located by file and JSON path; hostile files never crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tlm.definition import load_definition, parse_definition
from tlm.definition.loader import MAX_DEFINITION_BYTES, MAX_DEFINITION_DEPTH
from tlm.errors import DefinitionError, TaskSchemaError

from .support import JOB_DETAIL, SKILL_DECOMPOSITION, definition, fixture


def _problems(data: Any, source: str = "t.json") -> list[str]:
    with pytest.raises(TaskSchemaError) as info:
        parse_definition(data, source=source)
    return [str(p) for p in info.value.problems]


def test_the_documented_message_format(tmp_path: Path) -> None:
    path = tmp_path / "definitions/tasks/x/1.0.0.json"
    path.parent.mkdir(parents=True)
    document = definition(id="x")
    document["verification"]["parameters"]["similarity_threshold"] = 1.7
    path.write_text(json.dumps(document))
    with pytest.raises(TaskSchemaError) as info:
        load_definition(path)
    assert str(info.value) == (
        f"{path}: $.verification.parameters.similarity_threshold: "
        "1.7 is greater than the maximum of 1"
    )
    assert isinstance(info.value, DefinitionError)
    assert isinstance(info.value, ValueError)


def test_loads_a_valid_definition_and_records_its_source(tmp_path: Path) -> None:
    path = tmp_path / "1.0.0.json"
    path.write_text(json.dumps(definition()))
    task = load_definition(path)
    assert task.key == "summarise@1.0.0"
    assert task.source == str(path)
    assert task.default_prompt.id == "standard"


def test_skill_decomposition_example_loads() -> None:
    task = load_definition(SKILL_DECOMPOSITION)
    assert task.key == "skill_decomposition@1.0.0"


def test_job_detail_example_fails_exactly_its_own_min_length_rule() -> None:
    """The design document's example input is shorter than its own ``min_length_100`` rule."""
    with pytest.raises(TaskSchemaError) as info:
        load_definition(JOB_DETAIL)
    (problem,) = info.value.problems
    assert problem.source == str(JOB_DETAIL)
    assert problem.path == "$.input.examples[0].job_posting"
    assert "min_length_100" in problem.message
    # The schema alone accepts it, so the loader without load-time checks does too.
    assert load_definition(JOB_DETAIL, check=False).id == "job_detail_extraction"


def test_reports_every_problem_at_once() -> None:
    document = definition(version="x", risk="extreme")
    document["verification"]["parameters"]["min_models"] = 0
    del document["name"]
    problems = _problems(document)
    assert len(problems) == 4
    assert all(p.startswith("t.json: $") for p in problems)


def test_wrong_types_are_located() -> None:
    document = definition()
    document["prompts"][0]["template_variables"] = "text"
    document["input"]["examples"] = {"text": "x"}
    problems = _problems(document)
    assert "t.json: $.input.examples: {'text': 'x'} is not of type 'array'" in problems
    assert "t.json: $.prompts[0].template_variables: 'text' is not of type 'array'" in problems


HOSTILE: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "t.json: $: the file is empty"),
    "whitespace": (b"  \n\t ", "t.json: $: the file is empty"),
    "invalid-json": (b'{\n  "id": "x",\n  oops\n}', "t.json:3:3: invalid JSON: Expecting"),
    "truncated-json": (b'{"id": "x"', "t.json:1:11: invalid JSON"),
    "invalid-utf8": (b'{\n "id": "\xff\xfe"}', "t.json:2:9: invalid UTF-8"),
    "top-level-array": (b"[1, 2]", "t.json: $: the top level must be a JSON object, not list"),
    "top-level-null": (b"null", "t.json: $: the top level must be a JSON object, not null"),
    "top-level-string": (b'"hi"', "t.json: $: the top level must be a JSON object, not str"),
    "deep-array": (b"[" * 10_000 + b"]" * 10_000, "t.json: $: JSON nested 10000 levels deep"),
    "deep-object": (
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        "t.json: $: JSON nested 10000 levels deep",
    ),
    "deep-schema": (
        json.dumps(
            definition(
                input={"schema": json.loads('{"items":' * 200 + "{}" + "}" * 200)},
            )
        ).encode(),
        f"levels deep; the limit is {MAX_DEFINITION_DEPTH}",
    ),
}


@pytest.mark.parametrize(("data", "expected"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_documents_give_one_located_error(data: bytes, expected: str) -> None:
    (problem,) = _problems(data)
    assert expected in problem


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    document = definition(description="[[[[" * 100 + '\\"{{{' * 100)
    assert parse_definition(json.dumps(document), source="t.json").id == "summarise"


def test_a_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB of zero bytes, written instantly
    with pytest.raises(TaskSchemaError) as info:
        load_definition(path)
    assert str(info.value) == (
        f"{path}: $: the file is {50 * 1024 * 1024} bytes; the limit is {MAX_DEFINITION_BYTES}"
    )


def test_huge_text_is_refused() -> None:
    (problem,) = _problems(b" " * (MAX_DEFINITION_BYTES + 1))
    assert "the limit is" in problem


def test_a_missing_file_or_a_directory_is_located(tmp_path: Path) -> None:
    with pytest.raises(TaskSchemaError, match=r"nope\.json: cannot read"):
        load_definition(tmp_path / "nope.json")
    with pytest.raises(TaskSchemaError, match="is a directory"):
        load_definition(tmp_path)


def test_byte_order_mark_and_parsed_objects_are_accepted() -> None:
    text = "\ufeff" + json.dumps(definition())
    assert parse_definition(text.encode("utf-8"), source="t.json").id == "summarise"
    assert parse_definition(definition(), source="t.json").id == "summarise"


def test_a_dollar_schema_pointing_anywhere_is_accepted() -> None:
    document = fixture(SKILL_DECOMPOSITION)
    document["$schema"] = "https://sunset-project.org/schemas/task-definition-v1.json"
    assert parse_definition(document).id == "skill_decomposition"
