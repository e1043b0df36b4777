"""One input as the engine would ask for it: prepared by the engine's own stages, its request
built by the engine's own builder, so a batched request is exactly the synchronous one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import attrs

from tlm.catalog import ModelCard
from tlm.engine.budget import BudgetLedger
from tlm.engine.compiled import CompiledTask
from tlm.engine.execution import (
    Job,
    build_request,
    candidate_messages,
    new_job,
    prepare,
    run_stage,
)
from tlm.engine.result import ExecuteOptions
from tlm.engine.runtime import Runtime
from tlm.engine.selection import estimate_tokens
from tlm.errors import ConfigurationError
from tlm.providers.base import ChatRequest, Usage

__all__ = (
    "ParsedLine",
    "parse_line",
    "prepared_job",
    "primary_request",
    "request_sha",
    "worst_case",
)


@attrs.frozen
class ParsedLine:
    """An input line: its value, or (when it is not JSON) its text and where it breaks."""

    value: Any
    error: str | None = None


def parse_line(text: str, *, source: str, line: int) -> ParsedLine:
    """The JSON value of one input line; a broken line keeps its text and a located error."""
    try:
        return ParsedLine(json.loads(text))
    except json.JSONDecodeError as exc:
        return ParsedLine(text, f"{source}:{line} column {exc.colno}: invalid JSON: {exc.msg}")


async def prepared_job(
    runtime: Runtime,
    task: CompiledTask,
    value: Any,
    options: ExecuteOptions,
    *,
    line: int,
    execution_id: str | None = None,
    parent: BudgetLedger | None = None,
) -> Job:
    """A job for one input after the engine's prepare stage (validated, rendered, ranked)."""
    job = new_job(
        runtime, task, value, options, index=line, parent_ledger=parent, execution_id=execution_id
    )
    await run_stage(job, prepare)
    return job


def batch_model(job: Job) -> str:
    """The best-ranked model for ``job`` whose provider sells a batch API.

    Raises:
        ConfigurationError: none of the ranked models has batch prices in the catalog.
    """
    for model in job.ranked:
        if job.runtime.card(model).batchable:
            return model
    raise ConfigurationError(
        f"none of the models for task {job.definition.id!r} has a batch API in the catalog "
        f"(ranked: {', '.join(job.ranked) or 'none'}); configure one (TLM_MODELS, --model), "
        "or run without --provider-batch"
    )


def primary_request(job: Job, model: str) -> ChatRequest:
    """The primary call's request on ``model``, exactly as :func:`run_candidate` sends it."""
    assert job.variant is not None
    messages = candidate_messages(job, model, job.variant)
    schema = job.definition.output.schema if job.options.structured_output else None
    return build_request(job, model, messages, output_schema=schema)


def request_sha(request: ChatRequest) -> str:
    """A fingerprint of what the request asks (a resumed run re-renders and compares)."""
    data = {
        "model": request.model,
        "messages": [[m.role, m.content] for m in request.messages],
        "schema": request.output_schema,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "seed": request.seed,
    }
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def worst_case(request: ChatRequest, card: ModelCard) -> float:
    """USD at batch prices if the prompt is as long as estimated and the answer uses every
    token it may (``max_tokens``, else the card's output limit, else the rest of the window)."""
    text = "".join(m.content for m in request.messages)
    if request.output_schema is not None:
        text += json.dumps(request.output_schema)
    prompt = estimate_tokens(text)
    output = request.max_tokens or card.max_output_tokens or max(card.context_window - prompt, 0)
    return card.cost(Usage(prompt, output), batch=True)
