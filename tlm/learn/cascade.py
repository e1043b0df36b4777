"""Verified cascades learned from outcomes: which models to ask in which order, when to stop.

A :class:`CascadePlan` is a ladder of rungs (each a few models asked together) and an acceptance
rule: after rung ``k`` below the top, the largest group of agreeing answers so far is accepted when
it has at least ``agreement`` members *and* the learned probability that such an answer is right
(:class:`AgreementModel`: a Beta posterior per rung, group size and answers asked) is at least
``min_confidence``; otherwise the next rung is asked. The top rung's best answer is the answer.

:func:`plan_cascade` learns the ladder and the thresholds from :class:`Outcome` rows (what each
model answered to one input, whether it was right, what it cost — from the execution log, or from
a benchmark): candidate ladders are built from the models on the task's cost/quality frontier,
every (ladder, agreement, threshold) is scored by k-fold cross-validation (the agreement model is
fitted on the other folds), and the cheapest plan whose cross-validated quality reaches
``target_quality`` is chosen — or the best plan whose cost stays within ``max_cost``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

__all__ = (
    "Outcome",
    "CascadePlan",
    "AgreementModel",
    "run_plan",
    "plan_cascade",
    "cascade_frontier",
    "candidate_ladders",
    "frontier",
)


@attrs.frozen
class Outcome:
    """One input: each model's answer (equal keys agree), its correctness (0..1) and cost."""

    answers: Mapping[str, Hashable | None]
    correct: Mapping[str, float]
    cost: Mapping[str, float]
    fold: int = 0
    """The cross-validation fold (e.g. a hash of the input's id)."""


@attrs.frozen
class CascadePlan:
    """A ladder and its acceptance rule, with the cross-validated expectation."""

    ladder: tuple[tuple[str, ...], ...]
    agreement: int = 2
    min_confidence: float = 0.0
    expected_quality: float | None = None
    expected_cost: float | None = None
    table: Mapping[tuple[int, int, int], tuple[float, float]] = attrs.field(factory=dict)
    """The agreement model's counts ``(rung, group size, answers) -> (right, seen)``."""
    patterns: Mapping[tuple[int, str, int], tuple[float, float]] = attrs.field(factory=dict)
    """The same by which models agreed: ``(rung, "model+model", answers) -> (right, seen)``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "ladder": [list(r) for r in self.ladder],
            "agreement": self.agreement,
            "min_confidence": self.min_confidence,
            "expected_quality": self.expected_quality,
            "expected_cost": self.expected_cost,
            "table": [[list(k), list(v)] for k, v in sorted(self.table.items())],
            "patterns": [[list(k), list(v)] for k, v in sorted(self.patterns.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CascadePlan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            ladder=tuple(tuple(str(m) for m in rung) for rung in data["ladder"]),
            agreement=int(data["agreement"]),
            min_confidence=float(data["min_confidence"]),
            expected_quality=data.get("expected_quality"),
            expected_cost=data.get("expected_cost"),
            table={
                (int(k[0]), int(k[1]), int(k[2])): (float(v[0]), float(v[1]))
                for k, v in data.get("table", ())
            },
            patterns={
                (int(k[0]), str(k[1]), int(k[2])): (float(v[0]), float(v[1]))
                for k, v in data.get("patterns", ())
            },
        )

    def confidence(self, rung: int, group: Sequence[str], answers: int) -> float:
        """P(the agreeing ``group`` of models among ``answers`` after ``rung`` is right)."""
        return AgreementModel(self.table, self.patterns).probability(rung, group, answers)

    def accepts(self, rung: int, group: Sequence[str], answers: int) -> bool:
        """Whether the rule accepts such a group below the top rung."""
        return (
            len(group) >= self.agreement
            and self.confidence(rung, group, answers) >= self.min_confidence
        )


PATTERN_PRIOR = 4.0
"""How many observations the size-level estimate is worth against a model pattern's own."""


@attrs.frozen
class AgreementModel:
    """P(the largest agreeing group is right | rung, which models agree, answers so far).

    The estimate for a group's size (Beta(1, 1) prior) is the prior of the estimate for the
    group's exact models, worth :data:`PATTERN_PRIOR` observations: a pattern seen often speaks
    for itself, a rare one borrows from its size.
    """

    table: Mapping[tuple[int, int, int], tuple[float, float]]
    patterns: Mapping[tuple[int, str, int], tuple[float, float]] = attrs.field(factory=dict)

    def probability(self, rung: int, group: Sequence[str] | int, answers: int) -> float:
        """``group``: the agreeing models (or only their number)."""
        size = group if isinstance(group, int) else len(group)
        right, seen = self.table.get((rung, size, answers), (0.0, 0.0))
        by_size = (right + 1.0) / (seen + 2.0)
        if isinstance(group, int):
            return by_size
        right, seen = self.patterns.get((rung, pattern_of(group), answers), (0.0, 0.0))
        return (right + PATTERN_PRIOR * by_size) / (seen + PATTERN_PRIOR)


def pattern_of(group: Sequence[str]) -> str:
    """The key of an agreeing group of models (order-free)."""
    return "+".join(sorted(group))


def _group(answers: Sequence[Hashable | None]) -> tuple[int, int]:
    """``(index of the first answer in the largest group, its size)``; ``(-1, 0)`` if none."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return -1, 0
    size = max(counts.values())
    for i, a in enumerate(answers):
        if a is not None and counts[a] == size:
            return i, size
    return -1, 0  # pragma: no cover - unreachable


@attrs.frozen
class _Trace:
    """A ladder run on every outcome: per rung, the group's quality, size, answers, cost."""

    quality: np.ndarray  # (n, rungs) quality of the answer taken if accepted at the rung
    size: np.ndarray  # (n, rungs)
    asked: np.ndarray  # (n, rungs)
    cost: np.ndarray  # (n, rungs) cumulative
    pattern: list[list[str]]  # (n, rungs) the agreeing models


def _trace(ladder: Sequence[Sequence[str]], outcomes: Sequence[Outcome]) -> _Trace:
    n, rungs = len(outcomes), len(ladder)
    quality = np.zeros((n, rungs))
    size = np.zeros((n, rungs), dtype=np.int64)
    asked = np.zeros((n, rungs), dtype=np.int64)
    cost = np.zeros((n, rungs))
    pattern: list[list[str]] = []
    for i, o in enumerate(outcomes):
        pattern.append([])
        models: list[str] = []
        spent = 0.0
        for k, rung in enumerate(ladder):
            models.extend(rung)
            spent += sum(o.cost.get(m, 0.0) for m in rung)
            answers = [o.answers.get(m) for m in models]
            first, group = _group(answers)
            if k == rungs - 1:
                # the top: the best-placed answer of the largest group, else the top model's own
                pick = models[first] if group > 1 else rung[-1]
            else:
                pick = models[first] if first >= 0 else models[0]
            quality[i, k] = o.correct.get(pick, 0.0)
            agreed = answers[first] if first >= 0 else None
            pattern[i].append(
                pattern_of(
                    [
                        m
                        for m, a in zip(models, answers, strict=True)
                        if a is not None and a == agreed
                    ]
                )
            )
            size[i, k] = group
            asked[i, k] = len(models)
            cost[i, k] = spent
    return _Trace(quality, size, asked, cost, pattern)


def _fit_table(trace: _Trace, rows: np.ndarray) -> AgreementModel:
    table: dict[tuple[int, int, int], tuple[float, float]] = {}
    patterns: dict[tuple[int, str, int], tuple[float, float]] = {}
    for k in range(trace.quality.shape[1] - 1):
        for i in rows:
            asked = int(trace.asked[i, k])
            good = float(trace.quality[i, k])
            key = (k, int(trace.size[i, k]), asked)
            right, seen = table.get(key, (0.0, 0.0))
            table[key] = (right + good, seen + 1.0)
            pkey = (k, trace.pattern[i][k], asked)
            right, seen = patterns.get(pkey, (0.0, 0.0))
            patterns[pkey] = (right + good, seen + 1.0)
    return AgreementModel(table, patterns)


def _probabilities(trace: _Trace, rows: np.ndarray, model: AgreementModel) -> np.ndarray:
    rungs = trace.quality.shape[1]
    probs = np.ones((len(rows), rungs))
    cache: dict[tuple[int, str, int], float] = {}
    for j, i in enumerate(rows):
        for k in range(rungs - 1):
            key = (k, trace.pattern[i][k], int(trace.asked[i, k]))
            if key not in cache:
                group = key[1].split("+") if key[1] else []
                cache[key] = model.probability(k, group, key[2])
            probs[j, k] = cache[key]
    return probs


def _simulate(
    trace: _Trace, rows: np.ndarray, probs: np.ndarray, agreement: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Quality and cost per row: the first rung that accepts (the top always does)."""
    accept = (trace.size[rows] >= agreement) & (probs >= threshold)
    accept[:, -1] = True
    at = np.argmax(accept, axis=1)
    return trace.quality[rows, at], trace.cost[rows, at]


def run_plan(plan: CascadePlan, outcomes: Sequence[Outcome]) -> tuple[float, float]:
    """The mean quality and cost of ``plan`` on ``outcomes`` (its table as learned)."""
    if not outcomes:
        return 0.0, 0.0
    trace = _trace(plan.ladder, outcomes)
    rows = np.arange(len(outcomes))
    probs = _probabilities(trace, rows, AgreementModel(plan.table, plan.patterns))
    quality, cost = _simulate(trace, rows, probs, plan.agreement, plan.min_confidence)
    return float(quality.mean()), float(cost.mean())


def frontier(outcomes: Sequence[Outcome], models: Sequence[str]) -> list[str]:
    """Models no other model beats on both mean quality and mean cost, cheapest first."""
    stats = {
        m: (
            float(np.mean([o.correct.get(m, 0.0) for o in outcomes])),
            float(np.mean([o.cost.get(m, 0.0) for o in outcomes])),
        )
        for m in models
    }
    kept = [
        m
        for m in models
        if not any(
            stats[o][0] >= stats[m][0] and stats[o][1] <= stats[m][1] and stats[o] != stats[m]
            for o in models
        )
    ]
    return sorted(kept, key=lambda m: (stats[m][1], m))


def candidate_ladders(
    outcomes: Sequence[Outcome], models: Sequence[str], *, max_first: int = 3, shortlist: int = 6
) -> list[tuple[tuple[str, ...], ...]]:
    """Ladders to consider: a first rung of 1..``max_first`` frontier models, an optional middle
    rung of one more, and the best model on top (or the first rung alone)."""
    cheap = frontier(outcomes, models)[:shortlist]
    best = max(models, key=lambda m: (np.mean([o.correct.get(m, 0.0) for o in outcomes]), m))
    # cheap models that are not on the frontier still agree usefully: add the next best few
    by_value = sorted(
        (m for m in models if m not in cheap and m != best),
        key=lambda m: (
            -np.mean([o.correct.get(m, 0.0) for o in outcomes])
            / (np.mean([o.cost.get(m, 0.0) for o in outcomes]) + 1e-9)
        ),
    )
    pool = [m for m in cheap if m != best] + by_value[: max(0, shortlist - len(cheap))]
    ladders: list[tuple[tuple[str, ...], ...]] = [((best,),)]
    for size in range(1, max_first + 1):
        for first in itertools.combinations(pool, size):
            ladders.append((first,))
            ladders.append((first, (best,)))
            for middle in pool:
                if middle not in first:
                    ladders.append((first, (middle,), (best,)))
    return ladders


def cascade_frontier(
    outcomes: Sequence[Outcome],
    models: Sequence[str],
    *,
    folds: int = 5,
    agreements: Sequence[int] = (1, 2, 3),
    thresholds: Sequence[float] = tuple(np.round(np.linspace(0.5, 0.98, 25), 3)),
    ladders: Sequence[tuple[tuple[str, ...], ...]] | None = None,
) -> list[CascadePlan]:
    """Every Pareto-efficient plan by cross-validated (quality, cost), cheapest first.

    Each (ladder, agreement, threshold) is scored on each fold with the agreement model fitted on
    the other folds; the returned plans carry the table fitted on all ``outcomes``.
    """
    if not outcomes:
        raise ValueError("no outcomes to plan from")
    fold_of = np.array([o.fold % folds for o in outcomes])
    everything = np.arange(len(outcomes))
    scored: list[tuple[float, float, tuple[tuple[str, ...], ...], int, float]] = []
    for ladder in ladders if ladders is not None else candidate_ladders(outcomes, models):
        trace = _trace(ladder, outcomes)
        fitted = []
        for f in range(folds):
            rows = everything[fold_of == f]
            table = _fit_table(trace, everything[fold_of != f])
            fitted.append((rows, _probabilities(trace, rows, table)))
        for agreement in agreements if len(ladder) > 1 else (1,):
            for threshold in thresholds if len(ladder) > 1 else (1.0,):
                quality = cost = 0.0
                for rows, probs in fitted:
                    q, c = _simulate(trace, rows, probs, agreement, threshold)
                    quality += float(q.sum())
                    cost += float(c.sum())
                scored.append(
                    (quality / len(outcomes), cost / len(outcomes), ladder, agreement, threshold)
                )
    scored.sort(key=lambda s: (s[1], -s[0]))
    efficient = []
    best = -1.0
    for item in scored:
        if item[0] > best + 1e-12:
            efficient.append(item)
            best = item[0]
    return [
        CascadePlan(
            ladder=ladder,
            agreement=agreement,
            min_confidence=threshold,
            expected_quality=quality,
            expected_cost=cost,
            table=model.table,
            patterns=model.patterns,
        )
        for quality, cost, ladder, agreement, threshold in efficient
        for model in (_fit_table(_trace(ladder, outcomes), everything),)
    ]


def plan_cascade(
    outcomes: Sequence[Outcome],
    models: Sequence[str],
    *,
    target_quality: float | None = None,
    max_cost: float | None = None,
    **options: Any,
) -> CascadePlan:
    """The plan meeting ``target_quality`` at least cost, or the best within ``max_cost``
    (cross-validated; ``options`` as for :func:`cascade_frontier`).

    With neither, or when no plan meets the target, the best-quality plan is returned (its
    ``expected_quality`` says by how much it falls short); when none fits ``max_cost``, the
    cheapest.
    """
    plans = cascade_frontier(outcomes, models, **options)
    if target_quality is not None:
        meeting = [p for p in plans if (p.expected_quality or 0.0) >= target_quality]
        return meeting[0] if meeting else plans[-1]
    if max_cost is not None:
        within = [p for p in plans if (p.expected_cost or 0.0) <= max_cost]
        return within[-1] if within else plans[0]
    return plans[-1]
