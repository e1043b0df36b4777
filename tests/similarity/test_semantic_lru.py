"""Semantic similarity keeps recently prepared embeddings when other values evict old ones."""

from __future__ import annotations

from collections.abc import Sequence

from tlm.providers.base import EmbeddingResponse
from tlm.similarity.semantic import SemanticSimilarity


class CountingEmbedder:
    name = "fake"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, model: str, texts: Sequence[str], /) -> EmbeddingResponse:
        self.calls.append(list(texts))
        vectors = tuple((float(len(t)), 1.0) for t in texts)
        return EmbeddingResponse(vectors=vectors, model=model, cost_usd=0.001 * len(texts))


async def test_a_value_prepared_again_is_kept_over_older_ones() -> None:
    embedder = CountingEmbedder()
    metric = SemanticSimilarity(embedder, "emb", max_cache=3)
    await metric.prepare(["a", "bb"])
    await metric.prepare(["ccc"])
    assert await metric.prepare(["a"]) == 0.0  # cached: no call, and now the most recent
    await metric.prepare(["dddd"])  # evicts the least recently prepared: "bb", not "a"
    assert metric.score("a", "dddd") >= 0.0
    assert metric.score("a", "ccc") >= 0.0
    assert embedder.calls == [["a", "bb"], ["ccc"], ["dddd"]]
