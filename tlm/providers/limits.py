"""Per-provider limits: concurrent calls, requests per minute and tokens per minute.

Concurrency is an ``anyio.CapacityLimiter``; the per-minute limits are token buckets. A call's
tokens are estimated before it (prompt characters / 4 plus ``max_tokens``) and corrected after it
with the usage the provider reported, so the bucket tracks what was really spent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio
import attrs

from tlm.errors import ConfigurationError
from tlm.providers.base import ChatRequest, ChatResponse, EmbeddingResponse, Provider

__all__ = ("ProviderLimits", "TokenBucket", "RateLimitedProvider", "estimate_tokens")

_CHARS_PER_TOKEN = 4


def estimate_tokens(request: ChatRequest) -> int:
    """A rough count of the tokens a request will use: prompt characters / 4 plus max_tokens."""
    prompt_chars = sum(len(m.content) + 4 for m in request.messages)
    return prompt_chars // _CHARS_PER_TOKEN + 1 + (request.max_tokens or 0)


@attrs.frozen
class ProviderLimits:
    """Limits for one provider (``None``: unlimited)."""

    max_concurrency: int = 16
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


class TokenBucket:
    """A token bucket holding up to ``capacity``, refilled at ``capacity`` per ``period_s``.

    Waiters are served one at a time, in arrival order. A request larger than the bucket waits for
    a full bucket and then drives it negative (a debt the next requests wait out).
    """

    def __init__(
        self,
        capacity: float,
        *,
        period_s: float = 60.0,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    ) -> None:
        if capacity <= 0:
            raise ConfigurationError(f"a rate limit must be positive, got {capacity}")
        self.capacity = float(capacity)
        self.rate = self.capacity / period_s
        self._clock = clock
        self._sleep = sleep
        self._level = self.capacity
        self._updated: float | None = None
        self._lock = anyio.Lock()

    @property
    def level(self) -> float:
        """Tokens available now (negative while in debt)."""
        self._refill()
        return self._level

    def _refill(self) -> None:
        now = self._clock()
        if self._updated is not None:
            self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self, amount: float) -> None:
        """Take ``amount`` tokens, waiting until they are available."""
        async with self._lock:
            need = min(amount, self.capacity)
            self._refill()
            while self._level < need:
                await self._sleep((need - self._level) / self.rate)
                self._refill()
            self._level -= amount

    def adjust(self, delta: float) -> None:
        """Take ``delta`` more tokens (or give back, when negative) after the fact."""
        self._refill()
        self._level = min(self.capacity, self._level - delta)


class RateLimitedProvider:
    """A provider that keeps its inner provider within :class:`ProviderLimits`.

    Waiting for a token bucket happens before taking a concurrency slot, so slow-downs never hold
    a slot idle.
    """

    def __init__(
        self,
        inner: Provider,
        *,
        max_concurrency: int = 16,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.limiter = anyio.CapacityLimiter(max_concurrency)
        self.requests = (
            TokenBucket(requests_per_minute, clock=clock, sleep=sleep)
            if requests_per_minute
            else None
        )
        self.tokens = (
            TokenBucket(tokens_per_minute, clock=clock, sleep=sleep) if tokens_per_minute else None
        )

    @classmethod
    def from_limits(
        cls,
        inner: Provider,
        limits: ProviderLimits,
        *,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    ) -> RateLimitedProvider:
        """Wrap ``inner`` with ``limits``."""
        return cls(
            inner,
            max_concurrency=limits.max_concurrency,
            requests_per_minute=limits.requests_per_minute,
            tokens_per_minute=limits.tokens_per_minute,
            clock=clock,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"RateLimitedProvider({self.inner!r})"

    async def complete(self, request: ChatRequest, /) -> ChatResponse:
        """Complete ``request`` once the limits allow it."""
        estimate = estimate_tokens(request)
        if self.requests is not None:
            await self.requests.acquire(1)
        if self.tokens is not None:
            await self.tokens.acquire(estimate)
        try:
            async with self.limiter:
                response = await self.inner.complete(request)
        except BaseException:
            if self.tokens is not None:
                self.tokens.adjust(-estimate)  # a failed call spent (about) nothing
            raise
        if self.tokens is not None:
            self.tokens.adjust(response.usage.total_tokens - estimate)
        return response

    async def embed(self, model: str, texts: Sequence[str], /) -> EmbeddingResponse:
        """Embed within the limits, when the inner provider can embed."""
        embed = getattr(self.inner, "embed", None)
        if embed is None:
            raise ConfigurationError(f"provider {self.name!r} cannot embed")
        estimate = sum(len(t) for t in texts) // _CHARS_PER_TOKEN + 1
        if self.requests is not None:
            await self.requests.acquire(1)
        if self.tokens is not None:
            await self.tokens.acquire(estimate)
        async with self.limiter:
            result: EmbeddingResponse = await embed(model, texts)
        if self.tokens is not None:
            self.tokens.adjust(result.usage.input_tokens - estimate)
        return result

    async def aclose(self) -> None:
        """Close the inner provider."""
        await self.inner.aclose()
