"""Human verification: the output enters the review queue and a person decides.

With ``wait`` the verifier waits up to ``timeout_s`` for the decision and then applies the
definition's ``default_action``; without it the verdict is pending (``passed=None``) and carries
the ``review_id`` that :func:`await_decision` resolves later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import attrs

from tlm.errors import DefinitionError, Problem, UnknownDefinition
from tlm.json_schema import SchemaValidator
from tlm.rules import RuleRegistry, RuleSet, default_registry
from tlm.verify.base import Verdict, VerificationContext
from tlm.verify.params import HumanParams
from tlm.verify.review_queue import Decision, OutputCheck, Review, ReviewQueue

if TYPE_CHECKING:
    from tlm.definition.model import TaskDefinition
    from tlm.definition.registry import DefinitionRegistry

__all__ = (
    "HumanVerifier",
    "await_decision",
    "verdict_from_decision",
    "edited_output_check",
    "output_spec",
)

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
        review = await anyio.to_thread.run_sync(queue.get, review_id)
        return _pending(review_id, review.queue, timed_out=True)
    return verdict_from_decision(review_id, decision)


@attrs.define
class HumanVerifier:
    """Puts the primary output in the review queue; waits for the decision if configured to."""

    params: HumanParams
    queue: ReviewQueue
    method: str = attrs.field(default=METHOD, init=False)

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Enqueue the output; return the decision, the default action, or a pending verdict."""
        review_id = await anyio.to_thread.run_sync(  # the queue's file or database: off the loop
            lambda: self.queue.enqueue(
                context.execution_id,
                context.task.id,
                context.task.version,
                dict(context.input),
                context.primary.output,
                queue=self.params.queue,
                output_spec=output_spec(context.task),
            )
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


def output_spec(definition: TaskDefinition) -> dict[str, Any]:
    """What an output of ``definition`` must satisfy, as kept with a review."""
    return {
        "schema": dict(definition.output.schema),
        "validations": list(definition.output.validations),
    }


def edited_output_check(
    registry: DefinitionRegistry | None = None, rules: RuleRegistry | None = None
) -> OutputCheck:
    """An :data:`~tlm.verify.review_queue.OutputCheck` validating an edited output like a model's:
    the reviewed task version's output schema, then its output rules.

    The definition comes from ``registry`` when it has the reviewed version, else from the output
    spec kept with the review; a rule this process does not know (registered in another one) is
    skipped there, the schema is always checked.

    Raises (from the check):
        UnknownDefinition: neither the registry nor the review says what the output must satisfy.
    """
    registry_rules = rules if rules is not None else default_registry()

    def check(review: Review, output: Any) -> Sequence[Problem]:
        definition = _definition(registry, review)
        if definition is not None:
            schema = definition.output.schema
            names = list(definition.output.validations)
        elif review.output_spec is not None:
            schema = review.output_spec.get("schema", {})
            names = [n for n in review.output_spec.get("validations", []) if n in registry_rules]
        else:
            raise UnknownDefinition(
                f"cannot check the edited output: task {review.task_id}@{review.task_version} "
                "is not among the definitions and the review does not say what its output must "
                "satisfy (give --definitions)"
            )
        found = SchemaValidator(schema).problems(output, source="output")
        ruleset = RuleSet.resolve(registry_rules, names)
        found.extend(ruleset.problems(output, source="output", schema=schema))
        return found

    return check


def _definition(registry: DefinitionRegistry | None, review: Review) -> TaskDefinition | None:
    if registry is None:
        return None
    try:
        return registry.get(review.task_id, review.task_version)
    except DefinitionError:
        return None
