"""What the scenarios share: the job-extraction task, an instant provider, engines over them.

The benchmark task is the shipped ``job_detail_extraction`` definition (input schema and rules,
output schema and rules, prompt variants) with its verification set to ``none`` unless a scenario
asks otherwise, so one execution is one model call; the reply is a valid extraction.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tlm.catalog import Catalog
from tlm.definition.loader import parse_definition
from tlm.definition.model import TaskDefinition
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.providers.base import ChatRequest, ChatResponse, Provider, Usage

__all__ = (
    "REPO",
    "TASK_ID",
    "MODELS",
    "POSTING",
    "INPUT",
    "OUTPUT",
    "OUTPUT_TEXT",
    "task_document",
    "benchmark_task",
    "catalog_data",
    "InstantProvider",
    "build_engine",
)

REPO = Path(__file__).resolve().parents[1]
TASK_ID = "job_detail_extraction"
MODELS = ("bench-a", "bench-b", "bench-c")

POSTING = (
    "Senior Backend Engineer (Python) - Remote (EU time zones)\n\n"
    "Northwind Logistics is hiring a senior backend engineer for its Routing Platform team. "
    "You will design and build the services that plan delivery routes for 40,000 shipments a "
    "day.\n\nWhat you will do:\n- Design, build and operate Python services (FastAPI, asyncio) "
    "on Kubernetes\n- Own the PostgreSQL data model for orders and routes\n- Mentor two "
    "mid-level engineers\n\nWhat you bring:\n- 5+ years of professional Python development\n"
    "- Strong SQL and PostgreSQL experience\n- Docker and Kubernetes in production\n\n"
    "Apply at jobs@northwind-logistics.example (Maria Keller, Engineering Manager)."
)
INPUT: dict[str, Any] = {"job_posting": POSTING, "job_id": "NW-2024-117"}
OUTPUT: dict[str, Any] = {
    "job_title": "Senior Backend Engineer (Python)",
    "location": "Remote (EU time zones)",
    "responsibilities": [
        "Design, build and operate Python services (FastAPI, asyncio) on Kubernetes",
        "Own the PostgreSQL data model for orders and routes",
        "Mentor two mid-level engineers",
    ],
    "requirements": [
        "5+ years of professional Python development",
        "Strong SQL and PostgreSQL experience",
        "Docker and Kubernetes in production",
    ],
    "contact": "jobs@northwind-logistics.example",
}
OUTPUT_TEXT = json.dumps(OUTPUT)


def task_document(verification: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The shipped job-extraction definition as JSON, verification replaced when given."""
    path = REPO / "definitions" / "tasks" / TASK_ID / "1.1.0.json"
    document: dict[str, Any] = json.loads(path.read_text())
    document["verification"] = dict(
        verification or {"method": "none", "parameters": {}, "fallback_strategy": "fail"}
    )
    document["model_ranking_criteria"] = {
        "quality_priority": 1.0,
        "speed_priority": 0.0,
        "context_size": "small",
    }
    document.pop("budget", None)
    return document


def benchmark_task(verification: Mapping[str, Any] | None = None) -> TaskDefinition:
    """The benchmark task definition (see :func:`task_document`)."""
    return parse_definition(copy.deepcopy(task_document(verification)), source="benchmark")


def catalog_data(
    models: Sequence[str] = MODELS, *, base_url: str = "http://127.0.0.1:9/v1"
) -> dict[str, Any]:
    """A catalog of benchmark models, best first, $0.15/$0.60 per million tokens."""
    return {
        "version": 1,
        "models": [
            {
                "id": model,
                "provider": "bench",
                "api": "openai",
                "provider_model": model,
                "base_url": base_url,
                "context_window": 128_000,
                "input_price_per_mtok": 0.15,
                "output_price_per_mtok": 0.60,
                "structured_output": "json_schema",
                "prior_quality": 0.9 - 0.1 * index,
                "prior_latency_s": 1.0,
            }
            for index, model in enumerate(models)
        ],
    }


@attrs.define
class InstantProvider:
    """An in-process provider answering every request at once with a fixed reply."""

    text: str = OUTPUT_TEXT
    name: str = "bench"
    calls: int = 0
    usage: Usage = attrs.Factory(lambda: Usage(input_tokens=420, output_tokens=80))

    async def complete(self, request: ChatRequest, /) -> ChatResponse:
        """The fixed reply, as a fresh response."""
        self.calls += 1
        return ChatResponse(
            text=self.text,
            model=request.model,
            provider=self.name,
            usage=self.usage,
            finish_reason="stop",
            response_id="bench",
        )

    async def aclose(self) -> None:
        """Nothing to release."""


def build_engine(
    data_dir: Path,
    *,
    providers: Mapping[str, Provider],
    definitions: Sequence[TaskDefinition] | None = None,
    models: Sequence[str] = MODELS,
    store: bool = True,
    cache: bool = False,
    catalog: Catalog | None = None,
    database: str | None = None,
) -> Engine:
    """An engine over the benchmark task(s) and models, state under ``data_dir`` (or in the
    PostgreSQL ``database``)."""
    registry = DefinitionRegistry(tuple(definitions or (benchmark_task(),)))
    config = EngineConfig(
        data_dir=data_dir, models=tuple(models), store=store, cache=cache, otlp_endpoint=""
    )
    if database is not None:
        config = attrs.evolve(config, database=database)
    return Engine(
        config,
        registry=registry,
        catalog=catalog or Catalog.from_data(catalog_data(models)),
        providers=dict(providers),
    )
