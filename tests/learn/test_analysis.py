"""Analysis figures against hand-computed ones, on records written through the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.learn.records import MISSING_LOCATION, NOW, human, record, store_records, system
from tlm.learn.analysis import analyze, analyze_store, failures_of
from tlm.learn.stats import percentile, wilson_interval
from tlm.store.sqlite import ExecutionStore
from tlm.telemetry.records import ExecutionRecord


def fixture_records() -> list[ExecutionRecord]:
    a = "model-a"
    return [
        # model-a / standard: 4 runs, 2 pass, 1 fail, 1 invalid output
        record(model=a, passed=True, latency=1.0, tokens=100, cost=0.01, ago=timedelta(days=2),
               feedback=[human(correct=True, score=0.8), system(score=0.4)]),
        record(model=a, passed=True, latency=2.0, tokens=200, cost=0.01, ago=timedelta(days=1),
               cache_hit=True),
        record(model=a, passed=False, latency=3.0, tokens=300, cost=0.01, ago=timedelta(days=1),
               fallback="next_model", method="hierarchical",
               details={"issues": ["Salary of 5000 is invented."]},
               feedback=[human(correct=False)]),
        record(model=a, verified=False, latency=4.0, tokens=400, cost=0.01,
               ago=timedelta(days=1), error=MISSING_LOCATION),
        # model-b / structured: 2 runs, 1 pass, 1 hierarchical fail with a similar issue
        record(model="model-b", variant="structured", passed=True, latency=0.5, cost=0.002),
        record(model="model-b", variant="structured", passed=False, latency=0.7, cost=0.002,
               method="hierarchical", details={"issues": ["Salary of 7000 is invented"]}),
        # another version, another task, and an old record: filtered out or grouped apart
        record(model=a, version="1.1.0", passed=True, latency=1.5, cost=0.02),
        record(task="other_task", passed=False),
        record(model=a, passed=False, ago=timedelta(days=30)),
    ]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ExecutionStore]:
    with ExecutionStore(tmp_path / "tlm.db") as s:
        store_records(s, fixture_records())
        yield s


def test_wilson_and_percentiles_by_hand() -> None:
    low, high = wilson_interval(2, 3)
    assert low == pytest.approx(0.2077, abs=1e-4)
    assert high == pytest.approx(0.9385, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == 1.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([], 50) is None


def test_groups_from_the_store(store: ExecutionStore) -> None:
    analysis = analyze_store(store, "title_extraction", period=timedelta(days=7), now=NOW)
    assert analysis.executions == 7  # the 30-day-old record and the other task are left out
    groups = {(g.model, g.prompt_variant, g.task_version): g for g in analysis.groups}
    assert set(groups) == {
        ("model-a", "standard", "1.0.0"),
        ("model-b", "structured", "1.0.0"),
        ("model-a", "standard", "1.1.0"),
    }
    a = groups[("model-a", "standard", "1.0.0")]
    assert (a.executions, a.errors, a.verified, a.passed) == (4, 1, 3, 2)
    assert a.pass_rate == pytest.approx(2 / 3)
    assert a.pass_interval is not None
    assert a.pass_interval[0] == pytest.approx(0.2077, abs=1e-4)
    assert a.feedback_count == 3
    assert a.feedback_mean_score == pytest.approx((0.8 + 0.4) / 2)
    assert a.feedback_correct_pct == pytest.approx(50.0)
    assert a.latency_p50_s == pytest.approx(2.5)
    assert a.latency_p95_s == pytest.approx(3.85)
    assert a.tokens_total == 1000
    assert a.tokens_mean == 250
    assert a.cost_total_usd == pytest.approx(0.04)
    assert a.cost_per_success_usd == pytest.approx(0.02)
    assert a.fallback_rate == pytest.approx(0.25)
    assert a.cache_hit_rate == pytest.approx(0.25)
    b = groups[("model-b", "structured", "1.0.0")]
    assert b.cost_per_success_usd == pytest.approx(0.004)
    assert b.feedback_mean_score is None
    assert analysis.overall.executions == 7
    assert analysis.overall.passed == 4


def test_version_filter_and_trend(store: ExecutionStore) -> None:
    analysis = analyze_store(store, "title_extraction", period=timedelta(days=7), now=NOW,
                             version="1.0.0")  # fmt: skip
    assert analysis.executions == 6
    trend = {(p.day, p.model): p for p in analysis.trend}
    assert set(trend) == {
        ("2026-03-08", "model-a"),
        ("2026-03-09", "model-a"),
        ("2026-03-10", "model-b"),
    }
    day = trend[("2026-03-09", "model-a")]
    assert (day.executions, day.verified, day.passed) == (3, 2, 1)
    assert day.cost_usd == pytest.approx(0.03)


def test_failure_patterns_grouped_by_kind(store: ExecutionStore) -> None:
    analysis = analyze_store(store, "title_extraction", period=timedelta(days=7), now=NOW)
    patterns = {(p.kind, p.key): p for p in analysis.failures}
    issue = patterns[("verifier", "hierarchical: salary of N is invented")]
    assert issue.count == 2  # two texts differing in the number, normalised to one pattern
    assert issue.variants == {"standard": 1, "structured": 1}
    assert len(issue.examples) == 2
    missing = patterns[("schema", "$.location: required field missing")]
    assert (missing.count, missing.path, missing.error) == (1, "$.location", "required")
    wrong = patterns[("schema", "$.skills[*]: wrong type (expected 'string')")]
    assert wrong.error == "type"
    assert analysis.failures[0].count == 2
    data = analysis.to_dict()
    assert data["overall"]["executions"] == 7


def test_failure_signatures_of_other_kinds() -> None:
    message = "invalid output:\n  output: $.skills: rule no_duplicate_skills: $.skills has twins"
    rule = record(verified=False, error=("OutputInvalid", message))
    assert [(f.kind, f.error) for f in failures_of(rule)] == [("rule", "no_duplicate_skills")]
    consensus = record(passed=False, details={"clusters": [["a"], ["b"]]})
    assert failures_of(consensus)[0].kind == "consensus"
    provider = record(verified=False, error=("ProviderUnavailable", "model-a: HTTP 503 after 3"))
    assert failures_of(provider)[0].key == "ProviderUnavailable: model-a: http N after N"
    skipped = record(passed=True, details={"skipped": True})
    assert analyze([skipped], task_id="title_extraction").overall.verified == 0


def test_empty_period() -> None:
    analysis = analyze([], task_id="nothing")
    assert analysis.executions == 0
    assert analysis.overall.pass_rate is None
    assert analysis.failures == ()
