"""Cold start and adaptive verification: how much to trust a task's models given its history.

A task without history borrows model priors from similar tasks (:func:`similar_tasks`: same
``task_type``, shared tags, then description similarity by token cosine) and is verified
conservatively — consensus on, or a stricter method kept — until it has ``min_samples``
executions (:meth:`VerificationPolicy.verification_override`). Once history shows a model reliably
passes a task (enough samples and a Wilson 95% lower bound over the risk level's threshold),
verification of that model's outputs may be skipped, except for a seeded random audit sample
(:meth:`VerificationPolicy.decide`); ``critical`` tasks are always verified. The verifiers that
apply those decisions, :class:`~tlm.verify.adaptive.AdaptiveVerifier` and
:class:`~tlm.verify.adaptive.PolicyVerifier`, live in :mod:`tlm.verify.adaptive` (re-exported
here). A skipped verification is recorded with ``details["skipped"] = True`` and counts as
evidence nowhere (no self-reinforcement).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from tlm.definition.model import ConsensusParams, TaskDefinition, VerificationSpec
from tlm.learn.analysis import is_skipped, primary_model
from tlm.learn.stats import token_cosine, tokens, wilson_interval
from tlm.telemetry.records import ExecutionRecord
from tlm.verify.adaptive import AdaptiveVerifier, PolicyVerifier
from tlm.verify.methods import METHODS, cost_rank

if TYPE_CHECKING:
    from tlm.learn.rankings import Rankings

__all__ = (
    "RISK_THRESHOLDS",
    "ModelHistory",
    "TaskHistory",
    "similar_tasks",
    "cold_start_priors",
    "Decision",
    "VerificationPolicy",
    "AdaptiveVerifier",
    "PolicyVerifier",
    "is_skipped",
)

RISK_THRESHOLDS: Mapping[str, tuple[float, float] | None] = {
    "low": (0.80, 0.10),
    "medium": (0.90, 0.20),
    "high": (0.97, 0.30),
    "critical": None,
}
"""Per risk level: (Wilson lower bound a model must exceed to be verified less, audit rate);
``None``: always verify."""


@attrs.frozen
class ModelHistory:
    """Decided verifications of one model's outputs on one task."""

    samples: int = 0
    passes: int = 0

    @property
    def lower_bound(self) -> float:
        """The Wilson 95% lower bound of the pass rate."""
        return wilson_interval(self.passes, self.samples)[0]


@attrs.frozen
class TaskHistory:
    """One task's verification history per primary model."""

    models: Mapping[str, ModelHistory] = attrs.field(factory=dict)

    @property
    def samples(self) -> int:
        """Decided verifications over every model."""
        return sum(h.samples for h in self.models.values())

    def of(self, model: str) -> ModelHistory:
        """The history of ``model`` (empty if none)."""
        return self.models.get(model, ModelHistory())

    @classmethod
    def from_records(cls, records: Iterable[ExecutionRecord]) -> TaskHistory:
        """Count the decided, not skipped, verifications per primary model (and human marks)."""
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for record in records:
            verdict = _decided(record)
            if verdict is None:
                continue
            slot = counts[primary_model(record)]
            slot[0] += 1
            slot[1] += int(verdict)
        return cls({m: ModelHistory(n, p) for m, (n, p) in counts.items()})


def _decided(record: ExecutionRecord) -> bool | None:
    """A person's mark if there is one, else the verdict; ``None`` if neither (or skipped)."""
    for feedback in reversed(record.feedback):
        if feedback.source == "human" and feedback.correct is not None:
            return feedback.correct
    if is_skipped(record):
        return None
    return record.passed


# --- cold-start priors ----------------------------------------------------------------------


def _similarity(a: TaskDefinition, b: TaskDefinition) -> tuple[float, float, float]:
    same_type = 1.0 if a.task_type and a.task_type == b.task_type else 0.0
    tags_a, tags_b = set(a.tags), set(b.tags)
    overlap = len(tags_a & tags_b) / len(tags_a | tags_b) if tags_a | tags_b else 0.0
    text = token_cosine(tokens(f"{a.name} {a.description}"), tokens(f"{b.name} {b.description}"))
    return same_type, overlap, text


def similar_tasks(
    definition: TaskDefinition, others: Iterable[TaskDefinition], *, top: int = 3
) -> list[tuple[str, float]]:
    """The ``top`` most similar other tasks as ``(task_id, weight in 0..1)``, best first.

    Ordered by same ``task_type``, then shared tags (Jaccard), then description token cosine;
    the weight is ``0.5 * same type + 0.3 * tag overlap + 0.2 * description cosine``.
    """
    best: dict[str, tuple[tuple[float, float, float], float]] = {}
    for other in others:
        if other.id == definition.id:
            continue
        key = _similarity(definition, other)
        weight = 0.5 * key[0] + 0.3 * key[1] + 0.2 * key[2]
        if weight <= 0.0:
            continue
        if other.id not in best or key > best[other.id][0]:
            best[other.id] = (key, weight)
    ordered = sorted(best.items(), key=lambda kv: (kv[1][0], kv[0]), reverse=True)
    return [(task_id, weight) for task_id, (_, weight) in ordered[:top]]


def cold_start_priors(
    definition: TaskDefinition,
    rankings: Rankings,
    definitions: Iterable[TaskDefinition],
    *,
    top: int = 3,
) -> dict[str, float]:
    """Prior quality per model for ``definition``, borrowed from similar tasks with history.

    Each model's prior is the similarity-weighted mean of its posterior mean quality on the
    ``top`` most similar tasks that have rankings. Empty when no similar task has history.
    """
    candidates = [d for d in definitions if d.id in rankings.tasks]
    totals: dict[str, float] = defaultdict(float)
    weights: dict[str, float] = defaultdict(float)
    for task_id, weight in similar_tasks(definition, candidates, top=top):
        for model, posterior in rankings.tasks[task_id].models.items():
            totals[model] += weight * posterior.quality
            weights[model] += weight
    return {model: totals[model] / weights[model] for model in totals if weights[model] > 0}


# --- verification policy --------------------------------------------------------------------


@attrs.frozen
class Decision:
    """Whether to verify this execution, and why."""

    verify: bool
    reason: str
    audit: bool = False
    """Verified only because it was drawn for the audit sample."""
    lower_bound: float | None = None


class VerificationPolicy:
    """Cold-start and risk-based verification in one place.

    Args:
        min_samples: Executions a task needs before cold-start consensus is switched off.
        reliable_samples: Decided verifications a model needs before it may be verified less.
        thresholds: Per risk level (lower-bound threshold, audit rate); see
            :data:`RISK_THRESHOLDS`.
        rng: The audit sampler (seed it for reproducible audits).
    """

    def __init__(
        self,
        *,
        min_samples: int = 20,
        reliable_samples: int = 30,
        thresholds: Mapping[str, tuple[float, float] | None] = RISK_THRESHOLDS,
        rng: random.Random | None = None,
    ) -> None:
        self.min_samples = min_samples
        self.reliable_samples = reliable_samples
        self.thresholds = dict(thresholds)
        self.rng = rng if rng is not None else random.Random()

    def verification_override(
        self, definition: TaskDefinition, history: TaskHistory
    ) -> VerificationSpec | None:
        """Consensus for a task with fewer than ``min_samples`` executions, else ``None``.

        A method at least as strict as consensus (consensus, human, a chain containing one) is
        kept (``None``). The definition's fallback is kept.
        """
        if history.samples >= self.min_samples:
            return None
        current = definition.verification
        if cost_rank(current) >= METHODS["consensus"].cost_rank:
            return None
        schema_type = definition.output.schema.get("type")
        metric = "structured" if schema_type in ("object", "array") else "text"
        return VerificationSpec(
            method="consensus",
            parameters=ConsensusParams(
                similarity_threshold=0.8, min_models=2, max_models=3, similarity_metric=metric
            ),
            fallback=current.fallback,
        )

    def decide(self, definition: TaskDefinition, model: str, history: TaskHistory) -> Decision:
        """Whether to verify an output of ``model`` for ``definition`` (draws the audit sample)."""
        limits = self.thresholds.get(definition.risk, self.thresholds.get("medium"))
        if limits is None:
            return Decision(True, f"risk {definition.risk}: always verified")
        threshold, audit_rate = limits
        seen = history.of(model)
        if seen.samples < self.reliable_samples:
            return Decision(
                True, f"{seen.samples} of {self.reliable_samples} samples needed to trust {model}"
            )
        lower = seen.lower_bound
        if lower <= threshold:
            return Decision(
                True, f"pass rate lower bound {lower:.3f} <= {threshold} for {model}", False, lower
            )
        if self.rng.random() < audit_rate:
            return Decision(True, f"audit sample ({audit_rate:.0%})", True, lower)
        return Decision(
            False, f"{model} reliable: lower bound {lower:.3f} > {threshold}", False, lower
        )
