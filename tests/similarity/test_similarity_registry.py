"""The metric registry: built-ins by name, task-specific functions, clear errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import tlm.similarity
from tlm.errors import ConfigurationError
from tlm.providers.base import EmbeddingResponse
from tlm.similarity import (
    FunctionMetric,
    MetricRegistry,
    SemanticSimilarity,
    SimilarityMetric,
    StructuredSimilarity,
    default_metrics,
    prepare_metric,
)


class _NoEmbeddings:
    name = "none"

    async def embed(self, model: str, texts: Sequence[str], /) -> EmbeddingResponse:
        raise AssertionError("not called")


def test_default_metrics_by_name() -> None:
    registry = default_metrics()
    assert registry.names() == ("difflib", "exact", "structured", "text", "token_cosine")
    assert registry.get("difflib") is registry.get("text")
    assert isinstance(registry.get("structured"), StructuredSimilarity)
    for name in registry.names():
        assert registry.get(name).score({"a": "x"}, {"a": "x"}) == 1.0
    assert "semantic" not in registry


def test_semantic_needs_a_provider_and_a_model() -> None:
    registry = default_metrics(embeddings=_NoEmbeddings(), embedding_model="embed-small")
    metric = registry.get("semantic")
    assert isinstance(metric, SemanticSimilarity)
    assert metric.model == "embed-small"
    with pytest.raises(ConfigurationError, match="embedding model"):
        default_metrics(embeddings=_NoEmbeddings())


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown similarity metric 'cosine' \(known: "):
        default_metrics().get("cosine")


def test_register_a_function_by_call_and_by_decorator() -> None:
    registry = MetricRegistry()

    @registry.register("same_initial")
    def same_initial(a: Any, b: Any) -> float:
        return 1.0 if str(a)[:1] == str(b)[:1] else 0.0

    assert same_initial("ab", "ac") == 1.0  # the decorator returns the function unchanged
    registry.register("length", lambda a, b: min(len(a), len(b)) / max(len(a), len(b), 1))
    registry.register("structured", StructuredSimilarity())

    metric = registry.get("same_initial")
    assert isinstance(metric, FunctionMetric)
    assert metric.name == "same_initial"
    assert metric.score("apple", "avocado") == 1.0
    assert registry.get("length").score("ab", "abcd") == 0.5
    assert isinstance(registry.get("structured"), StructuredSimilarity)
    assert registry.names() == ("length", "same_initial", "structured")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("length", StructuredSimilarity())


async def test_prepare_metric_is_a_no_op_for_plain_metrics() -> None:
    metric: SimilarityMetric = StructuredSimilarity()
    await prepare_metric(metric, [{"a": 1}])


def test_public_names() -> None:
    assert set(tlm.similarity.__all__) == {
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
    }
    for name in tlm.similarity.__all__:
        assert hasattr(tlm.similarity, name)
