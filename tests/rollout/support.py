"""Two versions of a small task, a fake model on a real socket, and a project on disk.

Version 1.0.0 and 1.1.0 of ``title_extraction`` differ in their prompt: 1.1.0's text starts with
``[v2]``, so the fake model's :class:`Behaviour` can answer each version its own way. Every
posting ``"Posting N: TITLE wanted"`` has the true title ``TITLE``; the external verifier
``title_check`` passes an output exactly when its title is the true one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from tlm.catalog import Catalog
from tlm.definition.loader import parse_definition
from tlm.definition.model import TaskDefinition
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.testing import FakeOpenAIServer
from tlm.testing.replies import Reply, chat_completion

TASK = "title_extraction"
TITLES = ("Engineer", "Designer", "Analyst", "Manager", "Nurse", "Chef", "Pilot", "Teacher")
V1_PROMPT_TOKENS = 400
V2_PROMPT_TOKENS = 200  # the new prompt is shorter: cheaper per call


def posting(index: int) -> dict[str, str]:
    """The ``index``-th input; its true title is ``true_title(index)``."""
    return {"posting": f"Posting {index}: {true_title(index)} wanted"}


def true_title(index: int) -> str:
    return TITLES[index % len(TITLES)]


def title_in(prompt: str) -> str:
    """The true title of the posting a prompt is about."""
    return prompt.split(": ", 2)[-1].removesuffix(" wanted").split()[-1]


def document(version: str, verification: Mapping[str, Any]) -> dict[str, Any]:
    marker = "[v2] " if version != "1.0.0" else ""
    return {
        "id": TASK,
        "name": "Title extraction",
        "description": "Extract the job title from a posting.",
        "version": version,
        "input": {
            "schema": {
                "type": "object",
                "properties": {"posting": {"type": "string"}},
                "required": ["posting"],
            },
            "examples": [posting(0)],
            "validations": [],
        },
        "output": {
            "schema": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
                "required": ["title"],
            },
            "examples": [{"title": "Engineer"}],
            "validations": [],
        },
        "prompts": [
            {
                "id": "standard",
                "text": marker + "Extract the job title from: {{posting}}",
                "template_variables": ["posting"],
                "usage_conditions": {"default": True},
            }
        ],
        "verification": dict(verification),
        "model_ranking_criteria": {
            "quality_priority": 1.0,
            "speed_priority": 0.0,
            "context_size": "small",
        },
    }


NONE = {"method": "none", "parameters": {}, "fallback_strategy": "fail"}
CHECKED = {
    "method": "external",
    "parameters": {"function": "title_check"},
    "fallback_strategy": "use_highest_ranked_model",
}


def definitions(verification: Mapping[str, Any] = NONE) -> tuple[TaskDefinition, ...]:
    return tuple(
        parse_definition(document(v, verification), source=f"{TASK}/{v}")
        for v in ("1.0.0", "1.1.0")
    )


async def title_check(payload: Mapping[str, Any]) -> bool:
    """The external verifier: the output's title is the posting's true title."""
    return bool(payload["output"].get("title") == title_in(payload["input"]["posting"]))


Answer = Callable[[str, int], str]
"""``(true title, how many calls this version had before) -> the title answered``."""


def right(title: str, calls: int) -> str:
    return title


@attrs.define
class Behaviour:
    """How the fake model answers each version; counts the calls per version."""

    v1: Answer = right
    v2: Answer = right
    calls: dict[str, int] = attrs.Factory(lambda: {"1.0.0": 0, "1.1.0": 0})

    def __call__(self, body: dict[str, Any]) -> Reply:
        prompt = body["messages"][-1]["content"]
        version = "1.1.0" if "[v2]" in prompt else "1.0.0"
        answer = self.v2 if version == "1.1.0" else self.v1
        title = answer(title_in(prompt), self.calls[version])
        self.calls[version] += 1
        tokens = V2_PROMPT_TOKENS if version == "1.1.0" else V1_PROMPT_TOKENS
        text = json.dumps({"title": title})
        return Reply(body=chat_completion(text, prompt_tokens=tokens, completion_tokens=10))


def catalog_data(server: FakeOpenAIServer) -> dict[str, Any]:
    return {
        "version": 1,
        "models": [
            {
                "id": "model-a",
                "provider": "fake",
                "api": "openai",
                "provider_model": "wire-model-a",
                "base_url": server.base_url,
                "context_window": 32_768,
                "input_price_per_mtok": 1.0,
                "output_price_per_mtok": 2.0,
                "structured_output": "json_schema",
                "prior_quality": 0.9,
                "prior_latency_s": 1.0,
            }
        ],
    }


def engine(
    server: FakeOpenAIServer,
    data_dir: Path,
    verification: Mapping[str, Any] = NONE,
) -> Engine:
    """An engine over both versions, the fake model and a data directory."""
    config = EngineConfig(data_dir=data_dir, models=("model-a",), cache=False, env={})
    return Engine(
        config,
        registry=DefinitionRegistry(definitions(verification)),
        catalog=Catalog.from_data(catalog_data(server)),
        functions={"title_check": title_check},
    )


def write_project(root: Path, server: FakeOpenAIServer, verification: Mapping[str, Any]) -> Path:
    """A definitions folder with both versions and the catalog; returns it."""
    folder = root / "definitions" / "tasks" / TASK
    folder.mkdir(parents=True)
    for version in ("1.0.0", "1.1.0"):
        (folder / f"{version}.json").write_text(json.dumps(document(version, verification)))
    (root / "definitions" / "models.json").write_text(json.dumps(catalog_data(server)))
    return root / "definitions"
