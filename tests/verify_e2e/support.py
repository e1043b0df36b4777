"""Verification end to end: a real Engine, its real provider pool, fake models on real sockets.

Every model of the catalog is served by its own :class:`tlm.testing.FakeOpenAIServer` (its own
provider name, so each is a separate provider in the pool and its requests are counted apart).
Replies carry fixed usage, so every completed call costs exactly :data:`CALL_USD`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import attrs
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tlm.catalog import Catalog
from tlm.definition.loader import parse_definition
from tlm.definition.model import TaskDefinition
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.similarity import MetricRegistry
from tlm.testing import FakeOpenAIServer, ReplyLike
from tlm.testing.replies import Reply, chat_completion, openai_error

MODELS = ("model-a", "model-b", "model-c", "model-d")
EMBEDDER = "embed-model"
PROMPT_TOKENS = 3000
COMPLETION_TOKENS = 10
CALL_USD = (PROMPT_TOKENS * 1.0 + COMPLETION_TOKENS * 2.0) / 1e6
"""What one completed chat call costs: $1/M input and $2/M output tokens. It is more than the
engine's pre-call estimate, so a budget of N calls admits exactly N."""
EMBED_PRICE_PER_MTOK = 1000.0

Handler = Callable[[dict[str, Any]], ReplyLike | Awaitable[ReplyLike]]

POSTING = {"posting": "Senior Engineer wanted in Berlin"}


def answer(value: Any, *, delay_s: float = 0.0) -> Reply:
    """A chat completion whose content is ``value`` (JSON-encoded unless a string)."""
    text = value if isinstance(value, str) else json.dumps(value)
    body = chat_completion(text, prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS)
    return Reply(body=body, delay_s=delay_s)


def task(verification: Mapping[str, Any], *, task_id: str = "title_extraction") -> TaskDefinition:
    """A small task (the title of a job posting) verified as ``verification`` says."""
    document: dict[str, Any] = {
        "id": task_id,
        "name": "Title extraction",
        "description": "Extract the job title from a posting.",
        "version": "1.0.0",
        "input": {
            "schema": {
                "type": "object",
                "properties": {"posting": {"type": "string"}},
                "required": ["posting"],
            },
            "examples": [POSTING],
            "validations": [],
        },
        "output": {
            "schema": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
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
            }
        ],
        "verification": copy.deepcopy(dict(verification)),
        "model_ranking_criteria": {
            "quality_priority": 1.0,
            "speed_priority": 0.0,
            "context_size": "small",
        },
    }
    return parse_definition(document, source="test")


@attrs.define
class Fleet:
    """One fake OpenAI-compatible server per model, plus one for embeddings."""

    servers: dict[str, FakeOpenAIServer]
    handlers: dict[str, Handler]
    """Per model, what answers once the server's pushed replies are used up."""
    exporter: InMemorySpanExporter = attrs.Factory(InMemorySpanExporter)

    def catalog(self) -> Catalog:
        cards = [
            {
                "id": model,
                "provider": f"fake-{model}",
                "api": "openai",
                "provider_model": f"wire-{model}",
                "base_url": server.base_url,
                "context_window": 32_768,
                "input_price_per_mtok": EMBED_PRICE_PER_MTOK if model == EMBEDDER else 1.0,
                "output_price_per_mtok": 0.0 if model == EMBEDDER else 2.0,
                "structured_output": "json_schema",
                "embeddings": model == EMBEDDER,
                "prior_quality": 0.9 - 0.1 * index,
                "prior_latency_s": 1.0,
            }
            for index, (model, server) in enumerate(self.servers.items())
        ]
        return Catalog.from_data({"version": 1, "models": cards})

    def __getitem__(self, model: str) -> FakeOpenAIServer:
        return self.servers[model]

    def calls(self, model: str) -> int:
        """Chat requests the model's server received (started, whether answered or not)."""
        return sum(1 for r in self.servers[model].requests if r.path.endswith("/completions"))

    def model_spans(self) -> list[ReadableSpan]:
        """The finished model-call spans, in end order."""
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith("chat ")]


def _unscripted(body: dict[str, Any]) -> ReplyLike:
    return openai_error(400, f"no reply scripted for {body.get('model')}")


def embedding(text: str) -> list[float]:
    """The embedder's vectors: every text about an engineer points one way, the rest another."""
    return [1.0, 0.0] if "engineer" in text.lower() else [0.0, 1.0]


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    handlers: dict[str, Handler] = {}

    def dispatcher(model: str) -> Handler:
        async def handle(body: dict[str, Any]) -> ReplyLike:
            reply = handlers.get(model, _unscripted)(body)
            return reply if isinstance(reply, Reply | Mapping | str) else await reply

        return handle

    async with AsyncExitStack() as stack:
        servers = {
            model: await stack.enter_async_context(FakeOpenAIServer(dispatcher(model)))
            for model in MODELS
        }
        servers[EMBEDDER] = await stack.enter_async_context(FakeOpenAIServer(embed=embedding))
        yield Fleet(servers, handlers)


EngineFactory = Callable[..., Engine]


@pytest.fixture
def engine_factory(tmp_path: Path, fleet: Fleet) -> EngineFactory:
    """Build an engine over ``definition`` with the fleet's catalog and the real provider pool."""

    def build(
        definition: TaskDefinition,
        *,
        models: tuple[str, ...] = MODELS,
        functions: Mapping[str, Any] | None = None,
        metrics: MetricRegistry | None = None,
        data_dir: Path | None = None,
    ) -> Engine:
        config = EngineConfig(
            data_dir=data_dir or tmp_path / "data",
            models=models,
            cache=False,
            env={},
        )
        return Engine(
            config,
            registry=DefinitionRegistry((definition,)),
            catalog=fleet.catalog(),
            span_processors=[SimpleSpanProcessor(fleet.exporter)],
            functions=functions,
            metrics=metrics,
        )

    return build
