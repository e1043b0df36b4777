"""Cascade verification: cheap models answer first; climb the ladder until an answer is trusted.

How one verification runs:

1. The ladder is the definition's (``"ladder": [["cheap-a", "cheap-b"], "mid", "best"]``), or
   for ``"ladder": "learned"`` the task's learned :class:`~tlm.learn.cascade.CascadePlan` (from
   ``plans``), or, before anything is learned, the ``models`` (else the ranked models) in order:
   the first two together, then one at a time.
2. The primary candidate is the first answer (the engine asks the first rung's first model
   first). Each rung's other models are asked concurrently; a model that fails is a non-answer.
3. After each rung, the answers so far are clustered (average-link at ``similarity_threshold``).
   Below the top, the largest cluster is accepted when it has ``accept.agreement`` members and
   its confidence — the learned P(right | rung, cluster size, answers) when a plan is learned,
   else the share of answers that agree — is at least ``accept.min_confidence``.
4. At the top rung the largest cluster of two or more wins; with no agreement the top model's
   answer is returned, marked ``unchecked`` (it passes: it is the best answer the ladder has, but
   it is no automatic evidence of quality). If the top model failed too, the verdict fails and
   the definition's fallback applies.
5. A budget that forbids the next rung stops the climb: the verdict fails with
   ``budget_exhausted`` (the engine's fallback then applies).

The verdict's details hold every answer (``votes``: model, cluster, rung, cost), the clusters,
the rung that decided and why — so each answer becomes evidence for learning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from tlm.errors import BudgetExceeded, ExecutionError
from tlm.similarity import MetricRegistry, StructuredSimilarity, default_metrics
from tlm.similarity.base import SimilarityMetric
from tlm.verify.base import Candidate, Verdict, VerificationContext

if TYPE_CHECKING:
    from tlm.learn.cascade import CascadePlan
    from tlm.verify.params import CascadeParams

__all__ = ("CascadeVerifier", "PlanSource")

PlanSource = Callable[[str], "CascadePlan | None"]
"""The learned plan of a task id (``None``: nothing learned yet)."""


@attrs.define
class _Answer:
    model: str
    candidate: Candidate
    rung: int
    cluster: int = -1


class CascadeVerifier:
    """Verifies by climbing a ladder of models until enough answers agree (module docstring)."""

    method = "cascade"

    def __init__(
        self,
        params: CascadeParams,
        metric: SimilarityMetric,
        *,
        plans: PlanSource | Mapping[str, CascadePlan] | None = None,
    ) -> None:
        self.params = params
        self.metric = metric
        if isinstance(plans, Mapping):
            known = dict(plans)
            self._plans: PlanSource | None = known.get
        else:
            self._plans = plans

    @classmethod
    def from_params(
        cls,
        params: CascadeParams,
        registry: MetricRegistry | None = None,
        *,
        plans: PlanSource | Mapping[str, CascadePlan] | None = None,
    ) -> CascadeVerifier:
        """A verifier whose metric is ``params.similarity_metric`` from ``registry`` (a
        structured metric gets ``params.field_weights``)."""
        metric = (registry or default_metrics()).get(params.similarity_metric)
        if params.field_weights and isinstance(metric, StructuredSimilarity):
            metric = metric.with_weights(params.field_weights)
        return cls(params, metric, plans=plans)

    def plan(self, task_id: str) -> CascadePlan | None:
        """The learned plan for ``task_id`` (only for a learned ladder)."""
        if not self.params.learned or self._plans is None:
            return None
        return self._plans(task_id)

    def ladder(self, task_id: str, ranked: Sequence[str] = ()) -> tuple[tuple[str, ...], ...]:
        """The rungs for ``task_id``: declared, learned, or the cold-start ladder."""
        if not self.params.learned:
            return self.params.ladder
        plan = self.plan(task_id)
        if plan is not None:
            return plan.ladder
        models = list(self.params.models or ranked)
        if len(models) <= 2:
            return (tuple(models),) if models else ()
        return (tuple(models[:2]), *((m,) for m in models[2:]))

    def first_models(self, task_id: str) -> tuple[str, ...]:
        """The models the engine should ask first (the first rung)."""
        rungs = self.ladder(task_id)
        return rungs[0] if rungs else ()

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Climb the ladder; never raises for a failing model."""
        rungs = self.ladder(context.task.id, context.ranked_models)
        plan = self.plan(context.task.id)
        answers = [_Answer(context.primary.model, context.primary, 0)]
        clusters: list[list[int]] = []
        self._join(answers, clusters, 0)
        failures: list[dict[str, str]] = []
        extra: list[Candidate] = []
        budget_reason: str | None = None
        accepted_at: int | None = None
        confidence = 0.0
        focus = 0
        for k, rung in enumerate(rungs):
            top = k == len(rungs) - 1
            wanted = [m for m in rung if all(a.model != m for a in answers)]
            returned, failed, budget_reason = await _ask(context, wanted)
            failures.extend(failed)
            for candidate in returned:
                answers.append(_Answer(candidate.model, candidate, k))
                extra.append(candidate)
                self._join(answers, clusters, len(answers) - 1)
            focus = max(range(len(clusters)), key=lambda c: (len(clusters[c]), -clusters[c][0]))
            size = len(clusters[focus])
            group = [answers[i].model for i in clusters[focus]]
            confidence = (
                plan.confidence(k, group, len(answers)) if plan is not None else size / len(answers)
            )
            agreement = plan.agreement if plan is not None else self.params.accept.agreement
            threshold = (
                plan.min_confidence if plan is not None else self.params.accept.min_confidence
            )
            if budget_reason is not None:
                break
            if not top and size >= agreement and confidence >= threshold:
                accepted_at = k
                break
            if top:
                accepted_at = k
        unchecked = top_failed = False
        if accepted_at is not None and accepted_at == len(rungs) - 1 and len(clusters[focus]) < 2:
            # the top of the ladder without agreement: its own (best-placed) model's answer
            mine = [i for i, a in enumerate(answers) if a.model in rungs[accepted_at]]
            if mine:
                focus = answers[mine[-1]].cluster
                unchecked = True
            else:  # the top failed too: no answer the ladder can stand behind
                top_failed = True
                accepted_at = None
        chosen = max((answers[i] for i in clusters[focus]), key=lambda a: a.rung)
        passed = accepted_at is not None and budget_reason is None
        details: dict[str, Any] = {
            "ladder": [list(r) for r in rungs],
            "learned": plan is not None,
            "rung": accepted_at,
            "agreement": len(clusters[focus]),
            "accept": {
                "agreement": plan.agreement if plan else self.params.accept.agreement,
                "min_confidence": plan.min_confidence
                if plan
                else self.params.accept.min_confidence,
            },
            "votes": [
                {
                    "model": a.model,
                    "cluster": a.cluster,
                    "rung": a.rung,
                    "cost_usd": a.candidate.cost_usd,
                    "primary": i == 0,
                }
                for i, a in enumerate(answers)
            ],
            "clusters": [[answers[i].model for i in c] for c in clusters],
            "failures": failures,
            "representative": chosen.model if passed else None,
            "unchecked": unchecked,
            "reason": (
                budget_reason
                if budget_reason is not None
                else "the top of the ladder failed and nothing agreed"
                if top_failed
                else "top of the ladder without agreement"
                if unchecked
                else "an empty ladder"
                if not rungs
                else f"{len(clusters[focus])} agreeing answers at rung {accepted_at}"
            ),
        }
        if budget_reason is not None:
            details["budget_exhausted"] = True
        return Verdict(
            passed=passed,
            confidence=confidence if not unchecked else min(confidence, 0.5),
            method=self.method,
            details=details,
            output=chosen.candidate.output if passed else None,
            candidates=tuple(extra),
            cost_usd=sum(c.cost_usd for c in extra),
        )

    def _join(self, answers: list[_Answer], clusters: list[list[int]], index: int) -> None:
        """Put answer ``index`` in the cluster it is most alike on average, or a new one."""
        output = answers[index].candidate.output
        best, best_score = -1, -1.0
        for c, members in enumerate(clusters):
            score = sum(self.metric.score(output, answers[i].candidate.output) for i in members)
            score /= len(members)
            if score >= self.params.similarity_threshold and score > best_score:
                best, best_score = c, score
        if best < 0:
            clusters.append([index])
            best = len(clusters) - 1
        else:
            clusters[best].append(index)
        answers[index].cluster = best


async def _ask(
    context: VerificationContext, models: Sequence[str]
) -> tuple[list[Candidate], list[dict[str, str]], str | None]:
    """Ask ``models`` concurrently: their candidates, failures, and a budget stop's reason."""
    returned: list[Candidate] = []
    failures: list[dict[str, str]] = []
    budget: list[str] = []

    async def one(model: str) -> None:
        try:
            returned.append(await context.source(model))
        except BudgetExceeded as exc:
            budget.append(str(exc)[:300])
        except ExecutionError as exc:
            failures.append(
                {"model": model, "error": type(exc).__name__, "message": str(exc)[:300]}
            )

    async with anyio.create_task_group() as group:
        for model in models:
            group.start_soon(one, model)
    order = {m: i for i, m in enumerate(models)}
    returned.sort(key=lambda c: order.get(c.model, len(order)))
    return returned, failures, (budget[0] if budget else None)
