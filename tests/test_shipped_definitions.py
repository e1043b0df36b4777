"""Every shipped task definition and example input is valid, consistent and usable.

The checks use jsonschema and the rule registry directly, and the loader too, so a definition that
the loader would accept for the wrong reasons still fails here.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tlm.definition.compat import check_compatibility
from tlm.definition.loader import load_definition
from tlm.definition.model import FALLBACK_STRATEGIES, VERIFICATION_METHODS, TaskDefinition
from tlm.prompts import choose_variant, condition_of, render_variant, template_variables
from tlm.rules import apply_rules, default_registry

DEFINITIONS = Path(__file__).resolve().parents[1] / "definitions"
TASK_FILES = sorted((DEFINITIONS / "tasks").glob("*/*.json"))
EXAMPLE_FILES = sorted((DEFINITIONS / "examples").glob("*.json"))
TASKS = {path: json.loads(path.read_text(encoding="utf-8")) for path in TASK_FILES}

EXAMPLE_TASKS = {
    "job_posting_": "job_detail_extraction",
    "skill_": "skill_decomposition",
    "requirement_match_": "requirement_skill_matching",
    "seniority_": "seniority_classification",
    "compensation_": "compensation_extraction",
    "self_assessment_": "self_assessment_feedback",
}
"""Which task each standalone example input (by file-name prefix) is for."""


@functools.cache
def _load(path: Path) -> TaskDefinition:
    return load_definition(path)


def _rel(path: Path) -> str:
    return str(path.relative_to(DEFINITIONS.parent))


def _latest(task_id: str) -> dict[str, Any]:
    versions = [doc for doc in TASKS.values() if doc["id"] == task_id]
    return max(versions, key=lambda d: tuple(int(x) for x in d["version"].split(".")))


def _methods(verification: dict[str, Any]) -> list[str]:
    found = [verification["method"]]
    for step in verification.get("parameters", {}).get("steps", []):
        found += _methods(step)
    return found


def _strategy(verification: dict[str, Any]) -> str:
    fallback = verification.get("fallback_strategy", "fail")
    return fallback["strategy"] if isinstance(fallback, dict) else str(fallback)


def _check_value(schema: dict[str, Any], rules: list[str], value: Any, where: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    problems = [f"{where}: {e.message}" for e in validator.iter_errors(value)]
    problems += [
        str(p) for p in apply_rules(default_registry(), rules, value, source=where, schema=schema)
    ]
    return problems


def test_the_expected_tasks_are_shipped() -> None:
    keys = {f"{doc['id']}@{doc['version']}" for doc in TASKS.values()}
    assert {
        "job_detail_extraction@1.0.0",
        "job_detail_extraction@1.1.0",
        "job_detail_extraction@1.2.0",
        "skill_decomposition@1.0.0",
        "requirement_skill_matching@1.0.0",
        "seniority_classification@1.0.0",
        "compensation_extraction@1.0.0",
        "self_assessment_feedback@1.0.0",
    } <= keys


@pytest.mark.parametrize("path", TASK_FILES, ids=_rel)
def test_file_layout_and_metadata(path: Path) -> None:
    doc = TASKS[path]
    assert path.parent.name == doc["id"]
    assert path.name == f"{doc['version']}.json"
    assert doc["task_type"]
    assert doc["tags"]
    assert len(doc["input"]["examples"]) >= 2
    assert len(doc["output"]["examples"]) >= 2


@pytest.mark.parametrize("path", TASK_FILES, ids=_rel)
def test_examples_satisfy_their_schemas_and_rules(path: Path) -> None:
    doc = TASKS[path]
    problems: list[str] = []
    for side in ("input", "output"):
        spec = doc[side]
        jsonschema.Draft202012Validator.check_schema(spec["schema"])
        for i, example in enumerate(spec["examples"]):
            where = f"{_rel(path)} $.{side}.examples[{i}]"
            problems += _check_value(spec["schema"], spec.get("validations", []), example, where)
    assert problems == []


@pytest.mark.parametrize("path", TASK_FILES, ids=_rel)
def test_the_loader_accepts_it(path: Path) -> None:
    definition = load_definition(path)
    assert definition.id == TASKS[path]["id"]
    assert definition.version == TASKS[path]["version"]


@pytest.mark.parametrize("path", TASK_FILES, ids=_rel)
def test_prompts_are_consistent_and_render_for_every_example(path: Path) -> None:
    doc = TASKS[path]
    input_props = set(doc["input"]["schema"]["properties"])
    output_props = set(doc["output"]["schema"]["properties"])
    defaults = [p for p in doc["prompts"] if p.get("usage_conditions", {}).get("default")]
    assert len(defaults) == 1
    for prompt in doc["prompts"]:
        declared = set(prompt["template_variables"])
        assert template_variables(prompt["text"]) == declared, prompt["id"]
        assert declared <= input_props, prompt["id"]
        condition_of(prompt["usage_conditions"])  # parses
        # small local models need the exact output keys spelled out
        for key in output_props:
            assert f'"{key}"' in prompt["text"], (prompt["id"], key)
    definition = _load(path)
    for example in doc["input"]["examples"]:
        for options in ({}, {"structured_output": True}):
            variant = choose_variant(definition, example, options)
            text = render_variant(variant, example)
            assert "{{" not in text
        for prompt in definition.prompts:
            if set(prompt.template_variables) <= {k for k, v in example.items() if v is not None}:
                render_variant(prompt, example)


def test_variants_are_chosen_by_their_conditions() -> None:
    chosen: dict[str, set[str]] = {}
    for path, doc in TASKS.items():
        definition = _load(path)
        for example in doc["input"]["examples"]:
            for options in ({}, {"structured_output": True}):
                variant = choose_variant(definition, example, options)
                chosen.setdefault(definition.key, set()).add(variant.id)
    # worked examples (for small local models) whenever the condition allows
    assert chosen["skill_decomposition@1.0.0"] == {"worked_example", "worked_example_with_context"}
    assert chosen["job_detail_extraction@1.1.0"] == {"standard", "worked_example"}
    assert chosen["job_detail_extraction@1.2.0"] == {"standard", "worked_example"}
    assert chosen["job_detail_extraction@1.0.0"] == {"standard", "structured"}
    assert chosen["requirement_skill_matching@1.0.0"] == {"standard", "with_job_title"}
    assert chosen["seniority_classification@1.0.0"] == {"standard", "with_years"}
    assert chosen["compensation_extraction@1.0.0"] == {"standard", "with_default_currency"}
    assert chosen["self_assessment_feedback@1.0.0"] == {"standard", "with_evidence"}
    long_posting = {"job_posting": "Backend engineer wanted. " * 200}
    v11 = _load(DEFINITIONS / "tasks/job_detail_extraction/1.1.0.json")
    assert choose_variant(v11, long_posting).id == "long_posting"
    assert choose_variant(v11, long_posting, {"structured_output": True}).id == "structured"
    # 1.2.0: the long-posting prompt is reachable with structured output on (the default)
    v12 = _load(DEFINITIONS / "tasks/job_detail_extraction/1.2.0.json")
    assert choose_variant(v12, long_posting).id == "long_posting"
    assert choose_variant(v12, long_posting, {"structured_output": True}).id == "long_posting"
    feedback = _load(DEFINITIONS / "tasks/self_assessment_feedback/1.0.0.json")
    direct = {"requirement": "SQL", "self_rating": 3, "self_assessment": "x" * 30, "tone": "direct"}
    assert choose_variant(feedback, direct).id == "direct"


def test_every_verification_method_and_fallback_strategy_is_used() -> None:
    methods = {m for doc in TASKS.values() for m in _methods(doc["verification"])}
    top_level = {doc["verification"]["method"] for doc in TASKS.values()}
    strategies = {_strategy(doc["verification"]) for doc in TASKS.values()}
    assert methods == set(VERIFICATION_METHODS)
    assert top_level == set(VERIFICATION_METHODS)
    assert strategies == set(FALLBACK_STRATEGIES)


@pytest.mark.parametrize("path", TASK_FILES, ids=_rel)
def test_verification_prompts_bind_and_default_values_are_valid(path: Path) -> None:
    doc = TASKS[path]
    input_props = set(doc["input"]["schema"]["properties"])
    stack = [doc["verification"]]
    while stack:
        spec = stack.pop()
        params = spec.get("parameters", {})
        stack += params.get("steps", [])
        if spec["method"] == "hierarchical":
            unbound = template_variables(params["verification_prompt"]) - input_props - {"output"}
            assert len(unbound) <= 1, unbound  # at most one name may stand for the output
    fallback = doc["verification"].get("fallback_strategy")
    if isinstance(fallback, dict):
        output = doc["output"]
        assert _check_value(output["schema"], [], fallback["value"], _rel(path)) == []


def test_new_minor_version_is_backward_compatible() -> None:
    old = _load(DEFINITIONS / "tasks/job_detail_extraction/1.0.0.json")
    new = _load(DEFINITIONS / "tasks/job_detail_extraction/1.1.0.json")
    assert check_compatibility(old, new) == []
    assert old.input.schema == new.input.schema
    assert "salary_range" in new.output.schema["properties"]
    assert "salary_range" not in new.output.schema["required"]
    assert new.output.schema["required"] == old.output.schema["required"]
    # every old output is still a valid new output
    for example in old.output.examples:
        jsonschema.validate(example, new.output.schema)
    assert {p.id for p in old.prompts} < {p.id for p in new.prompts}
    newest = _load(DEFINITIONS / "tasks/job_detail_extraction/1.2.0.json")
    assert check_compatibility(new, newest) == []
    assert newest.output.schema == new.output.schema


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_rel)
def test_standalone_example_inputs_fit_their_task(path: Path) -> None:
    prefixes = [p for p in EXAMPLE_TASKS if path.name.startswith(p)]
    assert len(prefixes) == 1, f"{path.name}: add its prefix to EXAMPLE_TASKS"
    doc = _latest(EXAMPLE_TASKS[prefixes[0]])
    value = json.loads(path.read_text(encoding="utf-8"))
    spec = doc["input"]
    assert _check_value(spec["schema"], spec.get("validations", []), value, _rel(path)) == []


def test_every_task_has_a_standalone_example() -> None:
    covered = {
        task
        for prefix, task in EXAMPLE_TASKS.items()
        for f in EXAMPLE_FILES
        if f.name.startswith(prefix)
    }
    assert covered == {doc["id"] for doc in TASKS.values()}


def test_shipped_json_is_tidy() -> None:
    for path in [*TASK_FILES, *EXAMPLE_FILES]:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n"), path
        assert not re.search(r"[ \t]+$", text, re.M), path
        assert json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n" == text, path


@pytest.mark.parametrize("path", TASK_FILES, ids=_rel)
def test_variants_needing_optional_fields_are_guarded_by_their_conditions(path: Path) -> None:
    doc = TASKS[path]
    required = set(doc["input"]["schema"]["required"])
    definition = _load(path)
    for example in doc["input"]["examples"]:
        minimal = {k: v for k, v in example.items() if k in required}
        for options in ({}, {"structured_output": True}):
            variant = choose_variant(definition, minimal, options)
            assert set(variant.template_variables) <= required, variant.id
            render_variant(variant, minimal)
