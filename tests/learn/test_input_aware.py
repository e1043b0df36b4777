"""Input features, predictors, the input-aware selector, learned cascades, every-answer evidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.learn.records import human, record, system
from tlm.definition.loader import parse_definition
from tlm.errors import ConfigurationError, TaskSchemaError
from tlm.learn.cascade import Outcome, plan_cascade, run_plan
from tlm.learn.evidence import answer_evidence
from tlm.learn.features import HashedFeatures
from tlm.learn.predictors import CostPredictor, SuccessPredictor, normal_cdf, probit
from tlm.learn.selector import InputAwareSelector
from tlm.learn.updates import learn_cascade_plans, outcomes_from_records
from tlm.telemetry.records import ExecutionRecord


def test_features_are_stable_sparse_and_unit_length() -> None:
    features = HashedFeatures(dims=256)
    a = features("The quick brown fox")
    b = features("the QUICK brown fox")
    assert np.array_equal(a.indices, b.indices)
    assert np.allclose(a.values, b.values)
    assert np.all(np.diff(a.indices) > 0)
    words = a.dense()[2:]
    assert np.linalg.norm(words) == pytest.approx(1.0)
    assert not np.array_equal(features("completely different").indices, a.indices)


def test_probit_inverts_the_normal_cdf() -> None:
    for p in (0.001, 0.2, 0.5, 0.9, 0.999):
        assert normal_cdf(probit(p)) == pytest.approx(p, abs=1e-6)


def test_success_predictor_learns_which_inputs_succeed() -> None:
    features = HashedFeatures(dims=512)
    predictor = SuccessPredictor(512, prior_variance=0.5)
    easy, hard = features("apple garden sunny"), features("quantum entropy integral")
    before = predictor.uncertainty(easy)
    for _ in range(30):
        predictor.update(easy, 1.0)
        predictor.update(hard, 0.0)
    assert predictor.predict(easy) > 0.8
    assert predictor.predict(hard) < 0.2
    assert predictor.uncertainty(easy) < before
    rng = np.random.default_rng(0)
    assert np.mean([predictor.sample(easy, rng) for _ in range(50)]) > 0.7
    assert predictor.optimistic(hard, 2.0) > predictor.predict(hard)
    restored = SuccessPredictor.from_dict(predictor.to_dict())
    assert restored.predict(easy) == pytest.approx(predictor.predict(easy), abs=1e-6)


def test_weight_counts_like_repeated_outcomes() -> None:
    features = HashedFeatures(dims=64)
    x = features("text")
    once, thrice = SuccessPredictor(64), SuccessPredictor(64)
    thrice.update(x, 0.0, weight=3.0)
    for _ in range(3):
        once.update(x, 0.0)
    assert thrice.predict(x) == pytest.approx(once.predict(x), abs=1e-9)


def test_cost_predictor_fits_size_and_price() -> None:
    predictor = CostPredictor(prior_cost=0.002, prior_tokens=1_000)
    assert predictor.predict(1_000) == pytest.approx(0.002)
    for tokens in (100, 500, 2_000, 4_000):
        predictor.update(tokens, 0.0001 + tokens * 1e-6)
    assert predictor.predict(3_000) == pytest.approx(0.0031, rel=0.15)
    assert CostPredictor.from_dict(predictor.to_dict()).predict(3_000) == pytest.approx(
        predictor.predict(3_000)
    )


def _trained(policy: str = "greedy", **kwargs: object) -> InputAwareSelector:
    selector = InputAwareSelector(policy=policy, min_history=20, seed=1, **kwargs)  # type: ignore[arg-type]
    for i in range(40):
        topic = "apple garden" if i % 2 else "quantum entropy"
        selector.learn("t", f"{topic} {i}", "cheap", 1.0 if i % 2 else 0.0, cost_usd=0.001)
        selector.learn("t", f"{topic} {i}", "dear", 1.0, cost_usd=0.01)
    return selector


def test_selector_picks_per_input_and_explains() -> None:
    selector = _trained()
    easy = selector.select("t", "apple garden 99", ["dear", "cheap"], cost_weight=0.5)
    hard = selector.select("t", "quantum entropy 99", ["dear", "cheap"], cost_weight=0.5)
    assert easy.learned
    assert easy.chosen == "cheap"
    assert hard.chosen == "dear"
    explained = easy.to_dict()
    assert explained["chosen"] == "cheap"
    assert {c["model"] for c in explained["considered"]} == {"dear", "cheap"}
    assert "cheap" in explained["reason"]
    # no cost weight: quality alone decides
    assert selector.select("t", "apple garden 99", ["cheap", "dear"]).chosen == "dear"


def test_selector_falls_back_before_enough_history_and_for_unknown_tasks() -> None:
    selector = _trained()
    cold = selector.select("other", "apple", ["b", "a"])
    assert not cold.learned
    assert cold.order == ("b", "a")
    assert "fallback" in cold.reason


def test_selector_paces_lambda_to_a_target_spend() -> None:
    selector = _trained(targets={"t": 0.002})
    spent = []
    for i in range(200):
        choice = selector.select("t", f"quantum entropy {i}", ["dear", "cheap"])
        spent.append(0.01 if choice.chosen == "dear" else 0.001)
    assert 0.0015 < np.mean(spent[100:]) < 0.005  # near the target, far below always-dear


def test_selector_save_load_round_trip_and_errors(tmp_path: Path) -> None:
    selector = _trained()
    path = selector.save(tmp_path / "selector.json")
    loaded = InputAwareSelector.load(path, policy="greedy")
    a = selector.predict("t", "apple garden", ["cheap"])[0]
    b = loaded.predict("t", "apple garden", ["cheap"])[0]
    assert b.quality == pytest.approx(a.quality, abs=1e-6)
    assert b.cost_usd == pytest.approx(a.cost_usd)
    path.write_text('{"format": 1, "features": {}}')
    with pytest.raises(ConfigurationError, match=r"selector\.json"):
        InputAwareSelector.load(path)


def _voted(models: list[tuple[str, int]], passed: bool | None, **kwargs: object) -> ExecutionRecord:
    votes = [{"model": m, "cluster": c, "cost_usd": 0.01} for m, c in models]
    return record(
        model=models[0][0],
        method="cascade",
        passed=passed,
        details={"votes": votes, "representative": kwargs.pop("representative", None)},
        **kwargs,  # type: ignore[arg-type]
    )


def test_every_answer_is_evidence() -> None:
    passed = _voted([("a", 0), ("b", 1), ("c", 1)], True, representative="b")
    evidence = {e.model: e for e in answer_evidence(passed)}
    assert evidence["a"].failures == 1.0
    assert evidence["a"].successes == 0.0
    assert evidence["b"].successes == 1.0
    assert evidence["c"].successes == 1.0
    assert evidence["a"].primary
    failed = _voted([("a", 0), ("b", 1)], False)
    evidence = {e.model: e for e in answer_evidence(failed)}
    assert evidence == {"a": evidence["a"]}  # the other answer is not known to be right
    assert evidence["a"].failures == 1.0
    judged = _voted([("a", 0), ("b", 0)], None, feedback=[human(correct=False)])
    assert {e.model: e.failures for e in answer_evidence(judged)} == {"a": 3.0, "b": 3.0}
    unchecked = record(method="cascade", passed=True, details={"unchecked": True})
    assert answer_evidence(unchecked) == []
    assert answer_evidence(attrs_feedback(unchecked))[0].successes == 1.0


def attrs_feedback(r: ExecutionRecord) -> ExecutionRecord:
    import attrs

    return attrs.evolve(r, feedback=(system(correct=True),))


def test_selector_observes_records_with_all_answers() -> None:
    selector = InputAwareSelector(min_history=1, policy="greedy")
    for _ in range(10):
        selector.observe(_voted([("a", 0), ("b", 1)], True, representative="b"))
    a, b = selector.predict("title_extraction", '{"posting": "x"}', ["a", "b"])
    assert b.quality > 0.8 > 0.2 > a.quality
    assert b.cost_usd == pytest.approx(0.01, rel=0.01)


def _outcomes(n: int = 200) -> list[Outcome]:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        right = {"x": rng.random() < 0.7, "y": rng.random() < 0.7, "big": rng.random() < 0.95}
        answers = {m: ("T" if ok else f"W{m}") for m, ok in right.items()}
        rows.append(
            Outcome(
                answers=answers,
                correct={m: float(ok) for m, ok in right.items()},
                cost={"x": 1.0, "y": 1.0, "big": 20.0},
                fold=i,
            )
        )
    return rows


def test_cascade_plan_meets_a_target_quality_cheaply() -> None:
    outcomes = _outcomes()
    plan = plan_cascade(outcomes, ["x", "y", "big"], target_quality=0.9)
    assert plan.ladder[-1] == ("big",)
    assert plan.expected_quality is not None
    assert plan.expected_quality >= 0.9
    assert plan.expected_cost is not None
    assert plan.expected_cost < 20.0
    quality, cost = run_plan(plan, _outcomes(100))
    assert quality > 0.85
    assert cost < 20.0
    cheap = plan_cascade(outcomes, ["x", "y", "big"], max_cost=1.5)
    assert cheap.expected_cost is not None
    assert cheap.expected_cost <= 1.5


def test_learned_plans_come_from_records_where_every_candidate_answered() -> None:
    definition = parse_definition(
        _cascade_document({"ladder": "learned", "models": ["a", "b"]}), source="t"
    )
    records = [
        _voted([("a", 0), ("b", 0 if i % 3 else 1)], True, representative="b", task="title")
        for i in range(60)
    ]
    assert len(outcomes_from_records(records, ["a", "b"])) == 60
    assert outcomes_from_records(records, ["a", "b", "c"]) == []
    plans = learn_cascade_plans(records, [definition], min_outcomes=30)
    assert set(plans) == {"title"}
    assert {m for rung in plans["title"].ladder for m in rung} <= {"a", "b"}


def _cascade_document(parameters: dict[str, object]) -> dict[str, object]:
    return {
        "id": "title",
        "name": "Title",
        "description": "Extract a title.",
        "version": "1.0.0",
        "input": {"schema": {"type": "object"}},
        "output": {"schema": {"type": "object"}},
        "prompts": [
            {
                "id": "p",
                "text": "Title?",
                "template_variables": [],
                "usage_conditions": {"default": True},
            }
        ],
        "verification": {"method": "cascade", "parameters": parameters},
    }


def test_cascade_definition_syntax_round_trips_and_bad_ladders_are_located() -> None:
    from tlm.definition.model import CascadeParams
    from tlm.definition.serde import make_converter

    definition = parse_definition(
        _cascade_document(
            {
                "ladder": [["a", "b"], "c"],
                "accept": {"agreement": 2, "min_confidence": 0.7},
                "target_quality": 0.9,
            }
        ),
        source="t.json",
    )
    params = definition.verification.parameters
    assert isinstance(params, CascadeParams)
    assert params.ladder == (("a", "b"), ("c",))
    assert params.accept.min_confidence == 0.7
    assert params.target_quality == 0.9
    unstructured = make_converter().unstructure(definition.verification)
    assert unstructured["parameters"]["ladder"] == [["a", "b"], ["c"]]
    learned = parse_definition(_cascade_document({"ladder": "learned"}), source="t.json")
    assert isinstance(learned.verification.parameters, CascadeParams)
    assert learned.verification.parameters.learned
    with pytest.raises(TaskSchemaError, match=r"t\.json.*\$\.verification"):
        parse_definition(_cascade_document({"ladder": "cheapest"}), source="t.json")
    with pytest.raises(TaskSchemaError, match=r"ladder\[0\]\[1\]: '' should be non-empty"):
        parse_definition(_cascade_document({"ladder": [["a", ""]]}), source="t.json")
    with pytest.raises(TaskSchemaError, match=r"t\.json"):
        parse_definition(
            _cascade_document({"ladder": [], "accept": {"agreement": 0}}), source="t.json"
        )
