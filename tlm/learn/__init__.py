"""The learning system: analysis of execution records, learned rankings with exploration,
cold start and adaptive verification, prompt-improvement suggestions.

Imports flow from the engine's data (records, selection estimates) into here; the engine imports
this package only lazily (``rankings.json`` in the data directory).
"""

from tlm.learn.analysis import Analysis, FailurePattern, GroupStats, analyze, analyze_store
from tlm.learn.coldstart import (
    AdaptiveVerifier,
    TaskHistory,
    VerificationPolicy,
    cold_start_priors,
    similar_tasks,
)
from tlm.learn.estimator import RankingsEstimator
from tlm.learn.rankings import (
    Rankings,
    build_rankings,
    update_rankings,
)
from tlm.learn.suggestions import Suggestion, suggest

__all__ = (
    "Analysis",
    "GroupStats",
    "FailurePattern",
    "analyze",
    "analyze_store",
    "Rankings",
    "RankingsEstimator",
    "build_rankings",
    "update_rankings",
    "TaskHistory",
    "VerificationPolicy",
    "AdaptiveVerifier",
    "similar_tasks",
    "cold_start_priors",
    "Suggestion",
    "suggest",
)
