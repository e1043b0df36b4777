"""Semantic similarity: the cosine of two values' embeddings from an embedding provider.

``prepare(values)`` embeds every value not seen before in ONE provider call and caches the unit
vectors by the value's folded canonical text; ``score`` is then pure numpy. Scoring a value that
was never prepared is a programming error and raises :class:`LookupError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tlm.errors import MalformedResponse
from tlm.similarity.canonical import canonical_text
from tlm.telemetry.calls import traced_embed

if TYPE_CHECKING:
    from tlm.providers.base import EmbeddingProvider

__all__ = ("SemanticSimilarity",)


class SemanticSimilarity:
    """Embedding cosine, clipped to [0, 1] (opposed meanings score 0).

    Args:
        provider: embeds texts (``EmbeddingProvider.embed``).
        model: the embedding model id.
        max_cache: how many embeddings to keep; the least recently prepared are dropped first,
            so values prepared for one verification survive other verifications' prepares
            unless more than ``max_cache`` new texts arrive between its prepare and its scores.

    ``prepare`` returns what its embedding call cost, for the caller to charge to a budget
    (consensus charges it to the execution's); ``spent_usd`` is the running total.
    One instance may be shared by concurrent verifications.
    """

    name = "semantic"

    def __init__(self, provider: EmbeddingProvider, model: str, *, max_cache: int = 4096) -> None:
        self.provider = provider
        self.model = model
        self.max_cache = max_cache
        self.spent_usd = 0.0
        self._cache: dict[str, npt.NDArray[np.float64]] = {}

    async def prepare(self, values: Sequence[Any], /) -> float:
        """Embed, in one call, the values whose text is not cached yet; return its cost in USD.

        Raises:
            tlm.errors.ProviderError: when the provider fails, or returns the wrong number of
                vectors (:class:`tlm.errors.MalformedResponse`).
        """
        wanted = list(dict.fromkeys(map(canonical_text, values)))
        cache = self._cache
        for text in wanted:  # least recently used last: a concurrent prepare evicts others first
            if text in cache:
                cache[text] = cache.pop(text)
        texts = [t for t in wanted if t not in cache]
        if not texts:
            return 0.0
        response = await traced_embed(self.provider, self.model, texts)
        self.spent_usd += response.cost_usd
        if len(response.vectors) != len(texts):
            raise MalformedResponse(
                f"asked for {len(texts)} embeddings, got {len(response.vectors)}",
                provider=self.provider.name,
                model=self.model,
            )
        for text, vector in zip(texts, response.vectors, strict=True):
            array = np.asarray(vector, dtype=np.float64)
            norm = float(np.linalg.norm(array))
            self._cache[text] = array / norm if norm else array
        while len(self._cache) > self.max_cache:
            del self._cache[next(iter(self._cache))]
        return response.cost_usd

    def score(self, a: Any, b: Any, /) -> float:
        """Return the clipped cosine of the two cached embeddings (1.0 for equal texts)."""
        ta, tb = canonical_text(a), canonical_text(b)
        if ta == tb:
            return 1.0
        try:
            va, vb = self._cache[ta], self._cache[tb]
        except KeyError:
            raise LookupError(
                "semantic similarity: value not embedded yet; await prepare(values) first"
            ) from None
        return min(1.0, max(0.0, float(va @ vb)))
