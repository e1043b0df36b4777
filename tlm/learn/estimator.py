"""The engine's ``estimates=`` hook from ``rankings.json``: per task and model, the learned quality
(sampled for exploration by Thompson sampling or UCB), latency and cost, blended with the catalog's
priors until ``min_samples`` executions are in."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlm.estimates import ModelEstimate
from tlm.learn.rankings import (
    RANKINGS_FILE,
    REFERENCE_USAGE,
    ModelPosterior,
    Policy,
    Rankings,
)

if TYPE_CHECKING:
    from tlm.catalog import Catalog
    from tlm.definition.registry import DefinitionRegistry

__all__ = ("RankingsEstimator", "load_estimator", "cold_start_priors_for")


class RankingsEstimator:
    """The engine's ``estimates=`` hook over learned rankings, with exploration.

    ``estimator(task_id)`` returns a :class:`~tlm.estimates.ModelEstimate` per model; it is
    called once per execution, so each call is a fresh draw:

    - ``"thompson"``: quality is a sample of the model's Beta posterior (uncertain models are
      sometimes tried; a model that keeps failing stops being tried).
    - ``"ucb"``: the posterior mean plus ``exploration * sqrt(ln N / n)`` (``N`` evidence on the
      task, ``n`` on the model): optimism in the face of uncertainty, deterministic.
    - ``"greedy"``: the posterior mean (no exploration).

    A model with fewer than ``min_samples`` executions is shrunk toward its prior (the prior is
    worth ``min_samples`` pseudo-executions); its latency and cost are blended with the catalog's
    the same way. With a ``catalog``, models without history on the task (in ``models``, default
    the whole catalog) are estimated from their prior (a cold-start prior from ``priors`` when
    given: ``task_id -> {model_id: quality}``), sampled like the others.

    Not thread-safe (it owns ``rng``); one estimator per engine.
    """

    def __init__(
        self,
        rankings: Rankings,
        *,
        policy: Policy = "thompson",
        rng: random.Random | None = None,
        min_samples: int = 5,
        exploration: float = 1.0,
        catalog: Catalog | None = None,
        models: Iterable[str] | None = None,
        priors: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        if policy not in ("thompson", "ucb", "greedy"):
            raise ValueError(f"unknown policy {policy!r}: use thompson, ucb or greedy")
        if min_samples < 0:
            raise ValueError("min_samples must not be negative")
        self.rankings = rankings
        self.policy: Policy = policy
        self.rng = rng if rng is not None else random.Random()
        self.min_samples = min_samples
        self.exploration = exploration
        self.catalog = catalog
        self.models = tuple(models) if models is not None else None
        self.priors = priors or {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> RankingsEstimator:
        """An estimator over the rankings file at ``path`` (see :meth:`Rankings.load`)."""
        return cls(Rankings.load(path), **kwargs)

    def __call__(self, task_id: str) -> Mapping[str, ModelEstimate]:
        """Estimates for every known model on ``task_id`` (a fresh draw for Thompson)."""
        ranking = self.rankings.tasks.get(task_id)
        posteriors = dict(ranking.models) if ranking is not None else {}
        borrowed = self.priors.get(task_id, {})
        if self.catalog is not None:
            wanted = self.models if self.models is not None else self.catalog.ids()
            for model in wanted:
                if model in self.catalog and model not in posteriors:
                    prior = borrowed.get(model, self.catalog.get(model).prior_quality)
                    posteriors[model] = ModelPosterior(prior, 0.0, 0.0, 0)
        total = sum(p.effective_samples for p in posteriors.values())
        return {
            model: self._estimate(model, posterior, total)
            for model, posterior in posteriors.items()
        }

    def _estimate(self, model: str, posterior: ModelPosterior, total: float) -> ModelEstimate:
        alpha, beta = posterior.shrunk(self.min_samples)
        mean = alpha / (alpha + beta)
        if self.policy == "thompson":
            quality = self.rng.betavariate(alpha, beta)
        elif self.policy == "ucb":
            n = max(posterior.effective_samples, 1e-9)
            bonus = self.exploration * math.sqrt(math.log(max(total, 1.0) + 1.0) / n)
            quality = min(mean + bonus, 1.0 + bonus)
        else:
            quality = mean
        card = (
            self.catalog.get(model) if self.catalog is not None and model in self.catalog else None
        )
        latency = posterior.latency_s
        cost = posterior.cost_usd
        trust = min(posterior.samples / self.min_samples, 1.0) if self.min_samples else 1.0
        if card is not None:
            prior_cost = card.cost(REFERENCE_USAGE)
            latency = (
                card.prior_latency_s
                if latency is None
                else _blend(latency, card.prior_latency_s, trust)
            )
            cost = prior_cost if cost is None else _blend(cost, prior_cost, trust)
        return ModelEstimate(
            quality=quality,
            latency_s=latency if latency is not None else 5.0,
            cost_usd=cost,
            samples=posterior.samples,
        )


def _blend(learned: float, prior: float, trust: float) -> float:
    return trust * learned + (1.0 - trust) * prior


def load_estimator(
    data_dir: str | os.PathLike[str],
    *,
    catalog: Catalog | None = None,
    models: Iterable[str] | None = None,
    registry: DefinitionRegistry | None = None,
    policy: Policy = "thompson",
    rng: random.Random | None = None,
    min_samples: int = 5,
) -> RankingsEstimator | None:
    """A :class:`RankingsEstimator` over ``<data_dir>/rankings.json``; ``None`` without the file.

    With a ``registry``, tasks that have no rankings yet get cold-start priors borrowed from
    similar tasks (:func:`tlm.learn.coldstart.cold_start_priors`).

    Raises:
        ConfigurationError: the file is malformed (with its path and the JSON path).
    """
    path = Path(data_dir) / RANKINGS_FILE
    if not path.is_file():
        return None
    rankings = Rankings.load(path)
    priors = cold_start_priors_for(rankings, registry)
    return RankingsEstimator(
        rankings,
        policy=policy,
        rng=rng,
        min_samples=min_samples,
        catalog=catalog,
        models=models,
        priors=priors,
    )


def cold_start_priors_for(
    rankings: Rankings, registry: DefinitionRegistry | None
) -> dict[str, Mapping[str, float]]:
    """Priors borrowed from similar tasks for the registry's tasks that ``rankings`` lacks."""
    priors: dict[str, Mapping[str, float]] = {}
    if registry is not None:
        from tlm.learn.coldstart import cold_start_priors

        definitions = [registry.get(task_id) for task_id in registry.task_ids()]
        for definition in definitions:
            if definition.id not in rankings.tasks:
                borrowed = cold_start_priors(definition, rankings, definitions)
                if borrowed:
                    priors[definition.id] = borrowed
    return priors
