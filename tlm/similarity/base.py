"""The similarity protocol: how alike two outputs are, as a score in [0, 1].

A metric is anything with ``score(a, b) -> float``. Metrics that need I/O before they can score
(the semantic metric embeds texts) also have an async ``prepare(values)``; callers run
:func:`prepare_metric` on every value before scoring it, which is a no-op for the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ("SimilarityMetric", "PreparableMetric", "prepare_metric", "metric_name")


@runtime_checkable
class SimilarityMetric(Protocol):
    """Scores how alike two values are: 1.0 means equivalent, 0.0 nothing in common.

    Implementations need not inherit from this. ``score`` must be symmetric, pure and fast (it
    runs on the event loop); do any I/O in an optional ``async prepare(values)``.
    """

    def score(self, a: Any, b: Any, /) -> float:
        """Return the similarity of ``a`` and ``b`` in [0, 1]."""
        ...


@runtime_checkable
class PreparableMetric(SimilarityMetric, Protocol):
    """A metric that must see the values (e.g. embed them) before it can score them."""

    async def prepare(self, values: Sequence[Any], /) -> float | None:
        """Do the I/O ``score`` needs for ``values``; values already prepared cost nothing.

        Returns what this call cost in USD (``None`` or 0 when free), so that the caller can
        charge it to the execution's budget.
        """
        ...


async def prepare_metric(metric: SimilarityMetric, values: Sequence[Any]) -> float:
    """Run ``metric.prepare(values)`` when the metric has one; return what it cost in USD."""
    if isinstance(metric, PreparableMetric):
        return float(await metric.prepare(values) or 0.0)
    return 0.0


def metric_name(metric: SimilarityMetric) -> str:
    """The metric's ``name`` attribute, or its class name."""
    name = getattr(metric, "name", None)
    return name if isinstance(name, str) else type(metric).__name__
