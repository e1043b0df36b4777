"""Learned model rankings: per task x model posterior quality, latency and cost, with exploration.

Quality is a Beta posterior over "this model's output for this task is good". Each execution in
which the model answered adds evidence (:mod:`tlm.learn.evidence`: consensus and cascade voters
too, by their agreement with the judged answer), weighted by its source and discounted by its age
(weight ``0.5 ** (age / half_life)``):

========================================  ===================  ======================
evidence                                  weight               success share
========================================  ===================  ======================
automatic verdict (passed / failed)       :data:`AUTO_WEIGHT`  1 / 0
invalid output after re-asks (error)      :data:`AUTO_WEIGHT`  0
human feedback: correct / incorrect       :data:`HUMAN_WEIGHT` 1 / 0
human feedback: score only (0..1)         :data:`HUMAN_WEIGHT` the score
system feedback (as human, lighter)       :data:`SYSTEM_WEIGHT`
========================================  ===================  ======================

A person's judgement weighs three automatic verdicts: verifiers share the model's blind spots,
people do not. The prior is the catalog's ``prior_quality`` (or a cold-start prior borrowed from
similar tasks) worth :data:`PRIOR_STRENGTH` pseudo-executions. Latency and cost are decayed means
of what the executions took. :func:`update_rankings` writes all of it, combined by each task's
quality/speed/cost priorities, with provenance, to ``rankings.json``; a
:class:`RankingsEstimator` turns the file into the engine's ``estimates=`` hook, exploring by
Thompson sampling or UCB, and never trusting a model on fewer than ``min_samples`` executions
(its evidence is shrunk toward the prior as if the prior were worth ``min_samples``); that part
lives in :mod:`tlm.learn.estimator`.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from tlm.definition.model import RankingCriteria
from tlm.errors import ConfigurationError
from tlm.learn.analysis import primary_model, verdict_of
from tlm.learn.evidence import AUTO_WEIGHT, HUMAN_WEIGHT, SYSTEM_WEIGHT, answer_evidence, tally
from tlm.providers.base import Usage
from tlm.telemetry.records import ExecutionRecord, format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from tlm.catalog import Catalog
    from tlm.definition.registry import DefinitionRegistry
    from tlm.store.base import ExecutionLog as ExecutionStore

__all__ = (
    "AUTO_WEIGHT",
    "HUMAN_WEIGHT",
    "SYSTEM_WEIGHT",
    "PRIOR_STRENGTH",
    "DEFAULT_PRIOR",
    "RANKINGS_FILE",
    "Evidence",
    "ModelPosterior",
    "TaskRanking",
    "Rankings",
    "evidence_of",
    "build_rankings",
    "update_rankings",
    "combined_score",
    "Policy",
)

PRIOR_STRENGTH = 2.0
"""Pseudo-executions the prior is worth."""
DEFAULT_PRIOR = 0.5
"""Prior quality of a model the catalog does not know."""
RANKINGS_FILE = "rankings.json"
FORMAT_VERSION = 1

REFERENCE_USAGE = Usage(input_tokens=1_000, output_tokens=500)
"""The call size catalog prices are compared at (as in :mod:`tlm.engine.selection`)."""

Policy = Literal["thompson", "ucb", "greedy"]


@attrs.frozen
class Evidence:
    """What one record says about its primary model's quality (weights before decay)."""

    model: str
    successes: float
    failures: float
    human: int
    """How many human feedback items contributed."""


def evidence_of(record: ExecutionRecord) -> Evidence | None:
    """The quality evidence in ``record``, or ``None`` if it says nothing about quality."""
    found = tally(record, verdict_of(record))
    if found is None:
        return None
    return Evidence(primary_model(record), found.successes, found.failures, found.human)


@attrs.frozen
class ModelPosterior:
    """One model on one task."""

    prior_quality: float
    successes: float
    """Decayed, weighted evidence of good outputs."""
    failures: float
    samples: int
    """Executions that gave evidence (undecayed count)."""
    human_feedback: int = 0
    latency_s: float | None = None
    cost_usd: float | None = None
    score: float | None = None
    """The combined score by the task's priorities (posterior mean quality)."""

    @property
    def alpha(self) -> float:
        """The Beta posterior's alpha (prior included)."""
        return self.prior_quality * PRIOR_STRENGTH + self.successes

    @property
    def beta(self) -> float:
        """The Beta posterior's beta (prior included)."""
        return (1.0 - self.prior_quality) * PRIOR_STRENGTH + self.failures

    @property
    def quality(self) -> float:
        """The posterior mean quality."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def effective_samples(self) -> float:
        """Decayed, weighted evidence in executions' worth."""
        return self.successes + self.failures

    def shrunk(self, min_samples: float) -> tuple[float, float]:
        """``(alpha, beta)`` with the prior worth ``min_samples - samples`` more pseudo-executions.

        A model seen fewer than ``min_samples`` times stays close to its prior.
        """
        strength = PRIOR_STRENGTH + max(float(min_samples) - self.samples, 0.0)
        return (
            self.prior_quality * strength + self.successes,
            (1.0 - self.prior_quality) * strength + self.failures,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived figures for people reading the file."""
        return {
            "quality": round(self.quality, 6),
            "alpha": round(self.alpha, 6),
            "beta": round(self.beta, 6),
            "prior_quality": self.prior_quality,
            "successes": round(self.successes, 6),
            "failures": round(self.failures, 6),
            "samples": self.samples,
            "effective_samples": round(self.effective_samples, 6),
            "human_feedback": self.human_feedback,
            "latency_s": self.latency_s,
            "cost_usd": self.cost_usd,
            "score": None if self.score is None else round(self.score, 6),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelPosterior:
        """Inverse of :meth:`to_dict` (derived figures are recomputed)."""
        return cls(
            prior_quality=float(data["prior_quality"]),
            successes=float(data["successes"]),
            failures=float(data["failures"]),
            samples=int(data["samples"]),
            human_feedback=int(data.get("human_feedback", 0)),
            latency_s=None if data.get("latency_s") is None else float(data["latency_s"]),
            cost_usd=None if data.get("cost_usd") is None else float(data["cost_usd"]),
            score=None if data.get("score") is None else float(data["score"]),
        )


@attrs.frozen
class TaskRanking:
    """Every model's posterior on one task, and their order by the task's priorities."""

    criteria: RankingCriteria
    models: Mapping[str, ModelPosterior]

    @property
    def order(self) -> tuple[str, ...]:
        """Model ids, best combined score first."""
        return tuple(
            sorted(self.models, key=lambda m: (-(self.models[m].score or 0.0), m)),
        )

    @property
    def samples(self) -> int:
        """Executions with evidence for this task."""
        return sum(p.samples for p in self.models.values())


@attrs.frozen
class Rankings:
    """The rankings file: per task x model posteriors with provenance."""

    tasks: Mapping[str, TaskRanking]
    generated_at: str
    since: str | None
    half_life_s: float
    records: int
    """Records read to build it."""

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON content."""
        return {
            "format": FORMAT_VERSION,
            "provenance": {
                "generated_at": self.generated_at,
                "since": self.since,
                "half_life_days": self.half_life_s / 86_400,
                "records": self.records,
                "weights": {"auto": AUTO_WEIGHT, "human": HUMAN_WEIGHT, "system": SYSTEM_WEIGHT},
                "prior_strength": PRIOR_STRENGTH,
            },
            "tasks": {
                task_id: {
                    "criteria": {
                        "quality_priority": ranking.criteria.quality_priority,
                        "speed_priority": ranking.criteria.speed_priority,
                        "cost_priority": ranking.criteria.cost_priority,
                    },
                    "samples": ranking.samples,
                    "ranking": list(ranking.order),
                    "models": {m: p.to_dict() for m, p in sorted(ranking.models.items())},
                }
                for task_id, ranking in sorted(self.tasks.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<memory>") -> Rankings:
        """Parse :meth:`to_dict` output; errors name ``source`` and the JSON path."""
        path = "$"
        try:
            if not isinstance(data, Mapping) or data.get("format") != FORMAT_VERSION:
                raise ValueError(f"not a rankings file of format {FORMAT_VERSION}")
            provenance = data["provenance"]
            tasks: dict[str, TaskRanking] = {}
            for task_id, raw in data["tasks"].items():
                path = f"$.tasks[{task_id!r}]"
                criteria = RankingCriteria(
                    quality_priority=float(raw["criteria"]["quality_priority"]),
                    speed_priority=float(raw["criteria"]["speed_priority"]),
                    cost_priority=float(raw["criteria"]["cost_priority"]),
                )
                models = {}
                for model, posterior in raw["models"].items():
                    path = f"$.tasks[{task_id!r}].models[{model!r}]"
                    models[model] = ModelPosterior.from_dict(posterior)
                tasks[task_id] = TaskRanking(criteria, models)
            path = "$.provenance"
            return cls(
                tasks=tasks,
                generated_at=str(provenance["generated_at"]),
                since=provenance.get("since"),
                half_life_s=float(provenance["half_life_days"]) * 86_400,
                records=int(provenance.get("records", 0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ConfigurationError(f"{source}: invalid rankings ({what}) @ {path}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the file atomically (a temporary file renamed over it)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        temporary.replace(target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Rankings:
        """Read a rankings file.

        Raises:
            ConfigurationError: unreadable or malformed (with the file and JSON path).
        """
        source = Path(path)
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"{source}: cannot read rankings: {exc}") from None
        return cls.from_dict(data, source=str(source))


def combined_score(
    criteria: RankingCriteria, quality: float, latency_s: float, cost_usd: float, max_cost: float
) -> float:
    """Quality, speed (``1 / (1 + latency)``) and cheapness (``1 - cost / max_cost``) weighted by
    the task's priorities — the formula of :func:`tlm.engine.selection.rank_models`."""
    weights = criteria.quality_priority + criteria.speed_priority + criteria.cost_priority or 1.0
    speed = 1.0 / (1.0 + max(latency_s, 0.0))
    cheapness = 1.0 - cost_usd / (max_cost or 1.0)
    return (
        criteria.quality_priority * quality
        + criteria.speed_priority * speed
        + criteria.cost_priority * cheapness
    ) / weights


@attrs.define
class _Accumulator:
    successes: float = 0.0
    failures: float = 0.0
    samples: int = 0
    human: int = 0
    weight: float = 0.0
    latency: float = 0.0
    cost: float = 0.0


def build_rankings(
    records: Iterable[ExecutionRecord],
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    half_life: timedelta = timedelta(days=7),
    criteria: Mapping[str, RankingCriteria] | None = None,
    priors: Mapping[str, float] | None = None,
) -> Rankings:
    """Posteriors per task x primary model from ``records`` (time-decayed toward ``now``).

    Args:
        records: Execution records, any tasks.
        now: The reference time for decay (default: the current time).
        since: Records before it are ignored.
        half_life: Age at which a record's evidence counts half.
        criteria: Each task's ranking criteria (default :class:`RankingCriteria`).
        priors: Prior quality per model id (default :data:`DEFAULT_PRIOR`).
    """
    now = now or datetime.now(UTC)
    half_life_s = half_life.total_seconds()
    if half_life_s <= 0:
        raise ValueError("half_life must be positive")
    priors = priors or {}
    criteria = criteria or {}
    acc: dict[str, dict[str, _Accumulator]] = defaultdict(lambda: defaultdict(_Accumulator))
    count = 0
    for record in records:
        when = parse_timestamp(record.timestamp)
        if since is not None and when < since:
            continue
        count += 1
        age = max((now - when).total_seconds(), 0.0)
        decay = 0.5 ** (age / half_life_s)
        model = primary_model(record)
        slot = acc[record.task_id][model]
        for evidence in answer_evidence(record):  # every model that answered, not only the primary
            answered = acc[record.task_id][evidence.model]
            answered.successes += decay * evidence.successes
            answered.failures += decay * evidence.failures
            answered.samples += 1
            answered.human += evidence.human
        if record.status == "ok" and not record.cache_hit:
            slot.weight += decay
            slot.latency += decay * record.performance.execution_time
            slot.cost += decay * record.performance.cost
    tasks: dict[str, TaskRanking] = {}
    for task_id, models in acc.items():
        task_criteria = criteria.get(task_id, RankingCriteria())
        raw = {
            model: ModelPosterior(
                prior_quality=priors.get(model, DEFAULT_PRIOR),
                successes=a.successes,
                failures=a.failures,
                samples=a.samples,
                human_feedback=a.human,
                latency_s=a.latency / a.weight if a.weight else None,
                cost_usd=a.cost / a.weight if a.weight else None,
            )
            for model, a in models.items()
            if a.samples or a.weight
        }
        max_cost = max((p.cost_usd or 0.0 for p in raw.values()), default=0.0)
        scored = {
            model: attrs.evolve(
                p,
                score=combined_score(
                    task_criteria, p.quality, p.latency_s or 0.0, p.cost_usd or 0.0, max_cost
                ),
            )
            for model, p in raw.items()
        }
        tasks[task_id] = TaskRanking(task_criteria, scored)
    return Rankings(
        tasks=tasks,
        generated_at=format_timestamp(now),
        since=None if since is None else format_timestamp(since),
        half_life_s=half_life_s,
        records=count,
    )


def update_rankings(
    store: ExecutionStore,
    *,
    period: timedelta | None = timedelta(days=30),
    half_life: timedelta = timedelta(days=7),
    registry: DefinitionRegistry | None = None,
    catalog: Catalog | None = None,
    now: datetime | None = None,
) -> Rankings:
    """Build rankings from the store's records of the last ``period`` (``None``: all of them).

    Task criteria come from ``registry`` (each task's newest version), model priors from
    ``catalog``.
    """
    now = now or datetime.now(UTC)
    since = None if period is None else now - period
    criteria: dict[str, RankingCriteria] = {}
    if registry is not None:
        for task_id in registry.task_ids():
            criteria[task_id] = registry.get(task_id).model_ranking_criteria
    priors = {card.id: card.prior_quality for card in catalog} if catalog is not None else {}
    return build_rankings(
        store.iter_query(since=since),
        now=now,
        since=since,
        half_life=half_life,
        criteria=criteria,
        priors=priors,
    )
