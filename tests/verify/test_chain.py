"""Chained verification: in order, stopping at the first decisive verdict."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from tlm.errors import DefinitionError
from tlm.verify.base import Candidate, Verdict, VerificationContext
from tlm.verify.chain import ChainVerifier

from .support import make_context


@attrs.define
class Scripted:
    """A verifier that returns a fixed verdict and records that it ran."""

    method: str
    verdict: Verdict
    log: list[str]

    async def verify(self, context: VerificationContext, /) -> Verdict:
        self.log.append(self.method)
        return self.verdict


def verdict(method: str, passed: bool | None, *, cost: float = 0.0, **details: Any) -> Verdict:
    return Verdict(passed=passed, confidence=0.8, method=method, details=details, cost_usd=cost)


async def test_stops_at_first_decisive_verdict() -> None:
    log: list[str] = []
    corrected = Candidate(model="model-a", output={"fixed": True}, cost_usd=0.01)
    steps = [
        Scripted(
            "external", verdict("external", False, cost=0.0, decisive=False, error="down"), log
        ),
        Scripted(
            "hierarchical",
            attrs.evolve(
                verdict("hierarchical", True, cost=0.02),
                output={"fixed": True},
                candidates=(corrected,),
            ),
            log,
        ),
        Scripted("human", verdict("human", True), log),
    ]
    result = await ChainVerifier(steps).verify(make_context())

    assert log == ["external", "hierarchical"]
    assert result.method == "chain"
    assert result.passed is True
    assert result.decisive
    assert result.confidence == 0.8
    assert result.output == {"fixed": True}
    assert result.candidates == (corrected,)
    assert result.cost_usd == pytest.approx(0.02)
    assert result.details["decided_by"] == "hierarchical"
    assert [s["method"] for s in result.details["steps"]] == ["external", "hierarchical"]
    assert result.details["steps"][0]["details"]["error"] == "down"


async def test_decisive_failure_stops_the_chain() -> None:
    log: list[str] = []
    steps = [
        Scripted("external", verdict("external", False, cost=0.1), log),
        Scripted("human", verdict("human", True), log),
    ]
    result = await ChainVerifier(steps).verify(make_context())
    assert log == ["external"]
    assert result.passed is False
    assert result.decisive


async def test_no_decisive_step_leaves_chain_undecided() -> None:
    log: list[str] = []
    steps = [
        Scripted("external", verdict("external", False, cost=0.1, decisive=False), log),
        Scripted("hierarchical", verdict("hierarchical", False, cost=0.2, decisive=False), log),
    ]
    result = await ChainVerifier(steps).verify(make_context())
    assert log == ["external", "hierarchical"]
    assert result.passed is False
    assert not result.decisive
    assert result.cost_usd == pytest.approx(0.3)


async def test_pending_human_review_keeps_the_review_id() -> None:
    steps = [
        Scripted("external", verdict("external", False, decisive=False), []),
        Scripted("human", verdict("human", None, review_id="r1"), []),
    ]
    result = await ChainVerifier(steps).verify(make_context())
    assert result.passed is None
    assert result.details["review_id"] == "r1"


def test_empty_chain_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="at least one step"):
        ChainVerifier([])
