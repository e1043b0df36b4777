"""Half-price batches: a task run over a JSONL file through the providers' batch APIs.

``run_provider_batch`` plans (every input validated, rendered and ranked by the engine; the
worst case at batch prices summed and checked against the budget before anything is sent),
submits provider batches split by the provider's request and byte limits, polls them with
back-off, downloads their results, and finishes every input through the engine's own stages
(:mod:`tlm.batch.collect`). Re-asks and verification calls are synchronous.

Everything lives in ``<data_dir>/batches.db`` (:mod:`tlm.batch.state`): after a crash or a reboot,
``resume_provider_batch`` collects what finished and resubmits what expired, failed or was
never submitted. ``cancel_provider_batch`` (and Ctrl-C / cancellation of a run) cancels the
provider batches; what they had answered is still finished, the rest is recorded as cancelled.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from tlm.batch.driver import BatchReport, Driver, PollPolicy
from tlm.batch.state import DB_NAME, BatchState, Run
from tlm.engine.result import ExecuteOptions, ExecutionResult, coerce_options
from tlm.errors import BudgetExceeded, TLMError

__all__ = (
    "PollPolicy",
    "BatchReport",
    "run_provider_batch",
    "resume_provider_batch",
    "cancel_provider_batch",
    "batch_state",
)


def batch_state(engine: Any) -> BatchState:
    """The batch state file of ``engine``'s data directory."""
    return BatchState(Path(engine.config.data_dir) / DB_NAME)


async def run_provider_batch(
    engine: Any,
    task: str,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    version: str | None = None,
    options: ExecuteOptions | Mapping[str, Any] | None = None,
    max_cost: float | None = None,
    poll: PollPolicy | None = None,
    max_in_flight: int = 16,
    max_resubmits: int = 3,
    max_requests_per_batch: int | None = None,
    wait: bool = True,
    on_done: Callable[[ExecutionResult], None] | None = None,
) -> BatchReport:
    """Run ``task`` over every line of ``input_path`` through provider batches.

    Each output line of ``output_path`` is keyed by its input's line number; every input ends
    as one execution record, costed at the batch price (plus any synchronous re-ask or
    verification call at the standard price). ``wait=False`` returns once submitted.

    Raises:
        BudgetExceeded: the worst case at batch prices exceeds ``max_cost`` (nothing was sent;
            the message gives the estimate).
        ConfigurationError: no configured model has a batch API, or a key is missing.
    """
    await engine.open()
    compiled = engine.compiled(task, version)
    opts = coerce_options(options)
    state = batch_state(engine)
    try:
        run_id = f"b{random.getrandbits(64):016x}"
        run = state.create_run(
            run_id,
            task_id=compiled.definition.id,
            task_version=compiled.definition.version,
            input_path=_absolute(input_path),
            output_path=_absolute(output_path),
            options=attrs.asdict(opts),
            max_cost=max_cost,
        )
        driver = Driver(engine, state, run, max_in_flight, max_resubmits, max_requests_per_batch)
        await _plan(driver)
        return await driver.drive(poll or PollPolicy(), wait=wait, on_done=on_done)
    finally:
        state.close()


async def resume_provider_batch(
    engine: Any,
    run_id: str | None = None,
    *,
    poll: PollPolicy | None = None,
    max_in_flight: int = 16,
    max_resubmits: int = 3,
    max_requests_per_batch: int | None = None,
    wait: bool = True,
    on_done: Callable[[ExecutionResult], None] | None = None,
) -> BatchReport:
    """Continue run ``run_id`` (default: the newest unfinished one) from its saved state."""
    await engine.open()
    state = batch_state(engine)
    try:
        run = _find_run(state, run_id)
        driver = Driver(engine, state, run, max_in_flight, max_resubmits, max_requests_per_batch)
        if run.status == "planning":  # interrupted before anything was submitted: plan again
            state.delete_items(run.run_id)
            await _plan(driver)
        return await driver.drive(poll or PollPolicy(), wait=wait, on_done=on_done)
    finally:
        state.close()


async def cancel_provider_batch(
    engine: Any,
    run_id: str | None = None,
    *,
    poll: PollPolicy | None = None,
    max_in_flight: int = 16,
    wait: bool = True,
) -> BatchReport:
    """Cancel run ``run_id``'s provider batches, then finish what they answered (unless
    ``wait=False``) and record the rest as cancelled."""
    await engine.open()
    state = batch_state(engine)
    try:
        run = _find_run(state, run_id)
        driver = Driver(engine, state, run, max_in_flight, 0, None)
        await driver.cancel()
        return await driver.drive(poll or PollPolicy(), wait=wait, on_done=None)
    finally:
        state.close()


async def _plan(driver: Driver) -> None:
    """Plan the run and hold it to its budget: refuse it if the worst case does not fit."""
    run, state = driver.run, driver.state
    worst = await driver.plan()
    if run.max_cost is not None and worst > run.max_cost:
        state.set_run_status(run.run_id, "refused")
        inputs = sum(state.counts(run.run_id).values())
        state.delete_items(run.run_id)
        raise BudgetExceeded(
            f"batch refused: {inputs} input(s), worst case ${worst:.6f} at batch prices "
            f"(prompt tokens + max_tokens) exceeds the budget of ${run.max_cost:.6f}",
            spent_usd=0.0,
            elapsed_s=0.0,
            attempts=0,
        )
    state.set_run_status(run.run_id, "running")


def _absolute(path: str | os.PathLike[str]) -> str:
    """The path as stored in the run (absolute: a resume may start anywhere)."""
    return str(Path(path).absolute())


def _find_run(state: BatchState, run_id: str | None) -> Run:
    if run_id is not None:
        return state.run(run_id)
    run = state.latest_unfinished()
    if run is None:
        raise TLMError(f"{state.path}: no unfinished batch run to resume")
    return run
