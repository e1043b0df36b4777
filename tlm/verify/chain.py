"""Chained verification: several verifiers in order, stopping at the first decisive verdict.

The chain runs its steps in the order given (:func:`tlm.verify.factory.create_verifier` orders
them cheapest first). Its verdict is the deciding step's, with every step's verdict in
``details["steps"]`` and the summed cost. When no step decides, the last verdict stands and the
chain's verdict is not decisive either (or pending, for an undecided human review).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from tlm.errors import DefinitionError
from tlm.verify.base import Candidate, Verdict, VerificationContext, Verifier

__all__ = ("ChainVerifier",)

METHOD = "chain"


def _step_details(verdict: Verdict) -> dict[str, Any]:
    return {
        "method": verdict.method,
        "passed": verdict.passed,
        "confidence": verdict.confidence,
        "decisive": verdict.decisive,
        "cost_usd": verdict.cost_usd,
        "details": dict(verdict.details),
    }


def _as_steps(steps: Iterable[Verifier]) -> tuple[Verifier, ...]:
    return tuple(steps)


@attrs.define
class ChainVerifier:
    """Runs ``steps`` in order until one verdict is decisive."""

    steps: tuple[Verifier, ...] = attrs.field(converter=_as_steps)
    method: str = attrs.field(default=METHOD, init=False)

    def __attrs_post_init__(self) -> None:
        if not self.steps:
            raise DefinitionError(
                "a verification chain needs at least one step @ $.verification.parameters.steps"
            )

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Run the steps; budget errors and cancellation from a step propagate."""
        verdicts: list[Verdict] = []
        for step in self.steps:
            verdict = await step.verify(context)
            verdicts.append(verdict)
            if verdict.decisive:
                break
        last = verdicts[-1]
        details: dict[str, Any] = {"steps": [_step_details(v) for v in verdicts]}
        if last.decisive:
            details["decided_by"] = last.method
        elif last.passed is not None:
            details["decisive"] = False
        for key in ("review_id", "error", "reason", "budget_exhausted"):
            if key in last.details:
                details[key] = last.details[key]
        candidates: tuple[Candidate, ...] = tuple(c for v in verdicts for c in v.candidates)
        return Verdict(
            passed=last.passed,
            confidence=last.confidence,
            method=METHOD,
            details=details,
            output=last.output,
            candidates=candidates,
            cost_usd=sum(v.cost_usd for v in verdicts),
        )
