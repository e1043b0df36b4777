"""Replay evaluation: re-run recorded inputs through a new task version and compare.

:func:`start_replay` picks the task's recorded inputs and their references
(:mod:`tlm.rollout.references`) and stores them as a run; :func:`run_replay` executes each pending
input on the new version — and on the current one where the input has no reference — under one
cost budget shared by the whole run, storing each input's outcome as it completes. A run stopped
by its budget (or a crash) is resumed by calling :func:`run_replay` again: only pending inputs run.
Outputs are compared with the task's own similarity metric and threshold (its consensus settings,
else the structured metric at 0.8); :func:`tlm.rollout.report.summarise` turns a run into figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from tlm.budget import BudgetLedger
from tlm.definition.model import Budget, ConsensusParams, TaskDefinition
from tlm.errors import BudgetExceeded, TLMError
from tlm.rollout.records import EVAL_RUN_KEY
from tlm.rollout.references import gather_items
from tlm.rollout.repository import Rollouts
from tlm.rollout.state import EvalItem, EvalRun
from tlm.similarity.base import prepare_metric

if TYPE_CHECKING:
    from tlm.engine.engine import Engine

__all__ = ("similarity_settings", "start_replay", "run_replay", "EVAL_RUN_KEY")


def similarity_settings(definition: TaskDefinition) -> tuple[str, float]:
    """The metric name and agreement threshold a task's outputs are compared with."""
    params = definition.verification.parameters
    if isinstance(params, ConsensusParams):
        return params.similarity_metric, params.similarity_threshold
    return "structured", 0.8


async def start_replay(
    engine: Engine,
    store: Rollouts,
    task_id: str,
    new_version: str,
    current_version: str,
    *,
    since: datetime | None = None,
    limit: int | None = None,
    max_cost_usd: float | None = None,
) -> EvalRun:
    """Create a run over the task's recorded inputs (nothing is executed yet).

    Raises:
        TLMError: the engine has no execution store, or no input of the task is recorded.
    """
    engine.definition(task_id, new_version)  # both versions must exist (raises otherwise)
    engine.definition(task_id, current_version)
    executions = engine.store
    if executions is None:
        raise TLMError("replay evaluation reads the execution log: the store is turned off")
    queue = engine.review_queue

    def gather() -> list[EvalItem]:
        reviews = queue.list(status=None) if queue is not None else []
        return gather_items(executions, reviews, task_id, current_version, since=since, limit=limit)

    items = await anyio.to_thread.run_sync(gather)
    if not items:
        window = f" since {since:%Y-%m-%d %H:%M}" if since else ""
        raise TLMError(f"no recorded input of {task_id}{window} to replay")
    settings = {
        "since": since.isoformat() if since else None,
        "limit": limit,
        "max_cost_usd": max_cost_usd,
    }
    return await anyio.to_thread.run_sync(
        lambda: store.create_run(task_id, new_version, current_version, settings, items)
    )


async def _attempt(
    engine: Engine, run: EvalRun, version: str, value: Any, ledger: BudgetLedger
) -> dict[str, Any]:
    """Execute one input on one version; what happened, as JSON-ready data."""
    spent_before = ledger.spent_usd
    options = {"cache": False, "metadata": {EVAL_RUN_KEY: run.id}, "tags": ("tlm-eval",)}
    try:
        result = await engine.execute(
            run.task_id, value, version=version, options=options, budget=ledger
        )
    except BudgetExceeded:
        raise
    except TLMError as exc:
        return {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}"[:500],
            "passed": False,
            "cost_usd": ledger.spent_usd - spent_before,
            "latency_s": None,
            "output": None,
            "execution_id": getattr(exc, "execution_id", None),
        }
    return {
        "status": result.status,
        "error": None,
        "passed": result.verdict.passed if result.verdict is not None else None,
        "cost_usd": result.cost_usd,
        "latency_s": result.latency_s,
        "output": result.output,
        "execution_id": result.execution_id,
    }


async def _score(engine: Engine, definition: TaskDefinition, a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    name, _ = similarity_settings(definition)
    metric = engine.metrics.get(name)
    await prepare_metric(metric, [a, b])
    return float(metric.score(a, b))


async def run_replay(
    engine: Engine, store: Rollouts, run: EvalRun, *, concurrency: int = 4
) -> EvalRun:
    """Execute the run's pending inputs; returns the run as stored afterwards.

    The run's ``max_cost_usd`` (what it has spent already counts) caps the whole run: when it
    is reached the run is marked ``stopped`` and can be resumed with a larger budget.
    """
    definition = engine.definition(run.task_id, run.new_version)
    limit = run.settings.get("max_cost_usd")
    left = None if limit is None else max(float(limit) - run.spent_usd, 0.0)
    ledger = BudgetLedger(Budget(max_cost_usd=left))
    pending = await anyio.to_thread.run_sync(lambda: store.items(run.id, pending_only=True))
    stopped = left is not None and left <= 0.0 and bool(pending)
    slots = anyio.CapacityLimiter(max(concurrency, 1))

    async def one(item: EvalItem) -> None:
        nonlocal stopped
        async with slots:
            if stopped:
                return
            try:
                new = await _attempt(engine, run, run.new_version, item.input, ledger)
                current: Mapping[str, Any] | None = None
                if item.reference_kind is None:
                    current = await _attempt(engine, run, run.current_version, item.input, ledger)
            except BudgetExceeded:
                stopped = True
                return
            baseline = current if current is not None else item.recorded
            reference = item.reference if item.reference_kind is not None else None
            outcome = {
                "new": new,
                "current": current,
                "compared_with": "reference" if reference is not None else "current",
                "similarity_new": await _score(
                    engine,
                    definition,
                    new["output"],
                    reference if reference is not None else (current or {}).get("output"),
                ),
                "similarity_current": await _score(
                    engine,
                    definition,
                    None if baseline is None else baseline.get("output"),
                    reference,
                ),
            }
            cost = new["cost_usd"] + (current["cost_usd"] if current is not None else 0.0)
            await anyio.to_thread.run_sync(
                lambda: store.finish_item(run.id, item.input_hash, outcome, cost)
            )

    async with anyio.create_task_group() as tg:
        for item in pending:
            tg.start_soon(one, item)
    left_over = await anyio.to_thread.run_sync(lambda: store.items(run.id, pending_only=True))
    status = "stopped" if left_over else "done"
    await anyio.to_thread.run_sync(lambda: store.set_run_status(run.id, status))
    return await anyio.to_thread.run_sync(lambda: store.run(run.id))
