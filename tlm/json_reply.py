"""The JSON in a model's reply: strict first, then deterministic repair.

Models wrap JSON in code fences or prose. :func:`parse_json_reply` parses the text as it is,
then the contents of code fences, then the first complete JSON object or array embedded in the
text. It never guesses beyond that; anything else is the caller's re-ask.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ("ParsedReply", "parse_json_reply", "schema_instruction")

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


@attrs.frozen
class ParsedReply:
    """A parsed reply: the value, whether repair was needed, or why it failed."""

    value: Any = None
    ok: bool = False
    repaired: bool = False
    error: str | None = None


def parse_json_reply(text: str) -> ParsedReply:
    """Parse ``text`` as JSON, repairing code fences and surrounding prose deterministically."""
    stripped = text.strip()
    try:
        return ParsedReply(json.loads(stripped), ok=True)
    except RecursionError:  # nested deeper than the parser can go: no repair will help
        return ParsedReply(ok=False, error="not valid JSON: nested too deeply to read")
    except ValueError as exc:
        first_error = f"not valid JSON: {exc}"
    for match in _FENCE.finditer(stripped):
        try:
            return ParsedReply(json.loads(match.group(1).strip()), ok=True, repaired=True)
        except (ValueError, RecursionError):
            continue
    for index, char in enumerate(stripped):
        if char not in "{[":
            continue
        try:
            value, _end = _DECODER.raw_decode(stripped, index)
        except ValueError:
            continue
        except RecursionError:
            break
        return ParsedReply(value, ok=True, repaired=True)
    return ParsedReply(ok=False, error=first_error)


def schema_instruction(schema: Mapping[str, Any]) -> str:
    """The one prompt text asking for a JSON reply matching ``schema``: in the engine's system
    message, or added by an adapter whose API cannot carry the schema itself."""
    return (
        "Answer with one JSON value that satisfies this JSON Schema, and nothing else "
        "(no prose, no code fences):\n" + json.dumps(schema, separators=(",", ":"))
    )
