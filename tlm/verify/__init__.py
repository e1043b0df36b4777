"""Verification methods: consensus, hierarchical review, external checks, human review, chains.

Each method is one record in :data:`tlm.verify.methods.METHODS` (name, parameter class, cost
rank, builder); ``METHODS.register(...)`` adds one.

The protocol (:mod:`tlm.verify.base`) is imported eagerly; the methods load on first use, so
importing :mod:`tlm` does not pull in aiohttp or numpy until a verifier needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tlm.verify.base import (
    Ask,
    Candidate,
    CandidateSource,
    NoVerifier,
    Verdict,
    VerificationContext,
    Verifier,
)

if TYPE_CHECKING:
    from tlm.verify.adaptive import AdaptiveVerifier, PolicyVerifier
    from tlm.verify.chain import ChainVerifier
    from tlm.verify.consensus import ConsensusVerifier
    from tlm.verify.external import ExternalFunction, ExternalVerifier
    from tlm.verify.factory import create_verifier
    from tlm.verify.hierarchical import VERDICT_SCHEMA, HierarchicalVerifier
    from tlm.verify.human import HumanVerifier, await_decision
    from tlm.verify.methods import METHODS, VerificationMethod
    from tlm.verify.review_queue import Decision, Review, ReviewQueue

__all__ = (
    "Ask",
    "Candidate",
    "CandidateSource",
    "Verdict",
    "VerificationContext",
    "Verifier",
    "create_verifier",
    "NoVerifier",
    "HierarchicalVerifier",
    "VERDICT_SCHEMA",
    "ExternalVerifier",
    "ExternalFunction",
    "HumanVerifier",
    "await_decision",
    "ReviewQueue",
    "Review",
    "Decision",
    "ChainVerifier",
    "ConsensusVerifier",
    "AdaptiveVerifier",
    "PolicyVerifier",
    "METHODS",
    "VerificationMethod",
)

_LAZY = {
    "create_verifier": "tlm.verify.factory",
    "HierarchicalVerifier": "tlm.verify.hierarchical",
    "VERDICT_SCHEMA": "tlm.verify.hierarchical",
    "ExternalVerifier": "tlm.verify.external",
    "ExternalFunction": "tlm.verify.external",
    "HumanVerifier": "tlm.verify.human",
    "await_decision": "tlm.verify.human",
    "ReviewQueue": "tlm.verify.review_queue",
    "Review": "tlm.verify.review_queue",
    "Decision": "tlm.verify.review_queue",
    "ChainVerifier": "tlm.verify.chain",
    "ConsensusVerifier": "tlm.verify.consensus",
    "AdaptiveVerifier": "tlm.verify.adaptive",
    "PolicyVerifier": "tlm.verify.adaptive",
    "METHODS": "tlm.verify.methods",
    "VerificationMethod": "tlm.verify.methods",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tlm.verify' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
