"""Human verification: the output enters the review queue and a person decides.

With ``wait`` the verifier waits up to ``timeout_s`` for the decision and then applies the
definition's ``default_action``; without it the verdict is pending (``passed=None``) and carries
the ``review_id`` that :func:`await_decision` resolves later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from tlm.definition.model import HumanParams
from tlm.engine.output import SchemaValidator
from tlm.errors import Problem
from tlm.rules import RuleRegistry, RuleSet, default_registry
from tlm.verify.base import Verdict, VerificationContext
from tlm.verify.review_queue import Decision, OutputCheck, Review, ReviewQueue

if TYPE_CHECKING:
    from tlm.definition.registry import DefinitionRegistry

__all__ = ("HumanVerifier", "await_decision", "verdict_from_decision", "edited_output_check")

METHOD = "human"


def verdict_from_decision(review_id: str, decision: Decision) -> Verdict:
    """The verdict a human decision stands for; an edited output becomes ``verdict.output``."""
    details: dict[str, Any] = {
        "review_id": review_id,
        "action": decision.action,
        "decided_at": decision.decided_at,
    }
    if decision.note is not None:
        details["note"] = decision.note
    if decision.reviewer is not None:
        details["reviewer"] = decision.reviewer
    return Verdict(
        passed=decision.passed,
        confidence=1.0,
        method=METHOD,
        details=details,
        output=decision.output if decision.action == "edit" else None,
    )


def _pending(review_id: str, queue: str, **extra: Any) -> Verdict:
    return Verdict(
        passed=None,
        confidence=0.0,
        method=METHOD,
        details={"review_id": review_id, "queue": queue, **extra},
    )


async def await_decision(
    queue: ReviewQueue, review_id: str, timeout_s: float | None = None
) -> Verdict:
    """Wait for the decision on a pending review; still pending (``passed=None``) on timeout."""
    decision = await queue.wait(review_id, timeout_s)
    if decision is None:
        return _pending(review_id, queue.get(review_id).queue, timed_out=True)
    return verdict_from_decision(review_id, decision)


@attrs.define
class HumanVerifier:
    """Puts the primary output in the review queue; waits for the decision if configured to."""

    params: HumanParams
    queue: ReviewQueue
    method: str = attrs.field(default=METHOD, init=False)

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Enqueue the output; return the decision, the default action, or a pending verdict."""
        review_id = self.queue.enqueue(
            context.execution_id,
            context.task.id,
            context.task.version,
            dict(context.input),
            context.primary.output,
            queue=self.params.queue,
        )
        if not self.params.wait:
            return _pending(review_id, self.params.queue)
        decision = await self.queue.wait(review_id, self.params.timeout_s)
        if decision is not None:
            return verdict_from_decision(review_id, decision)
        action = self.params.default_action
        return Verdict(
            passed=action == "approve",
            confidence=0.0,
            method=METHOD,
            details={
                "review_id": review_id,
                "queue": self.params.queue,
                "timed_out": True,
                "default_action": action,
                "reason": f"no decision within {self.params.timeout_s} s; applied {action!r}",
            },
        )


def edited_output_check(
    registry: DefinitionRegistry, rules: RuleRegistry | None = None
) -> OutputCheck:
    """An :data:`~tlm.verify.review_queue.OutputCheck` validating an edited output like a model's:
    the reviewed task version's output schema, then its output rules.

    Raises (from the check):
        UnknownDefinition: the reviewed task version is not in ``registry``.
    """
    registry_rules = rules if rules is not None else default_registry()

    def check(review: Review, output: Any) -> Sequence[Problem]:
        definition = registry.get(review.task_id, review.task_version)
        spec = definition.output
        found = SchemaValidator(spec.schema).problems(output, source="output")
        ruleset = RuleSet.resolve(registry_rules, spec.validations)
        found.extend(ruleset.problems(output, source="output", schema=spec.schema))
        return found

    return check
