"""Running a workflow's steps on the engine: fan-out, policies, budget, records, events.

Task steps call :meth:`tlm.Engine.execute` with a ledger whose parent is the workflow's ledger, so
every execution charges the workflow-wide budget. Fan-out (map, gather) runs in anyio task groups;
a map admits at most ``limit`` items at once through a capacity limiter. Cancelling the workflow
cancels every step. Steps are recorded as they finish; observers get a :class:`StepEvent` at the
start and end of every task and function step.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio
import attrs

from tlm.budget import BudgetLedger
from tlm.definition.model import Budget
from tlm.errors import BudgetExceeded, ExecutionError
from tlm.workflow.record import StepRun, StepStatus
from tlm.workflow.step import (
    BranchNode,
    FunctionNode,
    GatherNode,
    MapNode,
    SequenceNode,
    Step,
    TaskNode,
)

if TYPE_CHECKING:
    from tlm.engine import Engine

__all__ = ("StepEvent", "Observer", "Runner", "Deferred", "unwrap_group")

_ERROR_CHARS = 500


@attrs.frozen
class StepEvent:
    """A task or function step started or finished."""

    kind: Literal["started", "finished"]
    step: StepRun


Observer = Callable[[StepEvent], None]


class Deferred(Exception):
    """A collected failure travelling up to the enclosing gather/map (or the run)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def unwrap_group(error: BaseException) -> BaseException:
    """A task group's ``ExceptionGroup`` of one error, unwrapped to that error."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


@attrs.define(eq=False)
class _StepState:
    path: str
    kind: Literal["task", "function"]
    started_s: float
    status: StepStatus = "running"
    latency_s: float = 0.0
    cost_usd: float = 0.0
    task_id: str | None = None
    task_version: str | None = None
    execution_id: str | None = None
    result_status: str | None = None
    error: str | None = None

    def frozen(self) -> StepRun:
        return StepRun(
            path=self.path,
            kind=self.kind,
            status=self.status,
            started_s=self.started_s,
            latency_s=self.latency_s,
            cost_usd=self.cost_usd,
            task_id=self.task_id,
            task_version=self.task_version,
            execution_id=self.execution_id,
            result_status=self.result_status,
            error=self.error,
        )


@attrs.define(eq=False)
class Runner:
    """The state of one run: the engine, the workflow ledger, the step records."""

    engine: Engine
    ledger: BudgetLedger
    budgeted: bool
    clock: Callable[[], float]
    observer: Observer | None = None
    started: float = 0.0
    states: list[_StepState] = attrs.Factory(list)
    _by_leaf: dict[tuple[int, str], _StepState] = attrs.Factory(dict)
    _own: list[BudgetExceeded] = attrs.Factory(list)

    @classmethod
    def create(
        cls,
        engine: Engine,
        budget: Budget | None,
        *,
        clock: Callable[[], float],
        observer: Observer | None = None,
    ) -> Runner:
        limits = budget or Budget()
        budgeted = any(
            v is not None for v in (limits.max_cost_usd, limits.deadline_s, limits.max_attempts)
        )
        ledger = BudgetLedger(limits, clock=clock)
        return cls(engine, ledger, budgeted, clock, observer, started=clock())

    @property
    def records(self) -> tuple[StepRun, ...]:
        """Every step started so far, in start order."""
        return tuple(s.frozen() for s in self.states)

    @property
    def cost_usd(self) -> float:
        """What the run's task executions cost."""
        return sum(s.cost_usd for s in self.states)

    # --- the recursive interpreter ------------------------------------------------------------

    async def run(self, step: Step[Any, Any], value: Any, suffix: str = "") -> Any:
        """Run ``step`` on ``value``, applying its error policy."""
        try:
            return await self._node(step, value, suffix)
        except Exception as exc:
            policy = step.policy
            error = exc.error if isinstance(exc, Deferred) else exc
            if policy.kind == "fail_fast" or self._fatal(error):
                raise
            self._mark(step, suffix, policy.kind)
            if policy.kind == "skip":
                return None
            if policy.kind == "default":
                return policy.default
            raise Deferred(error) from None

    def _fatal(self, error: BaseException) -> bool:
        """A budget set on the workflow that runs out ends it, whatever the step's policy."""
        return self.budgeted and isinstance(error, BudgetExceeded)

    def _mark(self, step: Step[Any, Any], suffix: str, kind: str) -> None:
        state = self._by_leaf.get((id(step), suffix))
        if state is not None and state.status == "failed":
            if kind == "skip":
                state.status = "skipped"
            elif kind == "default":
                state.status = "defaulted"

    async def _node(self, step: Step[Any, Any], value: Any, suffix: str) -> Any:
        node = step.node
        if isinstance(node, TaskNode):
            return await self._task(step, node, value, suffix)
        if isinstance(node, FunctionNode):
            if node.identity:
                return value
            return await self._leaf(step, suffix, "function", lambda _state: node.fn(value))
        if isinstance(node, SequenceNode):
            middle = await self.run(node.first, value, suffix)
            return await self.run(node.second, middle, suffix)
        if isinstance(node, MapNode):
            return await self._map(step, node, value, suffix)
        if isinstance(node, BranchNode):
            decided = node.predicate(value)
            if inspect.isawaitable(decided):
                decided = await decided
            chosen = node.if_true if decided else node.if_false
            return await self.run(chosen, value, suffix)
        if isinstance(node, GatherNode):
            return await self._gather(node, value, suffix)
        raise TypeError(f"unknown step node {node!r}")  # pragma: no cover - Node is closed

    async def _leaf(
        self,
        step: Step[Any, Any],
        suffix: str,
        kind: Literal["task", "function"],
        body: Callable[[_StepState], Any],
    ) -> Any:
        state = _StepState(step.name + suffix, kind, self.clock() - self.started)
        if kind == "task":
            assert isinstance(step.node, TaskNode)
            state.task_id = step.node.ref.id
            state.task_version = step.node.ref.version
        self.states.append(state)
        self._by_leaf[(id(step), suffix)] = state
        self._emit("started", state)
        begun = self.clock()
        try:
            result = await body(state)
        except anyio.get_cancelled_exc_class():
            state.status = "cancelled"
            raise
        except BaseException as exc:
            state.status = "failed"
            state.error = _describe(unwrap_group(exc))
            handled = step.policy.kind
            if isinstance(exc, Exception) and handled in ("skip", "default"):
                if not self._fatal(exc):
                    state.status = "skipped" if handled == "skip" else "defaulted"
            raise
        else:
            state.status = "succeeded"
            return result
        finally:
            state.latency_s = self.clock() - begun
            self._emit("finished", state)

    def _emit(self, kind: Literal["started", "finished"], state: _StepState) -> None:
        if self.observer is not None:
            self.observer(StepEvent(kind, state.frozen()))

    async def _task(self, step: Step[Any, Any], node: TaskNode, value: Any, suffix: str) -> Any:
        async def body(state: _StepState) -> Any:
            self._check_budget(step.name + suffix)
            step_ledger = BudgetLedger(Budget(), clock=self.clock, parent=self.ledger)
            try:
                result = await self.engine.execute(
                    node.ref.id,
                    value,
                    version=node.ref.version,
                    options=node.options,
                    budget=step_ledger,
                )
            except BaseException as exc:
                state.cost_usd = step_ledger.spent_usd
                if isinstance(exc, ExecutionError):
                    state.execution_id = exc.execution_id
                raise
            state.cost_usd = result.cost_usd
            state.execution_id = result.execution_id
            state.task_version = result.task_version
            state.result_status = result.status
            return result.output

        return await self._leaf(step, suffix, "task", body)

    def budget_exceeded(self, message: str, cause: BaseException | None = None) -> BudgetExceeded:
        """A :class:`BudgetExceeded` carrying what the whole workflow spent."""
        if isinstance(cause, BudgetExceeded) and any(cause is e for e in self._own):
            return cause
        error = self.ledger.exceeded(message)
        error.__cause__ = cause
        self._own.append(error)
        return error

    def _check_budget(self, where: str) -> None:
        if not self.budgeted:
            return
        ledger = self.ledger
        limit = ledger.limits.max_attempts
        if ledger.remaining_usd() <= 0:
            raise self.budget_exceeded(f"workflow cost budget used up before step {where!r}")
        if ledger.remaining_s() <= 0:
            raise self.budget_exceeded(f"workflow deadline passed before step {where!r}")
        if limit is not None and ledger.attempts >= limit:
            raise self.budget_exceeded(f"workflow attempt budget used up before step {where!r}")

    async def _map(self, step: Step[Any, Any], node: MapNode, items: Any, suffix: str) -> Any:
        if not isinstance(items, Sequence) or isinstance(items, str | bytes):
            raise TypeError(f"step {step.name!r} maps over a list, got {type(items).__name__}")
        results: list[Any] = [None] * len(items)
        collected: list[Exception] = []
        limiter = anyio.CapacityLimiter(node.limit)

        async def one(index: int, item: Any) -> None:
            # A failure keeps its slot, so no new item starts while the group is cancelled.
            try:
                results[index] = await self.run(node.inner, item, f"{suffix}[{index}]")
            except Deferred as deferred:
                collected.append(deferred.error)
            limiter.release_on_behalf_of(index)

        try:
            async with anyio.create_task_group() as group:
                for index, item in enumerate(items):
                    await limiter.acquire_on_behalf_of(index)
                    group.start_soon(one, index, item)
        except BaseExceptionGroup as group_error:
            raise unwrap_group(group_error) from None
        if collected:
            raise Deferred(
                ExceptionGroup(
                    f"{len(collected)} of {len(items)} items of {step.name!r} failed", collected
                )
            )
        return results

    async def _gather(self, node: GatherNode, value: Any, suffix: str) -> tuple[Any, ...]:
        results: list[Any] = [None] * len(node.steps)
        collected: list[Exception] = []
        done = {id(s): anyio.Event() for s in node.steps}
        failed: set[int] = set()

        async def one(index: int, child: Step[Any, Any]) -> None:
            try:
                for dep in child.deps:
                    await done[id(dep)].wait()
                blocked = [d.name for d in child.deps if id(d) in failed]
                if blocked:
                    failed.add(id(child))
                    collected.append(
                        ExecutionError(
                            f"step {child.name!r} did not run: {', '.join(blocked)} failed"
                        )
                    )
                    return
                results[index] = await self.run(child, value, suffix)
            except Deferred as deferred:
                failed.add(id(child))
                collected.append(deferred.error)
            finally:
                done[id(child)].set()

        try:
            async with anyio.create_task_group() as group:
                for index, child in enumerate(node.steps):
                    group.start_soon(one, index, child)
        except BaseExceptionGroup as group_error:
            raise unwrap_group(group_error) from None
        if collected:
            raise Deferred(ExceptionGroup(f"{len(collected)} gathered step(s) failed", collected))
        return tuple(results)
