"""Load one task definition from JSON, reporting every problem at once with file and JSON path.

The order is: size and depth caps (before parsing), UTF-8 and JSON syntax (``file:line:column``),
the task-definition schema, structuring into :class:`TaskDefinition`, then the load-time checks of
:mod:`tlm.definition.checks`. Any failure raises :class:`tlm.errors.TaskSchemaError` listing every
problem found at that stage; never a traceback from a hostile file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import cattrs

from tlm.definition.model import TaskDefinition
from tlm.definition.schema import schema_problems
from tlm.definition.serde import make_converter
from tlm.errors import Problem, TaskSchemaError

if TYPE_CHECKING:
    from tlm.rules import RuleRegistry

__all__ = (
    "MAX_DEFINITION_BYTES",
    "MAX_DEFINITION_DEPTH",
    "load_definition",
    "parse_definition",
    "parse_json_document",
)

MAX_DEFINITION_BYTES = 4 * 1024 * 1024
"""A definition file larger than this (4 MiB) is refused before it is read."""
MAX_DEFINITION_DEPTH = 64
"""Arrays and objects nested deeper than this are refused before the JSON is parsed."""

_ESCAPE = re.compile(r"\\.", re.S)
_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_CONVERTER = make_converter()


def _fail(source: str, path: str, message: str) -> TaskSchemaError:
    return TaskSchemaError([Problem(source, path, message)])


def _nesting_depth(text: str) -> int:
    """The deepest nesting of arrays/objects in ``text``, ignoring brackets inside strings."""
    # Linear time: drop escapes first, so strings need no backtracking pattern.
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", _ESCAPE.sub("", text)))
    if len(brackets) < 100_000:  # the common case: no numpy import, so the CLI starts fast
        depth = deepest = 0
        for char in brackets:
            depth += 1 if char in "[{" else -1
            deepest = max(deepest, depth)
        return deepest
    import numpy as np

    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


def parse_json_document(data: str | bytes, *, source: str) -> Any:
    """Parse JSON text with the size and depth caps; raises :class:`TaskSchemaError` when bad."""
    if len(data) > MAX_DEFINITION_BYTES:
        raise _fail(
            source, "$", f"the file is {len(data)} bytes; the limit is {MAX_DEFINITION_BYTES}"
        )
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, column = _position(data, exc.start)
            raise _fail(f"{source}:{line}:{column}", "", f"invalid UTF-8: {exc.reason}") from None
    else:
        text = data
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise _fail(source, "$", "the file is empty; expected a JSON object")
    depth = _nesting_depth(text)
    if depth > MAX_DEFINITION_DEPTH:
        raise _fail(
            source, "$", f"JSON nested {depth} levels deep; the limit is {MAX_DEFINITION_DEPTH}"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"{source}:{exc.lineno}:{exc.colno}", "", f"invalid JSON: {exc.msg}") from None
    except RecursionError:  # the depth cap should make this unreachable
        raise _fail(source, "$", "JSON nested too deeply") from None


def _structure_problems(error: Exception, source: str) -> list[Problem]:
    if isinstance(error, cattrs.BaseValidationError):
        return [Problem(source, "$", message) for message in cattrs.transform_error(error)]
    return [Problem(source, "$", str(error))]


def parse_definition(
    document: str | bytes | Mapping[str, Any],
    *,
    source: str = "<definition>",
    rules: RuleRegistry | None = None,
    metrics: Collection[str] | None = None,
    check: bool = True,
) -> TaskDefinition:
    """Parse and check one definition given as JSON text or an already-parsed JSON object.

    Args:
        document: JSON text (``str`` or UTF-8 ``bytes``) or a parsed JSON object.
        source: Where the document came from; it prefixes every problem.
        rules: The rule registry that validation-rule names are checked against (default:
            :func:`tlm.rules.default_registry`).
        metrics: Similarity metric names accepted besides the built-ins.
        check: Run the load-time checks beyond the schema (examples, prompts, verification).

    Raises:
        TaskSchemaError: listing every problem, each located by source and JSON path.
    """
    if isinstance(document, str | bytes):
        obj = parse_json_document(document, source=source)
    else:
        obj = document
    if not isinstance(obj, Mapping):
        kind = type(obj).__name__ if obj is not None else "null"
        raise _fail(source, "$", f"the top level must be a JSON object, not {kind}")
    problems = schema_problems(obj, source=source)
    if problems:
        raise TaskSchemaError(problems)
    try:
        definition = _CONVERTER.structure(obj, TaskDefinition)
    except Exception as exc:  # the schema passed, so this is a converter gap: still located
        raise TaskSchemaError(_structure_problems(exc, source)) from None
    definition = attrs.evolve(definition, source=source)
    if check:
        from tlm.definition.checks import check_definition

        problems = check_definition(definition, rules=rules, metrics=metrics)
        if problems:
            raise TaskSchemaError(problems)
    return definition


def load_definition(
    path: str | os.PathLike[str],
    *,
    rules: RuleRegistry | None = None,
    metrics: Collection[str] | None = None,
    check: bool = True,
) -> TaskDefinition:
    """Load and check the definition in the file at ``path`` (see :func:`parse_definition`).

    Raises:
        TaskSchemaError: the file cannot be read, or the definition has problems.
    """
    source = os.fspath(path)
    file = Path(path)
    try:
        size = file.stat().st_size
        if file.is_dir():
            raise _fail(source, "", "is a directory, not a definition file")
        if size > MAX_DEFINITION_BYTES:
            raise _fail(
                source, "$", f"the file is {size} bytes; the limit is {MAX_DEFINITION_BYTES}"
            )
        with file.open("rb") as f:
            data = f.read(MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        raise _fail(source, "", f"cannot read: {exc.strerror or exc}") from None
    return parse_definition(data, source=source, rules=rules, metrics=metrics, check=check)
