"""Verification methods: consensus, hierarchical review, external checks, human review, chains."""

from tlm.verify.base import Ask, Candidate, CandidateSource, Verdict, VerificationContext, Verifier
from tlm.verify.chain import ChainVerifier
from tlm.verify.consensus import ConsensusVerifier
from tlm.verify.external import ExternalFunction, ExternalVerifier
from tlm.verify.factory import NoVerifier, create_verifier
from tlm.verify.hierarchical import VERDICT_SCHEMA, HierarchicalVerifier
from tlm.verify.human import HumanVerifier, await_decision
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
)
