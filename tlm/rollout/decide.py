"""The canary's sequential test: promote, roll back or keep collecting evidence.

Each arm (the current version and the new one) is summarised by how many of its executions
succeeded — a person's feedback first (``correct`` or a score ≥ 0.5), else the verification
verdict, a failed execution counting as a failure — and what they cost. Quality is compared with
Beta(1 + successes, 1 + failures) posteriors by Monte Carlo (seeded by the evidence itself, so the
same evidence always gives the same decision):

- **roll back** as soon as both arms have ``min_rollback_samples`` judged executions and
  P(new < current - margin) ≥ ``confidence``: the new version is worse;
- **promote** once both arms have ``min_samples`` and P(new > current - margin) ≥ ``confidence``
  (not worse within the margin) and the new version is cheaper (mean cost at most
  ``1 + cost_margin`` times the current's) or better (P(new > current) ≥ ``confidence``);
- **roll back** when the new arm reaches ``max_samples`` without either: inconclusive, and the
  current version stays;
- otherwise **hold**.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs
import numpy as np

from tlm.rollout.records import EVAL_RUN_KEY
from tlm.telemetry.records import ExecutionRecord

__all__ = ("CanaryPolicy", "ArmStats", "Verdict", "success_of", "arm_stats", "decide")

Action = Literal["hold", "promote", "rollback"]


@attrs.frozen
class CanaryPolicy:
    """The decision rule's settings (stored with each rollout)."""

    margin: float = attrs.field(
        default=0.05,
        validator=attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.lt(1.0)),
    )
    """How much lower the new version's success rate may be and still count as not worse."""
    confidence: float = attrs.field(
        default=0.95,
        validator=attrs.validators.and_(attrs.validators.gt(0.5), attrs.validators.lt(1.0)),
    )
    """Posterior probability a decision needs."""
    min_samples: int = attrs.field(default=30, validator=attrs.validators.ge(1))
    """Judged executions per arm before a promotion."""
    min_rollback_samples: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    """Judged executions per arm before a rollback."""
    max_samples: int = attrs.field(default=2000, validator=attrs.validators.ge(1))
    """Judged executions of the new version after which an undecided canary is rolled back."""
    cost_margin: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    """How much more (as a fraction) the new version may cost per execution and still count
    as cheaper."""
    draws: int = attrs.field(default=20_000, validator=attrs.validators.ge(1000))
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data."""
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanaryPolicy:
        """Settings from :meth:`to_dict` data (unknown keys ignored)."""
        names = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@attrs.frozen
class ArmStats:
    """What one version's executions showed."""

    executions: int = 0
    judged: int = 0
    """Executions with a known outcome (pending reviews and unverified ones are not)."""
    successes: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0

    @property
    def failures(self) -> int:
        return self.judged - self.successes

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.judged if self.judged else None

    @property
    def mean_cost_usd(self) -> float | None:
        return self.cost_usd / self.executions if self.executions else None

    @property
    def mean_latency_s(self) -> float | None:
        return self.latency_s / self.executions if self.executions else None

    def to_dict(self) -> dict[str, Any]:
        """The counts and means, for a decision's evidence."""
        return {
            "executions": self.executions,
            "judged": self.judged,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "mean_cost_usd": self.mean_cost_usd,
            "mean_latency_s": self.mean_latency_s,
        }


@attrs.frozen
class Verdict:
    """A decision and the evidence behind it."""

    action: Action
    reason: str
    evidence: Mapping[str, Any]


def success_of(record: ExecutionRecord) -> bool | None:
    """Whether an execution succeeded: feedback first (human before system), then its verdict.

    ``None`` when nothing says (a pending review, or no verification and no feedback).
    """
    for source in ("human", "system"):
        for feedback in reversed(record.feedback):
            if feedback.source != source:
                continue
            if feedback.correct is not None:
                return feedback.correct
            if feedback.score is not None:
                return feedback.score >= 0.5
    if record.status == "error":
        return False
    return record.passed


def arm_stats(records: Iterable[ExecutionRecord]) -> ArmStats:
    """Summarise one version's executions."""
    executions = judged = successes = 0
    cost = latency = 0.0
    for record in records:
        if EVAL_RUN_KEY in record.metadata:
            continue  # a replay evaluation's execution, not live traffic
        executions += 1
        cost += record.performance.cost
        latency += record.performance.execution_time
        success = success_of(record)
        if success is not None:
            judged += 1
            successes += int(success)
    return ArmStats(executions, judged, successes, cost, latency)


def decide(current: ArmStats, new: ArmStats, policy: CanaryPolicy) -> Verdict:
    """Apply the sequential test (module docstring) to the two arms' evidence."""
    rng = np.random.default_rng(
        [policy.seed, current.judged, current.successes, new.judged, new.successes]
    )
    q_current = rng.beta(1 + current.successes, 1 + current.failures, policy.draws)
    q_new = rng.beta(1 + new.successes, 1 + new.failures, policy.draws)
    p_worse = float(np.mean(q_new < q_current - policy.margin))
    p_not_worse = 1.0 - p_worse
    p_better = float(np.mean(q_new > q_current))
    cheaper = (
        new.mean_cost_usd is not None
        and current.mean_cost_usd is not None
        and new.mean_cost_usd <= current.mean_cost_usd * (1.0 + policy.cost_margin)
    )
    evidence: dict[str, Any] = {
        "current": current.to_dict(),
        "new": new.to_dict(),
        "p_worse": round(p_worse, 4),
        "p_not_worse": round(p_not_worse, 4),
        "p_better": round(p_better, 4),
        "cheaper": cheaper,
        "policy": policy.to_dict(),
    }
    least = min(current.judged, new.judged)
    if least >= policy.min_rollback_samples and p_worse >= policy.confidence:
        return Verdict(
            "rollback",
            f"worse: P(new < current - {policy.margin:g}) = {p_worse:.3f} "
            f"after {new.judged} judged executions of the new version",
            evidence,
        )
    if least >= policy.min_samples and p_not_worse >= policy.confidence:
        if cheaper or p_better >= policy.confidence:
            why = "cheaper" if cheaper else f"better (P = {p_better:.3f})"
            return Verdict(
                "promote",
                f"not worse within {policy.margin:g} (P = {p_not_worse:.3f}) and {why}",
                evidence,
            )
    if new.judged >= policy.max_samples:
        return Verdict(
            "rollback",
            f"inconclusive after {new.judged} judged executions of the new version",
            evidence,
        )
    needed = max(policy.min_samples - least, 0)
    return Verdict(
        "hold",
        f"collecting evidence ({needed} more per arm before a promotion)"
        if needed
        else "collecting evidence (not yet decided)",
        evidence,
    )
