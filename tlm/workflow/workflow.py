"""``Workflow[InT, OutT]``: a named root step, checked by ``compile()``, run on an engine.

::

    JOB_ASSESSMENT = Workflow("job_assessment", extract | decompose | merge)
    result = await JOB_ASSESSMENT.run(engine, job, budget=Budget(max_cost_usd=0.5))
    result.output, result.run.steps

:meth:`~Workflow.compile` resolves every task step in the engine's registry, checks that each
``after`` names a sibling in the same gather (and that the waits have no cycle), and checks JSON
Schema compatibility wherever one task's output feeds the next task's input; it raises
:class:`tlm.errors.WorkflowTypeError` naming the steps and the JSON path. :meth:`~Workflow.run`
compiles, then runs under a ``tlm.workflow {name}`` span (task executions nest under it) and a
workflow-wide budget, and stores a :class:`~tlm.workflow.record.WorkflowRun`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.to_thread
import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from tlm.definition.model import Budget, TaskDefinition
from tlm.engine.arguments import check_budget
from tlm.errors import BudgetExceeded, DefinitionError, Problem, WorkflowTypeError
from tlm.telemetry.redact import Redaction
from tlm.telemetry.spans import get_tracer
from tlm.workflow.compat import schema_problems
from tlm.workflow.record import RunStatus, WorkflowRun
from tlm.workflow.runner import Deferred, Observer, Runner
from tlm.workflow.step import (
    BranchNode,
    FunctionNode,
    GatherNode,
    MapNode,
    SequenceNode,
    Step,
    TaskNode,
)
from tlm.workflow.store import open_workflow_store

if TYPE_CHECKING:
    from tlm.definition.registry import DefinitionRegistry
    from tlm.engine import Engine

__all__ = ("Workflow", "CompiledWorkflow", "WorkflowResult", "WORKFLOW_SPAN")

InT = TypeVar("InT", contravariant=True)
OutT = TypeVar("OutT", covariant=True)
T = TypeVar("T")

WORKFLOW_SPAN = "tlm.workflow"
"""Span name prefix: ``tlm.workflow {name}``."""


@attrs.frozen
class CompiledWorkflow:
    """A workflow whose task steps resolved and whose task boundaries fit."""

    name: str
    definitions: tuple[TaskDefinition, ...]
    """The definition each task step will execute, in workflow order."""


@attrs.frozen
class WorkflowResult(Generic[T]):
    """A finished run: its output and its record."""

    output: T
    run: WorkflowRun

    @property
    def run_id(self) -> str:
        """The run's id (``tlm workflow-runs show <id>``)."""
        return self.run.run_id

    @property
    def cost_usd(self) -> float:
        """What the run's task executions cost."""
        return self.run.cost_usd


_Ends = tuple[
    list[tuple[Step[Any, Any], TaskDefinition]], list[tuple[Step[Any, Any], TaskDefinition]]
]


@attrs.frozen
class Workflow(Generic[InT, OutT]):
    """A named, typed workflow; building and compiling it do no I/O beyond the registry."""

    name: str
    root: Step[InT, OutT]
    description: str = ""

    def compile(self, registry: DefinitionRegistry) -> CompiledWorkflow:
        """Check the workflow against ``registry``.

        Raises:
            WorkflowTypeError: an unknown task, a misplaced ``after``, a cycle of waits, or an
                output that does not fit the next task's input (every problem, located).
        """
        checker = _Checker(self.name, registry)
        checker.walk(self.root, in_gather=False)
        if checker.problems:
            error = WorkflowTypeError(
                f"workflow {self.name!r} does not compile:\n"
                + "\n".join(f"  {p}" for p in checker.problems)
            )
            error.problems = tuple(checker.problems)  # type: ignore[attr-defined]
            raise error
        return CompiledWorkflow(self.name, tuple(checker.definitions))

    async def run(
        self,
        engine: Engine,
        input: InT,
        *,
        budget: Budget | None = None,
        observer: Observer | None = None,
        record: bool = True,
    ) -> WorkflowResult[OutT]:
        """Compile, then run on ``engine``; the output, or the first error (fail-fast steps).

        Args:
            engine: Executes the task steps (opened if it is not yet).
            input: The root step's input.
            budget: Workflow-wide limits: every task execution charges this ledger, a step
                does not start once it is spent, and running out ends the run whatever the
                step's error policy.
            observer: Called at the start and end of every task and function step.
            record: Store the run in ``<data_dir>/workflows.db`` (when the engine's store is on).

        Raises:
            WorkflowTypeError: the workflow does not compile.
            BudgetExceeded: the workflow-wide budget ran out.
            InvalidArgument: a budget limit is NaN, infinite or negative.
            ExceptionGroup: steps with the ``collect`` policy failed (all their errors).
            ExecutionError: a fail-fast step failed (a function step raises what it raises).
        A failed or cancelled run is recorded too; its error carries a note with the run id.
        """
        if budget is not None:
            check_budget(budget, "budget")  # nan, infinite or negative limits are refused
        await engine.open()
        self.compile(engine.registry)
        run_id = uuid.uuid4().hex
        started_at = datetime.now(UTC).isoformat()
        runner = Runner.create(engine, budget, clock=time.monotonic, observer=observer)
        tracer = get_tracer(engine.tracer_provider)
        span = tracer.start_span(
            f"{WORKFLOW_SPAN} {self.name}",
            attributes={
                "tlm.workflow.name": self.name,
                "tlm.workflow.run_id": run_id,
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.workflow.name": self.name,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        status: RunStatus = "failed"
        failure: BaseException | None = None
        output: Any = None
        try:
            output = await self._run_root(runner, input, budget)
            status = "succeeded"
        except anyio.get_cancelled_exc_class():
            status = "cancelled"
            raise
        except BaseException as exc:
            failure = exc
            exc.add_note(f"workflow {self.name!r} run {run_id}")
            raise
        finally:
            run = WorkflowRun(
                run_id=run_id,
                workflow=self.name,
                status=status,
                started_at=started_at,
                latency_s=time.monotonic() - runner.started,
                cost_usd=runner.cost_usd,
                steps=runner.records,
                error=None if failure is None else f"{type(failure).__name__}: {failure}"[:2000],
                output=output,
            )
            _end_span(span, run, failure)
            otel_context.detach(token)
            if record and engine.config.store:
                run = _redacted(run, Redaction(fields=engine.config.redact).for_input(input))
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(_store_run, engine, run)
        return WorkflowResult(output, run)

    async def _run_root(self, runner: Runner, input: Any, budget: Budget | None) -> Any:
        deadline = budget.deadline_s if budget is not None else None
        try:
            if deadline is None:
                return await runner.run(self.root, input)
            with anyio.move_on_after(deadline) as scope:
                return await runner.run(self.root, input)
            if scope.cancelled_caught:
                raise runner.budget_exceeded(f"workflow deadline of {deadline}s passed")
            raise AssertionError("unreachable")  # pragma: no cover
        except Deferred as deferred:
            raise deferred.error from None
        except BudgetExceeded as exc:
            if not runner.budgeted:
                raise
            raise runner.budget_exceeded(f"workflow budget ran out: {exc}", exc) from exc


def _end_span(span: trace.Span, run: WorkflowRun, failure: BaseException | None) -> None:
    if span.is_recording():
        span.set_attributes(
            {
                "tlm.workflow.status": run.status,
                "tlm.cost.usd": run.cost_usd,
                "tlm.workflow.steps": len(run.steps),
            }
        )
        if failure is not None:
            span.set_attribute("error.type", type(failure).__qualname__)
            span.set_status(Status(StatusCode.ERROR, run.error))
    span.end()


class _Checker:
    """Walks a workflow's steps, collecting located problems."""

    def __init__(self, workflow: str, registry: DefinitionRegistry) -> None:
        self.workflow = workflow
        self.registry = registry
        self.problems: list[Problem] = []
        self.definitions: list[TaskDefinition] = []

    def problem(self, where: str, path: str, message: str) -> None:
        self.problems.append(Problem(where, path, message))

    def walk(self, step: Step[Any, Any], *, in_gather: bool) -> _Ends | None:
        """The task steps that receive ``step``'s input and produce its output (``None``:
        ``step`` hands its input on unchanged)."""
        if step.deps and not in_gather:
            self.problem(
                f"step {step.name!r}", "", "after() names siblings in a gather; this is not in one"
            )
        node = step.node
        if isinstance(node, TaskNode):
            try:
                definition = self.registry.get(node.ref.id, node.ref.version)
            except DefinitionError as exc:
                self.problem(f"step {step.name!r}", "", str(exc))
                return [], []
            self.definitions.append(definition)
            return [(step, definition)], [(step, definition)]
        if isinstance(node, FunctionNode):
            return None if node.identity else ([], [])
        if isinstance(node, SequenceNode):
            first = self.walk(node.first, in_gather=False)
            second = self.walk(node.second, in_gather=False)
            if first is None:
                return second
            if second is None:
                return first
            for producer in first[1]:
                for consumer in second[0]:
                    self.check_edge(producer, consumer)
            return first[0], second[1]
        if isinstance(node, MapNode):
            self.walk(node.inner, in_gather=False)
            return [], []
        if isinstance(node, BranchNode):
            arms = [
                self.walk(node.if_true, in_gather=False),
                self.walk(node.if_false, in_gather=False),
            ]
            return _union(a[0] for a in arms if a), _union(a[1] for a in arms if a)
        if isinstance(node, GatherNode):
            children = [self.walk(child, in_gather=True) for child in node.steps]
            self.check_waits(step, node)
            return _union(c[0] for c in children if c), []
        raise TypeError(f"unknown step node {node!r}")  # pragma: no cover

    def check_edge(
        self,
        producer: tuple[Step[Any, Any], TaskDefinition],
        consumer: tuple[Step[Any, Any], TaskDefinition],
    ) -> None:
        (p_step, p_def), (c_step, c_def) = producer, consumer
        where = (
            f"step {p_step.name!r} ({p_def.key} output) -> step {c_step.name!r} ({c_def.key} input)"
        )
        for path, message in schema_problems(p_def.output.schema, c_def.input.schema):
            self.problem(where, path, message)

    def check_waits(self, gather: Step[Any, Any], node: GatherNode) -> None:
        siblings = {id(s) for s in node.steps}
        for child in node.steps:
            for dep in child.deps:
                if id(dep) not in siblings:
                    self.problem(
                        f"step {child.name!r}",
                        "",
                        f"waits for {dep.name!r}, which is not a sibling in {gather.name!r}",
                    )
        state: dict[int, int] = {}  # 1: visiting, 2: done

        def visit(current: Step[Any, Any]) -> bool:
            mark = state.get(id(current))
            if mark == 1:
                return False
            if mark == 2:
                return True
            state[id(current)] = 1
            ok = all(visit(d) for d in current.deps if id(d) in siblings)
            state[id(current)] = 2
            return ok

        for child in node.steps:
            if not visit(child):
                self.problem(
                    f"step {gather.name!r}", "", f"the waits through {child.name!r} form a cycle"
                )
                return


def _union(
    groups: Iterable[list[tuple[Step[Any, Any], TaskDefinition]]],
) -> list[tuple[Step[Any, Any], TaskDefinition]]:
    return [item for group in groups for item in group]


def _store_run(engine: Engine, run: WorkflowRun) -> None:
    """Write ``run`` to the engine's workflow runs store (one per engine: on PostgreSQL, one
    connection for all its runs), or to a store of its own once the engine is closed."""
    config = engine.config
    kept = engine.resources.get(
        "workflow runs", lambda: open_workflow_store(config.data_dir, config.database)
    )
    if kept is not None:
        kept.write(run)
        return
    store = open_workflow_store(config.data_dir, config.database)
    try:
        store.write(run)
    finally:
        store.close()


def _redacted(run: WorkflowRun, scope: Redaction) -> WorkflowRun:
    """``run`` as it may be stored: redacted fields, their values and API keys masked."""
    return attrs.evolve(
        run,
        output=scope.value(run.output),
        error=None if run.error is None else scope.text(run.error),
    )
