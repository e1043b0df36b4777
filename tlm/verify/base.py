"""The verification protocol: a verifier looks at a candidate output and returns a verdict.

The engine gives every verifier a :class:`VerificationContext`: the task, its input, the primary
candidate, the models ranked for the task, and two callables that run under the execution's
budget — ``source`` (run the whole task on another model: render, call, parse, validate) and
``ask`` (send a free-form prompt to a model, e.g. a reviewer's). Both raise
:class:`tlm.errors.BudgetExceeded` when the budget forbids the call, and
:class:`tlm.errors.ExecutionError` subclasses when the call fails. Spending of the verifier's
own (a semantic metric's embeddings) goes through ``charge``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from tlm.providers.base import ChatResponse

if TYPE_CHECKING:
    from tlm.definition.model import TaskDefinition

__all__ = (
    "Candidate",
    "CandidateSource",
    "Ask",
    "Charge",
    "Verdict",
    "VerificationContext",
    "Verifier",
    "NoVerifier",
)


@attrs.frozen
class Candidate:
    """One model's output for the task, already parsed and validated against the output spec."""

    model: str
    output: Any
    cost_usd: float = 0.0
    response: ChatResponse | None = None
    prompt_variant: str | None = None


class CandidateSource(Protocol):
    """Runs the task on ``model``; ``feedback`` (issues to fix) is appended to the prompt."""

    async def __call__(self, model: str, /, *, feedback: str | None = None) -> Candidate: ...


class Ask(Protocol):
    """Sends ``prompt`` to ``model``; with ``output_schema`` the reply is parsed JSON."""

    async def __call__(
        self, model: str, prompt: str, /, *, output_schema: Mapping[str, Any] | None = None
    ) -> ChatResponse: ...


class Charge(Protocol):
    """Charges ``cost_usd`` to the execution's budget; raises :class:`~tlm.errors.BudgetExceeded`
    when the spending went over it (the cost stays charged: it was already spent)."""

    def __call__(self, cost_usd: float, /) -> None: ...


@attrs.frozen
class Verdict:
    """The outcome of verifying one output."""

    passed: bool | None
    """``True``/``False``, or ``None`` while pending (human review not yet decided)."""
    confidence: float
    method: str
    details: Mapping[str, Any] = attrs.field(factory=dict)
    """Method-specific facts: votes, scores, clusters, issues, suggestions, review id, ..."""
    output: Any = None
    """The output the verifier stands behind (consensus: the winning cluster's representative;
    hierarchical with a correction round: the corrected output); ``None`` keeps the primary's."""
    candidates: tuple[Candidate, ...] = ()
    """Every extra candidate the verifier obtained (their costs are already in the budget)."""
    cost_usd: float = 0.0
    """What verification itself spent (extra candidates, reviewer calls, embeddings)."""

    @property
    def decisive(self) -> bool:
        """Whether this verdict settles the question (a chain stops at the first decisive one)."""
        return self.passed is not None and bool(self.details.get("decisive", True))


@attrs.frozen
class VerificationContext:
    """Everything a verifier may use."""

    task: TaskDefinition
    input: Mapping[str, Any]
    primary: Candidate
    ranked_models: Sequence[str]
    """Model ids in rank order for this task; the primary's model is among them."""
    source: CandidateSource
    ask: Ask
    execution_id: str = ""
    charge: Charge | None = None
    """Where the verifier's own spending goes (``None``: nowhere, e.g. outside an engine)."""


class Verifier(Protocol):
    """Anything that verifies a candidate. Implementations need not inherit from this."""

    @property
    def method(self) -> str:
        """The verification method's name (``consensus``, ``hierarchical``, ...)."""
        ...

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Return a verdict; raise only for budget exhaustion or cancellation."""
        ...


@attrs.define
class NoVerifier:
    """Passes every output: no verification beyond the output schema and rules."""

    method: str = attrs.field(default="none", init=False)

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Pass with full confidence."""
        return Verdict(
            passed=True,
            confidence=1.0,
            method="none",
            details={"reason": "no verification configured"},
        )
