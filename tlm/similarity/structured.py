"""Structured similarity: canonicalise two JSON values, then compare them field by field.

Rules, applied recursively on the folded canonical forms (see :mod:`tlm.similarity.canonical`):

* **objects**: the weighted mean over the union of keys of each field's similarity. A field
  missing on one side (or ``null``) scores 0 against a present value; missing and ``null`` are the
  same. Weights and per-field metrics are looked up by path: ``"title"``, ``"location.city"``,
  ``"skills[]"`` (the items of a list), ``"jobs[].title"``. The default weight is 1.
* **lists** are sets: duplicates are dropped, identical items match first, then the remaining
  items are matched greedily by descending item similarity (each item at most once; pairs below
  ``list_match_threshold`` do not match). Score = sum of matched similarities / the larger size.
* **strings**: the Sørensen-Dice coefficient of their character-bigram sets (fast, order-light;
  ``"postgres"`` vs ``"postgresql"`` scores 0.875), or ``string_metric`` when given (e.g.
  :class:`~tlm.similarity.text.SequenceSimilarity` for difflib's ratio);
  **numbers**: equal within ``number_tolerance`` (relative) or 0;
  **booleans** and mixed types: equal or 0. Two empty lists or objects are identical.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

from tlm.similarity.base import SimilarityMetric
from tlm.similarity.canonical import canonicalize

__all__ = ("StructuredSimilarity",)


def _bigrams(text: str) -> frozenset[str]:
    if len(text) < 2:
        return frozenset((text,))
    return frozenset(text[i : i + 2] for i in range(len(text) - 1))


def _dice(a: frozenset[str], b: frozenset[str]) -> float:
    return 2.0 * len(a & b) / (len(a) + len(b))


def _item_key(value: Any) -> Hashable:
    """A key equal for equal canonical items (``True`` and ``1`` stay apart)."""
    kind = type(value)
    if kind is dict or kind is list:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (kind.__name__, value)


class StructuredSimilarity:
    """Field-by-field similarity of JSON values with per-field weights and metrics.

    Args:
        field_weights: weight per field path (default 1.0; 0 ignores the field).
        field_metrics: a metric per field path, given the field's canonical values.
        list_match_threshold: the least item similarity that counts as a match inside a list.
        number_tolerance: relative difference under which two numbers are equal.
        string_metric: scores two (folded) strings; default: bigram Dice.
    """

    name = "structured"

    def __init__(
        self,
        *,
        field_weights: Mapping[str, float] | None = None,
        field_metrics: Mapping[str, SimilarityMetric] | None = None,
        list_match_threshold: float = 0.5,
        number_tolerance: float = 1e-9,
        string_metric: SimilarityMetric | None = None,
    ) -> None:
        weights = dict(field_weights or {})
        for path, weight in weights.items():
            if weight < 0:
                raise ValueError(f"field weight for {path!r} is negative: {weight}")
        self.field_weights: Mapping[str, float] = weights
        self.field_metrics: Mapping[str, SimilarityMetric] = dict(field_metrics or {})
        self.list_match_threshold = list_match_threshold
        self.number_tolerance = number_tolerance
        self.string_metric = string_metric

    def with_weights(self, field_weights: Mapping[str, float]) -> StructuredSimilarity:
        """A copy of this metric with ``field_weights`` added to (and overriding) its own."""
        return StructuredSimilarity(
            field_weights={**self.field_weights, **field_weights},
            field_metrics=self.field_metrics,
            list_match_threshold=self.list_match_threshold,
            number_tolerance=self.number_tolerance,
            string_metric=self.string_metric,
        )

    def score(self, a: Any, b: Any, /) -> float:
        """Return the weighted field-by-field similarity of ``a`` and ``b`` in [0, 1]."""
        return self._similarity(canonicalize(a), canonicalize(b), "")

    def _similarity(self, a: Any, b: Any, path: str) -> float:
        metric = self.field_metrics.get(path) if path else None
        if metric is not None:
            return metric.score(a, b)
        if isinstance(a, dict) and isinstance(b, dict):
            return self._objects(a, b, path)
        if isinstance(a, list) and isinstance(b, list):
            return self._lists(a, b, path)
        if isinstance(a, str) and isinstance(b, str):
            if a == b:
                return 1.0
            if self.string_metric is not None:
                return self.string_metric.score(a, b)
            return _dice(_bigrams(a), _bigrams(b))
        if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
            return 1.0 if a is b else 0.0
        if isinstance(a, int | float) and isinstance(b, int | float):
            scale = max(abs(a), abs(b))
            return 1.0 if abs(a - b) <= self.number_tolerance * scale else 0.0
        return 1.0 if a == b else 0.0

    def _objects(self, a: dict[str, Any], b: dict[str, Any], path: str) -> float:
        total = weight_sum = 0.0
        for key in sorted(a.keys() | b.keys()):
            child = f"{path}.{key}" if path else key
            weight = self.field_weights.get(child, 1.0)
            if weight == 0:
                continue
            weight_sum += weight
            total += weight * self._similarity(a.get(key), b.get(key), child)
        return total / weight_sum if weight_sum else 1.0

    def _pairs(
        self, xs: list[Any], ys: list[Any], item_path: str
    ) -> Iterator[tuple[float, int, int]]:
        """Item pairs at or above the match threshold, with their similarity."""
        threshold = self.list_match_threshold
        plain_strings = (
            self.string_metric is None
            and item_path not in self.field_metrics
            and all(isinstance(v, str) for v in (*xs, *ys))
        )
        if not plain_strings:
            for i, x in enumerate(xs):
                for j, y in enumerate(ys):
                    similarity = self._similarity(x, y, item_path)
                    if similarity >= threshold:
                        yield similarity, i, j
            return
        # Plain strings: bigram sets computed once per item, not once per pair.
        grams_x = [_bigrams(x) for x in xs]
        for j, y in enumerate(ys):
            grams_y = _bigrams(y)
            for i, grams in enumerate(grams_x):
                similarity = _dice(grams, grams_y)
                if similarity >= threshold:
                    yield similarity, i, j

    def _lists(self, a: list[Any], b: list[Any], path: str) -> float:
        items_a = {_item_key(v): v for v in a}
        items_b = {_item_key(v): v for v in b}
        if not items_a or not items_b:
            return 1.0 if not items_a and not items_b else 0.0
        common = items_a.keys() & items_b.keys()
        matched = float(len(common))
        rest_a = [v for k, v in items_a.items() if k not in common]
        rest_b = [v for k, v in items_b.items() if k not in common]
        if rest_a and rest_b:
            limit = min(len(rest_a), len(rest_b))
            used_a: set[int] = set()
            used_b: set[int] = set()
            for similarity, i, j in sorted(self._pairs(rest_a, rest_b, f"{path}[]"), reverse=True):
                if len(used_a) == limit:
                    break
                if i in used_a or j in used_b:
                    continue
                used_a.add(i)
                used_b.add(j)
                matched += similarity
        return matched / max(len(items_a), len(items_b))
