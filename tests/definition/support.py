"""Shared helpers for the definition tests: a valid definition to mutate, and fixture paths."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
JOB_DETAIL = FIXTURES / "job_detail_extraction.json"
SKILL_DECOMPOSITION = FIXTURES / "skill_decomposition.json"

_BASE: dict[str, Any] = {
    "id": "summarise",
    "name": "Summarise",
    "description": "Summarise a text.",
    "version": "1.0.0",
    "input": {
        "schema": {
            "type": "object",
            "properties": {"text": {"type": "string"}, "audience": {"type": "string"}},
            "required": ["text"],
        },
        "examples": [{"text": "A long text to summarise.", "audience": "engineers"}],
        "validations": ["non_empty_text"],
    },
    "output": {
        "schema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}, "keywords": {"type": "array"}},
            "required": ["summary"],
        },
        "examples": [{"summary": "Short.", "keywords": ["a"]}],
        "validations": ["has_required_fields"],
    },
    "prompts": [
        {
            "id": "standard",
            "text": "Summarise:\n\n{{text}}",
            "template_variables": ["text"],
            "usage_conditions": {"default": True},
        },
        {
            "id": "for_audience",
            "text": "Summarise for {{audience}}:\n\n{{text}}",
            "template_variables": ["text", "audience"],
            "usage_conditions": {"when": "exists(input.audience)"},
        },
    ],
    "verification": {
        "method": "consensus",
        "parameters": {"similarity_threshold": 0.8, "min_models": 2, "max_models": 3},
        "fallback_strategy": "fail",
    },
}


def definition(**overrides: Any) -> dict[str, Any]:
    """A fresh, valid definition document with top-level keys replaced by ``overrides``."""
    document = copy.deepcopy(_BASE)
    document.update(copy.deepcopy(overrides))
    return document


def fixture(path: Path) -> dict[str, Any]:
    """A design-document example, parsed."""
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def write_task(root: Path, document: dict[str, Any], name: str | None = None) -> Path:
    """Write ``document`` to ``root/<id>/<version>.json`` (or ``name``) and return the path."""
    path: Path = root / str(document["id"]) / (name or f"{document['version']}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path
