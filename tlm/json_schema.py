"""Validating a value against a JSON Schema (draft 2020-12), with located, redactable problems.

Input, output and a human reviewer's corrected output are all checked here. Schemas whose keywords
mean the same in draft-07 are compiled with fastjsonschema for the common valid case; problems
always come from jsonschema, so messages and paths are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator

from tlm.errors import Problem
from tlm.telemetry.redact import schema_message

__all__ = ("SchemaValidator",)

# Keywords that mean the same in draft-07 (what fastjsonschema compiles) and in draft 2020-12.
_PORTABLE_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "items", "enum", "const", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern",
        "minItems", "maxItems", "uniqueItems", "contains", "additionalProperties",
        "patternProperties", "propertyNames", "minProperties", "maxProperties", "anyOf",
        "oneOf", "allOf", "not", "if", "then", "else", "description", "title", "default",
        "examples", "format", "$comment", "readOnly", "writeOnly", "deprecated",
    }
)  # fmt: skip
_SUBSCHEMA_MAPS = ("properties", "patternProperties")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
_SUBSCHEMAS = ("items", "contains", "additionalProperties", "propertyNames", "not", "if", "then",
               "else")  # fmt: skip


def _portable(schema: Any) -> bool:
    """Whether ``schema`` uses only keywords whose meaning draft-07 and 2020-12 share."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, Mapping) or not set(schema) <= _PORTABLE_KEYWORDS:
        return False
    for key in _SUBSCHEMA_MAPS:
        if key in schema and not all(_portable(s) for s in schema[key].values()):
            return False
    for key in _SUBSCHEMA_LISTS:
        if key in schema and not all(_portable(s) for s in schema[key]):
            return False
    return all(_portable(schema[key]) for key in _SUBSCHEMAS if key in schema)


def _fast_check(schema: Mapping[str, Any]) -> Callable[[Any], object] | None:
    """A compiled fast validity check for ``schema``, or ``None`` where it could differ."""
    if not _portable(schema):
        return None
    try:
        return fastjsonschema.compile(dict(schema), use_formats=False)
    except Exception:  # a schema it cannot compile is simply checked by jsonschema alone
        return None


class SchemaValidator:
    """A compiled JSON Schema validator that reports every problem with its JSON path.

    Valid values (the common case) are confirmed by a compiled check (fastjsonschema) when the
    schema only uses keywords that mean the same in draft-07 and 2020-12; anything it rejects,
    and every other schema, goes through jsonschema's draft 2020-12 validator, whose errors are
    the ones reported.
    """

    __slots__ = ("_fast", "_validator")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._validator = Draft202012Validator(schema)
        self._fast = _fast_check(schema)

    def is_valid(self, value: Any) -> bool:
        """Whether ``value`` satisfies the schema."""
        if self._fast is not None:
            try:
                self._fast(value)
                return True
            except fastjsonschema.JsonSchemaException:
                pass
        return bool(self._validator.is_valid(value))

    def problems(
        self,
        value: Any,
        *,
        source: str = "",
        base_path: str = "$",
        redact: Collection[str] = (),
    ) -> list[Problem]:
        """Every schema violation of ``value``, sorted by path; empty when valid.

        Messages about a value under a field named in ``redact`` (or about a value holding one)
        show ``[REDACTED]`` in place of the value.
        """
        if self.is_valid(value):
            return []
        found = []
        for error in self._validator.iter_errors(value):
            path = base_path + error.json_path[1:]
            message = schema_message(error, redact) if redact else error.message
            found.append(Problem(source, path, message))
        found.sort(key=lambda p: p.path)
        return found
