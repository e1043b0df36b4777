"""The verifier factory: one verifier per method, chains ordered cheapest first."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tlm.definition.model import (
    ChainParams,
    ConsensusParams,
    ExternalParams,
    HierarchicalParams,
    HumanParams,
    NoParams,
    VerificationSpec,
)
from tlm.errors import ConfigurationError, DefinitionError
from tlm.similarity import MetricRegistry
from tlm.verify.chain import ChainVerifier
from tlm.verify.consensus import ConsensusVerifier
from tlm.verify.external import ExternalVerifier
from tlm.verify.factory import NoVerifier, create_verifier, order_cheapest_first
from tlm.verify.hierarchical import HierarchicalVerifier
from tlm.verify.human import HumanVerifier
from tlm.verify.review_queue import ReviewQueue

from .support import make_context

HIERARCHICAL = VerificationSpec("hierarchical", HierarchicalParams("Check {{output}}"))
EXTERNAL = VerificationSpec("external", ExternalParams(endpoint="http://127.0.0.1:9/check"))
HUMAN = VerificationSpec("human", HumanParams())
CONSENSUS = VerificationSpec("consensus", ConsensusParams(similarity_metric="text"))


async def check(payload: Mapping[str, Any]) -> bool:
    return True


async def test_none_passes() -> None:
    verifier = create_verifier(VerificationSpec())
    assert isinstance(verifier, NoVerifier)
    verdict = await verifier.verify(make_context())
    assert (verdict.passed, verdict.confidence, verdict.method) == (True, 1.0, "none")
    assert verdict.details == {"reason": "no verification configured"}


def test_each_method(tmp_path: Path) -> None:
    queue = ReviewQueue.in_data_dir(tmp_path)
    assert isinstance(create_verifier(HIERARCHICAL), HierarchicalVerifier)
    assert isinstance(create_verifier(EXTERNAL), ExternalVerifier)
    function_spec = VerificationSpec("external", ExternalParams(function="check"))
    assert isinstance(create_verifier(function_spec, functions={"check": check}), ExternalVerifier)
    human = create_verifier(HUMAN, review_queue=queue)
    assert isinstance(human, HumanVerifier)
    assert human.queue is queue
    assert isinstance(create_verifier(CONSENSUS), ConsensusVerifier)


def test_consensus_uses_given_metrics() -> None:
    registry = MetricRegistry()
    registry.register("same_letter", lambda a, b: float(str(a)[:1] == str(b)[:1]))
    spec = VerificationSpec("consensus", ConsensusParams(similarity_metric="same_letter"))
    verifier = create_verifier(spec, metrics=registry)
    assert isinstance(verifier, ConsensusVerifier)
    with pytest.raises(ConfigurationError, match=r"@ \$\.verification\.parameters\.similarity"):
        create_verifier(CONSENSUS, metrics=registry)


def test_chain_is_built_recursively_cheapest_first(tmp_path: Path) -> None:
    queue = ReviewQueue.in_data_dir(tmp_path)
    spec = VerificationSpec(
        "chain", ChainParams((HUMAN, CONSENSUS, HIERARCHICAL, VerificationSpec(), EXTERNAL))
    )
    verifier = create_verifier(spec, review_queue=queue)
    assert isinstance(verifier, ChainVerifier)
    assert [step.method for step in verifier.steps] == [
        "none",
        "external",
        "hierarchical",
        "consensus",
        "human",
    ]


def test_order_is_stable_and_nested_chains_rank_by_their_dearest_step() -> None:
    second_hier = VerificationSpec("hierarchical", HierarchicalParams("Again {{output}}"))
    nested = VerificationSpec("chain", ChainParams((EXTERNAL, CONSENSUS)))
    ordered = order_cheapest_first([second_hier, nested, HUMAN, HIERARCHICAL, EXTERNAL])
    assert ordered == [EXTERNAL, second_hier, HIERARCHICAL, nested, HUMAN]


def test_unknown_method_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"unknown verification method 'vibes'.*\.method"):
        create_verifier(VerificationSpec("vibes"))


def test_unknown_method_inside_chain_is_located() -> None:
    spec = VerificationSpec("chain", ChainParams((EXTERNAL, VerificationSpec("vibes"))))
    with pytest.raises(DefinitionError, match=r"@ \$\.verification\.parameters\.steps\[1\]"):
        create_verifier(spec)


def test_parameters_of_another_method_are_rejected() -> None:
    with pytest.raises(DefinitionError, match="needs HierarchicalParams, got NoParams"):
        create_verifier(VerificationSpec("hierarchical", NoParams()))


def test_human_without_queue_and_unregistered_function_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="review queue"):
        create_verifier(HUMAN)
    with pytest.raises(ConfigurationError, match="not registered"):
        create_verifier(VerificationSpec("external", ExternalParams(function="check")))
