"""Engine test fixtures: a catalog, task definitions, tlm.testing's scripted provider."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tlm.catalog import Catalog
from tlm.definition.loader import parse_definition
from tlm.definition.model import TaskDefinition
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.providers.base import ChatRequest
from tlm.testing import ScriptedModels

__all__ = ("MODELS", "ScriptedModels", "base_task", "catalog_data", "make_task", "reply")

MODELS = ("model-a", "model-b", "model-c")


def catalog_data(models: tuple[str, ...] = MODELS, *, price: float = 1.0) -> dict[str, Any]:
    """A catalog of fake models, best first by prior quality, $1/$2 per million tokens."""
    return {
        "version": 1,
        "models": [
            {
                "id": model,
                "provider": "fake",
                "api": "openai",
                "provider_model": model,
                "base_url": "http://127.0.0.1:9/v1",
                "context_window": 32_768,
                "input_price_per_mtok": price,
                "output_price_per_mtok": 2 * price,
                "structured_output": "json_schema",
                "prior_quality": 0.9 - 0.1 * index,
                "prior_latency_s": 1.0,
            }
            for index, model in enumerate(models)
        ],
    }


def base_task(**overrides: Any) -> dict[str, Any]:
    """A small valid definition (extraction of a title from a posting), as JSON."""
    document: dict[str, Any] = {
        "id": "title_extraction",
        "name": "Title extraction",
        "description": "Extract the job title from a posting.",
        "version": "1.0.0",
        "input": {
            "schema": {
                "type": "object",
                "properties": {"posting": {"type": "string"}, "context": {"type": "string"}},
                "required": ["posting"],
            },
            "examples": [{"posting": "Senior Engineer wanted in Berlin"}],
            "validations": ["non_empty_text"],
        },
        "output": {
            "schema": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "skills": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["title"],
            },
            "examples": [{"title": "Senior Engineer"}],
            "validations": [],
        },
        "prompts": [
            {
                "id": "standard",
                "text": "Extract the job title from: {{posting}}",
                "template_variables": ["posting"],
                "usage_conditions": {"default": True},
            },
            {
                "id": "alternate",
                "text": "What is the title of this job? {{posting}}",
                "template_variables": ["posting"],
                "usage_conditions": {"when": "options.alternate == true"},
            },
        ],
        "verification": {"method": "none", "parameters": {}, "fallback_strategy": "fail"},
        "model_ranking_criteria": {
            "quality_priority": 1.0,
            "speed_priority": 0.0,
            "context_size": "small",
        },
    }
    for key, value in overrides.items():
        document[key] = value
    return document


def make_task(**overrides: Any) -> TaskDefinition:
    return parse_definition(copy.deepcopy(base_task(**overrides)), source="test")


@pytest.fixture
def models() -> ScriptedModels:
    return ScriptedModels()


@pytest.fixture
def engine_factory(tmp_path: Path, models: ScriptedModels) -> Callable[..., Engine]:
    """Build an engine over given definitions with the scripted models (store and cache in tmp)."""

    def build(*definitions: TaskDefinition, **config: Any) -> Engine:
        registry = DefinitionRegistry(definitions or (make_task(),))
        catalog = Catalog.from_data(catalog_data())
        settings: dict[str, Any] = {"data_dir": tmp_path / "data", "models": MODELS}
        settings.update(config)
        return Engine(
            EngineConfig(**settings),
            registry=registry,
            catalog=catalog,
            providers=dict.fromkeys(MODELS, models),
        )

    return build


def reply(value: Any) -> Callable[[ChatRequest], str]:
    text = value if isinstance(value, str) else json.dumps(value)
    return lambda request: text
