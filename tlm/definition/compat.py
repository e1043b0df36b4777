"""Compatibility between two versions of a task: breaking changes need a major version bump.

Breaking for callers (the input side): a new required property, a property removed while
additional properties are not allowed, additional properties newly forbidden, a type or enum
narrowed, a bound tightened (minimum, maxLength, ...), a pattern added or changed. Breaking for
consumers (the output side): a field removed or made optional, a type changed. Nested object
schemas (``properties``, ``items``) are compared recursively.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tlm.definition.model import TaskDefinition
from tlm.definition.schema import allowed_values, json_equal, json_path
from tlm.definition.semver import parse_version
from tlm.errors import Problem

__all__ = ("check_compatibility", "check_history", "breaking_changes")

_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")

_Change = tuple[str, str]  # (json path, what changed)


def _at(base: str, *parts: str | int) -> str:
    return json_path(parts, base)


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return {kind} if isinstance(kind, str) else set(kind)


def _covers(types: set[str], kind: str) -> bool:
    return kind in types or (kind == "integer" and "number" in types)


def _props(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, Mapping) else {}


def _required(schema: Mapping[str, Any]) -> list[str]:
    required = schema.get("required")
    return [r for r in required if isinstance(r, str)] if isinstance(required, list) else []


def _show(types: set[str] | None) -> str:
    return "any" if types is None else "|".join(sorted(types))


def _input_changes(old: Any, new: Any, at: str) -> Iterable[_Change]:
    if new is False and old is not False:
        yield at, "the schema now rejects every value"
        return
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return
    old_types, new_types = _types(old), _types(new)
    if new_types is not None:
        lost = {"any"} if old_types is None else {t for t in old_types if not _covers(new_types, t)}
        if lost:
            yield (
                _at(at, "type"),
                f"input type narrowed from {_show(old_types)} to {_show(new_types)}",
            )
    old_enum, new_enum = allowed_values(old), allowed_values(new)
    if new_enum is not None:
        if old_enum is None:
            yield _at(at, "enum"), "input values restricted to an enum"
        else:
            gone = [v for v in old_enum if not any(json_equal(v, w) for w in new_enum)]
            if gone:
                yield _at(at, "enum"), f"input enum narrowed: {gone!r} no longer accepted"
    for key in _LOWER + _UPPER:
        if key not in new or not isinstance(new[key], int | float):
            continue
        before = old.get(key)
        if not isinstance(before, int | float):
            yield _at(at, key), f"input {key} {new[key]} added"
        elif (key in _LOWER and new[key] > before) or (key in _UPPER and new[key] < before):
            yield _at(at, key), f"input {key} tightened from {before} to {new[key]}"
    if "pattern" in new and new.get("pattern") != old.get("pattern"):
        yield _at(at, "pattern"), f"input pattern {new['pattern']!r} added or changed"
    for name in _required(new):
        if name not in _required(old):
            yield _at(at, "required"), f"input property {name!r} is newly required"
    old_ap, new_ap = old.get("additionalProperties", True), new.get("additionalProperties", True)
    if new_ap is False and old_ap is not False:
        yield _at(at, "additionalProperties"), "additional input properties are no longer allowed"
    old_props, new_props = _props(old), _props(new)
    for name in old_props:
        if name not in new_props and new_ap is False:
            yield (
                _at(at, "properties"),
                f"input property {name!r} was removed and additional properties are not allowed",
            )
        elif name in new_props:
            yield from _input_changes(old_props[name], new_props[name], _at(at, "properties", name))
    if "items" in old and "items" in new:
        yield from _input_changes(old["items"], new["items"], _at(at, "items"))


def _output_changes(old: Any, new: Any, at: str) -> Iterable[_Change]:
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return
    old_types, new_types = _types(old), _types(new)
    if old_types != new_types:
        yield (
            _at(at, "type"),
            f"output type changed from {_show(old_types)} to {_show(new_types)}",
        )
    old_props, new_props = _props(old), _props(new)
    new_required = _required(new)
    for name in old_props:
        if name not in new_props:
            yield _at(at, "properties"), f"output field {name!r} was removed"
    for name in _required(old):
        if name not in new_required and name in new_props:
            yield _at(at, "required"), f"output field {name!r} is no longer required"
    for name in old_props:
        if name in new_props:
            yield from _output_changes(
                old_props[name], new_props[name], _at(at, "properties", name)
            )
    if "items" in old and "items" in new:
        yield from _output_changes(old["items"], new["items"], _at(at, "items"))


def breaking_changes(old: TaskDefinition, new: TaskDefinition) -> list[_Change]:
    """Every change from ``old`` to ``new`` that would break callers or consumers, by JSON path."""
    return [
        *_input_changes(old.input.schema, new.input.schema, "$.input.schema"),
        *_output_changes(old.output.schema, new.output.schema, "$.output.schema"),
    ]


def check_compatibility(old: TaskDefinition, new: TaskDefinition) -> list[Problem]:
    """Problems with ``new`` as the next version after ``old`` (empty when it is fine).

    The version must be greater, and a breaking change needs a major bump; each problem names the
    change and is located in ``new`` (its ``source`` and JSON path).
    """
    source = new.source or ""
    problems: list[Problem] = []
    if old.id != new.id:
        problems.append(Problem(source, "$.id", f"task id {new.id!r} differs from {old.id!r}"))
    old_v, new_v = parse_version(old.version), parse_version(new.version)
    if new_v <= old_v:
        problems.append(
            Problem(
                source,
                "$.version",
                f"version {new.version} is not greater than the previous version {old.version}",
            )
        )
    if new_v.major > old_v.major:
        return problems
    bump = f"{old.version} -> {new.version}"
    for path, change in breaking_changes(old, new):
        problems.append(
            Problem(
                source,
                path,
                f"breaking change without a major version bump ({bump}): {change}",
            )
        )
    return problems


def check_history(definitions: Sequence[TaskDefinition]) -> list[Problem]:
    """Compatibility problems between consecutive versions of one task (ordered by version)."""
    ordered = sorted(definitions, key=lambda d: parse_version(d.version))
    problems: list[Problem] = []
    for old, new in itertools.pairwise(ordered):
        problems += check_compatibility(old, new)
    return problems
