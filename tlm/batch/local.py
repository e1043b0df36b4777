"""A task over a JSONL file, synchronously: :meth:`tlm.Engine.map` with bounded memory.

A re-run skips the inputs whose execution already succeeded (:mod:`tlm.batch.resume`), so a
crashed batch continues where it stopped. Inputs are read lazily, at most ``max_in_flight``
executions are in progress, and each output line is written as its execution finishes, keyed by
the input's line number (so the output is in completion order). A line that is not JSON still
ends as one (failed) execution record, and its output line says where it breaks.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio

from tlm.batch.driver import BatchReport
from tlm.batch.requests import ParsedLine, parse_line
from tlm.batch.resume import carry_over
from tlm.definition.model import Budget
from tlm.engine.budget import BudgetLedger
from tlm.engine.result import ExecuteOptions, ExecutionResult
from tlm.errors import InputInvalid

__all__ = ("run_local_batch", "result_line", "engine_report")


async def run_local_batch(
    engine: Any,
    task: str,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    version: str | None = None,
    options: ExecuteOptions | Mapping[str, Any] | None = None,
    max_cost: float | None = None,
    max_in_flight: int = 16,
    on_done: Callable[[ExecutionResult], None] | None = None,
    resume: bool = True,
) -> BatchReport:
    """Run ``task`` on every line of ``input_path``, one output line per input line.

    With ``resume`` (the default) the inputs whose execution already succeeded for this task
    version are not run again: their lines are carried over into ``output_path`` (counted in
    ``report.skipped``). ``resume=False`` runs every input and overwrites ``output_path``.

    ``max_cost`` bounds the whole run (each call is admitted against it, so the run stops
    spending before it would go over; the remaining inputs are recorded as budget failures).
    """
    ledger = BudgetLedger(Budget(max_cost_usd=max_cost)) if max_cost is not None else None
    lines: dict[int, tuple[int, ParsedLine]] = {}
    source = str(input_path)
    await engine.open()
    resolved = engine.compiled(task, version).definition.version
    skip: set[int] = set()
    if resume:
        skip = await anyio.to_thread.run_sync(
            carry_over, engine.store, task, resolved, input_path, output_path
        )
    else:
        await anyio.Path(output_path).write_text("", encoding="utf-8")

    async def inputs() -> AsyncIterator[Any]:
        index = 0
        async with await anyio.open_file(input_path, encoding="utf-8") as handle:
            number = 0
            async for text in handle:
                number += 1
                if not text.strip() or number in skip:
                    continue
                parsed = parse_line(text.rstrip("\n"), source=source, line=number)
                lines[index] = (number, parsed)
                index += 1
                yield parsed.value

    inputs_seen = finished = ok = 0
    cost = 0.0
    async with await anyio.open_file(output_path, "a", encoding="utf-8") as output:
        stream = engine.map(
            task,
            inputs(),
            version=version,
            options=options,
            max_in_flight=max_in_flight,
            budget=ledger,
        )
        async with stream as results:
            async for result in results:
                number, parsed = lines.pop(result.index)
                note = parsed.error if isinstance(result.error, InputInvalid) else None
                await output.write(
                    json.dumps(result_line(number, result, note), ensure_ascii=False)
                )
                await output.write("\n")
                finished += 1
                ok += result.error is None
                cost += result.cost_usd
                if on_done is not None:
                    on_done(result)
            inputs_seen = results.fed
    return engine_report("local", inputs_seen, finished, ok, cost, len(skip), output_path)


def engine_report(
    run_id: str, inputs: int, finished: int, ok: int, cost: float, skipped: int, output_path: Any
) -> BatchReport:
    """The report of a batch the engine ran itself (locally or on Ray): ``skipped`` inputs
    carried over from an earlier run count as finished and ok."""
    return BatchReport(
        run_id=run_id,
        status="done",
        inputs=inputs + skipped,
        finished=finished + skipped,
        ok=ok + skipped,
        failed=finished - ok,
        cost_usd=cost,
        worst_case_usd=0.0,
        batches=(),
        output_path=str(output_path),
        skipped=skipped,
    )


def result_line(number: int, result: ExecutionResult, note: str | None) -> dict[str, Any]:
    """The output line of one execution, keyed by its input's line number."""
    error = result.error
    return {
        "line": number,
        "execution_id": result.execution_id,
        "status": result.status,
        "output": result.output,
        "error": None
        if error is None
        else {"type": type(error).__name__, "message": note or str(error)},
        "cost_usd": result.cost_usd,
        "models_used": list(result.models_used),
    }
