"""Executions for an observability backend: a success, a failed verification, a provider error.

A real :class:`tlm.Engine` over its real provider pool talks to one
:class:`tlm.testing.FakeOpenAIServer` on 127.0.0.1 that plays two OpenAI models: the primary
(catalog id ``gpt-4o-mini``, sent on the wire as ``gpt-4o-mini-2024-07-18``) and the reviewer of
hierarchical verification (``gpt-4o`` / ``gpt-4o-2024-08-06``). Spans go over OTLP/HTTP to
``endpoint``. Run by the interop test, and by hand to feed a backend for screenshots::

    python -m tests.interop.scenario --endpoint http://127.0.0.1:6006 --data-dir /tmp/tlm-run
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from tlm.catalog import Catalog
from tlm.definition.loader import parse_definition
from tlm.definition.model import TaskDefinition
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.errors import TLMError
from tlm.providers.retry import RetryPolicy
from tlm.testing import FakeOpenAIServer, chat_completion, openai_error
from tlm.testing.replies import Reply

__all__ = (
    "PRIMARY",
    "REVIEWER",
    "WIRE",
    "CASES",
    "Outcome",
    "run_scenario",
    "task",
    "task_document",
    "catalog_data",
    "answer",
)

PRIMARY = "gpt-4o-mini"
REVIEWER = "gpt-4o"
WIRE = {PRIMARY: "gpt-4o-mini-2024-07-18", REVIEWER: "gpt-4o-2024-08-06"}
"""Catalog id → the provider's model name sent on the wire."""
PRICES = {PRIMARY: (0.15, 0.60), REVIEWER: (2.50, 10.0)}
"""USD per million (input, output) tokens."""
PROMPT_TOKENS = 1200
COMPLETION_TOKENS = 40

CASES: Mapping[str, str] = {
    "Senior Engineer wanted in Berlin": "success",
    "Head Chef for a busy bistro": "failed_verification",
    "Night porter, hotel in Lyon": "provider_error",
}
"""Posting → what happens to it (the reviewer rejects the chef; the porter's call fails)."""


def task_document() -> dict[str, Any]:
    """Extract the job title; a reviewer model checks it (hierarchical, fail on rejection)."""
    return {
        "id": "title_extraction",
        "name": "Title extraction",
        "description": "Extract the job title from a posting.",
        "version": "1.0.0",
        "input": {
            "schema": {
                "type": "object",
                "properties": {"posting": {"type": "string"}},
                "required": ["posting"],
            },
            "examples": [{"posting": "Senior Engineer wanted in Berlin"}],
        },
        "output": {
            "schema": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
                "required": ["title"],
            },
            "examples": [{"title": "Senior Engineer"}],
        },
        "prompts": [
            {
                "id": "standard",
                "text": "Extract the job title from: {{posting}}",
                "template_variables": ["posting"],
                "usage_conditions": {"default": True},
            }
        ],
        "verification": {
            "method": "hierarchical",
            "parameters": {
                "verification_prompt": "Is {{output}} the job title of: {{posting}}?",
                "verifier_model": REVIEWER,
                "min_confidence": 0.8,
            },
            "fallback_strategy": "fail",
        },
        "model_ranking_criteria": {"quality_priority": 1.0, "context_size": "small"},
    }


def task() -> TaskDefinition:
    """The scenario's task, parsed."""
    return parse_definition(task_document(), source="interop scenario")


def catalog_data(base_url: str) -> dict[str, Any]:
    """Both models on the fake server, as provider ``openai`` (no API key needed)."""
    return {
        "version": 1,
        "models": [
            {
                "id": model,
                "provider": "openai",
                "api": "openai",
                "provider_model": WIRE[model],
                "base_url": base_url,
                "context_window": 128_000,
                "input_price_per_mtok": PRICES[model][0],
                "output_price_per_mtok": PRICES[model][1],
                "structured_output": "json_schema",
                "prior_quality": 0.9 if model == PRIMARY else 0.5,
                "prior_latency_s": 1.0,
            }
            for model in (PRIMARY, REVIEWER)
        ],
    }


def catalog(base_url: str) -> Catalog:
    """:func:`catalog_data` as a catalog."""
    return Catalog.from_data(catalog_data(base_url))


def _reply(content: Any, model: str) -> Reply:
    body = chat_completion(
        json.dumps(content),
        model=model,
        prompt_tokens=PROMPT_TOKENS,
        completion_tokens=COMPLETION_TOKENS,
    )
    return Reply(body=body)


def answer(body: dict[str, Any]) -> Reply:
    """The fake server's answer: the primary extracts, the reviewer judges."""
    text = json.dumps(body.get("messages", []))
    posting = next((p for p in CASES if p in text), "")
    case = CASES.get(posting, "success")
    model = str(body.get("model"))
    if case == "provider_error":
        return openai_error(503, "The engine is currently overloaded", type="server_error")
    if model == WIRE[PRIMARY]:
        title = posting.split(" wanted")[0].split(" for ")[0].split(",")[0]
        return _reply({"title": title}, model)
    passed = case != "failed_verification"
    issues = [] if passed else ["A head chef posting: the title is right but the seniority is not"]
    return _reply(
        {"passed": passed, "confidence": 0.95, "issues": issues, "suggestions": []}, model
    )


def _options(
    session_id: str | None, tags: tuple[str, ...], metadata: Mapping[str, str]
) -> dict[str, Any]:
    """Grouping options, when this TLM has them (the scenario also runs against older code)."""
    from tlm.engine.result import ExecuteOptions

    known = inspect.signature(ExecuteOptions).parameters
    wanted: dict[str, Any] = {
        "session_id": session_id,
        "user_id": "interop-user" if session_id else None,
        "tags": tags,
        "metadata": dict(metadata),
    }
    return {k: v for k, v in wanted.items() if k in known and v}


class Outcome:
    """What one execution returned: its execution id, status and error type (if it failed)."""

    def __init__(self, posting: str, execution_id: str | None, status: str, error: str | None):
        self.posting = posting
        self.case = CASES[posting]
        self.execution_id = execution_id
        self.status = status
        self.error = error

    def __repr__(self) -> str:
        return f"Outcome({self.case}, {self.execution_id}, {self.status}, {self.error})"


async def run_scenario(
    endpoint: str,
    data_dir: Path,
    *,
    session_id: str | None = None,
    tags: tuple[str, ...] = ("interop",),
    metadata: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """Run the three executions with spans exported to ``endpoint``; one outcome per case."""
    outcomes: list[Outcome] = []
    async with FakeOpenAIServer(answer) as server:
        config = EngineConfig(
            data_dir=data_dir,
            models=(PRIMARY, REVIEWER),
            cache=False,
            otlp_endpoint=endpoint,
            env={},
        )
        options = _options(session_id, tags, metadata or {"suite": "interop"})
        async with Engine(
            config,
            registry=DefinitionRegistry((task(),)),
            catalog=catalog(server.base_url),
            retry=RetryPolicy(max_attempts=2, base_delay_s=0.01),
        ) as engine:
            for posting in CASES:
                try:
                    result = await engine.execute(
                        "title_extraction", {"posting": posting}, options=options or None
                    )
                    outcomes.append(Outcome(posting, result.execution_id, result.status, None))
                except TLMError as exc:
                    execution_id = getattr(exc, "execution_id", None)
                    outcomes.append(Outcome(posting, execution_id, "failed", type(exc).__name__))
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="OTLP/HTTP base URL of the backend")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--session-id", default=None)
    args = parser.parse_args()
    outcomes = anyio.run(
        functools.partial(run_scenario, args.endpoint, args.data_dir, session_id=args.session_id)
    )
    for outcome in outcomes:
        print(outcome)


if __name__ == "__main__":
    main()
