"""The learning loop on real data: online model selection over RouterBench, outcome by outcome.

``python -m benchmarks.learning_replay [--data DIR] [--limit N] [--seeds N] [--out FILE]``

``routerbench_train.jsonl`` holds, per prompt of three tasks (arc-challenge, winogrande, mbpp),
the real answer, grade and cost of 11 models. The replay streams the prompts in a seeded random
order (the file is grouped by task; a service sees them interleaved) as executions of three TLM
tasks. Every policy learns ONLINE: at each prompt it may use only what it has seen so far, and it
sees the grade of a model only when it called that model (bandit feedback: the outcome is fed back
as system feedback on the execution). Costs are the recorded real costs of the calls made.

TLM's selection is the learning system's own machinery: per task x model Beta posteriors updated
through :func:`tlm.learn.rankings.evidence_of` from each execution's feedback, and
:class:`tlm.learn.rankings.RankingsEstimator` (Thompson sampling, ``min_samples`` shrinkage) for
the draws; a model's cost is the mean of its observed calls (optimistically 0 before its first
call, so every model is tried). The objective is cost-aware: maximise ``quality - lambda * cost``,
where ``lambda`` is paced online so that the mean spend per query stays within the operator's
budget ``B`` (multiplicative dual update; nothing is fitted to this file). The cascade adds the
consensus idea: the Thompson-selected primary is checked by the best other model by posterior mean
under the same objective (no exploration in checkers); if their answers agree (the letter for
multiple choice, token cosine >= 0.8 for code) the primary's answer is returned, else the next
best model by mean is asked and the majority (or its answer) returned.

Baselines: always the best single model (gpt-4-1106-preview), a uniformly random model, the
cheapest model reaching 80% of the best model's quality (chosen in hindsight over the whole
file, as the data set's README does), a kNN router on the prompt text (online TF-IDF cosine over
the previous prompts, k = 15, under the same budget pacing; it is given every model's grade on
past prompts — full information, as a router trained on labelled data would be, which is more
than TLM sees), and the oracle (the cheapest correct model per prompt, in hindsight).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np

from benchmarks.consensus_replay import extract_answer
from tlm.definition.model import RankingCriteria
from tlm.learn.rankings import ModelPosterior, Rankings, RankingsEstimator, TaskRanking, evidence_of
from tlm.similarity import TokenCosineSimilarity
from tlm.telemetry.records import ExecutionRecord, Feedback, Performance

__all__ = ("Query", "Outcome", "load_queries", "run_all", "main")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "learning_replay.md"
GPT4 = "gpt-4-1106-preview"
TASKS = ("arc-challenge", "winogrande", "mbpp")
_CODE_METRIC = TokenCosineSimilarity()
_WORD = re.compile(r"[a-z0-9_]+")


@attrs.frozen
class Query:
    """One prompt with every model's recorded grade, cost and extracted answer."""

    id: str
    task: str
    prompt: str
    quality: Mapping[str, float]
    cost: Mapping[str, float]
    answer: Mapping[str, str | None]


@attrs.frozen
class Outcome:
    """A policy's result over the stream."""

    name: str
    quality: float
    cost: float
    calls: float
    per_task: Mapping[str, tuple[float, float]]
    budget: float | None = None


def load_queries(path: Path, *, limit: int | None = None) -> list[Query]:
    """The RouterBench rows of the three tasks, with answers extracted for agreement."""
    queries = []
    with path.open() as lines:
        for line in lines:
            raw = json.loads(line)
            if raw["task"] not in TASKS:
                continue
            queries.append(
                Query(
                    id=raw["id"],
                    task=raw["task"],
                    prompt=raw.get("prompt") or "",
                    quality=raw["quality"],
                    cost=raw["cost"],
                    answer={m: extract_answer(raw["task"], r) for m, r in raw["response"].items()},
                )
            )
            if limit is not None and len(queries) >= limit:
                break
    return queries


def _agree(task: str, a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    if task == "mbpp":
        return _CODE_METRIC.score(a, b) >= 0.8
    return a == b


# --- the learner ------------------------------------------------------------------------------


class Learner:
    """Per task x model posteriors and observed costs, fed back one execution at a time."""

    def __init__(self, models: Sequence[str], rng: random.Random, *, min_samples: int = 5) -> None:
        self.models = tuple(models)
        self.posteriors: dict[str, dict[str, ModelPosterior]] = {
            t: {m: ModelPosterior(0.5, 0.0, 0.0, 0) for m in models} for t in TASKS
        }
        self.spent: dict[str, list[float]] = {m: [0.0, 0.0] for m in models}
        self.rng = rng
        self.min_samples = min_samples
        self._count = 0

    def feed(self, query: Query, model: str) -> None:
        """Record the execution of ``query`` on ``model`` with its grade as system feedback."""
        self._count += 1
        grade = query.quality[model]
        record = ExecutionRecord(
            execution_id=f"r{self._count}",
            task_id=query.task,
            task_version="1.0.0",
            input={"prompt_id": query.id},
            output=query.answer[model],
            models_used=(model,),
            verification_results=None,
            performance=Performance(0.0, 0, query.cost[model]),
            timestamp="2024-01-01T00:00:00.000000Z",
            feedback=(Feedback("system", "2024-01-01T00:00:00.000000Z", correct=grade >= 0.5),),
        )
        evidence = evidence_of(record)
        assert evidence is not None
        p = self.posteriors[query.task][model]
        self.posteriors[query.task][model] = attrs.evolve(
            p,
            successes=p.successes + evidence.successes,
            failures=p.failures + evidence.failures,
            samples=p.samples + 1,
        )
        spent = self.spent[model]
        spent[0] += query.cost[model]
        spent[1] += 1

    def cost(self, model: str) -> float:
        """The mean observed cost of ``model`` (0 before its first call: optimism)."""
        total, n = self.spent[model]
        return total / n if n else 0.0

    def draws(self, task: str, policy: str = "thompson") -> dict[str, float]:
        """Quality per model from the library's estimator (a fresh draw per call)."""
        rankings = Rankings(
            tasks={task: TaskRanking(RankingCriteria(1.0, 0.0, 0.0), self.posteriors[task])},
            generated_at="",
            since=None,
            half_life_s=1.0,
            records=0,
        )
        estimator = RankingsEstimator(
            rankings,
            policy=policy,  # type: ignore[arg-type]
            rng=self.rng,
            min_samples=self.min_samples,
        )
        return {m: e.quality for m, e in estimator(task).items()}


class Pacer:
    """Keeps the mean spend per query near ``budget`` by moving the cost weight ``lam``."""

    def __init__(self, budget: float | None, *, rate: float = 0.02) -> None:
        self.budget = budget
        self.rate = rate
        self.lam = 0.0 if budget is None else 0.1 / budget

    def update(self, spent: float) -> None:
        """After a query that cost ``spent``."""
        if self.budget is None:
            return
        step = self.rate * (spent - self.budget) / self.budget
        self.lam = min(max(self.lam * math.exp(max(min(step, 1.0), -1.0)), 1e-3 / self.budget),
                       100.0 / self.budget)  # fmt: skip


def _best(scores: Mapping[str, float], exclude: Sequence[str] = ()) -> str:
    return max((m for m in scores if m not in exclude), key=lambda m: (scores[m], m))


# --- policies ---------------------------------------------------------------------------------


@attrs.define
class _Tally:
    quality: float = 0.0
    cost: float = 0.0
    calls: int = 0
    per_task: dict[str, list[float]] = attrs.Factory(dict)

    def add(self, query: Query, quality: float, cost: float, calls: int) -> None:
        self.quality += quality
        self.cost += cost
        self.calls += calls
        slot = self.per_task.setdefault(query.task, [0.0, 0.0, 0.0])
        slot[0] += quality
        slot[1] += cost
        slot[2] += 1

    def outcome(self, name: str, n: int, budget: float | None = None) -> Outcome:
        return Outcome(
            name=name,
            quality=self.quality / n,
            cost=self.cost / n,
            calls=self.calls / n,
            per_task={t: (q / c, s / c) for t, (q, s, c) in self.per_task.items()},
            budget=budget,
        )


def fixed(queries: Sequence[Query], model: str) -> Outcome:
    """Always ``model``."""
    tally = _Tally()
    for q in queries:
        tally.add(q, q.quality[model], q.cost[model], 1)
    return tally.outcome(f"always {model}", len(queries))


def uniform(queries: Sequence[Query], models: Sequence[str], seed: int) -> Outcome:
    """A uniformly random model per query."""
    rng = random.Random(seed)
    tally = _Tally()
    for q in queries:
        m = rng.choice(models)
        tally.add(q, q.quality[m], q.cost[m], 1)
    return tally.outcome("uniformly random model", len(queries))


def oracle(queries: Sequence[Query]) -> Outcome:
    """The cheapest model with the best grade, per query (hindsight)."""
    tally = _Tally()
    for q in queries:
        best = max(q.quality.values())
        m = min((m for m in q.quality if q.quality[m] == best), key=lambda m: q.cost[m])
        tally.add(q, q.quality[m], q.cost[m], 1)
    return tally.outcome("oracle (hindsight)", len(queries))


def tlm_select(queries: Sequence[Query], models: Sequence[str], seed: int,
               budget: float | None) -> Outcome:  # fmt: skip
    """TLM: Thompson draws per task, ``quality - lambda * cost``, one model per query."""
    learner = Learner(models, random.Random(seed))
    pacer = Pacer(budget)
    tally = _Tally()
    for q in queries:
        draws = learner.draws(q.task)
        score = {m: draws[m] - pacer.lam * learner.cost(m) for m in models}
        m = _best(score)
        learner.feed(q, m)
        tally.add(q, q.quality[m], q.cost[m], 1)
        pacer.update(q.cost[m])
    return tally.outcome("TLM selection (Thompson, cost-aware)", len(queries), budget)


def tlm_cascade(queries: Sequence[Query], models: Sequence[str], seed: int,
                budget: float | None) -> Outcome:  # fmt: skip
    """TLM selection plus a consensus cascade: two agree, else a third decides."""
    learner = Learner(models, random.Random(seed))
    pacer = Pacer(budget)
    tally = _Tally()
    for q in queries:
        draws = learner.draws(q.task)
        first = _best({m: draws[m] - pacer.lam * learner.cost(m) for m in models})
        means = learner.draws(q.task, "greedy")  # checkers: best mean, same objective
        greedy = {m: means[m] - pacer.lam * learner.cost(m) for m in models}
        second = _best(greedy, (first,))
        called = [first, second]
        chosen = first
        if not _agree(q.task, q.answer[first], q.answer[second]):
            third = _best(greedy, called)
            called.append(third)
            chosen = third
            for m in (first, second):
                if _agree(q.task, q.answer[m], q.answer[third]):
                    chosen = m
                    break
        cost = sum(q.cost[m] for m in called)
        for m in called:
            learner.feed(q, m)
        tally.add(q, q.quality[chosen], cost, len(called))
        pacer.update(cost)
    return tally.outcome("TLM selection + consensus cascade", len(queries), budget)


def _hash_vector(text: str, dims: int) -> np.ndarray:
    vector = np.zeros(dims, dtype=np.float32)
    for word in _WORD.findall(text.lower()):
        vector[zlib.crc32(word.encode()) % dims] += 1.0
    np.log1p(vector, out=vector)  # sublinear term frequency
    return vector


def knn_router(queries: Sequence[Query], models: Sequence[str], budget: float | None, *,
               k: int = 15, dims: int = 2048) -> Outcome:  # fmt: skip
    """Online kNN on the prompt text (TF-IDF cosine over previous prompts, full information)."""
    pacer = Pacer(budget)
    tally = _Tally()
    seen = np.zeros((len(queries), dims), dtype=np.float32)
    weighted = np.zeros((len(queries), dims), dtype=np.float32)
    norms = np.ones(len(queries), dtype=np.float32)
    df = np.zeros(dims)
    idf = np.ones(dims, dtype=np.float32)
    grades = np.zeros((len(queries), len(models)), dtype=np.float32)
    cost_sum = np.zeros(len(models))
    index = {m: i for i, m in enumerate(models)}
    for t, q in enumerate(queries):
        vector = _hash_vector(q.prompt, dims)
        if t and (t & (t - 1) == 0 or t % 128 == 0):  # refresh the IDF now and then
            idf = (np.log((1.0 + t) / (1.0 + df)) + 1.0).astype(np.float32)
            weighted[:t] = seen[:t] * idf
            norms[:t] = np.linalg.norm(weighted[:t], axis=1) + 1e-9
        if t > k:
            query_vec = vector * idf
            sims = weighted[:t] @ query_vec / (norms[:t] * (np.linalg.norm(query_vec) + 1e-9))
            nearest = np.argpartition(-sims, k)[:k]
            quality = grades[nearest].mean(axis=0)
            mean_cost = cost_sum / t
            score = {m: float(quality[index[m]] - pacer.lam * mean_cost[index[m]]) for m in models}
            m = _best(score)
        else:
            m = models[t % len(models)]  # nothing to route on yet
        weighted[t] = vector * idf
        norms[t] = np.linalg.norm(weighted[t]) + 1e-9
        df += vector > 0
        seen[t] = vector
        grades[t] = [q.quality[x] for x in models]
        cost_sum += [q.cost[x] for x in models]
        tally.add(q, q.quality[m], q.cost[m], 1)
        pacer.update(q.cost[m])
    return tally.outcome("kNN router on prompt text (online, full information)", len(queries),
                         budget)  # fmt: skip


# --- the report -------------------------------------------------------------------------------


def _mean(outcomes: Sequence[Outcome]) -> Outcome:
    first = outcomes[0]
    n = len(outcomes)
    return Outcome(
        name=first.name,
        quality=sum(o.quality for o in outcomes) / n,
        cost=sum(o.cost for o in outcomes) / n,
        calls=sum(o.calls for o in outcomes) / n,
        per_task={
            t: (
                sum(o.per_task[t][0] for o in outcomes) / n,
                sum(o.per_task[t][1] for o in outcomes) / n,
            )
            for t in first.per_task
        },
        budget=first.budget,
    )


def run_all(
    queries: Sequence[Query], *, seeds: int = 3, fractions: Sequence[float] = (0.05, 0.1, 0.25, 0.5)
) -> dict[str, list[Outcome]]:
    """Every policy; learning policies over ``seeds`` stream orders and budget fractions of
    the best single model's cost per query. Returns outcomes per family (means over seeds)."""
    models = tuple(sorted(queries[0].quality))
    results: dict[str, list[Outcome]] = {}
    results["single"] = [fixed(queries, m) for m in models]
    best = max(results["single"], key=lambda o: o.quality)
    results["baselines"] = [
        best,
        _mean([uniform(queries, models, s) for s in range(seeds)]),
        _cheapest_reaching(results["single"], best),
        oracle(queries),
    ]
    orders = []
    for seed in range(seeds):
        order = list(queries)
        random.Random(seed).shuffle(order)
        orders.append(order)
    budgets = [best.cost * f for f in fractions]
    results["tlm"] = [
        _mean([tlm_select(o, models, s, b) for s, o in enumerate(orders)]) for b in budgets
    ]
    results["cascade"] = [
        _mean([tlm_cascade(o, models, s, b) for s, o in enumerate(orders)]) for b in budgets
    ]
    results["knn"] = [_mean([knn_router(o, models, b) for o in orders[:1]]) for b in budgets]
    return results


def _cheapest_reaching(singles: Sequence[Outcome], best: Outcome) -> Outcome:
    good = [o for o in singles if o.quality >= 0.8 * best.quality]
    chosen = min(good, key=lambda o: o.cost)
    return attrs.evolve(chosen, name=f"{chosen.name} (cheapest reaching 80% of best, hindsight)")


def _row(o: Outcome, reference: Outcome) -> str:
    budget = "-" if o.budget is None else f"${o.budget:.6f}"
    tasks = " | ".join(
        f"{o.per_task[t][0]:.3f} / ${o.per_task[t][1]:.6f}" if t in o.per_task else "-"
        for t in TASKS
    )
    return (
        f"| {o.name} | {budget} | {o.quality:.3f} | ${o.cost:.6f} | "
        f"{o.cost / reference.cost:.2f} | {o.calls:.2f} | {tasks} |"
    )


def render(results: Mapping[str, list[Outcome]], *, n: int, seeds: int, plot: str | None) -> str:
    """The Markdown report."""
    best = results["baselines"][0]
    lines = [
        "# Learning replay: online model selection on RouterBench",
        "",
        f"{n} prompts (arc-challenge, winogrande, mbpp) x 11 models, real grades and costs; "
        f"learning policies averaged over {seeds} seeded stream orders (kNN: the first order). "
        "Budget = the operator's cap on the mean spend per query, as a fraction of always using "
        f"{GPT4} (${best.cost:.6f}). Target: quality >= {best.quality:.3f} at <= "
        f"${best.cost / 4:.6f} per query.",
        "",
        "| policy | budget | quality | $/query | x best cost | calls/query | "
        + " | ".join(f"{t} quality / $" for t in TASKS)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(TASKS),
    ]
    for family in ("baselines", "tlm", "cascade", "knn"):
        lines.extend(_row(o, best) for o in results[family])
    lines += ["", "Single models:", ""]
    lines += ["| model | quality | $/query |", "|---|---|---|"]
    for o in sorted(results["single"], key=lambda o: o.cost):
        lines.append(f"| {o.name.removeprefix('always ')} | {o.quality:.3f} | ${o.cost:.6f} |")
    met = [
        o
        for family in ("tlm", "cascade")
        for o in results[family]
        if o.quality >= best.quality and o.cost <= best.cost / 4
    ]
    lines += [
        "",
        "Target met by: " + (", ".join(f"{o.name} at budget ${o.budget}" for o in met) or "none"),
        "",
        "Reading: one model per task and query, chosen from per-task posteriors, cannot beat the "
        "best per-task mix of single models; the gap to the oracle is per-prompt information. "
        "The learners pay for exploring 11 models under bandit feedback; the kNN router sees "
        "every model's grade on past prompts and still stays below the target.",
    ]
    if plot:
        lines += ["", f"Cost-quality frontier: `{plot}`"]
    return "\n".join(lines) + "\n"


def plot_frontier(results: Mapping[str, list[Outcome]], path: Path) -> Path:
    """Quality against cost per query (log scale) for every policy family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(12, 6))
    try:
        for o in results["single"]:
            axis.scatter(o.cost, o.quality, color="0.6", s=25)
            axis.annotate(o.name.removeprefix("always ").split("/")[-1], (o.cost, o.quality),
                          fontsize=7, xytext=(3, -8), textcoords="offset points")  # fmt: skip
        styles = {"tlm": ("C0", "o", "TLM selection"), "cascade": ("C3", "s", "TLM + cascade"),
                  "knn": ("C2", "^", "kNN router (full information)")}  # fmt: skip
        for family, (color, marker, label) in styles.items():
            points = sorted(results[family], key=lambda o: o.cost)
            axis.plot([o.cost for o in points], [o.quality for o in points], marker=marker,
                      color=color, label=label)  # fmt: skip
        baselines = results["baselines"]
        for o, marker in zip(baselines[1:], ("x", "D", "*"), strict=True):
            axis.scatter(o.cost, o.quality, marker=marker, s=80, color="k", label=o.name)
        best = baselines[0]
        axis.axhline(best.quality, color="0.3", linestyle=":", linewidth=1)
        axis.axvline(best.cost / 4, color="0.3", linestyle=":", linewidth=1)
        axis.fill_between([1e-5, best.cost / 4], best.quality, 1.0, color="C1", alpha=0.08,
                          label="target region")  # fmt: skip
        axis.set_xscale("log")
        axis.set_xlim(3e-5, 2e-2)
        axis.set_ylim(0.5, 1.0)
        axis.set_xlabel("cost per query (USD, log scale)")
        axis.set_ylabel("quality (share of prompts answered correctly)")
        axis.set_title("RouterBench replay: cost-quality frontier of online selection")
        axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        axis.grid(alpha=0.3)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)
    finally:
        plt.close(figure)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the replay and write the report (and the frontier plot)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the data directory")
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    queries = load_queries(args.data / "routerbench_train.jsonl", limit=args.limit)
    if not queries:
        print("no prompts found", file=sys.stderr)
        return 1
    results = run_all(queries, seeds=args.seeds)
    plot = None
    if not args.no_plot:
        png = plot_frontier(results, args.out.with_suffix(".png"))
        plot = str(png.relative_to(REPO)) if png.is_relative_to(REPO) else str(png)
    report = render(results, n=len(queries), seeds=args.seeds, plot=plot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
