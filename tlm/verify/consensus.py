"""Consensus verification: distinct models answer the task; the output passes when enough agree.

How one verification runs:

1. The primary candidate is the first vote. The other models come from ``params.models`` when
   given, else from ``context.ranked_models``, in rank order, distinct, without the primary's.
2. Calls fan out concurrently in one anyio task group: first up to ``min_models`` votes in total,
   then, while undecided, as many as could still make the quorum (``quorum`` minus the largest
   cluster), never more than ``max_models`` votes cast or in flight.
3. Each returned output joins the cluster with the highest *average* similarity to its members
   when that average is at least ``similarity_threshold``, else it starts a new cluster.
   Average-link is less order-sensitive than comparing with a cluster's first member, and
   assignments are final, so every vote grows exactly one cluster: the test "quorum can no
   longer be reached" (largest cluster + votes still possible < quorum) is exact.
4. The moment the outcome is decided (a cluster reaches ``params.quorum``, or the quorum became
   impossible) the task group is cancelled: outstanding calls are abandoned and, having returned
   nothing, cost nothing. A call that returned is always reported and costed, even when its answer
   came too late to count (``details["late"]``).
5. A model failing with :class:`tlm.errors.ExecutionError` is a non-vote (``details["failures"]``)
   and the next model is asked instead (failures do not count toward ``max_models``; the ranked
   list bounds them). :class:`tlm.errors.BudgetExceeded` stops the fan-out: nothing more is
   launched, calls already admitted may still finish, and ``details["stopped"] == "budget"``
   unless they complete a quorum; ``details["reason"]`` then says why.
6. A metric that spends (the semantic metric's embeddings) is charged to the execution's budget
   through ``context.charge`` after each ``prepare``; it is part of ``Verdict.cost_usd`` and
   ``details["metric_cost_usd"]``. An overrun is treated like a call's: the peer's vote becomes a
   budget failure and the fan-out stops; on the primary's output it raises BudgetExceeded.

Confidence is ``|C| / max(votes, quorum) * cohesion(C)`` for the winning cluster ``C`` (the largest
one when failing): the share of votes that agree, counting votes the quorum needed but never got
as dissent, scaled by the mean pairwise similarity inside ``C`` (1 for a single member). Two of two
identical answers give 1.0; one answer whose peers all failed gives at most 0.5.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from tlm.errors import BudgetExceeded, ExecutionError
from tlm.similarity import MetricRegistry, StructuredSimilarity, default_metrics
from tlm.similarity.base import SimilarityMetric, metric_name, prepare_metric
from tlm.verify.base import Candidate, Verdict, VerificationContext

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from tlm.verify.params import ConsensusParams

__all__ = ("ConsensusVerifier",)

_MESSAGE_LIMIT = 300


class ConsensusVerifier:
    """Verifies an output by the agreement of distinct models (see the module docstring).

    Args:
        params: the definition's consensus parameters.
        metric: how alike two outputs are; any :class:`~tlm.similarity.SimilarityMetric`,
            outputs may be JSON values or plain strings.

    One instance may verify many executions concurrently; each :meth:`verify` keeps its own state.
    """

    method = "consensus"

    def __init__(self, params: ConsensusParams, metric: SimilarityMetric) -> None:
        self.params = params
        self.metric = metric

    @classmethod
    def from_params(
        cls, params: ConsensusParams, registry: MetricRegistry | None = None
    ) -> ConsensusVerifier:
        """Build a verifier whose metric is ``params.similarity_metric`` from ``registry``.

        A structured metric gets ``params.field_weights``.

        Raises:
            tlm.errors.ConfigurationError: when the metric name is unknown.
        """
        metric = (registry or default_metrics()).get(params.similarity_metric)
        if params.field_weights and isinstance(metric, StructuredSimilarity):
            metric = metric.with_weights(params.field_weights)
        return cls(params, metric)

    async def verify(self, context: VerificationContext, /) -> Verdict:
        """Fan out, cluster, decide; return the verdict (never raises for a failing model).

        Raises:
            tlm.errors.ProviderError: only when preparing the metric for the primary output
                fails (a semantic metric's embedding call).
            tlm.errors.BudgetExceeded: only when that preparation's cost overruns the budget.
        """
        return await _Run(self.params, self.metric, context).run()


@attrs.define
class _Vote:
    model: str
    rank: int
    candidate: Candidate
    cluster: int = -1


@attrs.define
class _Run:
    """The state of one verification; all mutation happens on the event loop, between awaits."""

    params: ConsensusParams
    metric: SimilarityMetric
    context: VerificationContext
    rank: dict[str, int] = attrs.field(factory=dict)
    queue: deque[str] = attrs.field(factory=deque)
    votes: list[_Vote] = attrs.field(factory=list)
    clusters: list[list[int]] = attrs.field(factory=list)
    scores: dict[tuple[int, int], float] = attrs.field(factory=dict)
    in_flight: set[str] = attrs.field(factory=set)
    returned: list[Candidate] = attrs.field(factory=list)
    failures: list[dict[str, str]] = attrs.field(factory=list)
    cancelled: list[str] = attrs.field(factory=list)
    late: list[str] = attrs.field(factory=list)
    budget_stopped: bool = False
    budget_reason: str = ""
    metric_cost_usd: float = 0.0
    decided: bool = False
    passed: bool = False
    stopped: str = ""
    decided_after: int = 0
    winner: int | None = None
    task_group: TaskGroup | None = None

    async def run(self) -> Verdict:
        primary = self.context.primary
        order = list(self.params.models) or list(self.context.ranked_models)
        for model in order:
            self.rank.setdefault(model, len(self.rank))
        self.queue.extend(m for m in self.rank if m != primary.model)
        self._spend(await prepare_metric(self.metric, [primary.output]))
        self._add_vote(primary)
        self._check()
        if not self.decided:
            async with anyio.create_task_group() as task_group:
                self.task_group = task_group
                self._launch()
                self._check()
            if not self.decided:  # unreachable by construction; never report "undecided"
                self._decide(passed=False, stopped="no_quorum")
        return self._verdict()

    # -- fan-out ---------------------------------------------------------------------------

    @property
    def _cap(self) -> int:
        return max(self.params.max_models, 1)

    def _launch(self) -> None:
        assert self.task_group is not None
        while not self.decided and not self.budget_stopped and self.queue:
            engaged = len(self.votes) + len(self.in_flight)
            if engaged >= self._cap:
                return
            wanted = self.params.quorum - self._largest()
            if engaged >= self.params.min_models and len(self.in_flight) >= wanted:
                return
            model = self.queue.popleft()
            self.in_flight.add(model)
            self.task_group.start_soon(self._ask, model, name=f"consensus {model}")

    async def _ask(self, model: str) -> None:
        candidate: Candidate | None = None
        try:
            candidate = await self.context.source(model)
            self.returned.append(candidate)
            if not self.decided:
                self._spend(await prepare_metric(self.metric, [candidate.output]))
        except anyio.get_cancelled_exc_class():
            self.in_flight.discard(model)
            (self.late if candidate is not None else self.cancelled).append(model)
            raise
        except BudgetExceeded as error:
            self._stop_for_budget(error)
            self._fail(model, error)
            return
        except ExecutionError as error:
            self._fail(model, error)
            return
        self.in_flight.discard(model)
        if self.decided:
            self.late.append(model)
            return
        self._add_vote(candidate)
        self._progress()

    def _spend(self, cost_usd: float) -> None:
        """Charge the metric's spending; an overrun raises BudgetExceeded (as a call's would)."""
        if cost_usd <= 0:
            return
        self.metric_cost_usd += cost_usd
        if self.context.charge is not None:
            self.context.charge(cost_usd)

    def _stop_for_budget(self, error: BudgetExceeded) -> None:
        if not self.budget_stopped:
            self.budget_stopped = True
            self.budget_reason = f"budget: {str(error)[:_MESSAGE_LIMIT]}"

    def _fail(self, model: str, error: ExecutionError) -> None:
        self.in_flight.discard(model)
        self.failures.append(
            {
                "model": model,
                "error": type(error).__name__,
                "message": str(error)[:_MESSAGE_LIMIT],
            }
        )
        if not self.decided:
            self._progress()

    def _progress(self) -> None:
        self._check()
        if not self.decided:
            self._launch()
            self._check()

    # -- clustering and the decision -------------------------------------------------------

    def _add_vote(self, candidate: Candidate) -> None:
        index = len(self.votes)
        vote = _Vote(candidate.model, self.rank.get(candidate.model, len(self.rank)), candidate)
        self.votes.append(vote)
        for other in range(index):
            self.scores[other, index] = self.metric.score(
                self.votes[other].candidate.output, candidate.output
            )
        best, best_average = -1, -1.0
        for number, members in enumerate(self.clusters):
            average = sum(self.scores[m, index] for m in members) / len(members)
            if average >= self.params.similarity_threshold and average > best_average:
                best, best_average = number, average
        if best < 0:
            best = len(self.clusters)
            self.clusters.append([])
        self.clusters[best].append(index)
        vote.cluster = best

    def _largest(self) -> int:
        return max((len(c) for c in self.clusters), default=0)

    def _check(self) -> None:
        if self.decided:
            return
        for number, members in enumerate(self.clusters):
            if len(members) >= self.params.quorum:
                self._decide(passed=True, stopped="quorum", winner=number)
                return
        possible = len(self.in_flight)
        if not self.budget_stopped:
            room = self._cap - len(self.votes) - len(self.in_flight)
            possible += max(0, min(room, len(self.queue)))
        if self._largest() + possible < self.params.quorum:
            self._decide(passed=False, stopped="budget" if self.budget_stopped else "no_quorum")

    def _decide(self, *, passed: bool, stopped: str, winner: int | None = None) -> None:
        self.decided, self.passed, self.stopped, self.winner = True, passed, stopped, winner
        self.decided_after = len(self.votes)
        if self.task_group is not None:
            self.task_group.cancel_scope.cancel()

    # -- the verdict -----------------------------------------------------------------------

    def _representative(self, cluster: int) -> _Vote:
        return min((self.votes[i] for i in self.clusters[cluster]), key=lambda v: v.rank)

    def _cohesion(self, cluster: int) -> float:
        members = self.clusters[cluster]
        pairs = [self.scores[a, b] for i, a in enumerate(members) for b in members[i + 1 :]]
        return sum(pairs) / len(pairs) if pairs else 1.0

    def _verdict(self) -> Verdict:
        focus = self.winner
        if focus is None:
            # The largest cluster; among equals, the one holding the best-ranked vote.
            focus = min(
                range(len(self.clusters)),
                key=lambda c: (-len(self.clusters[c]), self._representative(c).rank),
            )
        share = len(self.clusters[focus]) / max(len(self.votes), self.params.quorum)
        confidence = share * self._cohesion(focus)
        representative = self._representative(focus)
        details: dict[str, Any] = {
            "metric": metric_name(self.metric),
            "threshold": self.params.similarity_threshold,
            "quorum": self.params.quorum,
            "votes": [
                {
                    "model": v.model,
                    "cluster": v.cluster,
                    "cost_usd": v.candidate.cost_usd,
                    "primary": i == 0,
                }
                for i, v in enumerate(self.votes)
            ],
            "clusters": [[self.votes[i].model for i in c] for c in self.clusters],
            "scores": [
                {"models": [self.votes[a].model, self.votes[b].model], "score": round(s, 6)}
                for (a, b), s in sorted(self.scores.items())
            ],
            "failures": list(self.failures),
            "decided_after": self.decided_after,
            "stopped": self.stopped,
            "cancelled": list(self.cancelled),
            "late": list(self.late),
            "representative": representative.model if self.passed else None,
        }
        if self.metric_cost_usd:
            details["metric_cost_usd"] = self.metric_cost_usd
        if self.budget_stopped:
            details["budget_exhausted"] = True
            details["reason"] = self.budget_reason
        return Verdict(
            passed=self.passed,
            confidence=confidence,
            method=ConsensusVerifier.method,
            details=details,
            output=representative.candidate.output if self.passed else None,
            candidates=tuple(self.returned),
            cost_usd=sum(c.cost_usd for c in self.returned) + self.metric_cost_usd,
        )
