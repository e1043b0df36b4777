"""Input-aware model selection learned from the execution log, with exploration and a budget.

For each task x model an online :class:`~tlm.learn.predictors.SuccessPredictor` estimates the
probability that the model's answer to *this input* is good, from hashed n-gram features of the
rendered prompt, and a :class:`~tlm.learn.predictors.CostPredictor` its cost from the prompt's
size. Both learn one record at a time from every answer a record holds
(:func:`tlm.learn.evidence.answer_evidence`). A selection ranks the candidate models by

    objective = P(success) - lambda * predicted cost

with P(success) drawn from the posterior (``"thompson"``), taken optimistically (``"ucb"``) or
at its mean (``"greedy"``). ``lambda`` is fixed by the task's cost weight (relative to the dearest
candidate's predicted cost) or, for a task with a target spend per execution, paced online: after
each selection it moves multiplicatively toward the spend that meets the target.

A task with fewer than ``min_history`` learned outcomes is not selected for (``select`` returns a
fallback selection that keeps the given order: today's per-task rankings). Every selection
carries its explanation (:meth:`Selection.to_dict`): the models considered with their predicted
quality, uncertainty, cost and objective, lambda, the policy and why the first model was chosen.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np

from tlm.errors import ConfigurationError
from tlm.estimates import ModelEstimate
from tlm.learn.evidence import answer_evidence, answers_of
from tlm.learn.features import FeatureVector, HashedFeatures, input_text
from tlm.learn.predictors import CostPredictor, SuccessPredictor
from tlm.telemetry.records import ExecutionRecord
from tlm.usage import estimate_tokens, tokens_for_chars

__all__ = (
    "ModelPrediction",
    "Selection",
    "InputAwareSelector",
    "SELECTOR_FILE",
    "record_text",
)

SELECTOR_FILE = "selector.json"
FORMAT_VERSION = 1
SelectionPolicy = Literal["thompson", "ucb", "greedy"]


@attrs.frozen
class ModelPrediction:
    """One candidate model's predictions for one input."""

    model: str
    quality: float
    """Posterior predictive P(success)."""
    drawn: float
    """The quality the policy used (a Thompson draw, an optimistic bound, or the mean)."""
    uncertainty: float
    """Standard deviation of the latent score (0 = certain)."""
    cost_usd: float
    objective: float
    observations: float


@attrs.frozen
class Selection:
    """The order chosen for one execution, with what it was chosen from."""

    task_id: str
    order: tuple[str, ...]
    learned: bool
    """Whether the learned predictors decided (else the given fallback order was kept)."""
    reason: str
    policy: str = "fallback"
    lam: float = 0.0
    history: float = 0.0
    predictions: tuple[ModelPrediction, ...] = ()

    @property
    def chosen(self) -> str | None:
        """The model ranked first."""
        return self.order[0] if self.order else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready explanation (what lands in the execution record)."""
        return {
            "selector": "input_aware",
            "learned": self.learned,
            "chosen": self.chosen,
            "reason": self.reason,
            "policy": self.policy,
            "lambda": self.lam,
            "history": self.history,
            "considered": [
                {
                    "model": p.model,
                    "quality": round(p.quality, 6),
                    "drawn": round(p.drawn, 6),
                    "uncertainty": round(p.uncertainty, 6),
                    "cost_usd": p.cost_usd,
                    "objective": round(p.objective, 9),
                    "observations": p.observations,
                }
                for p in self.predictions
            ],
        }


def record_text(record: ExecutionRecord) -> str:
    """The text a record's features are computed from: the rendered prompt, else the input."""
    return record.prompt if record.prompt else input_text(record.input)


class InputAwareSelector:
    """Per task x model success and cost predictors over input features (module docstring).

    Args:
        features: The feature map (fixed: nothing in it is fitted).
        policy: ``"thompson"``, ``"ucb"`` or ``"greedy"``.
        exploration: UCB's width in standard deviations of the latent score.
        min_history: Learned outcomes a task needs before its selections are learned.
        prior_variance: The predictors' text-weight prior variance (chosen by cross-validation).
        prior_quality: Prior success probability per model id (default 0.5).
        prior_cost: The expected cost of a model for a prompt of N tokens (the catalog's price),
            used until the model's cost has been observed on the task.
        targets: Target mean spend per execution (USD) by task id: lambda is paced to it.
        pacing_rate: How fast lambda moves toward the target.
        seed: Seed of the random draws (Thompson).
        fallback: The per-task estimates hook used before a task has history (the rankings).
    """

    def __init__(
        self,
        *,
        features: HashedFeatures | None = None,
        policy: SelectionPolicy = "thompson",
        exploration: float = 1.0,
        min_history: float = 50.0,
        prior_variance: float = 0.05,
        prior_quality: Mapping[str, float] | None = None,
        prior_cost: Callable[[str, int], float | None] | None = None,
        targets: Mapping[str, float] | None = None,
        pacing_rate: float = 0.05,
        seed: int | None = None,
        fallback: Callable[[str], Mapping[str, ModelEstimate]] | None = None,
    ) -> None:
        if policy not in ("thompson", "ucb", "greedy"):
            raise ValueError(f"unknown policy {policy!r}: use thompson, ucb or greedy")
        if min_history < 0 or prior_variance <= 0 or pacing_rate < 0:
            raise ValueError("min_history, prior_variance and pacing_rate must be positive")
        self.features = features or HashedFeatures()
        self.policy: SelectionPolicy = policy
        self.exploration = exploration
        self.min_history = min_history
        self.prior_variance = prior_variance
        self.prior_quality = dict(prior_quality or {})
        self.prior_cost = prior_cost
        self.targets = dict(targets or {})
        self.pacing_rate = pacing_rate
        self.rng = np.random.default_rng(seed)
        self.fallback = fallback
        self.success: dict[tuple[str, str], SuccessPredictor] = {}
        self.cost: dict[tuple[str, str], CostPredictor] = {}
        self.history: dict[str, float] = {}
        self.lam: dict[str, float] = {}

    # --- learning -----------------------------------------------------------------------------

    def _success(self, task_id: str, model: str) -> SuccessPredictor:
        predictor = self.success.get((task_id, model))
        if predictor is None:
            predictor = self.success[task_id, model] = SuccessPredictor(
                self.features.dims,
                prior_quality=self.prior_quality.get(model, 0.5),
                prior_variance=self.prior_variance,
            )
        return predictor

    def _cost(self, task_id: str, model: str) -> CostPredictor:
        predictor = self.cost.get((task_id, model))
        if predictor is None:
            predictor = self.cost[task_id, model] = CostPredictor()
        return predictor

    def learn(
        self,
        task_id: str,
        text: str | FeatureVector,
        model: str,
        success: float | None,
        *,
        weight: float = 1.0,
        cost_usd: float | None = None,
    ) -> None:
        """Learn one answer of ``model`` to ``text``: its success share and/or its cost."""
        x = text if isinstance(text, FeatureVector) else self.features(text)
        if success is not None:
            self._success(task_id, model).update(x, success, weight)
            self.history[task_id] = self.history.get(task_id, 0.0) + weight
        if cost_usd is not None and math.isfinite(cost_usd) and cost_usd >= 0:
            tokens = _tokens(text) if isinstance(text, str) else _tokens_of(x)
            self._cost(task_id, model).update(tokens, cost_usd)

    def observe(self, record: ExecutionRecord) -> int:
        """Learn everything ``record`` says; returns the answers learned from.

        Cache hits teach nothing (no model answered). Each answering model's cost is its vote's
        ``cost_usd`` when the verifier reported it, else (primary alone) the record's cost.
        """
        if record.cache_hit:
            return 0
        text = record_text(record)
        x = self.features(text)
        tokens = _tokens(text)
        learned = 0
        for evidence in answer_evidence(record):
            total = evidence.successes + evidence.failures
            self._success(record.task_id, evidence.model).update(
                x, evidence.successes / total, total
            )
            self.history[record.task_id] = self.history.get(record.task_id, 0.0) + total
            learned += 1
        for model, cost in _call_costs(record).items():
            self._cost(record.task_id, model).update(tokens, cost)
        return learned

    def observe_all(self, records: Iterable[ExecutionRecord]) -> int:
        """:meth:`observe` each record in order; returns the records read."""
        count = 0
        for record in records:
            self.observe(record)
            count += 1
        return count

    # --- predicting and selecting ---------------------------------------------------------------

    def predicted_cost(self, task_id: str, model: str, tokens: int) -> float:
        """The expected cost of ``model`` on a prompt of ``tokens`` tokens for ``task_id``."""
        learned = self.cost.get((task_id, model))
        if learned is not None and learned.known:
            return learned.predict(tokens)
        prior = self.prior_cost(model, tokens) if self.prior_cost is not None else None
        return float(prior) if prior is not None else 0.0

    def predict(
        self, task_id: str, text: str | FeatureVector, models: Sequence[str], *, lam: float = 0.0
    ) -> list[ModelPrediction]:
        """Predictions for every model in ``models`` (a fresh draw for Thompson)."""
        x = text if isinstance(text, FeatureVector) else self.features(text)
        tokens = _tokens(text) if isinstance(text, str) else _tokens_of(x)
        out = []
        for model in models:
            predictor = self.success.get((task_id, model))
            if predictor is None:
                predictor = SuccessPredictor(
                    self.features.dims,
                    prior_quality=self.prior_quality.get(model, 0.5),
                    prior_variance=self.prior_variance,
                )
            quality = predictor.predict(x)
            if self.policy == "thompson":
                drawn = predictor.sample(x, self.rng)
            elif self.policy == "ucb":
                drawn = predictor.optimistic(x, self.exploration)
            else:
                drawn = quality
            cost = self.predicted_cost(task_id, model, tokens)
            out.append(
                ModelPrediction(
                    model=model,
                    quality=quality,
                    drawn=drawn,
                    uncertainty=predictor.uncertainty(x),
                    cost_usd=cost,
                    objective=drawn - lam * cost,
                    observations=predictor.observations,
                )
            )
        return out

    def cost_weight_lambda(self, task_id: str, cost_weight: float, costs: Iterable[float]) -> float:
        """Lambda for ``task_id``: paced to its target, else ``cost_weight / dearest cost``."""
        if task_id in self.targets:
            return self.lam.setdefault(task_id, 1.0 / max(self.targets[task_id], 1e-12) * 0.1)
        dearest = max(costs, default=0.0)
        return cost_weight / dearest if dearest > 0 else 0.0

    def select(
        self, task_id: str, text: str, candidates: Sequence[str], *, cost_weight: float = 0.0
    ) -> Selection:
        """Order ``candidates`` (best first) for this input, with the explanation.

        Before the task has ``min_history`` learned outcomes the given order is kept.
        """
        history = self.history.get(task_id, 0.0)
        if history < self.min_history or not candidates:
            return Selection(
                task_id=task_id,
                order=tuple(candidates),
                learned=False,
                reason=(
                    f"fallback to the per-task ranking: {history:g} learned outcomes for the task, "
                    f"{self.min_history:g} needed"
                ),
                history=history,
            )
        x = self.features(text)
        tokens = _tokens(text)
        costs = [self.predicted_cost(task_id, m, tokens) for m in candidates]
        lam = self.cost_weight_lambda(task_id, cost_weight, costs)
        predictions = self.predict(task_id, x, candidates, lam=lam)
        ranked = sorted(predictions, key=lambda p: (-p.objective, p.cost_usd, p.model))
        best = ranked[0]
        runner = ranked[1] if len(ranked) > 1 else None
        reason = (
            f"{best.model}: highest {self.policy} P(success) - lambda*cost "
            f"({best.drawn:.3f} - {lam:.4g}*${best.cost_usd:.6f} = {best.objective:.4f})"
        )
        if runner is not None:
            reason += f"; next {runner.model} at {runner.objective:.4f}"
        self._pace(task_id, best.cost_usd)
        return Selection(
            task_id=task_id,
            order=tuple(p.model for p in ranked),
            learned=True,
            reason=reason,
            policy=self.policy,
            lam=lam,
            history=history,
            predictions=tuple(predictions),
        )

    def _pace(self, task_id: str, spent: float) -> None:
        target = self.targets.get(task_id)
        if target is None or target <= 0:
            return
        lam = self.lam.get(task_id, 0.1 / target)
        step = max(min(self.pacing_rate * (spent - target) / target, 1.0), -1.0)
        self.lam[task_id] = min(max(lam * math.exp(step), 1e-3 / target), 1e3 / target)

    def __call__(self, task_id: str) -> Mapping[str, ModelEstimate]:
        """The per-task estimates hook (the fallback's; empty without one)."""
        return self.fallback(task_id) if self.fallback is not None else {}

    # --- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (predictors, history, paced lambdas, settings)."""
        return {
            "format": FORMAT_VERSION,
            "features": {"dims": self.features.dims, "ngrams": self.features.ngrams},
            "policy": self.policy,
            "min_history": self.min_history,
            "prior_variance": self.prior_variance,
            "history": self.history,
            "lambda": self.lam,
            "success": [
                {"task": t, "model": m, "predictor": p.to_dict()}
                for (t, m), p in sorted(self.success.items())
            ],
            "cost": [
                {"task": t, "model": m, "predictor": p.to_dict()}
                for (t, m), p in sorted(self.cost.items())
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the state atomically."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(json.dumps(self.to_dict()) + "\n", encoding="utf-8")
        temporary.replace(target)
        return target

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<memory>", **kwargs: Any) -> InputAwareSelector:
        """Rebuild from :meth:`to_dict`; ``kwargs`` override settings (policy, fallback, ...).

        Raises:
            ConfigurationError: malformed state (naming ``source``).
        """
        try:
            if not isinstance(data, Mapping) or data.get("format") != FORMAT_VERSION:
                raise ValueError(f"not a selector file of format {FORMAT_VERSION}")
            feats = data["features"]
            settings: dict[str, Any] = {
                "features": HashedFeatures(dims=int(feats["dims"]), ngrams=int(feats["ngrams"])),
                "policy": data.get("policy", "thompson"),
                "min_history": float(data.get("min_history", 50.0)),
                "prior_variance": float(data.get("prior_variance", 0.05)),
            }
            settings.update(kwargs)
            selector = cls(**settings)
            selector.history = {str(k): float(v) for k, v in data["history"].items()}
            selector.lam = {str(k): float(v) for k, v in data.get("lambda", {}).items()}
            for item in data["success"]:
                predictor = SuccessPredictor.from_dict(item["predictor"])
                if predictor.dims != selector.features.dims:
                    raise ValueError("a predictor's dimensions differ from the features'")
                selector.success[str(item["task"]), str(item["model"])] = predictor
            for item in data["cost"]:
                selector.cost[str(item["task"]), str(item["model"])] = CostPredictor.from_dict(
                    item["predictor"]
                )
            return selector
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ConfigurationError(f"{source}: invalid selector state ({what})") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: Any) -> InputAwareSelector:
        """Read :meth:`save` output (``kwargs`` as for :meth:`from_dict`)."""
        source = Path(path)
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{source}: cannot read the selector state: {exc}") from None
        return cls.from_dict(data, source=str(source), **kwargs)


def _tokens(text: str) -> int:
    return estimate_tokens(text)


def _tokens_of(x: FeatureVector) -> int:
    """The prompt size a feature vector was made from (its length feature)."""
    from tlm.learn.features import LENGTH

    hit = np.nonzero(x.indices == LENGTH)[0]
    chars = math.expm1(float(x.values[hit[0]]) * 10.0) if hit.size else 0.0
    return tokens_for_chars(round(chars))


def _call_costs(record: ExecutionRecord) -> dict[str, float]:
    """What each model's answer cost in ``record`` (votes' ``cost_usd``; else the record's)."""
    answers, _ = answers_of(record)
    costs: dict[str, float] = {}
    if answers and record.verification_results is not None:
        for vote in record.verification_results.details.get("votes", ()):
            if isinstance(vote, Mapping) and isinstance(vote.get("model"), str):
                cost = vote.get("cost_usd")
                if isinstance(cost, int | float) and not isinstance(cost, bool):
                    costs.setdefault(vote["model"], float(cost))
        return costs
    if record.models_used and record.status == "ok" and len(record.models_used) == 1:
        costs[record.models_used[0]] = record.performance.cost
    return costs
