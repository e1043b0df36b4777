"""Ranking updates (decay, weights, priorities, too few samples), exploration, engine wiring."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tests.engine.conftest import MODELS, ScriptedModels, catalog_data, make_task, reply
from tests.learn.records import MISSING_LOCATION, NOW, human, record, store_records, system
from tlm.catalog import Catalog
from tlm.definition.model import RankingCriteria
from tlm.definition.registry import DefinitionRegistry
from tlm.engine import Engine, EngineConfig
from tlm.engine.selection import rank_models
from tlm.errors import ConfigurationError
from tlm.learn.estimator import RankingsEstimator
from tlm.learn.rankings import (
    HUMAN_WEIGHT,
    ModelPosterior,
    Rankings,
    TaskRanking,
    build_rankings,
    evidence_of,
    update_rankings,
)
from tlm.store.sqlite import ExecutionStore

TASK = "title_extraction"


def test_evidence_weights() -> None:
    assert evidence_of(record(passed=True)) is not None
    e = evidence_of(record(passed=True, feedback=[human(correct=False)]))
    assert e is not None
    assert (e.successes, e.failures, e.human) == (1.0, HUMAN_WEIGHT, 1)
    e = evidence_of(record(verified=False, feedback=[system(score=0.25)]))
    assert e is not None
    assert (e.successes, e.failures) == (0.25, 0.75)
    e = evidence_of(record(verified=False, error=MISSING_LOCATION))
    assert e is not None
    assert (e.successes, e.failures) == (0.0, 1.0)
    assert evidence_of(record(verified=False, error=("ProviderUnavailable", "503"))) is None
    assert evidence_of(record(passed=True, details={"skipped": True})) is None


def test_time_decay_halves_evidence_per_half_life() -> None:
    records = [
        record(passed=True, ago=timedelta(0)),
        record(passed=False, ago=timedelta(days=7)),
        record(passed=False, ago=timedelta(days=14)),
    ]
    rankings = build_rankings(records, now=NOW, half_life=timedelta(days=7), priors={})
    p = rankings.tasks[TASK].models["model-a"]
    assert p.successes == pytest.approx(1.0)
    assert p.failures == pytest.approx(0.5 + 0.25)
    assert p.samples == 3
    # Beta(0.5 * 2 + 1, 0.5 * 2 + 0.75)
    assert p.quality == pytest.approx(2.0 / 3.75)
    assert rankings.half_life_s == 7 * 86_400


def test_period_and_latency_cost_estimates() -> None:
    records = [
        record(passed=True, latency=2.0, cost=0.02, ago=timedelta(0)),
        record(passed=True, latency=4.0, cost=0.04, ago=timedelta(days=7)),
        record(passed=True, latency=100.0, cost=1.0, ago=timedelta(days=40)),
        record(passed=True, latency=50.0, cost=1.0, cache_hit=True),
    ]
    since = NOW - timedelta(days=30)
    rankings = build_rankings(records, now=NOW, since=since, half_life=timedelta(days=7))
    p = rankings.tasks[TASK].models["model-a"]
    assert p.samples == 3  # the 40-day-old record is out of the period
    # decayed means over non-cached runs: weights 1 and 0.5
    assert p.latency_s == pytest.approx((2.0 + 0.5 * 4.0) / 1.5)
    assert p.cost_usd == pytest.approx((0.02 + 0.5 * 0.04) / 1.5)


def test_priorities_combine_quality_speed_and_cost() -> None:
    records = [record(model="slow-good", passed=True, latency=10.0, cost=0.1) for _ in range(20)]
    records += [record(model="fast-ok", passed=i % 4 != 0, latency=0.2, cost=0.001)
                for i in range(20)]  # fmt: skip
    quality_first = build_rankings(
        records, now=NOW, criteria={TASK: RankingCriteria(1.0, 0.0, 0.0)}
    )
    assert quality_first.tasks[TASK].order == ("slow-good", "fast-ok")
    speed_first = build_rankings(records, now=NOW, criteria={TASK: RankingCriteria(0.5, 0.5, 0.0)})
    assert speed_first.tasks[TASK].order == ("fast-ok", "slow-good")
    cost_first = build_rankings(records, now=NOW, criteria={TASK: RankingCriteria(0.5, 0.0, 0.5)})
    assert cost_first.tasks[TASK].order == ("fast-ok", "slow-good")


def _rankings(**models: tuple[int, int]) -> Rankings:
    return Rankings(
        tasks={
            TASK: TaskRanking(
                RankingCriteria(1.0, 0.0, 0.0),
                {
                    m: ModelPosterior(0.5, float(s), float(f), s + f, latency_s=1.0, cost_usd=0.01)
                    for m, (s, f) in models.items()
                },
            )
        },
        generated_at="2026-03-10T12:00:00.000000Z",
        since=None,
        half_life_s=7 * 86_400,
        records=0,
    )


def test_too_few_samples_are_not_trusted() -> None:
    rankings = _rankings(lucky=(1, 0), proven=(45, 5))
    greedy = RankingsEstimator(rankings, policy="greedy", min_samples=10)
    estimates = greedy(TASK)
    # one lucky success: Beta(0.5 * 11 + 1, 0.5 * 11) -> barely above the prior
    assert estimates["lucky"].quality == pytest.approx(6.5 / 12.0)
    assert estimates["proven"].quality == pytest.approx(46 / 52)
    assert estimates["proven"].quality > estimates["lucky"].quality
    trusting = RankingsEstimator(rankings, policy="greedy", min_samples=0)
    assert trusting(TASK)["lucky"].quality == pytest.approx(2 / 3)


def test_thompson_is_reproducible_and_explores() -> None:
    rankings = _rankings(good=(40, 10), unknown=(1, 1), bad=(5, 45))

    def picks(seed: int) -> list[str]:
        estimator = RankingsEstimator(rankings, rng=random.Random(seed), min_samples=5)
        return [max(est := estimator(TASK), key=lambda m: est[m].quality) for _ in range(400)]

    first = picks(7)
    assert first == picks(7)
    assert first != picks(8)
    counts = Counter(first)
    assert counts["good"] > 250  # mostly the best-known model
    assert 5 < counts["unknown"] < 150  # the uncertain one is tried now and then
    assert counts["bad"] == 0


def test_ucb_favours_the_uncertain_and_greedy_does_not() -> None:
    rankings = _rankings(known=(80, 20), fresh=(1, 1))
    ucb = RankingsEstimator(rankings, policy="ucb", min_samples=0)(TASK)
    assert ucb["fresh"].quality > ucb["known"].quality
    greedy = RankingsEstimator(rankings, policy="greedy", min_samples=0)(TASK)
    assert greedy["known"].quality > greedy["fresh"].quality
    with pytest.raises(ValueError, match="unknown policy"):
        RankingsEstimator(rankings, policy="random")  # type: ignore[arg-type]


def test_unseen_catalog_models_are_sampled_from_their_prior() -> None:
    catalog = Catalog.from_data(catalog_data())
    rankings = _rankings(**{"model-c": (30, 0)})
    estimator = RankingsEstimator(rankings, policy="greedy", catalog=catalog, min_samples=5)
    estimates = estimator(TASK)
    assert set(estimates) == set(MODELS)
    assert estimates["model-a"].quality == pytest.approx(0.9)  # the catalog prior
    assert estimates["model-a"].samples == 0
    ranked = rank_models(list(catalog), RankingCriteria(1.0, 0.0, 0.0), estimates=estimates)
    assert ranked[0].id == "model-c"  # learned: 30 of 30 beats a 0.9 prior


def test_file_round_trip_and_errors(tmp_path: Path) -> None:
    records = [record(passed=True), record(model="model-b", passed=False)]
    rankings = build_rankings(records, now=NOW)
    path = rankings.save(tmp_path / "rankings.json")
    data = json.loads(path.read_text())
    assert data["provenance"]["half_life_days"] == 7
    assert data["provenance"]["weights"]["human"] == HUMAN_WEIGHT
    assert data["tasks"][TASK]["ranking"] == ["model-a", "model-b"]
    assert data["tasks"][TASK]["models"]["model-a"]["samples"] == 1
    loaded = Rankings.load(path)
    assert loaded.tasks[TASK].models["model-a"].quality == pytest.approx(
        rankings.tasks[TASK].models["model-a"].quality
    )
    del data["tasks"][TASK]["models"]["model-b"]["successes"]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match=r"rankings.json.*'successes'.*model-b"):
        Rankings.load(path)
    path.write_text("{nope")
    with pytest.raises(ConfigurationError, match="cannot read rankings"):
        Rankings.load(path)


def test_update_from_store_uses_task_criteria_and_catalog_priors(tmp_path: Path) -> None:
    registry = DefinitionRegistry([make_task()])
    catalog = Catalog.from_data(catalog_data())
    with ExecutionStore(tmp_path / "tlm.db") as store:
        store_records(store, [record(model="model-b", passed=True), record(passed=False)])
        rankings = update_rankings(store, registry=registry, catalog=catalog, now=NOW)
    posterior = rankings.tasks[TASK].models["model-b"]
    assert posterior.prior_quality == pytest.approx(0.8)
    assert rankings.tasks[TASK].criteria.quality_priority == 1.0
    assert rankings.records == 2


async def test_engine_uses_rankings_file_in_its_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    models = ScriptedModels()
    # model-c (the weakest prior) has proven itself on this task; the others keep failing
    history = [record(model="model-c", passed=True) for _ in range(30)]
    history += [record(model=m, passed=False) for m in ("model-a", "model-b") for _ in range(30)]
    build_rankings(history, now=NOW).save(data_dir / "rankings.json")
    models.handlers["*"] = reply({"title": "Chef"})
    engine = Engine(
        EngineConfig(data_dir=data_dir, models=MODELS, cache=False),
        registry=DefinitionRegistry([make_task()]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
    )
    async with engine:
        result = await engine.execute(TASK, {"posting": "Chef wanted"})
    assert result.models_used[0] == "model-c"
