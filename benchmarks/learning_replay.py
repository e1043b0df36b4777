"""Learning that cannot leak: policies fitted on a development part, measured on an evaluation part.

``python -m benchmarks.learning_replay [--data DIR] [--eval FILE] [--limit N] [--folds K]``

``routerbench_train.jsonl`` holds, per prompt of three tasks (arc-challenge, winogrande, mbpp),
the real answer, grade and cost of 11 models. The split is fixed by the prompt id:
``sha256(id) mod 5 == 0`` is the **evaluation part**, the rest the **development part**; the
cross-validation fold of a development prompt is ``(sha256(id) div 5) mod K``. Everything a
policy learns — its predictors, its hyper-parameters (chosen by K-fold cross-validation on the
development part), its cost weight for a budget (the lambda whose cross-validated spend meets
it), its cascade ladder and thresholds — comes from the development part; the evaluation part is
only scored (the online selector also keeps learning from the grades of the calls it makes there,
as it would in service: bandit feedback, nothing tuned).

Policies, each at budgets that are fractions of always-GPT-4's development cost per prompt:

* always the best single model (gpt-4-1106-preview), and the per-prompt oracle (hindsight);
* the best static choice: one model per task, the mix that meets the budget (chosen on dev);
* a kNN router: TF-IDF cosine over development prompts (k by CV), mean grade - lambda * cost;
* TLM input-aware selection (:class:`tlm.learn.selector.InputAwareSelector`): per task x model
  Bayesian probit over hashed n-grams of the prompt (prior variance by CV), cost regression,
  ``P(success) - lambda * cost``, lambda paced to the budget online;
* TLM learned cascade (:func:`tlm.learn.cascade.cascade_frontier`): per task, cheap rungs first,
  accept when enough answers agree and the learned P(right | agreement) clears the threshold,
  else climb; the per-task plans that together meet the budget at the best CV quality.

``--eval FILE`` scores prompts from elsewhere (RouterBench's format) with everything learned from
all of ``--data``'s RouterBench rows (then they are all development data).

``routellm_gsm8k.jsonl`` (Mixtral vs GPT-4, no recorded cost) is the two-model case: costs are
taken as the two models' RouterBench price ratio (Mixtral = 1/20 of GPT-4), said in the report.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np

from benchmarks.consensus_replay import extract_answer
from tlm.learn.cascade import CascadePlan, Outcome, cascade_frontier, run_plan
from tlm.learn.features import FeatureVector, HashedFeatures
from tlm.learn.selector import InputAwareSelector
from tlm.similarity import TokenCosineSimilarity

__all__ = ("Query", "Result", "load_queries", "split", "run_all", "render", "main")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "learning_replay.md"
GPT4 = "gpt-4-1106-preview"
GSM_MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GSM_PRICE_RATIO = 0.05
FRACTIONS = (0.1, 0.25, 0.5, 1.0)
_CODE = TokenCosineSimilarity()


@attrs.frozen
class Query:
    """One prompt: every model's grade, cost and answer key (equal keys agree)."""

    id: str
    task: str
    prompt: str
    quality: Mapping[str, float]
    cost: Mapping[str, float]
    answer: Mapping[str, str | None]

    @property
    def digest(self) -> int:
        """The prompt id's sha256 as an integer (fixes the split and the folds)."""
        return int(hashlib.sha256(self.id.encode("utf-8")).hexdigest(), 16)


@attrs.frozen
class Result:
    """A policy's figures on the evaluation part."""

    family: str
    name: str
    quality: float
    cost: float
    budget: float | None = None
    per_task: Mapping[str, tuple[float, float]] = attrs.field(factory=dict)


def _answer_keys(task: str, responses: Mapping[str, str]) -> dict[str, str | None]:
    """Answers as agreement keys: the letter or number; code clustered by token cosine >= 0.8."""
    answers = {m: extract_answer(task, r) for m, r in responses.items()}
    if task != "mbpp":
        return answers
    keys: dict[str, str | None] = {}
    heads: list[tuple[str, str]] = []
    for model in sorted(answers):
        code = answers[model]
        if code is None:
            keys[model] = None
            continue
        match = next((k for k, head in heads if _CODE.score(code, head) >= 0.8), None)
        if match is None:
            match = f"c{len(heads)}"
            heads.append((match, code))
        keys[model] = match
    return keys


def load_queries(
    path: Path, *, limit: int | None = None, price_ratio: float = GSM_PRICE_RATIO
) -> list[Query]:
    """Rows of a data file (RouterBench or GSM8K; GSM8K costs from ``price_ratio``)."""
    queries = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            raw = json.loads(line)
            cost = raw.get("cost") or {
                m: (1.0 if m == GPT4 else price_ratio) * 1e-3 for m in raw["quality"]
            }
            queries.append(
                Query(
                    raw["id"],
                    raw["task"],
                    raw.get("prompt") or "",
                    raw["quality"],
                    cost,
                    _answer_keys(raw["task"], raw.get("response") or {}),
                )
            )
            if limit is not None and len(queries) >= limit:
                break
    return queries


def split(queries: Sequence[Query], parts: int = 5) -> tuple[list[Query], list[Query]]:
    """``(development, evaluation)``: evaluation is ``sha256(id) mod parts == 0``."""
    dev = [q for q in queries if q.digest % parts != 0]
    evaluation = [q for q in queries if q.digest % parts == 0]
    return dev, evaluation


def fold_of(query: Query, folds: int, parts: int = 5) -> int:
    """The cross-validation fold of a development prompt."""
    return (query.digest // parts) % folds


def _score(
    family: str,
    name: str,
    queries: Sequence[Query],
    picks: Sequence[tuple[float, float]],
    budget: float | None = None,
) -> Result:
    per: dict[str, list[float]] = {}
    for q, (quality, cost) in zip(queries, picks, strict=True):
        slot = per.setdefault(q.task, [0.0, 0.0, 0.0])
        slot[0] += quality
        slot[1] += cost
        slot[2] += 1
    n = len(queries)
    return Result(
        family,
        name,
        sum(p[0] for p in picks) / n,
        sum(p[1] for p in picks) / n,
        budget,
        {t: (s[0] / s[2], s[1] / s[2]) for t, s in per.items()},
    )


def _lambda_for(spend: Callable[[float], float], budget: float) -> float:
    """The smallest lambda (cost weight) whose spend is within ``budget`` (bisection in log)."""
    budget *= 1.0 + 1e-9  # a policy costing exactly the budget is within it
    if spend(0.0) <= budget:
        return 0.0
    low, high = 1e-3, 1e7
    for _ in range(50):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if spend(mid) > budget else (low, mid)
    return high


# --- static policies ---------------------------------------------------------------------------


def best_combination(
    options: Mapping[str, Sequence[tuple[float, float]]], share: Mapping[str, float], budget: float
) -> dict[str, int]:
    """One option per task maximising the share-weighted quality within the budget (exhaustive:
    a frontier need not be convex, so a cost weight alone can miss the best mix)."""
    import itertools

    tasks = sorted(options)
    budget *= 1.0 + 1e-9  # an option costing exactly the budget is within it
    best: tuple[float, float, tuple[int, ...]] | None = None
    for combo in itertools.product(*(range(len(options[t])) for t in tasks)):
        cost = sum(share[t] * options[t][i][1] for t, i in zip(tasks, combo, strict=True))
        if cost > budget:
            continue
        quality = sum(share[t] * options[t][i][0] for t, i in zip(tasks, combo, strict=True))
        if best is None or (quality, -cost) > (best[0], -best[1]):
            best = (quality, cost, combo)
    if best is None:  # nothing fits: the cheapest option everywhere
        return {t: min(range(len(options[t])), key=lambda i: options[t][i][1]) for t in tasks}
    return dict(zip(tasks, best[2], strict=True))


def static_mix(
    dev: Sequence[Query], evaluation: Sequence[Query], models: Sequence[str], budget: float
) -> Result:
    """One model per task, chosen on dev: the best mix whose dev spend meets the budget."""
    tasks = sorted({q.task for q in dev})
    options = {
        t: [
            (
                float(np.mean([q.quality[m] for q in dev if q.task == t])),
                float(np.mean([q.cost[m] for q in dev if q.task == t])),
            )
            for m in models
        ]
        for t in tasks
    }
    share = {t: sum(q.task == t for q in dev) / len(dev) for t in tasks}
    pick = {t: models[i] for t, i in best_combination(options, share, budget).items()}
    return _score(
        "static",
        "best static choice per task (dev)",
        evaluation,
        [(q.quality[pick[q.task]], q.cost[pick[q.task]]) for q in evaluation],
        budget,
    )


def oracle(evaluation: Sequence[Query]) -> Result:
    """The cheapest model with the best grade, per prompt (hindsight)."""
    picks = []
    for q in evaluation:
        best = max(q.quality.values())
        m = min((m for m in q.quality if q.quality[m] == best), key=lambda m: q.cost[m])
        picks.append((q.quality[m], q.cost[m]))
    return _score("oracle", "oracle (hindsight)", evaluation, picks)


def always(evaluation: Sequence[Query], model: str) -> Result:
    """Always ``model``."""
    return _score(
        "single",
        f"always {model}",
        evaluation,
        [(q.quality[model], q.cost[model]) for q in evaluation],
    )


# --- kNN router --------------------------------------------------------------------------------


def _tfidf(
    dev: Sequence[Query], other: Sequence[Query], features: HashedFeatures
) -> tuple[np.ndarray, np.ndarray]:
    a = np.stack([features(q.prompt).dense() for q in dev])
    b = np.stack([features(q.prompt).dense() for q in other])
    a[:, :2] = b[:, :2] = 0.0  # bias and length are not words
    idf = np.log((1 + len(a)) / (1 + (a != 0).sum(axis=0))) + 1.0
    a, b = a * idf, b * idf
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-12
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-12
    return a, b


def _knn_scores(
    train: Sequence[Query],
    test: Sequence[Query],
    models: Sequence[str],
    k: int,
    features: HashedFeatures,
) -> np.ndarray:
    a, b = _tfidf(train, test, features)
    grades = np.array([[q.quality[m] for m in models] for q in train])
    tasks = np.array([q.task for q in train])
    sims = b @ a.T
    out = np.zeros((len(test), len(models)))
    for i, q in enumerate(test):
        s = np.where(tasks == q.task, sims[i], -np.inf)
        nearest = np.argpartition(-s, min(k, len(s) - 1))[:k]
        out[i] = grades[nearest].mean(axis=0)
    return out


# --- selection over predicted quality and cost -------------------------------------------------


def _oof(
    dev: Sequence[Query],
    folds: int,
    fit_predict: Callable[[Sequence[Query], Sequence[Query]], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predicted quality and cost for every development prompt."""
    n = len(dev)
    quality = cost = None
    for f in range(folds):
        test = [i for i in range(n) if fold_of(dev[i], folds) == f]
        train = [dev[i] for i in range(n) if fold_of(dev[i], folds) != f]
        q, c = fit_predict(train, [dev[i] for i in test])
        if quality is None or cost is None:
            quality, cost = np.zeros((n, q.shape[1])), np.zeros((n, q.shape[1]))
        quality[test], cost[test] = q, c
    assert quality is not None
    assert cost is not None
    return quality, cost


def _realised(
    queries: Sequence[Query],
    models: Sequence[str],
    pred_q: np.ndarray,
    pred_c: np.ndarray,
    lam: float,
) -> tuple[float, float]:
    pick = np.argmax(pred_q - lam * pred_c, axis=1)
    quality = np.mean([q.quality[models[j]] for q, j in zip(queries, pick, strict=True)])
    cost = np.mean([q.cost[models[j]] for q, j in zip(queries, pick, strict=True)])
    return float(quality), float(cost)


def _selector(
    train: Sequence[Query], models: Sequence[str], prior_variance: float, features: HashedFeatures
) -> InputAwareSelector:
    selector = InputAwareSelector(
        features=features, policy="greedy", min_history=0, prior_variance=prior_variance
    )
    for q in train:
        x = features(q.prompt)
        for m in models:  # the log of a labelled stream: every model's outcome on the prompt
            selector.learn(q.task, x, m, q.quality[m], cost_usd=q.cost[m])
    return selector


def _selector_predictions(
    selector: InputAwareSelector, test: Sequence[Query], models: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    quality = np.zeros((len(test), len(models)))
    cost = np.zeros((len(test), len(models)))
    for i, q in enumerate(test):
        for j, p in enumerate(selector.predict(q.task, q.prompt, models)):
            quality[i, j], cost[i, j] = p.quality, p.cost_usd
    return quality, cost


def _online_selection(
    selector: InputAwareSelector,
    evaluation: Sequence[Query],
    models: Sequence[str],
    lam: float,
    budget: float,
) -> list[tuple[float, float]]:
    """On the evaluation stream: choose, pay, learn the chosen model's grade; pace lambda."""
    picks = []
    spent = 0.0
    for n, q in enumerate(evaluation, start=1):
        x: FeatureVector = selector.features(q.prompt)
        predictions = selector.predict(q.task, x, models, lam=lam)
        best = max(predictions, key=lambda p: (p.objective, -p.cost_usd))
        m = best.model
        picks.append((q.quality[m], q.cost[m]))
        spent += q.cost[m]
        selector.learn(q.task, x, m, q.quality[m], cost_usd=q.cost[m])
        lam *= math.exp(max(min(0.05 * (spent / n - budget) / budget, 0.5), -0.5))
    return picks


# --- the cascade -------------------------------------------------------------------------------


def _outcomes(queries: Sequence[Query], folds: int) -> list[Outcome]:
    return [Outcome(q.answer, q.quality, q.cost, fold_of(q, folds)) for q in queries]


def cascade_plans(
    dev: Sequence[Query], models: Sequence[str], folds: int
) -> dict[str, list[CascadePlan]]:
    """Per task, the cross-validated frontier of cascade plans on the development part."""
    tasks = sorted({q.task for q in dev})
    return {
        t: cascade_frontier(_outcomes([q for q in dev if q.task == t], folds), models, folds=folds)
        for t in tasks
    }


def choose_plans(
    plans: Mapping[str, list[CascadePlan]], share: Mapping[str, float], budget: float
) -> dict[str, CascadePlan]:
    """One plan per task: the best CV quality whose CV spend meets the budget."""
    options = {
        t: [(p.expected_quality or 0.0, p.expected_cost or 0.0) for p in ps]
        for t, ps in plans.items()
    }
    return {t: plans[t][i] for t, i in best_combination(options, share, budget).items()}


# --- everything --------------------------------------------------------------------------------


def run_all(
    queries: Sequence[Query],
    *,
    folds: int = 5,
    fractions: Sequence[float] = FRACTIONS,
    variances: Sequence[float] = (0.003, 0.01, 0.03, 0.1),
    ks: Sequence[int] = (5, 15, 40),
    reference: str = GPT4,
    held_out: Sequence[Query] | None = None,
) -> tuple[list[Result], dict[str, object]]:
    """Every policy on the evaluation part; also what cross-validation chose.

    With ``held_out`` (prompts from elsewhere, e.g. a file nobody here has seen), every one of
    ``queries`` is development data and ``held_out`` is the evaluation part.
    """
    dev, evaluation = (list(queries), list(held_out)) if held_out else split(queries)
    if not dev or not evaluation:
        raise ValueError("need prompts in both the development and the evaluation part")
    models = tuple(sorted(queries[0].quality))
    features = HashedFeatures()
    dev_cost = float(np.mean([q.cost[reference] for q in dev]))
    budgets = [dev_cost * f for f in fractions]
    results = [always(evaluation, m) for m in models] + [oracle(evaluation)]
    results += [static_mix(dev, evaluation, models, b) for b in budgets]
    chosen: dict[str, object] = {"dev": len(dev), "evaluation": len(evaluation), "folds": folds}

    # kNN: k by CV log loss of the neighbour mean (no budget involved)
    def knn_fit(
        k: int,
    ) -> Callable[[Sequence[Query], Sequence[Query]], tuple[np.ndarray, np.ndarray]]:
        def fit(train: Sequence[Query], test: Sequence[Query]) -> tuple[np.ndarray, np.ndarray]:
            mean_cost = {
                (t, m): np.mean([q.cost[m] for q in train if q.task == t] or [0.0])
                for t in {q.task for q in test}
                for m in models
            }
            cost = np.array([[mean_cost[q.task, m] for m in models] for q in test])
            return _knn_scores(train, test, models, k, features), cost

        return fit

    grades = np.array([[q.quality[m] for m in models] for q in dev])
    best_k = min(ks, key=lambda k: _brier(_oof(dev, folds, knn_fit(k))[0], grades))
    chosen["knn_k"] = best_k
    knn_dev = _oof(dev, folds, knn_fit(best_k))
    knn_eval = knn_fit(best_k)(dev, evaluation)

    # input-aware selection: prior variance by CV (Brier score of P(success))
    def sel_fit(
        v: float,
    ) -> Callable[[Sequence[Query], Sequence[Query]], tuple[np.ndarray, np.ndarray]]:
        def fit(train: Sequence[Query], test: Sequence[Query]) -> tuple[np.ndarray, np.ndarray]:
            return _selector_predictions(_selector(train, models, v, features), test, models)

        return fit

    oof = {v: _oof(dev, folds, sel_fit(v)) for v in variances}
    best_v = min(variances, key=lambda v: _brier(oof[v][0], grades))
    chosen["selector_prior_variance"] = best_v
    chosen["selector_brier_cv"] = {v: round(_brier(oof[v][0], grades), 5) for v in variances}
    sel_dev = oof[best_v]

    plans = cascade_plans(dev, models, folds)
    share = {t: sum(q.task == t for q in dev) / len(dev) for t in plans}
    ev_by_task = {t: [q for q in evaluation if q.task == t] for t in plans}
    for budget in budgets:
        lam = _lambda_for(lambda x: _realised(dev, models, *knn_dev, x)[1], budget)
        results.append(
            _score(
                "knn",
                f"kNN router (k={best_k})",
                evaluation,
                _picks(evaluation, models, *knn_eval, lam),
                budget,
            )
        )
        lam = _lambda_for(lambda x: _realised(dev, models, *sel_dev, x)[1], budget)
        selector = _selector(dev, models, best_v, features)
        results.append(
            _score(
                "select",
                "TLM input-aware selection (online)",
                evaluation,
                _online_selection(selector, evaluation, models, lam, budget),
                budget,
            )
        )
        picked = choose_plans(plans, share, budget)
        chosen[f"cascade@{budget:.6f}"] = {
            t: p.to_dict() | {"table": None, "patterns": None} for t, p in picked.items()
        }
        picks: list[tuple[float, float]] = []
        ordered: list[Query] = []
        for t, plan in picked.items():
            for q in ev_by_task[t]:
                picks.append(run_plan(plan, _outcomes([q], folds)))
                ordered.append(q)
        results.append(_score("cascade", "TLM learned cascade", ordered, picks, budget))
    return results, chosen


def _brier(pred: np.ndarray, grades: np.ndarray) -> float:
    return float(np.mean((pred - grades) ** 2))


def _picks(
    queries: Sequence[Query],
    models: Sequence[str],
    pred_q: np.ndarray,
    pred_c: np.ndarray,
    lam: float,
) -> list[tuple[float, float]]:
    pick = np.argmax(pred_q - lam * pred_c, axis=1)
    return [(q.quality[models[j]], q.cost[models[j]]) for q, j in zip(queries, pick, strict=True)]


# --- the report --------------------------------------------------------------------------------

_FAMILIES = {
    "static": ("best static choice per task (dev)", "C7", "D"),
    "knn": ("kNN router", "C2", "^"),
    "select": ("TLM input-aware selection", "C0", "o"),
    "cascade": ("TLM learned cascade", "C3", "s"),
}


def _table(results: Sequence[Result], reference: Result, title: str) -> list[str]:
    tasks = sorted({t for r in results for t in r.per_task})
    lines = [
        f"### {title}",
        "",
        "| policy | budget | quality | $/prompt | x reference cost | "
        + " | ".join(f"{t} quality / $" for t in tasks)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(tasks),
    ]
    shown = [r for r in results if r.family != "single" or r.name == reference.name]
    for r in shown:
        budget = "-" if r.budget is None else f"${r.budget:.6f}"
        per = " | ".join(
            f"{r.per_task[t][0]:.3f} / ${r.per_task[t][1]:.6f}" if t in r.per_task else "-"
            for t in tasks
        )
        lines.append(
            f"| {r.name} | {budget} | {r.quality:.3f} | ${r.cost:.6f} | "
            f"{r.cost / reference.cost:.2f} | {per} |"
        )
    lines += [
        "",
        "Single models on the evaluation part:",
        "",
        "| model | quality | $/prompt |",
        "|---|---|---|",
    ]
    for r in sorted((r for r in results if r.family == "single"), key=lambda r: r.cost):
        lines.append(f"| {r.name.removeprefix('always ')} | {r.quality:.3f} | ${r.cost:.6f} |")
    return lines


def render(
    sections: Sequence[tuple[str, list[Result], dict[str, object]]],
    *,
    command: str,
    plot: str | None,
) -> str:
    """The Markdown report."""
    lines = [
        "# Learning replay: policies fitted on the development part, scored on evaluation",
        "",
        f"Command: `{command}`",
        "",
        (__doc__ or "").split("\n\n")[2].replace("\n", " "),
        "",
    ]
    for title, results, chosen in sections:
        reference = next(r for r in results if r.name == f"always {GPT4}")
        target = [
            r
            for r in results
            if r.family in ("select", "cascade", "knn", "static")
            and r.quality >= reference.quality
            and r.cost <= reference.cost / 4
        ]
        lines += _table(results, reference, title)
        lines += [
            "",
            f"Target (quality >= {reference.quality:.3f} at <= "
            f"${reference.cost / 4:.6f} per prompt on the evaluation part) met by: "
            + (", ".join(f"{r.name} @ budget ${r.budget:.6f}" for r in target) or "none"),
            "",
            "Chosen on the development part by cross-validation: `"
            + json.dumps({k: v for k, v in chosen.items() if not k.startswith("cascade@")})
            + "`",
            "",
        ]
        for key, value in chosen.items():
            if key.startswith("cascade@"):
                lines.append(f"- cascade plans at budget {key[8:]}: `{json.dumps(value)}`")
        lines.append("")
    if plot:
        lines += [f"Cost-quality frontiers: `{plot}`", ""]
    return "\n".join(lines)


def plot_frontiers(
    sections: Sequence[tuple[str, list[Result], dict[str, object]]], path: Path
) -> Path:
    """Quality against cost per prompt (log scale), one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(sections), figsize=(7 * len(sections), 5.5), squeeze=False)
    try:
        for axis, (title, results, _chosen) in zip(axes[0], sections, strict=True):
            for r in results:
                if r.family == "single":
                    axis.scatter(r.cost, r.quality, color="0.6", s=20)
                    axis.annotate(
                        r.name.removeprefix("always ").split("/")[-1],
                        (r.cost, r.quality),
                        fontsize=6,
                        xytext=(3, -7),
                        textcoords="offset points",
                    )
            for family, (label, color, marker) in _FAMILIES.items():
                points = sorted((r for r in results if r.family == family), key=lambda r: r.cost)
                axis.plot(
                    [r.cost for r in points],
                    [r.quality for r in points],
                    marker=marker,
                    color=color,
                    label=label,
                )
            oracle_r = next(r for r in results if r.family == "oracle")
            axis.scatter(
                oracle_r.cost, oracle_r.quality, marker="*", s=120, color="k", label="oracle"
            )
            reference = next(r for r in results if r.name == f"always {GPT4}")
            axis.axhline(reference.quality, color="0.3", linestyle=":", linewidth=1)
            axis.axvline(reference.cost / 4, color="0.3", linestyle=":", linewidth=1)
            axis.fill_between(
                [min(r.cost for r in results) / 2, reference.cost / 4],
                reference.quality,
                1.0,
                color="C1",
                alpha=0.1,
                label="target",
            )
            axis.set_xscale("log")
            axis.set_ylim(max(0.0, min(r.quality for r in results) - 0.05), 1.0)
            axis.set_xlabel("cost per prompt (USD, log scale)")
            axis.set_ylabel("quality on the evaluation part")
            axis.set_title(title, fontsize=10)
            axis.grid(alpha=0.3)
            axis.legend(fontsize="x-small", loc="lower right")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run every policy and write the report (and the frontier plot)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the data directory")
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts a file")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--eval",
        type=Path,
        default=None,
        help="a RouterBench-format file to evaluate on: all of --data's RouterBench rows become "
        "the development part",
    )
    args = parser.parse_args(argv)
    sections = []
    for name, title in (
        ("routerbench_train.jsonl", "RouterBench (11 models, 3 tasks)"),
        (
            "routellm_gsm8k.jsonl",
            f"GSM8K (Mixtral vs GPT-4; Mixtral priced at {GSM_PRICE_RATIO:g} x GPT-4)",
        ),
    ):
        path = args.data / name
        if not path.is_file():
            print(f"{path}: not found, skipped", file=sys.stderr)
            continue
        queries = load_queries(path, limit=args.limit)
        held_out = None
        if args.eval is not None and name.startswith("routerbench"):
            held_out = load_queries(args.eval, limit=args.limit)
            title += f", evaluated on {args.eval.name}"
        results, chosen = run_all(queries, folds=args.folds, held_out=held_out)
        sections.append(
            (f"{title}: {chosen['dev']} dev / {chosen['evaluation']} eval prompts", results, chosen)
        )
    if not sections:
        print("no data found", file=sys.stderr)
        return 1
    plot = None
    if not args.no_plot:
        png = plot_frontiers(sections, args.out.with_suffix(".png"))
        plot = str(png.relative_to(REPO)) if png.is_relative_to(REPO) else str(png)
    command = "python -m benchmarks.learning_replay " + " ".join(argv or sys.argv[1:])
    report = render(sections, command=command.strip(), plot=plot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
