"""Small statistics the learning system shares: Wilson intervals, percentiles, token cosine."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

__all__ = ("wilson_interval", "percentile", "token_cosine", "tokens", "STOP_WORDS")

_TOKEN = re.compile(r"[a-z0-9]+")


def wilson_interval(successes: float, n: float, *, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for ``z=1.96``); ``(0, 1)`` when ``n == 0``.

    Fractional counts are accepted (time-decayed or weighted evidence).
    """
    if n <= 0:
        return 0.0, 1.0
    p = min(max(successes / n, 0.0), 1.0)
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100, linear interpolation between ranks); ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


STOP_WORDS = frozenset(
    "a an and are as at be by for from in into is it of on or that the this to with about "
    "your you its their".split()
)
"""Common English words left out of :func:`tokens` by default."""


def tokens(text: str, *, stop: frozenset[str] = STOP_WORDS) -> Counter[str]:
    """Lower-case alphanumeric word counts of ``text``, without ``stop`` words."""
    return Counter(w for w in _TOKEN.findall(text.lower()) if w not in stop)


def token_cosine(a: Counter[str], b: Counter[str]) -> float:
    """Cosine of two word-count vectors (0 when either is empty)."""
    if not a or not b:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    dot = sum(count * b.get(word, 0) for word, count in a.items())
    norm = math.sqrt(sum(c * c for c in a.values())) * math.sqrt(sum(c * c for c in b.values()))
    return dot / norm if norm else 0.0
