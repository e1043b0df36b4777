"""Similarity metrics by name: the built-ins and task-specific functions.

A registry is a plain object (an engine holds one); :func:`default_metrics` builds one with the
built-ins. Register a task-specific function with ``registry.register("name", fn)`` or as a
decorator ``@registry.register("name")``; functions ``(a, b) -> float`` are wrapped in
:class:`~tlm.similarity.text.FunctionMetric`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from tlm.errors import ConfigurationError
from tlm.similarity.base import SimilarityMetric
from tlm.similarity.semantic import SemanticSimilarity
from tlm.similarity.structured import StructuredSimilarity
from tlm.similarity.text import (
    ExactSimilarity,
    FunctionMetric,
    SequenceSimilarity,
    TokenCosineSimilarity,
)

if TYPE_CHECKING:
    from tlm.providers.base import EmbeddingProvider

__all__ = ("MetricRegistry", "default_metrics")

F = TypeVar("F", bound=Callable[[Any, Any], float])


class MetricRegistry:
    """Maps names to similarity metrics."""

    def __init__(self, metrics: Mapping[str, SimilarityMetric] | None = None) -> None:
        self._metrics: dict[str, SimilarityMetric] = dict(metrics or {})

    def get(self, name: str) -> SimilarityMetric:
        """The metric registered as ``name``.

        Raises:
            tlm.errors.ConfigurationError: for an unknown name (the message lists the known ones).
        """
        try:
            return self._metrics[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ConfigurationError(
                f"unknown similarity metric {name!r} (known: {known})"
            ) from None

    @overload
    def register(
        self, name: str, metric: SimilarityMetric | Callable[[Any, Any], float], /
    ) -> None: ...

    @overload
    def register(self, name: str, /) -> Callable[[F], F]: ...

    def register(
        self, name: str, metric: SimilarityMetric | Callable[[Any, Any], float] | None = None, /
    ) -> Callable[[F], F] | None:
        """Register ``metric`` (a metric or a function) as ``name``; without it, a decorator.

        Raises:
            ValueError: when ``name`` is already registered.
        """
        if metric is None:

            def decorator(function: F) -> F:
                self._add(name, function)
                return function

            return decorator
        self._add(name, metric)
        return None

    def _add(self, name: str, metric: SimilarityMetric | Callable[[Any, Any], float]) -> None:
        if name in self._metrics:
            raise ValueError(f"similarity metric {name!r} is already registered")
        if isinstance(metric, SimilarityMetric):
            self._metrics[name] = metric
        else:
            self._metrics[name] = FunctionMetric(metric, name=name)

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._metrics))

    def __contains__(self, name: object) -> bool:
        return name in self._metrics


def default_metrics(
    *, embeddings: EmbeddingProvider | None = None, embedding_model: str | None = None
) -> MetricRegistry:
    """A registry with ``exact``, ``text`` (= ``difflib``), ``token_cosine``, ``structured`` and,
    when an embedding provider and model are given, ``semantic``."""
    text = SequenceSimilarity()
    metrics: dict[str, SimilarityMetric] = {
        "exact": ExactSimilarity(),
        "text": text,
        "difflib": text,
        "token_cosine": TokenCosineSimilarity(),
        "structured": StructuredSimilarity(),
    }
    if embeddings is not None:
        if not embedding_model:
            raise ConfigurationError("the semantic metric needs an embedding model id")
        metrics["semantic"] = SemanticSimilarity(embeddings, embedding_model)
    return MetricRegistry(metrics)
