"""Content rules: redaction of configured fields and secret-free error messages."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ("REDACTED", "redact", "sanitize_message", "to_json")

REDACTED = "[REDACTED]"

_SECRET_PATTERNS = (
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]+=*"),
    re.compile(
        r"(?i)\b(api[_-]?key|x-api-key|access[_-]?token|token|secret|password|authorization)"
        r"(\"?'?\s*[:=]\s*\"?'?)[^\s\"',&}]+"
    ),
)
_MESSAGE_LIMIT = 500


def redact(value: Any, fields: Collection[str]) -> Any:
    """Return ``value`` with every mapping entry whose key is in ``fields`` replaced, at any depth.

    ``value`` itself is never modified; unchanged sub-trees are shared.
    """
    if not fields:
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if k in fields else redact(v, fields)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, fields) for v in value]
    return value


def sanitize_message(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """Mask anything that looks like an API key or credential and cut ``text`` to ``limit``."""
    for pattern in _SECRET_PATTERNS:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def to_json(value: Any) -> str:
    """Compact JSON; values JSON cannot express are rendered with ``str``."""
    return _dumps(value)
