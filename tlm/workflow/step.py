"""Typed workflow steps: ``Step[InT, OutT]`` and the combinators that compose them.

A step is a lazy, repeatable description of work; building one does no I/O. Steps come from task
definitions (:func:`task_step`, typed by the models ``tlm codegen`` generates) and from plain async
functions (:func:`step`), and compose by sequence (``a | b`` or ``a.then(b)``), fan-out over a list
(:func:`map_each`), a branch on a predicate (:func:`branch`) and a gather of independent steps
(:func:`gather`, typed tuples). The types are the wiring: mypy rejects ``Step[A, B] | Step[C, D]``
when ``B`` does not fit ``C``, and :meth:`tlm.workflow.Workflow.compile` checks the JSON Schemas
across task boundaries too.

Each step has an error policy: fail fast (the default), skip (yields ``None``), a default value, or
collect (siblings in the enclosing gather/map keep running; the errors are raised together as an
``ExceptionGroup`` when it finishes)::

    decompose = map_each(task_step(SKILL_DECOMPOSITION).or_skip(), limit=4)
    flow = step(requirements_of) | decompose | step(merge)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, Literal, TypeVar, overload

import attrs

from tlm.engine.result import ExecuteOptions

__all__ = (
    "TaskRef",
    "Step",
    "ErrorPolicy",
    "PolicyKind",
    "TaskNode",
    "FunctionNode",
    "SequenceNode",
    "MapNode",
    "BranchNode",
    "GatherNode",
    "Node",
    "task_step",
    "step",
    "passthrough",
    "keep",
    "map_each",
    "branch",
    "gather",
)

InT = TypeVar("InT", contravariant=True)
OutT = TypeVar("OutT", covariant=True)
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
E = TypeVar("E")
X = TypeVar("X")

PolicyKind = Literal["fail_fast", "skip", "default", "collect"]


@attrs.frozen
class TaskRef(Generic[InT, OutT]):
    """A task definition by id and version, typed by its generated input and output models.

    ``tlm codegen`` writes one per task, e.g.
    ``SKILL_DECOMPOSITION = TaskRef[SkillDecompositionInput, SkillDecompositionOutput](...)``.
    """

    id: str
    version: str | None = None
    """An exact version or a semver range; ``None`` means the latest."""

    def __str__(self) -> str:
        return f"{self.id}@{self.version}" if self.version else self.id


@attrs.frozen
class ErrorPolicy:
    """What a failing step does to the workflow."""

    kind: PolicyKind = "fail_fast"
    default: Any = None
    """The value a ``default`` policy yields."""


FAIL_FAST = ErrorPolicy()


@attrs.frozen(eq=False)
class TaskNode:
    """Execute a task definition on the engine."""

    ref: TaskRef[Any, Any]
    options: ExecuteOptions | Mapping[str, Any] | None = None


@attrs.frozen(eq=False)
class FunctionNode:
    """Await a plain async function."""

    fn: Callable[[Any], Awaitable[Any]]
    identity: bool = False
    """Whether this is :func:`passthrough` (schema checks see through it)."""


@attrs.frozen(eq=False)
class SequenceNode:
    """Run ``first``, then ``second`` on its output."""

    first: Step[Any, Any]
    second: Step[Any, Any]


@attrs.frozen(eq=False)
class MapNode:
    """Run ``inner`` on every item of a list, at most ``limit`` at once; outputs keep order."""

    inner: Step[Any, Any]
    limit: int


@attrs.frozen(eq=False)
class BranchNode:
    """Run ``if_true`` or ``if_false`` depending on ``predicate(input)``."""

    predicate: Callable[[Any], bool | Awaitable[bool]]
    if_true: Step[Any, Any]
    if_false: Step[Any, Any]


@attrs.frozen(eq=False)
class GatherNode:
    """Run ``steps`` concurrently on the same input; a step may wait for siblings (``after``)."""

    steps: tuple[Step[Any, Any], ...]


Node = TaskNode | FunctionNode | SequenceNode | MapNode | BranchNode | GatherNode


@attrs.frozen(eq=False)
class Step(Generic[InT, OutT]):
    """A typed unit of a workflow: takes an ``InT``, produces an ``OutT``.

    Steps are immutable; every method returns a new step. Identity matters (``eq=False``): the
    same step object can be named in :meth:`after`.
    """

    name: str
    node: Node
    policy: ErrorPolicy = FAIL_FAST
    deps: tuple[Step[Any, Any], ...] = ()
    """Sibling steps (in the enclosing :func:`gather`) this one starts after."""

    # --- composition ------------------------------------------------------------------------

    def then(self, other: Step[OutT, C], /) -> Step[InT, C]:
        """This step, then ``other`` on its output."""
        return Step(f"{self.name} | {other.name}", SequenceNode(self, other))

    def __or__(self, other: Step[OutT, C], /) -> Step[InT, C]:
        return self.then(other)

    def named(self, name: str, /) -> Step[InT, OutT]:
        """The same step under another name (shown in records and errors)."""
        return attrs.evolve(self, name=name)

    def after(self, *deps: Step[Any, Any]) -> Step[InT, OutT]:
        """Start only after ``deps`` (siblings in the same :func:`gather`) have finished."""
        return attrs.evolve(self, deps=self.deps + deps)

    # --- error policies ---------------------------------------------------------------------

    def fail_fast(self) -> Step[InT, OutT]:
        """On failure, end the workflow and cancel whatever else runs (the default)."""
        return attrs.evolve(self, policy=FAIL_FAST)

    def or_skip(self) -> Step[InT, OutT | None]:
        """On failure, yield ``None`` and go on (recorded as ``skipped``)."""
        return Step(self.name, self.node, ErrorPolicy("skip"), self.deps)

    def or_default(self, value: C, /) -> Step[InT, OutT | C]:
        """On failure, yield ``value`` and go on (recorded as ``defaulted``)."""
        return Step(self.name, self.node, ErrorPolicy("default", value), self.deps)

    def collect_errors(self) -> Step[InT, OutT]:
        """On failure, let siblings finish; the enclosing gather/map then raises every error."""
        return attrs.evolve(self, policy=ErrorPolicy("collect"))


def task_step(
    task: TaskRef[A, B],
    /,
    *,
    name: str | None = None,
    options: ExecuteOptions | Mapping[str, Any] | None = None,
) -> Step[A, B]:
    """A step that executes ``task`` on the engine (options as for :meth:`tlm.Engine.execute`)."""
    return Step(name or task.id, TaskNode(task, options))


def step(fn: Callable[[A], Awaitable[B]], /, *, name: str | None = None) -> Step[A, B]:
    """A step from a plain async function; its input and output types come from its annotations."""
    label = name or str(getattr(fn, "__name__", "function"))
    return Step(label, FunctionNode(fn))


async def _identity(value: Any) -> Any:
    return value


def passthrough(name: str = "input") -> Step[A, A]:
    """A step that hands its input on unchanged.

    Inside :func:`gather`, annotate it (``same: Step[Job, Job] = passthrough()``) or use
    :func:`keep`, so mypy can infer its type.
    """
    return Step(name, FunctionNode(_identity, identity=True))


def keep(inner: Step[A, B], /, *, name: str | None = None) -> Step[A, tuple[A, B]]:
    """Run ``inner`` and hand on its input beside its output: ``(input, output)``."""
    label = name or f"keep({inner.name})"
    return Step(label, GatherNode((passthrough(), inner)))


def map_each(
    inner: Step[A, B], /, *, limit: int = 4, name: str | None = None
) -> Step[list[A], list[B]]:
    """Run ``inner`` on every item of the input list, at most ``limit`` at once; order is kept.

    Raises:
        ValueError: ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return Step(name or f"map({inner.name})", MapNode(inner, limit))


def branch(
    predicate: Callable[[A], bool | Awaitable[bool]],
    if_true: Step[A, B],
    if_false: Step[A, C],
    /,
    *,
    name: str | None = None,
) -> Step[A, B | C]:
    """Run ``if_true`` when ``predicate(input)`` holds, else ``if_false``."""
    label = name or f"branch({if_true.name}, {if_false.name})"
    return Step(label, BranchNode(predicate, if_true, if_false))


@overload
def gather(a: Step[X, A], b: Step[X, B], /, *, name: str | None = None) -> Step[X, tuple[A, B]]: ...
@overload
def gather(
    a: Step[X, A], b: Step[X, B], c: Step[X, C], /, *, name: str | None = None
) -> Step[X, tuple[A, B, C]]: ...
@overload
def gather(
    a: Step[X, A], b: Step[X, B], c: Step[X, C], d: Step[X, D], /, *, name: str | None = None
) -> Step[X, tuple[A, B, C, D]]: ...
@overload
def gather(
    a: Step[X, A],
    b: Step[X, B],
    c: Step[X, C],
    d: Step[X, D],
    e: Step[X, E],
    /,
    *,
    name: str | None = None,
) -> Step[X, tuple[A, B, C, D, E]]: ...
def gather(*steps: Step[Any, Any], name: str | None = None) -> Step[Any, tuple[Any, ...]]:
    """Run independent steps concurrently on the same input; outputs come back as a tuple.

    Raises:
        ValueError: fewer than two steps.
    """
    if len(steps) < 2:
        raise ValueError("gather needs at least two steps")
    label = name or "gather(" + ", ".join(s.name for s in steps) + ")"
    return Step(label, GatherNode(tuple(steps)))
