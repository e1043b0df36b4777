"""Workflow fixtures: small chained tasks, a scripted model that answers by task, an engine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import anyio
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.engine.conftest import ScriptedModels, catalog_data, make_task
from tlm.catalog import Catalog
from tlm.definition.model import TaskDefinition
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.errors import BadRequest
from tlm.providers.base import ChatRequest
from tlm.workflow import TaskRef


class ExtractIn(TypedDict):
    posting: str


class ExtractOut(TypedDict):
    title: str
    skills: list[str]


class DecomposeIn(TypedDict):
    skill_name: str
    context: NotRequired[str]


class DecomposeOut(TypedDict):
    parts: list[str]


class TitleIn(TypedDict):
    title: str


class ClassifyIn(TypedDict):
    title: str
    description: str


class ClassifyOut(TypedDict):
    level: str


EXTRACT = TaskRef[ExtractIn, ExtractOut]("t_extract", "1.0.0")
DECOMPOSE = TaskRef[DecomposeIn, DecomposeOut]("t_decompose", "1.0.0")
SHOUT = TaskRef[TitleIn, TitleIn]("t_shout", "1.0.0")
CLASSIFY = TaskRef[ClassifyIn, ClassifyOut]("t_classify", "1.0.0")


def _task(task_id: str, inputs: dict[str, Any], outputs: dict[str, Any], prompt: str) -> Any:
    variables = sorted(inputs["required"])
    return make_task(
        id=task_id,
        name=task_id,
        description=f"Test task {task_id}.",
        input={"schema": {"type": "object", **inputs}, "examples": [], "validations": []},
        output={"schema": {"type": "object", **outputs}, "examples": [], "validations": []},
        prompts=[
            {
                "id": "standard",
                "text": prompt,
                "template_variables": variables,
                "usage_conditions": {"default": True},
            }
        ],
    )


def definitions() -> list[TaskDefinition]:
    string = {"type": "string"}
    strings = {"type": "array", "items": string}
    return [
        _task(
            "t_extract",
            {"properties": {"posting": string}, "required": ["posting"]},
            {"properties": {"title": string, "skills": strings}, "required": ["title", "skills"]},
            "EXTRACT {{posting}}",
        ),
        _task(
            "t_decompose",
            {
                "properties": {"skill_name": string, "context": string},
                "required": ["skill_name"],
            },
            {"properties": {"parts": strings}, "required": ["parts"]},
            "DECOMPOSE {{skill_name}}",
        ),
        _task(
            "t_shout",
            {"properties": {"title": string}, "required": ["title"]},
            {"properties": {"title": string}, "required": ["title"]},
            "SHOUT {{title}}",
        ),
        _task(
            "t_classify",
            {
                "properties": {"title": string, "description": string},
                "required": ["title", "description"],
            },
            {"properties": {"level": {"enum": ["junior", "senior"]}}, "required": ["level"]},
            "CLASSIFY {{title}} {{description}}",
        ),
    ]


def prompt_of(request: ChatRequest) -> str:
    return request.messages[-1].content


class Script:
    """Replies by task (the prompt's first word); ``boom`` fails, ``hang`` waits forever."""

    def __init__(self) -> None:
        self.gate: Callable[[str], Awaitable[None]] | None = None
        self.started: list[str] = []

    async def __call__(self, request: ChatRequest) -> str:
        prompt = prompt_of(request)
        kind, _, arg = prompt.partition(" ")
        arg = arg.strip()
        self.started.append(arg)
        if self.gate is not None:
            await self.gate(arg)
        if arg.startswith("boom"):
            raise BadRequest("scripted failure", provider="fake", model=request.model, status=400)
        if arg.startswith("hang"):
            await anyio.sleep_forever()
        if kind == "EXTRACT":
            words = arg.split()
            return json.dumps({"title": words[0], "skills": words[1:]})
        if kind == "DECOMPOSE":
            return json.dumps({"parts": [f"{arg}-1", f"{arg}-2"]})
        if kind == "SHOUT":
            return json.dumps({"title": arg.upper()})
        return json.dumps({"level": "senior"})


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def scripted(script: Script) -> ScriptedModels:
    return ScriptedModels(handlers={"*": script})


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def engine(
    data_dir: Path, scripted: ScriptedModels, spans: InMemorySpanExporter
) -> AsyncIterator[Engine]:
    config = EngineConfig(data_dir=data_dir, models=("model-a",), cache=False)
    async with Engine(
        config,
        registry=DefinitionRegistry(definitions()),
        catalog=Catalog.from_data(catalog_data(("model-a",))),
        providers={"model-a": scripted},
        span_processors=[SimpleSpanProcessor(spans)],
    ) as opened:
        yield opened
