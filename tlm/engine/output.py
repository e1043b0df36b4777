"""Turning a model's reply into a validated output: parse, repair deterministically, validate.

Repair is deterministic and cheap: strip code fences, then take the outermost JSON object or
array found in the text (models like to wrap JSON in prose). Anything beyond that is the engine's
bounded re-ask, which sends the validation problems (never provider error text) back to the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from jsonschema import Draft202012Validator

from tlm.errors import Problem

__all__ = ("ParsedOutput", "parse_json_reply", "SchemaValidator", "format_problems_for_model")

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


@attrs.frozen
class ParsedOutput:
    """The result of parsing a reply: the value, whether repair was needed, or why it failed."""

    value: Any = None
    ok: bool = False
    repaired: bool = False
    error: str | None = None


def parse_json_reply(text: str) -> ParsedOutput:
    """Parse ``text`` as JSON, repairing code fences and surrounding prose deterministically."""
    stripped = text.strip()
    try:
        return ParsedOutput(json.loads(stripped), ok=True)
    except ValueError as exc:
        first_error = f"not valid JSON: {exc}"
    for candidate in _repair_candidates(stripped):
        try:
            return ParsedOutput(json.loads(candidate), ok=True, repaired=True)
        except ValueError:
            continue
    found = _first_embedded_json(stripped)
    if found is not None:
        return ParsedOutput(found, ok=True, repaired=True)
    return ParsedOutput(ok=False, error=first_error)


def _repair_candidates(text: str) -> list[str]:
    return [m.group(1).strip() for m in _FENCE.finditer(text)]


def _first_embedded_json(text: str) -> Any:
    """The first complete JSON object or array embedded in ``text`` (the longest at that place)."""
    for index, char in enumerate(text):
        if char not in "{[":
            continue
        try:
            value, _end = _DECODER.raw_decode(text, index)
        except ValueError:
            continue
        return value
    return None


class SchemaValidator:
    """A compiled JSON Schema validator that reports every problem with its JSON path."""

    __slots__ = ("_validator",)

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._validator = Draft202012Validator(schema)

    def problems(self, value: Any, *, source: str = "", base_path: str = "$") -> list[Problem]:
        """Every schema violation of ``value``, sorted by path; empty when valid."""
        if self._validator.is_valid(value):
            return []
        found = []
        for error in self._validator.iter_errors(value):
            path = base_path + error.json_path[1:]
            found.append(Problem(source, path, error.message))
        found.sort(key=lambda p: p.path)
        return found


def format_problems_for_model(problems: Sequence[Problem], *, limit: int = 10) -> str:
    """The validation problems as plain lines a model can act on (no provider error text)."""
    lines = [f"- {p.path}: {p.message}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"- ... and {len(problems) - limit} more")
    return "\n".join(lines)
