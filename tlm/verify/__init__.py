"""Verification methods: consensus, hierarchical review, external checks, human review, chains."""

from tlm.verify.base import Ask, Candidate, CandidateSource, Verdict, VerificationContext, Verifier

__all__ = ("Ask", "Candidate", "CandidateSource", "Verdict", "VerificationContext", "Verifier")
