"""JSON Schema checks with located errors: the task-definition schema and the schemas inside it.

Every function here returns a list of :class:`tlm.errors.Problem` instead of raising, so a caller
can report every problem of a document at once. Paths are JSONPath-like: ``$.prompts[1].text``.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping
from importlib.resources.abc import Traversable
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from tlm.data import resource
from tlm.errors import ConfigurationError, Problem
from tlm.verify.methods import METHODS

__all__ = (
    "SCHEMA_ID",
    "schema_path",
    "task_definition_schema",
    "json_path",
    "schema_problems",
    "meta_schema_problems",
    "instance_problems",
    "allowed_values",
    "json_equal",
)

SCHEMA_ID = "https://tlm.dev/schemas/task-definition-v1.json"
"""The ``$id`` of the task-definition schema; a definition's ``$schema`` may point to it."""

_SCHEMA_FILE = "schema/task-definition-v1.json"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_Validator = jsonschema.Draft202012Validator


def schema_path() -> Traversable:
    """Where ``task-definition-v1.json`` lives: inside the package, ``tlm/data/schema/``."""
    return resource(_SCHEMA_FILE)


@functools.cache
def task_definition_schema() -> Mapping[str, Any]:
    """The task-definition JSON Schema (read once, on first use).

    Raises:
        ConfigurationError: the schema file is missing (a broken installation).
    """
    try:
        with schema_path().open(encoding="utf-8") as f:
            schema: dict[str, Any] = json.load(f)
    except OSError as exc:
        raise ConfigurationError(
            f"{schema_path()}: cannot read the task-definition schema: {exc.strerror or exc}"
        ) from None
    return schema


def _with_registered_methods(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` accepting exactly the methods of :data:`tlm.verify.methods.METHODS`: the method
    enum is the registry's names, and a method the file does not describe gets its record's
    ``parameters_schema`` (any object when it has none)."""
    merged = copy.deepcopy(dict(schema))
    defs = merged["$defs"]
    defs["method"] = {"enum": list(METHODS.names())}
    rules = defs["parameters_per_method"]["allOf"]
    described = {rule["if"]["properties"]["method"]["const"] for rule in rules}
    for method in METHODS:
        if method.name not in described:
            parameters = dict(method.parameters_schema or {"type": "object"})
            selects = {"properties": {"method": {"const": method.name}}, "required": ["method"]}
            rules.append({"if": selects, "then": {"properties": {"parameters": parameters}}})
    return merged


@functools.lru_cache(maxsize=2)
def _definition_validator(methods_version: int = 0) -> jsonschema.protocols.Validator:
    """The validator for the schema with the methods registered at ``methods_version``."""
    schema = _with_registered_methods(task_definition_schema())
    return _Validator(schema, format_checker=_Validator.FORMAT_CHECKER)


def json_path(parts: Iterable[str | int], base: str = "$") -> str:
    """Render path parts as ``$.a.b[0]``; keys that are not identifiers are quoted: ``$["a b"]``."""
    out = [base]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENTIFIER.match(part):
            out.append(f".{part}")
        else:
            out.append(f"[{json.dumps(part)}]")
    return "".join(out)


def _message(error: ValidationError) -> str:
    if error.validator == "anyOf" and error.context:
        missing = [e.message for e in error.context if e.validator == "required"]
        if len(missing) == len(error.context):
            names = ", ".join(sorted({str(e.validator_value[0]) for e in error.context}))  # type: ignore[index]
            return f"one of {names} is required"
    if error.validator in ("anyOf", "oneOf") and error.context:
        return _message(best_match(error.context))
    return error.message


def _leaf(error: ValidationError) -> ValidationError:
    """For a failed anyOf/oneOf, the sub-error that best explains it (keeps its deeper path)."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        if all(e.validator == "required" for e in error.context):
            return error
        return _leaf(best_match(error.context))
    return error


def _problems(errors: Iterable[ValidationError], *, source: str, base_path: str) -> list[Problem]:
    found: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        leaf = _leaf(error)
        key = (json_path(leaf.absolute_path, base_path), _message(leaf))
        if key not in seen:
            seen.add(key)
            found.append(Problem(source, *key))
    return found


def schema_problems(document: Any, *, source: str = "") -> list[Problem]:
    """Every place where ``document`` violates the task-definition schema."""
    errors = _definition_validator(METHODS.version).iter_errors(document)
    return _problems(errors, source=source, base_path="$")


def meta_schema_problems(schema: Any, *, source: str = "", base_path: str = "$") -> list[Problem]:
    """Every place where ``schema`` is not a valid draft 2020-12 JSON Schema."""
    meta = _Validator(_Validator.META_SCHEMA, format_checker=_Validator.FORMAT_CHECKER)
    try:
        return _problems(meta.iter_errors(schema), source=source, base_path=base_path)
    except Exception as exc:  # a hostile schema must give a located error, never a traceback
        return [Problem(source, base_path, f"cannot check this schema: {exc}")]


def instance_problems(
    schema: Mapping[str, Any], instance: Any, *, source: str = "", base_path: str = "$"
) -> list[Problem]:
    """Every place where ``instance`` violates ``schema`` (a user's schema, already meta-checked).

    Failures of the schema itself (an unresolvable ``$ref``, a bad regex) become problems too.
    """
    validator = _Validator(schema, format_checker=_Validator.FORMAT_CHECKER)
    try:
        return _problems(validator.iter_errors(instance), source=source, base_path=base_path)
    except Exception as exc:  # a hostile schema must give a located error, never a traceback
        return [Problem(source, base_path, f"cannot validate against the schema: {exc}")]


def json_equal(a: Any, b: Any) -> bool:
    """Equality as ``enum`` and ``const`` mean it: ``true`` is not ``1``; ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def allowed_values(schema: Mapping[str, Any]) -> list[Any] | None:
    """The values a schema's ``enum`` and ``const`` allow together (both must hold, so with both
    it is the ``const`` if the ``enum`` lists it, else nothing); ``None`` when neither is given."""
    enum = schema.get("enum")
    values = list(enum) if isinstance(enum, list) else None
    if "const" in schema:
        const = schema["const"]
        if values is None or any(json_equal(const, v) for v in values):
            return [const]
        return []
    return values
