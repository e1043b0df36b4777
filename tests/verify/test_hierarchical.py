"""Hierarchical verification: a reviewer model judges the primary's output."""

from __future__ import annotations

from typing import Any

import pytest

from tlm.definition.model import HierarchicalParams
from tlm.errors import BudgetExceeded, ProviderUnavailable
from tlm.verify.hierarchical import VERDICT_SCHEMA, HierarchicalVerifier

from .support import FakeAsk, FakeSource, make_context

PROMPT = "Verify if this skill decomposition for '{{skill_name}}' is complete: {{decomposition}}"


def review(passed: bool, confidence: float, issues: list[str] | None = None) -> dict[str, Any]:
    return {
        "passed": passed,
        "confidence": confidence,
        "issues": issues or [],
        "suggestions": ["add typing"] if issues else [],
    }


def verifier(**kwargs: Any) -> HierarchicalVerifier:
    return HierarchicalVerifier(HierarchicalParams(verification_prompt=PROMPT, **kwargs))


async def test_passes_and_renders_prompt_with_input_and_output() -> None:
    ask = FakeAsk([review(True, 0.9)])
    verdict = await verifier().verify(make_context(ask=ask))

    assert verdict.passed is True
    assert verdict.decisive
    assert verdict.confidence == 0.9
    assert verdict.method == "hierarchical"
    assert verdict.cost_usd == pytest.approx(0.001)
    assert verdict.output is None
    model, prompt, schema = ask.calls[0]
    assert model == "model-b"  # best-ranked model that is not the primary's
    assert prompt.startswith(
        "Verify if this skill decomposition for 'python' is complete: "
        '{"skills":["syntax","stdlib"]}'
    )
    assert '"passed"' in prompt  # the JSON answer instructions
    assert schema == VERDICT_SCHEMA
    assert verdict.details["reviewer"] == "model-b"


async def test_reviewer_rejects() -> None:
    ask = FakeAsk([review(False, 0.95, ["missing testing"])])
    verdict = await verifier().verify(make_context(ask=ask))

    assert verdict.passed is False
    assert verdict.decisive
    assert verdict.details["issues"] == ["missing testing"]
    assert verdict.details["suggestions"] == ["add typing"]


async def test_below_min_confidence_fails() -> None:
    ask = FakeAsk([review(True, 0.6)])
    verdict = await verifier(min_confidence=0.8).verify(make_context(ask=ask))

    assert verdict.passed is False
    assert verdict.decisive
    assert verdict.details["reviewer_passed"] is True
    assert "below 0.8" in verdict.details["reason"]


@pytest.mark.parametrize(
    ("reply", "structured", "fragment"),
    [
        ("I think it is fine!", True, "not JSON"),
        ({"passed": "yes", "confidence": 0.9, "issues": [], "suggestions": []}, True, "$.passed"),
        ({"passed": True, "confidence": 3, "issues": [], "suggestions": []}, True, "$.confidence"),
        ({"passed": True}, False, "required property"),
        ([1, 2], True, "not of type 'object'"),
    ],
    ids=["prose", "wrong-type", "out-of-range", "missing-fields", "array"],
)
async def test_garbage_reply_is_failed_non_decisive(
    reply: Any, structured: bool, fragment: str
) -> None:
    ask = FakeAsk([reply], structured=structured)
    verdict = await verifier().verify(make_context(ask=ask))

    assert verdict.passed is False
    assert not verdict.decisive
    assert fragment in verdict.details["error"]
    assert verdict.cost_usd == pytest.approx(0.001)  # the reviewer was still paid for


async def test_fenced_json_text_reply_is_accepted() -> None:
    ask = FakeAsk(
        ['```json\n{"passed": true, "confidence": 1, "issues": [], "suggestions": []}\n```']
    )
    verdict = await verifier().verify(make_context(ask=ask))
    assert verdict.passed is True


async def test_reviewer_call_failure_is_failed_non_decisive() -> None:
    error = ProviderUnavailable("overloaded", provider="fake", model="model-b", status=503)
    verdict = await verifier().verify(make_context(ask=FakeAsk([error])))
    assert verdict.passed is False
    assert not verdict.decisive
    assert "ProviderUnavailable" in verdict.details["error"]


async def test_budget_exhaustion_propagates() -> None:
    error = BudgetExceeded("cost budget exhausted", spent_usd=1.0, elapsed_s=0.1, attempts=1)
    with pytest.raises(BudgetExceeded):
        await verifier().verify(make_context(ask=FakeAsk([error])))


async def test_no_other_model_is_an_explicit_failure() -> None:
    ask = FakeAsk([])
    verdict = await verifier().verify(make_context(ask=ask, ranked=("model-a",)))
    assert verdict.passed is False
    assert not verdict.decisive
    assert "no model other than the primary's" in verdict.details["error"]
    assert ask.calls == []


async def test_configured_verifier_model_is_used() -> None:
    ask = FakeAsk([review(True, 1.0)])
    await verifier(verifier_model="judge").verify(make_context(ask=ask))
    assert ask.calls[0][0] == "judge"


async def test_prompt_with_two_unknown_variables_fails_clearly() -> None:
    params = HierarchicalParams(verification_prompt="{{a}} {{b}}")
    ask = FakeAsk([])
    verdict = await HierarchicalVerifier(params).verify(make_context(ask=ask))
    assert verdict.passed is False
    assert "a, b" in verdict.details["error"]
    assert ask.calls == []


async def test_correction_round_returns_corrected_output() -> None:
    ask = FakeAsk([review(False, 0.9, ["missing testing"]), review(True, 0.92)])
    corrected = {"skills": ["syntax", "stdlib", "testing"]}
    source = FakeSource([corrected])
    verdict = await verifier(correction_round=True).verify(make_context(ask=ask, source=source))

    assert verdict.passed is True
    assert verdict.output == corrected
    assert source.calls[0][0] == "model-a"  # the primary corrects its own output
    assert "missing testing" in str(source.calls[0][1])
    assert '"testing"' in ask.calls[1][1]  # the second review sees the corrected output
    assert [c.output for c in verdict.candidates] == [corrected]
    assert verdict.cost_usd == pytest.approx(0.001 + 0.002 + 0.001)
    assert verdict.details["corrected"] is True
    assert len(verdict.details["rounds"]) == 2


async def test_correction_round_still_failing() -> None:
    ask = FakeAsk([review(False, 0.9, ["x"]), review(False, 0.9, ["still x"])])
    source = FakeSource([{"skills": []}])
    verdict = await verifier(correction_round=True).verify(make_context(ask=ask, source=source))
    assert verdict.passed is False
    assert verdict.output is None
    assert verdict.details["issues"] == ["still x"]


async def test_no_correction_round_unless_configured() -> None:
    source = FakeSource([])
    verdict = await verifier().verify(
        make_context(ask=FakeAsk([review(False, 0.9, ["x"])]), source=source)
    )
    assert verdict.passed is False
    assert source.calls == []
