"""Model selection: rank the available models for a task from its ranking criteria.

The score of a model combines its quality, speed and cost by the task's priorities. Quality and
latency come from the catalog's priors until the learning system supplies per-task estimates
(:class:`ModelEstimate`). A model whose context window cannot hold the prompt is never chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from tlm.definition.model import CONTEXT_TOKENS, RankingCriteria
from tlm.estimates import ModelEstimate
from tlm.usage import Usage, estimate_tokens

__all__ = ("ModelEstimate", "RankedModel", "rank_models", "estimate_tokens", "SelectableModel")

_REFERENCE_TOKENS = Usage(input_tokens=1_000, output_tokens=500)


class SelectableModel(Protocol):
    """What selection needs to know of a catalog entry."""

    @property
    def id(self) -> str: ...
    @property
    def context_window(self) -> int: ...
    @property
    def prior_quality(self) -> float: ...
    @property
    def prior_latency_s(self) -> float: ...
    def cost(self, usage: Usage, /) -> float: ...


@attrs.frozen
class RankedModel:
    """A model with its selection score."""

    id: str
    score: float
    quality: float
    latency_s: float
    cost_usd: float


def rank_models(
    models: Sequence[SelectableModel],
    criteria: RankingCriteria,
    *,
    prompt_tokens: int = 0,
    max_output_tokens: int = 0,
    estimates: Mapping[str, ModelEstimate] | None = None,
) -> list[RankedModel]:
    """Rank ``models`` best first; models whose window cannot hold the prompt are left out.

    Models smaller than the task's ``context_size`` stay eligible but rank after the others.

    ``criteria.preferred_models`` come first in their given order, the rest by score.
    """
    needed = max(prompt_tokens + max_output_tokens, 0)
    floor = CONTEXT_TOKENS.get(criteria.context_size, 0)
    fitting = [m for m in models if m.context_window >= needed]
    if not fitting:
        return []
    estimates = estimates or {}
    rows = []
    roomy = {m.id for m in fitting if m.context_window >= floor}
    for card in fitting:
        learned = estimates.get(card.id)
        quality = learned.quality if learned else card.prior_quality
        latency = learned.latency_s if learned else card.prior_latency_s
        cost = (
            learned.cost_usd
            if learned and learned.cost_usd is not None
            else card.cost(_REFERENCE_TOKENS)
        )
        rows.append((card.id, quality, latency, cost))
    max_cost = max((r[3] for r in rows), default=0.0) or 1.0
    weights = criteria.quality_priority + criteria.speed_priority + criteria.cost_priority or 1.0
    ranked = []
    for model_id, quality, latency, cost in rows:
        speed = 1.0 / (1.0 + max(latency, 0.0))
        cheapness = 1.0 - cost / max_cost
        score = (
            criteria.quality_priority * quality
            + criteria.speed_priority * speed
            + criteria.cost_priority * cheapness
        ) / weights
        ranked.append(RankedModel(model_id, score, quality, latency, cost))
    # Models below the task's named context size rank after those that meet it.
    ranked.sort(key=lambda r: (r.id not in roomy, -r.score, r.cost_usd, r.id))
    preferred = {m: i for i, m in enumerate(criteria.preferred_models)}
    ranked.sort(key=lambda r: preferred.get(r.id, len(preferred)))
    return ranked
