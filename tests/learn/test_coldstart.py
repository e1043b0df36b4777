"""Cold-start priors and conservative verification; adaptive verification with its audit sample."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from tests.engine.conftest import base_task, make_task
from tests.learn.records import NOW, human, record
from tlm.definition.loader import parse_definition
from tlm.definition.model import ConsensusParams, TaskDefinition
from tlm.learn.coldstart import (
    ModelHistory,
    TaskHistory,
    VerificationPolicy,
    cold_start_priors,
    similar_tasks,
)
from tlm.learn.rankings import build_rankings
from tlm.verify.adaptive import AdaptiveVerifier
from tlm.verify.base import Candidate, Verdict, VerificationContext


def task(task_id: str, description: str, **overrides: Any) -> TaskDefinition:
    name = task_id.replace("_", " ").capitalize()
    document = base_task(id=task_id, name=name, description=description, **overrides)
    return parse_definition(document, source="test")


NEW = task("salary_extraction", "Extract the salary range from a job posting.",
           task_type="extraction", tags=["jobs"])  # fmt: skip
SAME_TYPE = task("title_extraction", "Extract the job title from a posting.",
                 task_type="extraction", tags=["jobs"])  # fmt: skip
WORDS_ONLY = task("posting_summary", "Summarise a job posting in two sentences.",
                  task_type="summary")  # fmt: skip
UNRELATED = task("poem", "Write a haiku about the sea.", task_type="generation", tags=["fun"])


def test_similar_tasks_by_type_then_tags_then_description() -> None:
    found = similar_tasks(NEW, [UNRELATED, WORDS_ONLY, SAME_TYPE, NEW])
    assert [task_id for task_id, _ in found] == ["title_extraction", "posting_summary"]
    weight = dict(found)
    assert weight["title_extraction"] > 0.8  # same type, same tags, similar words
    assert 0 < weight["posting_summary"] < 0.2  # description words only


def test_cold_start_priors_borrow_from_similar_tasks() -> None:
    history = [record(task="title_extraction", model="cheap", passed=True) for _ in range(20)]
    history += [record(task="title_extraction", model="dear", passed=False) for _ in range(20)]
    history += [record(task="poem", model="dear", passed=True) for _ in range(20)]
    rankings = build_rankings(history, now=NOW)
    priors = cold_start_priors(NEW, rankings, [SAME_TYPE, UNRELATED, NEW])
    assert set(priors) == {"cheap", "dear"}  # the poem task is not similar
    assert priors["cheap"] > 0.9
    assert priors["dear"] < 0.1
    assert cold_start_priors(UNRELATED, build_rankings([], now=NOW), [SAME_TYPE]) == {}


def test_conservative_verification_until_enough_samples() -> None:
    policy = VerificationPolicy(min_samples=20)
    definition = make_task()  # method "none"
    spec = policy.verification_override(definition, TaskHistory())
    assert spec is not None
    assert spec.method == "consensus"
    assert isinstance(spec.parameters, ConsensusParams)
    assert spec.parameters.similarity_metric == "structured"
    assert spec.fallback == definition.verification.fallback
    enough = TaskHistory({"model-a": ModelHistory(20, 18)})
    assert policy.verification_override(definition, enough) is None
    human_task = make_task(verification={"method": "human", "parameters": {}})
    assert policy.verification_override(human_task, TaskHistory()) is None  # stricter: kept


def test_history_counts_human_marks_over_verdicts() -> None:
    history = TaskHistory.from_records(
        [
            record(passed=True),
            record(passed=True, feedback=[human(correct=False)]),
            record(passed=None),
            record(verified=False, feedback=[human(correct=True)]),
            record(passed=True, details={"skipped": True}),
            record(model="model-b", passed=False),
        ]
    )
    assert history.of("model-a") == ModelHistory(3, 2)
    assert history.of("model-b") == ModelHistory(1, 0)
    assert history.samples == 4


def test_reliable_models_are_verified_less_with_an_audit_sample() -> None:
    policy = VerificationPolicy(reliable_samples=30, rng=random.Random(3))
    definition = make_task()  # risk "medium": lower bound > 0.9, audit 20%
    reliable = TaskHistory({"model-a": ModelHistory(200, 199)})
    decisions = [policy.decide(definition, "model-a", reliable) for _ in range(1000)]
    counts = Counter((d.verify, d.audit) for d in decisions)
    assert counts[(True, False)] == 0
    assert 150 < counts[(True, True)] < 250  # the audit sample, about 20%
    assert counts[(False, False)] == 1000 - counts[(True, True)]
    again = VerificationPolicy(reliable_samples=30, rng=random.Random(3))
    assert [again.decide(definition, "model-a", reliable) for _ in range(1000)] == decisions
    unsure = TaskHistory({"model-a": ModelHistory(40, 38)})  # 95%, but lower bound 0.83
    assert policy.decide(definition, "model-a", unsure).verify
    assert policy.decide(definition, "model-b", reliable).verify  # no history for model-b
    critical = make_task(risk="critical")
    assert all(policy.decide(critical, "model-a", reliable).verify for _ in range(50))


class _Counting:
    method = "consensus"

    def __init__(self) -> None:
        self.calls = 0

    async def verify(self, context: VerificationContext, /) -> Verdict:
        self.calls += 1
        return Verdict(passed=True, confidence=0.9, method=self.method, details={"votes": []})


async def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("not called")


async def test_adaptive_verifier_skips_and_audits() -> None:
    inner = _Counting()
    definition = make_task()
    history = TaskHistory({"model-a": ModelHistory(500, 500)})
    policy = VerificationPolicy(rng=random.Random(11))
    verifier = AdaptiveVerifier(inner, policy, lambda task_id: history)
    context = VerificationContext(
        task=definition,
        input={"posting": "x"},
        primary=Candidate("model-a", {"title": "t"}),
        ranked_models=("model-a",),
        source=_never,
        ask=_never,
    )
    verdicts = [await verifier.verify(context) for _ in range(200)]
    skipped = [v for v in verdicts if v.details.get("skipped")]
    audited = [v for v in verdicts if v.details.get("audit")]
    assert inner.calls == len(audited) > 0
    assert len(skipped) + len(audited) == 200
    assert all(v.passed and v.method == "consensus" for v in skipped)
    assert skipped[0].confidence == pytest.approx(ModelHistory(500, 500).lower_bound)
