"""Text metrics: exact canonical equality, difflib's ratio and token-count cosine.

Each compares the canonical text of its inputs (:func:`tlm.similarity.canonical.canonical_text`),
so they work for strings and for JSON values alike.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from tlm.similarity.canonical import canonical_json, canonical_text

__all__ = ("ExactSimilarity", "SequenceSimilarity", "TokenCosineSimilarity", "FunctionMetric")

_TOKEN = re.compile(r"\w+")


class ExactSimilarity:
    """1.0 when the strict canonical JSON of both values is equal (key order and number
    formatting do not matter; case and whitespace inside strings do), else 0.0."""

    name = "exact"

    def score(self, a: Any, b: Any, /) -> float:
        """Return 1.0 for canonically equal values, else 0.0."""
        return 1.0 if canonical_json(a) == canonical_json(b) else 0.0


class SequenceSimilarity:
    """difflib's ``SequenceMatcher.ratio`` on the folded canonical text (no auto-junk)."""

    name = "text"

    def score(self, a: Any, b: Any, /) -> float:
        """Return ``2 * matches / total length``; two empty texts are identical."""
        ta, tb = canonical_text(a), canonical_text(b)
        if ta == tb:
            return 1.0
        return difflib.SequenceMatcher(None, ta, tb, autojunk=False).ratio()


class TokenCosineSimilarity:
    """Cosine of the word-count vectors of the folded canonical text (bag of words, numpy)."""

    name = "token_cosine"

    def score(self, a: Any, b: Any, /) -> float:
        """Return the cosine of the two token-count vectors; two token-less texts are identical."""
        ta, tb = canonical_text(a), canonical_text(b)
        if ta == tb:
            return 1.0
        ca, cb = Counter(_TOKEN.findall(ta)), Counter(_TOKEN.findall(tb))
        if not ca or not cb:
            return 1.0 if not ca and not cb else 0.0
        vocabulary = list(ca.keys() | cb.keys())
        va = np.fromiter((ca[t] for t in vocabulary), dtype=np.float64, count=len(vocabulary))
        vb = np.fromiter((cb[t] for t in vocabulary), dtype=np.float64, count=len(vocabulary))
        cosine = float(va @ vb) / float(np.linalg.norm(va) * np.linalg.norm(vb))
        return min(1.0, max(0.0, cosine))


class FunctionMetric:
    """A task-specific similarity function ``(a, b) -> float`` used as a metric.

    Raises:
        ValueError: when the function returns something outside [0, 1] (or NaN).
    """

    def __init__(self, function: Callable[[Any, Any], float], *, name: str | None = None) -> None:
        self.function = function
        self.name = name or getattr(function, "__name__", "function")

    def score(self, a: Any, b: Any, /) -> float:
        """Return the function's score, checked to lie in [0, 1]."""
        value = float(self.function(a, b))
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"similarity function {self.name!r} returned {value!r}, not in [0, 1]")
        return value

    def __repr__(self) -> str:
        return f"FunctionMetric({self.name!r})"
