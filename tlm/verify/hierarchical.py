"""Hierarchical verification: a reviewer model other than the primary's judges the output.

The definition's ``verification_prompt`` is rendered with the task's input properties, ``output``
(the output as compact JSON) and, when the prompt names exactly one other variable (the design
document's ``{{decomposition}}``), that variable bound to the output as well. The reviewer answers
:data:`VERDICT_SCHEMA`; the output passes when the reviewer says so with at least
``min_confidence``. A reply that does not fit is a failed, non-decisive verdict, never an
exception. With ``correction_round`` the reviewer's issues go back to the primary model once and
the corrected output is reviewed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import jsonschema

from tlm.errors import BudgetExceeded, ExecutionError, PromptError
from tlm.json_reply import parse_json_reply
from tlm.prompts import render, template_variables
from tlm.verify.base import Candidate, Verdict, VerificationContext
from tlm.verify.params import HierarchicalParams

__all__ = ("VERDICT_SCHEMA", "HierarchicalVerifier", "ReviewerVerdict")

METHOD = "hierarchical"

VERDICT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "passed": {"type": "boolean"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "issues": {"type": "array", "items": {"type": "string"}},
        "suggestions": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["passed", "confidence", "issues", "suggestions"],
}
"""What the reviewer model must answer."""

ANSWER_INSTRUCTIONS = (
    "\n\nAnswer with a single JSON object and nothing else, of the form "
    '{"passed": true or false, "confidence": a number from 0 to 1, '
    '"issues": ["each problem found"], "suggestions": ["each suggested fix"]}.'
)

_VALIDATOR = jsonschema.Draft202012Validator(VERDICT_SCHEMA)


@attrs.frozen
class ReviewerVerdict:
    """The reviewer's parsed answer."""

    passed: bool
    confidence: float
    issues: tuple[str, ...]
    suggestions: tuple[str, ...]


class _ReviewFailed(Exception):
    """The reviewer's call failed or its reply did not fit :data:`VERDICT_SCHEMA`."""

    def __init__(self, reason: str, cost_usd: float = 0.0) -> None:
        super().__init__(reason)
        self.cost_usd = cost_usd


def build_prompt(template: str, task_input: Mapping[str, Any], output: Any) -> str:
    """Render the verification prompt; raises ``ValueError`` naming unbindable variables."""
    others = sorted(
        n for n in template_variables(template) if n not in task_input and n != "output"
    )
    if len(others) > 1:
        raise ValueError(
            "verification_prompt uses variables that are neither input properties nor "
            f"'output': {', '.join(others)} (at most one may stand for the output)"
        )
    variables = {**task_input, "output": output, **dict.fromkeys(others, output)}
    try:
        return render(template, variables) + ANSWER_INSTRUCTIONS
    except PromptError as exc:
        raise ValueError(f"verification_prompt: {exc}") from None


def parse_reply(parsed: Any, text: str) -> ReviewerVerdict:
    """The reviewer's verdict from a structured reply, else from its text."""
    value = parsed
    if value is None:
        reply = parse_json_reply(text)
        if not reply.ok:
            reason = (reply.error or "").removeprefix("not valid JSON: ")
            raise _ReviewFailed(f"reviewer reply is not JSON ({reason}): {text[:200]!r}")
        value = reply.value
    errors = sorted(_VALIDATOR.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in errors[0].path)
        raise _ReviewFailed(
            f"reviewer reply does not fit the verdict schema at ${where}: {errors[0].message}"
        )
    return ReviewerVerdict(
        passed=bool(value["passed"]),
        confidence=float(value["confidence"]),
        issues=tuple(value["issues"]),
        suggestions=tuple(value["suggestions"]),
    )


def _feedback(review: ReviewerVerdict) -> str:
    lines = ["A reviewer found these problems with your previous answer; fix them:"]
    lines += [f"- {issue}" for issue in review.issues] or ["- the reviewer rejected the answer"]
    if review.suggestions:
        lines.append("Suggestions:")
        lines += [f"- {s}" for s in review.suggestions]
    return "\n".join(lines)


@attrs.define
class HierarchicalVerifier:
    """Asks a different model to review the primary's output with the definition's prompt."""

    params: HierarchicalParams
    method: str = attrs.field(default=METHOD, init=False)

    def reviewer_for(self, context: VerificationContext) -> str | None:
        """The reviewer model: the configured one, else the best-ranked non-primary model."""
        primary = context.primary.model
        if self.params.verifier_model is not None:
            return self.params.verifier_model if self.params.verifier_model != primary else None
        return next((m for m in context.ranked_models if m != primary), None)

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Review the primary output (and, optionally, one corrected output)."""
        reviewer = self.reviewer_for(context)
        if reviewer is None:
            reason = (
                f"the configured verifier_model {self.params.verifier_model!r} is the primary's"
                if self.params.verifier_model is not None
                else "no model other than the primary's "
                f"({context.primary.model!r}) is available to review"
            )
            return _failed(reason, {"primary": context.primary.model})

        spent = 0.0
        rounds: list[dict[str, Any]] = []
        try:
            first, cost = await self._review(context, reviewer, context.primary.output)
        except _ReviewFailed as exc:
            return _failed(str(exc), {"reviewer": reviewer}, exc.cost_usd)
        spent += cost
        rounds.append(_round_details(context.primary.model, first))
        if self._passes(first) or not self.params.correction_round:
            return self._verdict(reviewer, first, rounds, spent)

        try:
            corrected = await context.source(context.primary.model, feedback=_feedback(first))
        except BudgetExceeded:
            raise
        except ExecutionError as exc:
            verdict = self._verdict(reviewer, first, rounds, spent)
            details = {**verdict.details, "correction_error": f"{type(exc).__name__}: {exc}"}
            return attrs.evolve(verdict, details=details)
        spent += corrected.cost_usd
        try:
            second, cost = await self._review(context, reviewer, corrected.output)
        except _ReviewFailed as exc:
            extra = {"reviewer": reviewer, "rounds": rounds}
            return _failed(str(exc), extra, spent + exc.cost_usd, (corrected,))
        spent += cost
        rounds.append(_round_details(corrected.model, second))
        verdict = self._verdict(reviewer, second, rounds, spent, (corrected,))
        if verdict.passed:
            verdict = attrs.evolve(verdict, output=corrected.output)
        return verdict

    def _passes(self, review: ReviewerVerdict) -> bool:
        return review.passed and review.confidence >= self.params.min_confidence

    async def _review(
        self, context: VerificationContext, reviewer: str, output: Any
    ) -> tuple[ReviewerVerdict, float]:
        try:
            prompt = build_prompt(self.params.verification_prompt, context.input, output)
        except ValueError as exc:
            raise _ReviewFailed(str(exc)) from None
        try:
            response = await context.ask(reviewer, prompt, output_schema=VERDICT_SCHEMA)
        except BudgetExceeded:
            raise
        except ExecutionError as exc:
            raise _ReviewFailed(f"reviewer call failed: {type(exc).__name__}: {exc}") from None
        try:
            return parse_reply(response.parsed, response.text), response.cost_usd
        except _ReviewFailed as exc:
            raise _ReviewFailed(str(exc), response.cost_usd) from None

    def _verdict(
        self,
        reviewer: str,
        review: ReviewerVerdict,
        rounds: list[dict[str, Any]],
        spent: float,
        candidates: tuple[Candidate, ...] = (),
    ) -> Verdict:
        passed = self._passes(review)
        details: dict[str, Any] = {
            "reviewer": reviewer,
            "reviewer_passed": review.passed,
            "min_confidence": self.params.min_confidence,
            "issues": list(review.issues),
            "suggestions": list(review.suggestions),
            "rounds": rounds,
            "corrected": len(rounds) > 1,
        }
        if review.passed and not passed:
            details["reason"] = (
                f"reviewer confidence {review.confidence} is below {self.params.min_confidence}"
            )
        return Verdict(
            passed=passed,
            confidence=review.confidence,
            method=METHOD,
            details=details,
            candidates=candidates,
            cost_usd=spent,
        )


def _round_details(model: str, review: ReviewerVerdict) -> dict[str, Any]:
    return {
        "model": model,
        "passed": review.passed,
        "confidence": review.confidence,
        "issues": list(review.issues),
    }


def _failed(
    reason: str,
    extra: Mapping[str, Any],
    spent: float = 0.0,
    candidates: tuple[Candidate, ...] = (),
) -> Verdict:
    return Verdict(
        passed=False,
        confidence=0.0,
        method=METHOD,
        details={"decisive": False, "error": reason, **extra},
        candidates=candidates,
        cost_usd=spent,
    )
