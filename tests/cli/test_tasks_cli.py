"""The task commands: create, validate, list and show task definitions."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tlm.cli import main
from tlm.definition import load_definition

DEFINITION: dict[str, Any] = {
    "id": "summarise",
    "name": "Summarise",
    "description": "Summarise a text.",
    "version": "1.0.0",
    "input": {
        "schema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
        "examples": [{"text": "A text."}],
    },
    "output": {
        "schema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}},
            "required": ["summary"],
        },
    },
    "prompts": [
        {
            "id": "standard",
            "text": "Summarise: {{text}}",
            "template_variables": ["text"],
            "usage_conditions": {"default": True},
        }
    ],
    "verification": {"method": "consensus", "parameters": {"min_models": 2}},
    "task_type": "summarisation",
}


def _doc(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(DEFINITION)
    document.update(changes)
    return document


def _write(root: Path, document: dict[str, Any], name: str | None = None) -> Path:
    path = root / "tasks" / str(document["id"]) / (name or f"{document['version']}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def defs(tmp_path: Path) -> Path:
    root = tmp_path / "definitions"
    _write(root, _doc())
    _write(root, _doc(version="1.1.0", description="Now shorter."))
    _write(root, _doc(id="classify", version="0.1.0", task_type=None))
    return root


def run(*args: str | os.PathLike[str]) -> Result:
    return CliRunner().invoke(main, [os.fspath(a) for a in args])


def test_create_task_scaffolds_a_definition_that_validates(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    result = run("create-task", "my_task", "--dir", tasks)
    assert result.exit_code == 0, result.output
    path = tasks / "my_task" / "1.0.0.json"
    assert f"created {path}" in result.output
    assert load_definition(path).key == "my_task@1.0.0"
    validated = run("validate-task", path)
    assert validated.exit_code == 0, validated.output


def test_create_task_uses_the_definitions_directory(tmp_path: Path) -> None:
    result = run("create-task", "t1", "--definitions", tmp_path)
    assert result.exit_code == 0, result.output
    assert run("validate-task", "t1", "--definitions", tmp_path).exit_code == 0


def test_create_task_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run("create-task", "x", "--dir", tmp_path).exit_code == 0
    before = (tmp_path / "x" / "1.0.0.json").read_text()
    again = run("create-task", "x", "--dir", tmp_path)
    assert again.exit_code == 1
    assert "already exists; refusing to overwrite" in again.output
    assert (tmp_path / "x" / "1.0.0.json").read_text() == before


def test_create_task_rejects_a_bad_name(tmp_path: Path) -> None:
    result = run("create-task", "../escape", "--dir", tmp_path)
    assert result.exit_code == 1
    assert "is not a valid task id" in result.output
    assert not (tmp_path.parent / "escape").exists()


def test_validate_by_name_path_and_all(defs: Path) -> None:
    by_name = run("validate-task", "summarise", "--definitions", defs)
    assert by_name.exit_code == 0, by_name.output
    assert "ok  summarise@1.0.0" in by_name.output
    assert "ok  summarise@1.1.0" in by_name.output
    by_path = run("validate-task", defs / "tasks/summarise/1.1.0.json", "--definitions", defs)
    assert by_path.exit_code == 0, by_path.output
    everything = run("validate-task", "--all", "--definitions", defs)
    assert everything.exit_code == 0, everything.output
    assert "ok  classify@0.1.0" in everything.output


def test_validate_reads_the_env_variable(defs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLM_DEFINITIONS", os.fspath(defs))
    assert run("validate-task", "classify").exit_code == 0


def test_validate_an_unknown_task_lists_the_known_ones(defs: Path) -> None:
    result = run("validate-task", "nope", "--definitions", defs)
    assert result.exit_code == 1
    assert "no task 'nope' (known: classify, summarise)" in result.output


def test_validate_needs_a_target() -> None:
    assert run("validate-task").exit_code == 2


def test_validate_refuses_a_breaking_change_without_a_major_bump(defs: Path) -> None:
    breaking = _doc(version="1.2.0")
    breaking["input"]["schema"]["required"] = ["text", "lang"]
    breaking["input"]["schema"]["properties"]["lang"] = {"type": "string"}
    breaking["input"]["examples"] = [{"text": "A text.", "lang": "en"}]
    path = _write(defs, breaking)
    result = run("validate-task", path, "--definitions", defs)
    assert result.exit_code == 1
    assert (
        f"{path}: $.input.schema.required: breaking change without a major version bump "
        "(1.1.0 -> 1.2.0): input property 'lang' is newly required"
    ) in result.output
    assert run("validate-task", "summarise", "--definitions", defs).exit_code == 1
    assert run("validate-task", "--all", "--definitions", defs).exit_code == 1
    path.rename(path.with_name("2.0.0.json"))
    bumped = json.loads(path.with_name("2.0.0.json").read_text())
    bumped["version"] = "2.0.0"
    path.with_name("2.0.0.json").write_text(json.dumps(bumped))
    assert run("validate-task", "summarise", "--definitions", defs).exit_code == 0


def test_validate_a_file_from_elsewhere_against_the_registered_versions(
    defs: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "draft.json"
    outside.write_text(json.dumps(_doc(version="1.0.5")))
    result = run("validate-task", outside, "--definitions", defs)
    assert result.exit_code == 1
    assert "version 1.0.5 is not greater than the previous version 1.1.0" in result.output


def _hostile_cases() -> dict[str, tuple[bytes, str]]:
    def dumps(document: dict[str, Any]) -> bytes:
        return json.dumps(document).encode()

    bad_verification = _doc(verification={"method": "consensus", "parameters": {"x": 1}})
    duplicate_ids = _doc()
    duplicate_ids["prompts"] = duplicate_ids["prompts"] * 2
    mismatch = _doc()
    mismatch["prompts"][0]["template_variables"] = ["text", "lang"]
    wrong_types = _doc(name=5, prompts="none")
    unknown_rule = _doc()
    unknown_rule["input"]["validations"] = ["is_pretty"]
    missing = {k: v for k, v in _doc().items() if k != "output"}
    return {
        "wrong-types": (dumps(wrong_types), "$.name: 5 is not of type 'string'"),
        "missing-field": (dumps(missing), "$: 'output' is a required property"),
        "unknown-rule": (dumps(unknown_rule), "$.input.validations[0]: unknown validation rule"),
        "unknown-method": (
            dumps(_doc(verification={"method": "vote"})),
            "$.verification.method: 'vote' is not one of",
        ),
        "unknown-strategy": (
            dumps(_doc(verification={"method": "none", "fallback_strategy": "pray"})),
            "$.verification.fallback_strategy: 'pray' is not one of",
        ),
        "unknown-parameter": (dumps(bad_verification), "'x' was unexpected"),
        "duplicate-ids": (dumps(duplicate_ids), "$.prompts[1].id: duplicate prompt id"),
        "variable-mismatch": (
            dumps(mismatch),
            "$.prompts[0].template_variables[1]: 'lang' is declared but",
        ),
        "deep-nesting": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "$: JSON nested 10000"),
        "deep-schema": (
            dumps(_doc(input={"schema": json.loads('{"not":' * 100 + "{}" + "}" * 100)})),
            "levels deep; the limit is 64",
        ),
        "invalid-json": (b'{"id": "summarise",\n "name": }', ":2:10: invalid JSON"),
        "invalid-utf8": (b'{"id": "\xc3\x28"}', ":1:9: invalid UTF-8"),
        "empty": (b"", "$: the file is empty"),
        "not-an-object": (b"[]", "$: the top level must be a JSON object"),
    }


HOSTILE = _hostile_cases()


@pytest.mark.parametrize(("data", "expected"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_definitions_exit_1_with_a_located_error(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    path = tmp_path / "definitions" / "tasks" / "summarise" / "1.0.0.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    for target in (path, "summarise"):
        result = run("validate-task", target, "--definitions", tmp_path / "definitions")
        assert result.exit_code == 1, result.output
        assert str(path) in result.output
        assert expected in result.output
        assert "Traceback" not in result.output
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit
        )


def test_a_huge_file_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(50 * 1024 * 1024)
    result = run("validate-task", path, "--definitions", tmp_path)
    assert result.exit_code == 1
    assert f"{path}: $: the file is 52428800 bytes" in result.output


def test_list_tasks(defs: Path) -> None:
    broken = defs / "tasks" / "broken" / "1.0.0.json"
    broken.parent.mkdir()
    broken.write_text("{")
    result = run("list-tasks", "--definitions", defs)
    lines = result.output.splitlines()
    summarise = next(line for line in lines if "summarise" in line)
    assert "1.0.0, 1.1.0" in summarise
    assert "consensus" in summarise
    assert "summarisation" in summarise
    assert any("classify" in line and "0.1.0" in line for line in lines)
    assert result.exit_code == 1  # the broken file is reported, the rest still listed
    assert f"{broken}:1:2: invalid JSON" in result.output


def test_show_task_summary_version_and_json(defs: Path) -> None:
    latest = run("show-task", "summarise", "--definitions", defs)
    assert latest.exit_code == 0, latest.output
    assert "summarise@1.1.0" in latest.output
    assert "Now shorter." in latest.output
    assert "consensus: 2 of 2-3 models agree" in latest.output
    pinned = run("show-task", "summarise@~1.0", "--definitions", defs)
    assert "summarise@1.0.0" in pinned.output
    as_json = run("show-task", "summarise@1.0.0", "--json", "--definitions", defs)
    data = json.loads(as_json.output)
    assert data["version"] == "1.0.0"
    assert data["verification"]["parameters"]["min_models"] == 2


def test_show_task_unknown(defs: Path) -> None:
    result = run("show-task", "summarise@^5", "--definitions", defs)
    assert result.exit_code == 1
    assert "no version of task 'summarise' matches '^5'; versions: 1.0.0, 1.1.0" in result.output
    missing = run("show-task", "nope", "--definitions", defs)
    assert missing.exit_code == 1
    assert "no task 'nope'" in missing.output


def _tlm() -> list[str]:
    script = Path(sys.executable).with_name("tlm")
    if script.is_file():
        return [os.fspath(script)]
    return [sys.executable, "-c", "import sys; from tlm.cli import main; sys.exit(main())"]


def test_real_subprocess_validate_task(tmp_path: Path) -> None:
    good = _write(tmp_path, _doc())
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"[" * 10_000)
    ok = subprocess.run(
        [*_tlm(), "validate-task", os.fspath(good), "--definitions", os.fspath(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok  summarise@1.0.0" in ok.stdout
    failed = subprocess.run(
        [*_tlm(), "validate-task", os.fspath(bad), "--definitions", os.fspath(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 1
    assert f"{bad}: $: JSON nested 10000 levels deep" in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout


def test_a_missing_schema_file_is_reported_without_a_traceback(
    defs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tlm.definition.schema as schema_module

    schema_module.task_definition_schema.cache_clear()
    schema_module._definition_validator.cache_clear()
    monkeypatch.setattr(schema_module, "schema_path", lambda: tmp_path / "missing.json")
    try:
        result = run("validate-task", "summarise", "--definitions", defs)
    finally:
        schema_module.task_definition_schema.cache_clear()
        schema_module._definition_validator.cache_clear()
    assert result.exit_code == 1
    assert "missing.json: cannot read the task-definition schema" in result.output
    assert "Traceback" not in result.output
