"""The canary's sequential test on hand-made evidence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tlm.rollout.decide import ArmStats, CanaryPolicy, arm_stats, decide, success_of
from tlm.telemetry.records import (
    ExecutionRecord,
    Feedback,
    Performance,
    VerificationResults,
    format_timestamp,
)

POLICY = CanaryPolicy(min_samples=30, min_rollback_samples=10, max_samples=500)


def arm(judged: int, rate: float, cost: float = 1.0) -> ArmStats:
    return ArmStats(
        executions=judged,
        judged=judged,
        successes=round(judged * rate),
        cost_usd=cost * judged,
        latency_s=float(judged),
    )


def test_no_decision_before_the_minimum_samples() -> None:
    # Hopeless new version, but too little evidence on either side to act.
    assert decide(arm(9, 0.9), arm(9, 0.0), POLICY).action == "hold"
    assert decide(arm(29, 0.9), arm(29, 0.9, cost=0.5), POLICY).action == "hold"


def test_a_clearly_worse_version_is_rolled_back_at_the_rollback_guardrail() -> None:
    verdict = decide(arm(10, 0.9), arm(10, 0.1), POLICY)
    assert verdict.action == "rollback"
    assert verdict.evidence["p_worse"] >= POLICY.confidence
    assert verdict.evidence["new"]["judged"] == 10


def test_as_good_and_cheaper_is_promoted_and_as_good_but_dearer_is_not() -> None:
    current, cheaper, dearer = arm(200, 0.9), arm(200, 0.9, cost=0.5), arm(200, 0.9, cost=2.0)
    assert decide(current, cheaper, POLICY).action == "promote"
    assert decide(current, dearer, POLICY).action == "hold"
    better_and_dearer = arm(300, 0.99, cost=2.0)
    verdict = decide(arm(300, 0.85), better_and_dearer, POLICY)
    assert verdict.action == "promote"
    assert "better" in verdict.reason


def test_within_the_margin_counts_as_not_worse() -> None:
    current = arm(2000, 0.90)
    slightly_worse = arm(2000, 0.88, cost=0.5)
    assert decide(current, slightly_worse, POLICY).action == "promote"
    strict = CanaryPolicy(margin=0.0, min_samples=30, max_samples=5000)
    assert decide(current, slightly_worse, strict).action != "promote"


def test_an_undecided_canary_is_rolled_back_at_max_samples() -> None:
    verdict = decide(arm(500, 0.9), arm(500, 0.9, cost=2.0), POLICY)
    assert verdict.action == "rollback"
    assert "inconclusive" in verdict.reason


def test_the_same_evidence_and_seed_give_the_same_decision() -> None:
    current, new = arm(40, 0.8), arm(40, 0.75, cost=0.5)
    first = decide(current, new, POLICY)
    assert decide(current, new, POLICY) == first
    other = decide(current, new, CanaryPolicy(**{**POLICY.to_dict(), "seed": 7}))
    assert other.evidence["p_worse"] != first.evidence["p_worse"]


@pytest.mark.parametrize(
    ("passed", "status", "feedback", "expected"),
    [
        (True, "ok", (), True),
        (False, "ok", (), False),
        (None, "ok", (), None),
        (None, "error", (), False),
        (True, "ok", (Feedback("human", "t", correct=False),), False),
        (False, "ok", (Feedback("system", "t", score=0.9),), True),
        (True, "ok", (Feedback("system", "t", correct=False), Feedback("human", "t", score=1.0)),
         True),
    ],
)  # fmt: skip
def test_success_of_prefers_people_then_systems_then_the_verdict(
    passed: bool | None, status: str, feedback: tuple[Feedback, ...], expected: bool | None
) -> None:
    record = ExecutionRecord(
        execution_id="e",
        task_id="t",
        task_version="1.0.0",
        input={},
        output={},
        models_used=("m",),
        verification_results=VerificationResults("none", passed, 1.0),
        performance=Performance(1.0, 10, 0.5),
        timestamp=format_timestamp(datetime.now(UTC)),
        feedback=feedback,
        status=status,  # type: ignore[arg-type]
    )
    assert success_of(record) is expected
    stats = arm_stats([record, record])
    assert stats.executions == 2
    assert stats.judged == (0 if expected is None else 2)
    assert stats.mean_cost_usd == 0.5


def test_policy_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="confidence"):
        CanaryPolicy(confidence=0.4)
    with pytest.raises(ValueError, match="margin"):
        CanaryPolicy(margin=-0.1)
    assert CanaryPolicy.from_dict({**POLICY.to_dict(), "unknown": 1}) == POLICY
