"""Semantic similarity: one embedding call per batch of new texts, cosine from the cache."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tlm.errors import MalformedResponse, ProviderUnavailable
from tlm.providers.base import EmbeddingResponse
from tlm.similarity import SemanticSimilarity, prepare_metric

VECTORS = {
    "a dog": (1.0, 0.0, 0.0),
    "a puppy": (0.8, 0.6, 0.0),
    "tax law": (0.0, 0.0, 2.0),
    "not a dog": (-1.0, 0.0, 0.0),
}


class FakeEmbeddings:
    """Embeds from a fixed table; records every call."""

    name = "fake"

    def __init__(self, *, drop: int = 0, fail: bool = False) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.drop = drop
        self.fail = fail

    async def embed(self, model: str, texts: Sequence[str], /) -> EmbeddingResponse:
        self.calls.append((model, tuple(texts)))
        if self.fail:
            raise ProviderUnavailable("overloaded", provider=self.name, model=model, status=503)
        vectors = tuple(VECTORS[t] for t in texts)[: len(texts) - self.drop]
        return EmbeddingResponse(vectors=vectors, model=model, cost_usd=0.001)


async def test_prepare_embeds_new_texts_in_one_call_and_caches() -> None:
    provider = FakeEmbeddings()
    metric = SemanticSimilarity(provider, "embed-small")
    await prepare_metric(metric, ["A  Dog", "a puppy", "a dog", "tax law"])
    assert provider.calls == [("embed-small", ("a dog", "a puppy", "tax law"))]
    await metric.prepare(["a puppy", "A DOG"])  # all cached: no call
    assert len(provider.calls) == 1
    assert metric.spent_usd == pytest.approx(0.001)

    assert metric.score("a dog", "a puppy") == pytest.approx(0.8)
    assert metric.score("a puppy", "a dog") == pytest.approx(0.8)
    assert metric.score("a dog", "tax law") == 0.0
    assert metric.score("A dog", "a dog") == 1.0  # same canonical text, no lookup


async def test_opposed_meanings_clip_to_zero() -> None:
    metric = SemanticSimilarity(FakeEmbeddings(), "m")
    await metric.prepare(["a dog", "not a dog"])
    assert metric.score("a dog", "not a dog") == 0.0


async def test_scoring_an_unprepared_value_is_a_clear_error() -> None:
    metric = SemanticSimilarity(FakeEmbeddings(), "m")
    await metric.prepare(["a dog"])
    with pytest.raises(LookupError, match=r"await prepare\(values\) first"):
        metric.score("a dog", "a puppy")


async def test_provider_errors_and_short_replies_surface() -> None:
    with pytest.raises(ProviderUnavailable):
        await SemanticSimilarity(FakeEmbeddings(fail=True), "m").prepare(["a dog"])
    with pytest.raises(MalformedResponse, match="asked for 2 embeddings, got 1"):
        await SemanticSimilarity(FakeEmbeddings(drop=1), "m").prepare(["a dog", "tax law"])


async def test_cache_is_bounded() -> None:
    provider = FakeEmbeddings()
    metric = SemanticSimilarity(provider, "m", max_cache=2)
    await metric.prepare(["a dog", "a puppy", "tax law"])
    await metric.prepare(["tax law"])  # kept (newest)
    await metric.prepare(["a dog"])  # dropped (oldest): embedded again
    assert [texts for _, texts in provider.calls] == [
        ("a dog", "a puppy", "tax law"),
        ("a dog",),
    ]
