"""Similarity metrics: how alike two model outputs are, pluggable by name.

Text (exact, difflib ratio, token cosine), structured (canonicalised, field by field, lists as
fuzzy sets), semantic (embedding cosine) and task-specific functions, in a :class:`MetricRegistry`.
"""

from tlm.similarity.base import PreparableMetric, SimilarityMetric, metric_name, prepare_metric
from tlm.similarity.canonical import canonical_json, canonical_text, canonicalize
from tlm.similarity.registry import MetricRegistry, default_metrics
from tlm.similarity.semantic import SemanticSimilarity
from tlm.similarity.structured import StructuredSimilarity
from tlm.similarity.text import (
    ExactSimilarity,
    FunctionMetric,
    SequenceSimilarity,
    TokenCosineSimilarity,
)

__all__ = (
    "SimilarityMetric",
    "PreparableMetric",
    "prepare_metric",
    "metric_name",
    "MetricRegistry",
    "default_metrics",
    "canonicalize",
    "canonical_json",
    "canonical_text",
    "ExactSimilarity",
    "SequenceSimilarity",
    "TokenCosineSimilarity",
    "FunctionMetric",
    "StructuredSimilarity",
    "SemanticSimilarity",
)
