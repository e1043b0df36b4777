"""JSON Schema compatibility across a task boundary: does one task's output fit the next input?

:func:`schema_problems` compares the schema of what a step produces with the schema of what the
next step accepts and returns every mismatch with its JSON path. It is deliberately conservative
and structural: required properties must be guaranteed (required) by the producer, declared types
must be a subset of the accepted types (an ``integer`` is a ``number``), enumerations must be a
subset, array items and nested properties are compared recursively, and a consumer that closes
its object (``additionalProperties: false``) rejects properties it does not declare.
Keywords it does not understand (``pattern``, bounds, ``$ref``) are not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tlm.definition.schema import allowed_values, json_equal

__all__ = ("schema_problems", "schema_types")

_JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


def _value_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def schema_types(schema: Mapping[str, Any]) -> frozenset[str] | None:
    """The JSON types a schema allows (``None``: it does not say, so any)."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(str(t) for t in declared)
    values = allowed_values(schema)
    if values is not None:
        return frozenset(_value_type(v) for v in values)
    if "properties" in schema:
        return frozenset({"object"})
    if "items" in schema:
        return frozenset({"array"})
    return None


def _fits(produced: frozenset[str], accepted: frozenset[str]) -> frozenset[str]:
    """The produced types the consumer does not accept."""
    widened = set(accepted)
    if "number" in widened:
        widened.add("integer")
    return frozenset(t for t in produced if t not in widened)


def schema_problems(
    produced: Mapping[str, Any] | bool, accepted: Mapping[str, Any] | bool, path: str = "$"
) -> list[tuple[str, str]]:
    """Every way a value valid for ``produced`` may be invalid for ``accepted``: (path, message)."""
    if accepted is True or accepted == {} or produced is False:
        return []
    if accepted is False:
        return [(path, "the input accepts nothing here")]
    if produced is True:
        produced = {}
    assert isinstance(produced, Mapping)
    assert isinstance(accepted, Mapping)
    problems: list[tuple[str, str]] = []
    accepted_types = schema_types(accepted)
    produced_types = schema_types(produced)
    if accepted_types is not None:
        if produced_types is None:
            wanted = " or ".join(sorted(accepted_types))
            problems.append((path, f"the output does not declare a type; the input needs {wanted}"))
            return problems
        extra = _fits(produced_types, accepted_types)
        if extra:
            problems.append(
                (
                    path,
                    f"the output may be {' or '.join(sorted(extra))}; "
                    f"the input needs {' or '.join(sorted(accepted_types))}",
                )
            )
            return problems
    accepted_enum = allowed_values(accepted)
    if accepted_enum is not None:
        produced_enum = allowed_values(produced)
        if produced_enum is None:
            problems.append(
                (path, f"the output is not limited to the accepted values {accepted_enum}")
            )
        else:
            outside = [v for v in produced_enum if not any(json_equal(v, w) for w in accepted_enum)]
            if outside:
                problems.append((path, f"the output may be {outside}, not accepted by the input"))
    kinds = produced_types or frozenset(_JSON_TYPES)
    if "object" in kinds:
        problems += _object_problems(produced, accepted, path)
    if "array" in kinds and "items" in accepted:
        items = produced.get("items", True)
        problems += schema_problems(items, accepted["items"], f"{path}[*]")
    return problems


def _object_problems(
    produced: Mapping[str, Any], accepted: Mapping[str, Any], path: str
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    produced_props: Mapping[str, Any] = produced.get("properties", {})
    accepted_props: Mapping[str, Any] = accepted.get("properties", {})
    produced_required = set(produced.get("required", ()))
    for name in accepted.get("required", ()):
        if name in produced_required:
            continue
        if name in produced_props:
            problems.append((f"{path}.{name}", "required by the input but optional in the output"))
        else:
            problems.append((f"{path}.{name}", "required by the input but not in the output"))
    for name, schema in accepted_props.items():
        if name in produced_props:
            problems += schema_problems(produced_props[name], schema, f"{path}.{name}")
    if accepted.get("additionalProperties") is False:
        for name in produced_props:
            if name not in accepted_props:
                problems.append(
                    (f"{path}.{name}", "in the output but the input allows no such property")
                )
    return problems
