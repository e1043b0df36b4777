"""One execution as data: the :class:`Job` the stages move along, its budget and deadline."""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from tlm.budget import BudgetLedger, merge_budgets
from tlm.definition.model import Budget, PromptVariant, TaskDefinition
from tlm.engine.json_values import json_safe, json_value_problems
from tlm.engine.result import ExecuteOptions, ExecutionResult, Status
from tlm.errors import (
    BudgetExceeded,
    InputNotJSON,
    Problem,
    ProviderError,
    TLMError,
)
from tlm.providers.base import ChatResponse, Message, Usage
from tlm.verify.base import Candidate, Verdict

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from tlm.engine.compiled import CompiledTask
    from tlm.engine.runtime import Runtime
    from tlm.telemetry.spans import ExecutionSpan


__all__ = (
    "ExecutionContext",
    "Job",
    "Prefetched",
    "Voter",
    "new_job",
    "run_stage",
    "deadline_exceeded",
)


@attrs.define(eq=False)
class Voter:
    """A consensus voter's call started early: its outcome, once done, and how to stop it."""

    scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    done: anyio.Event = attrs.Factory(anyio.Event)
    outcome: Candidate | TLMError | None = None


@attrs.frozen
class Prefetched:
    """A model call's outcome obtained ahead of the job (a provider batch): a response or the
    error the call met, costed at ``batch`` prices when set."""

    outcome: ChatResponse | ProviderError
    batch: bool = True


@attrs.frozen
class ExecutionContext:
    """What one execution runs with, fixed when it starts (immutable; the ledger it holds
    counts the execution's spending, but which ledger it is never changes)."""

    runtime: Runtime
    task: CompiledTask
    input: Any
    """The input as given (or, when it is not JSON, the stand-in the record keeps)."""
    options: ExecuteOptions
    ledger: BudgetLedger
    execution_id: str
    index: int | None = None
    """The input's position in a ``map`` (``None`` for ``execute``)."""
    started_at: float = 0.0
    default_deadline: bool = False
    """Whether the deadline is the engine's ``default_deadline_s`` (no budget set one)."""


@attrs.define(eq=False)
class Job:
    """One execution moving through the stages: its fixed :class:`ExecutionContext` and the
    small mutable state the stages fill in. The context's fields read as the job's own
    (``job.runtime`` is ``job.context.runtime``) and cannot be assigned."""

    context: ExecutionContext
    span: ExecutionSpan | None = None
    variant: PromptVariant | None = None
    prompt: str = ""
    ranked: list[str] = attrs.Factory(list)
    key: str | None = None
    primary: Candidate | None = None
    primary_problems: tuple[Problem, ...] = ()
    verdict: Verdict | None = None
    output: Any = None
    status: Status = "unverified"
    fallback_used: str | None = None
    cache_hit: bool = False
    models_used: list[str] = attrs.Factory(list)
    tried: set[str] = attrs.Factory(set)
    voters: dict[str, Voter] = attrs.Factory(dict)
    """Consensus voters started with the primary call, by model, until someone takes them."""
    speculation: TaskGroup | None = None
    """Where voters run; opened around the model-bound stages by :func:`model_stages`."""
    prefetched: dict[tuple[str, tuple[Message, ...]], Prefetched] = attrs.Factory(dict)
    """Answers obtained before the job ran (a provider batch), by (model, messages): the call
    they answer takes them instead of calling the model."""
    usage: Usage = attrs.Factory(Usage)
    cost_usd: float = 0.0
    attempts: int = 0
    error: TLMError | None = None
    """Why the execution failed: an execution error, or a configuration error met at run time."""
    result: ExecutionResult | None = None

    # the context's fields, read-only (C-level getters: as cheap as reading a field)
    if TYPE_CHECKING:

        @property
        def runtime(self) -> Runtime: ...
        @property
        def task(self) -> CompiledTask: ...
        @property
        def input(self) -> Any: ...
        @property
        def options(self) -> ExecuteOptions: ...
        @property
        def ledger(self) -> BudgetLedger: ...
        @property
        def execution_id(self) -> str: ...
        @property
        def index(self) -> int | None: ...
        @property
        def started_at(self) -> float: ...
        @property
        def default_deadline(self) -> bool: ...

    else:
        runtime = property(attrgetter("context.runtime"))
        task = property(attrgetter("context.task"))
        input = property(attrgetter("context.input"))
        options = property(attrgetter("context.options"))
        ledger = property(attrgetter("context.ledger"))
        execution_id = property(attrgetter("context.execution_id"))
        index = property(attrgetter("context.index"))
        started_at = property(attrgetter("context.started_at"))
        default_deadline = property(attrgetter("context.default_deadline"))

    @property
    def definition(self) -> TaskDefinition:
        """The task definition being executed."""
        return self.task.definition

    @property
    def done(self) -> bool:
        """Whether later stages have nothing to do (finished early or failed)."""
        return self.error is not None or self.cache_hit


def new_job(
    runtime: Runtime,
    task: CompiledTask,
    input: Any,
    options: ExecuteOptions,
    *,
    index: int | None = None,
    parent_ledger: BudgetLedger | None = None,
    execution_id: str | None = None,
) -> Job:
    """A job for one execution, with its budget ledger opened now (``execution_id``: a given
    id, e.g. a batch line's; a new random one by default)."""
    limits = merge_budgets(task.definition.budget, options.budget)
    default_deadline = limits.deadline_s is None
    if default_deadline:  # bounded time even without a budget (config: default_deadline_s)
        deadline = runtime.config.default_deadline_s
        limits = Budget(limits.max_cost_usd, deadline, limits.max_attempts)
    ledger = BudgetLedger(limits, clock=runtime.clock, parent=parent_ledger)
    if runtime.recorder is not None:
        runtime.recorder.started()
    problems = json_value_problems(input)
    context = ExecutionContext(
        runtime=runtime,
        task=task,
        # refused when not JSON, and recorded with a stand-in every consumer can carry
        input=json_safe(input) if problems else input,
        options=options,
        ledger=ledger,
        execution_id=execution_id or f"{random.getrandbits(128):032x}",  # fork-safe, cheap
        index=index,
        started_at=runtime.clock(),
        default_deadline=default_deadline,
    )
    job = Job(context)
    if problems:
        job.error = InputNotJSON(task.definition.id, problems)
    return job


async def run_stage(job: Job, stage: Callable[[Job], Awaitable[None]]) -> None:
    """Run one stage under the job's remaining deadline: the one place a stage's failure is
    handled. A stage raises a :class:`~tlm.errors.TLMError` to fail the execution; it is kept
    as ``job.error`` and no later stage runs (``job.done``). A timeout becomes BudgetExceeded.

    The engine's default deadline opens no cancel scope (one costs more than the rest of a
    cached execution): it bounds every model request instead, each sent with the time left as
    its timeout (:func:`call_model` reports that timeout as the deadline passing).
    """
    if job.done:
        return
    remaining = job.ledger.remaining_s()
    try:
        if not math.isfinite(remaining) or job.default_deadline:
            await stage(job)
            return
        with anyio.CancelScope(deadline=anyio.current_time() + max(remaining, 0.0)) as scope:
            await stage(job)
    except TLMError as exc:
        job.error = exc
        return
    if scope.cancelled_caught and job.error is None:
        job.error = deadline_exceeded(job)


def deadline_exceeded(job: Job) -> BudgetExceeded:
    """The error of an execution whose deadline passed (saying when it is the default one)."""
    partial = job.primary.output if job.primary else None
    deadline = job.ledger.limits.deadline_s
    what = (
        f"the default deadline of {deadline:g}s passed (no deadline_s in the task's or the "
        "call's budget; set default_deadline_s in tlm.toml to change it)"
        if job.default_deadline
        else f"deadline of {deadline}s passed"
    )
    return job.ledger.exceeded(what, partial=partial)
