"""Compiling a workflow: unknown tasks, misplaced waits, and JSON Schema compatibility."""

from __future__ import annotations

from typing import Any

import pytest

from tlm.definition.registry import DefinitionRegistry
from tlm.errors import WorkflowTypeError
from tlm.workflow import TaskRef, Workflow, gather, map_each, step, task_step
from tlm.workflow.compat import schema_problems

from .conftest import CLASSIFY, DECOMPOSE, EXTRACT, SHOUT, ExtractOut, definitions


@pytest.fixture
def registry() -> DefinitionRegistry:
    return DefinitionRegistry(definitions())


def test_compatible_task_boundaries_compile(registry: DefinitionRegistry) -> None:
    compiled = Workflow("ok", task_step(EXTRACT) | task_step(SHOUT)).compile(registry)
    assert [d.id for d in compiled.definitions] == ["t_extract", "t_shout"]


def test_a_missing_required_property_names_both_steps_and_the_path(
    registry: DefinitionRegistry,
) -> None:
    # mypy would reject this composition too; a loosely typed ref hides it from mypy
    loose: TaskRef[Any, Any] = CLASSIFY
    workflow = Workflow("bad", task_step(EXTRACT, name="extract") | task_step(loose, name="rank"))
    with pytest.raises(WorkflowTypeError) as caught:
        workflow.compile(registry)
    message = str(caught.value)
    assert "step 'extract' (t_extract@1.0.0 output) -> step 'rank' (t_classify@1.0.0 input)" in (
        message
    )
    assert "$.description: required by the input but not in the output" in message
    assert isinstance(caught.value, TypeError)


def test_boundaries_are_checked_inside_maps_gathers_and_after_passthroughs(
    registry: DefinitionRegistry,
) -> None:
    loose: TaskRef[Any, Any] = DECOMPOSE
    inner = task_step(SHOUT) | task_step(loose)
    workflow = Workflow("nested", map_each(inner))
    with pytest.raises(WorkflowTypeError, match=r"\$\.skill_name: required by the input"):
        workflow.compile(registry)
    workflow2 = Workflow("g", task_step(EXTRACT) | gather(task_step(SHOUT), task_step(loose)))
    with pytest.raises(WorkflowTypeError, match=r"t_extract@1.0.0 output") as caught:
        workflow2.compile(registry)
    assert "t_decompose@1.0.0 input" in str(caught.value)
    assert "t_shout" not in str(caught.value)


def test_a_function_between_tasks_is_trusted_to_mypy(registry: DefinitionRegistry) -> None:
    async def title_only(job: ExtractOut) -> dict[str, str]:
        return {"skill_name": job["title"]}

    loose: TaskRef[Any, Any] = DECOMPOSE
    Workflow("f", task_step(EXTRACT) | step(title_only) | task_step(loose)).compile(registry)


def test_unknown_tasks_and_versions_are_reported(registry: DefinitionRegistry) -> None:
    missing = TaskRef[Any, Any]("t_nope")
    old = TaskRef[Any, Any]("t_shout", "9.0.0")
    with pytest.raises(WorkflowTypeError) as caught:
        Workflow("u", gather(task_step(missing), task_step(old))).compile(registry)
    assert "t_nope" in str(caught.value)
    assert "9.0.0" in str(caught.value)


def test_after_must_name_a_sibling_and_form_no_cycle(registry: DefinitionRegistry) -> None:
    a = task_step(SHOUT, name="a")
    stranger = task_step(SHOUT, name="stranger")
    with pytest.raises(WorkflowTypeError, match="waits for 'stranger'"):
        Workflow("w", gather(a.after(stranger), task_step(SHOUT))).compile(registry)
    with pytest.raises(WorkflowTypeError, match="not in one"):
        Workflow("w", a.after(stranger)).compile(registry)


def test_a_cycle_of_waits_is_rejected(registry: DefinitionRegistry) -> None:
    # a cycle needs a forward reference, which immutable steps cannot build; fake one
    a = task_step(SHOUT, name="a")
    b = task_step(SHOUT, name="b").after(a)
    object.__setattr__(a, "deps", (b,))
    with pytest.raises(WorkflowTypeError, match="cycle"):
        Workflow("cycle", gather(a, b)).compile(registry)


@pytest.mark.parametrize(
    ("produced", "accepted", "expected"),
    [
        ({"type": "integer"}, {"type": "number"}, []),
        ({"type": "number"}, {"type": "integer"}, ["$: the output may be number"]),
        ({"type": ["string", "null"]}, {"type": "string"}, ["$: the output may be null"]),
        ({"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]}, []),
        ({"enum": ["a", "z"]}, {"enum": ["a", "b"]}, ["$: the output may be ['z']"]),
        ({"type": "string"}, {"enum": ["a"]}, ["$: the output is not limited"]),
        ({}, {"type": "string"}, ["$: the output does not declare a type"]),
        (
            {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}},
            {"type": "array", "items": {"type": "object", "required": ["n"]}},
            ["$[*].n: required by the input but optional in the output"],
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string"}, "b": {}}, "required": ["a"]},
            {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
            ["$.b: in the output but the input allows no such property"],
        ),
        (
            {
                "type": "object",
                "properties": {
                    "o": {
                        "type": "object",
                        "properties": {"x": {"type": "boolean"}},
                        "required": ["x"],
                    }
                },
                "required": ["o"],
            },
            {
                "type": "object",
                "properties": {"o": {"type": "object", "properties": {"x": {"type": "string"}}}},
            },
            ["$.o.x: the output may be boolean"],
        ),
        ({"type": "string"}, True, []),
    ],
    ids=[
        "int-is-number",
        "number-not-int",
        "nullable",
        "enum-subset",
        "enum-outside",
        "open-string-to-enum",
        "untyped-output",
        "array-items",
        "closed-object",
        "nested-type",
        "accepts-anything",
    ],
)
def test_schema_problems(produced: Any, accepted: Any, expected: list[str]) -> None:
    found = [f"{path}: {message}" for path, message in schema_problems(produced, accepted)]
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert got.startswith(want)
