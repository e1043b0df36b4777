"""Limits per provider and per model: calls in flight, requests and tokens per minute.

Concurrency is an ``anyio.CapacityLimiter``; the per-minute limits are token buckets. A call's
tokens are estimated before it (:func:`tlm.usage.estimate_prompt_tokens` plus ``max_tokens``) and
corrected after it with the usage the provider reported, so the bucket tracks what was really spent.

Limits come from configuration (``[tlm.provider_limits.NAME]`` and ``[tlm.model_limits.ID]`` in
``tlm.toml``, a catalog card's ``limits``) as :data:`LimitSettings`: ``max_in_flight``,
``requests_per_minute``, ``tokens_per_minute``; 0 means no limit of that kind. Hosted providers
default to :data:`HOSTED_MAX_IN_FLIGHT` calls in flight and no rate limit (a provider's 429 and
``Retry-After`` are handled by the retry layer); the pool gives the embedded local server its own
small default.

The time a call waits for a bucket or a slot is added to the :func:`measure_queue_wait` meter of
the calling task, so the engine can record it on the model-call span and the execution record.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager

import anyio
import attrs

from tlm.errors import ConfigurationError
from tlm.providers.base import ChatRequest, ChatResponse, EmbeddingResponse, Provider
from tlm.usage import estimate_prompt_tokens, tokens_for_chars

__all__ = (
    "HOSTED_MAX_IN_FLIGHT",
    "LIMIT_KEYS",
    "LimitSettings",
    "check_limit_settings",
    "ProviderLimits",
    "TokenBucket",
    "RateLimitedProvider",
    "QueueWait",
    "measure_queue_wait",
    "estimate_tokens",
)

HOSTED_MAX_IN_FLIGHT = 512
"""Default calls in flight per hosted provider: twice a busy service's 256, under the default
1,024 open files; raise it in ``tlm.toml`` (``max_in_flight``) if the provider allows more."""

LIMIT_KEYS = ("max_in_flight", "requests_per_minute", "tokens_per_minute")
LimitSettings = Mapping[str, float]
"""Configured limits: a subset of :data:`LIMIT_KEYS` to a number (0: no limit)."""


def check_limit_settings(settings: Mapping[str, object], where: str) -> dict[str, float]:
    """Validate configured limits; ``where`` names the table in errors.

    Raises:
        ConfigurationError: an unknown key, or a value that is not a number >= 0
            (``max_in_flight``: a whole number).
    """
    checked: dict[str, float] = {}
    for key, value in settings.items():
        if key not in LIMIT_KEYS:
            raise ConfigurationError(
                f"{where}: unknown limit {key!r} (known: {', '.join(LIMIT_KEYS)})"
            )
        number_ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        if not number_ok or (key == "max_in_flight" and not isinstance(value, int)):
            kind = "a whole number" if key == "max_in_flight" else "a number"
            raise ConfigurationError(f"{where}: {key} must be {kind} >= 0 (0: no limit)")
        checked[key] = value  # type: ignore[assignment]
    return checked


def estimate_tokens(request: ChatRequest) -> int:
    """A rough count of the tokens a request will use: the prompt's estimate
    (:func:`tlm.usage.estimate_prompt_tokens`) plus max_tokens."""
    return estimate_prompt_tokens(request.messages) + (request.max_tokens or 0)


@attrs.frozen
class ProviderLimits:
    """Limits for one provider or one model (``None``: no limit of that kind)."""

    max_concurrency: int | None = HOSTED_MAX_IN_FLIGHT
    """Calls in flight (``max_in_flight`` in configuration)."""
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None

    def updated(self, settings: LimitSettings | None) -> ProviderLimits:
        """These limits with configured ``settings`` (from :func:`check_limit_settings`) applied."""
        if not settings:
            return self
        changes: dict[str, float | None] = {}
        for key, value in settings.items():
            field = "max_concurrency" if key == "max_in_flight" else key
            changes[field] = None if value == 0 else value
        if changes.get("max_concurrency") is not None:
            changes["max_concurrency"] = int(changes["max_concurrency"])  # type: ignore[arg-type]
        return attrs.evolve(self, **changes)  # type: ignore[arg-type]

    @property
    def unlimited(self) -> bool:
        """No limit of any kind."""
        return (self.max_concurrency, self.requests_per_minute, self.tokens_per_minute) == (
            None,
            None,
            None,
        )


NO_LIMITS = ProviderLimits(max_concurrency=None)


@attrs.define
class QueueWait:
    """Seconds the calls of one block spent waiting for a rate-limit bucket or a slot."""

    seconds: float = 0.0


_QUEUE_WAIT: contextvars.ContextVar[QueueWait | None] = contextvars.ContextVar(
    "tlm_queue_wait", default=None
)


@contextmanager
def measure_queue_wait() -> Iterator[QueueWait]:
    """Measure the limit waits of the calls made in this block (in this task)."""
    meter = QueueWait()
    token = _QUEUE_WAIT.set(meter)
    try:
        yield meter
    finally:
        _QUEUE_WAIT.reset(token)


class _Gate:
    """One set of limits: an optional slot limiter and optional request and token buckets."""

    __slots__ = ("limiter", "requests", "tokens")

    def __init__(
        self,
        limits: ProviderLimits,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        self.limiter = (
            anyio.CapacityLimiter(limits.max_concurrency) if limits.max_concurrency else None
        )
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        self.requests = TokenBucket(rpm, clock=clock, sleep=sleep) if rpm else None
        self.tokens = TokenBucket(tpm, clock=clock, sleep=sleep) if tpm else None

    async def take(self, estimate: int) -> None:
        if self.requests is not None:
            await self.requests.acquire(1)
        if self.tokens is not None:
            await self.tokens.acquire(estimate)

    def settle(self, delta: int) -> None:
        if self.tokens is not None:
            self.tokens.adjust(delta)


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
    """A provider that keeps its inner provider within its limits and its models' limits.

    Waiting for a token bucket happens before taking a concurrency slot, so slow-downs never hold
    a slot idle; a call takes its model's slot before the provider's (one order: no deadlock).
    """

    def __init__(
        self,
        inner: Provider,
        *,
        max_concurrency: int | None = HOSTED_MAX_IN_FLIGHT,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        model_limits: Mapping[str, ProviderLimits] | None = None,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        limits = ProviderLimits(max_concurrency, requests_per_minute, tokens_per_minute)
        self._gate = _Gate(limits, clock, sleep)
        self.limiter = self._gate.limiter
        """The provider's slot limiter (``None``: calls in flight are not limited)."""
        self.requests = self._gate.requests
        self.tokens = self._gate.tokens
        self._models = {
            model: _Gate(model_limit, clock, sleep)
            for model, model_limit in (model_limits or {}).items()
            if not model_limit.unlimited
        }
        self._clock = clock

    @classmethod
    def from_limits(
        cls,
        inner: Provider,
        limits: ProviderLimits,
        *,
        model_limits: Mapping[str, ProviderLimits] | None = None,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    ) -> RateLimitedProvider:
        """Wrap ``inner`` with ``limits`` (and per-model ``model_limits``, by model id)."""
        return cls(
            inner,
            max_concurrency=limits.max_concurrency,
            requests_per_minute=limits.requests_per_minute,
            tokens_per_minute=limits.tokens_per_minute,
            model_limits=model_limits,
            clock=clock,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"RateLimitedProvider({self.inner!r})"

    def _gates(self, model: str) -> tuple[_Gate, ...]:
        gate = self._models.get(model)
        return (gate, self._gate) if gate is not None else (self._gate,)

    async def _admit(
        self, gates: Sequence[_Gate], estimate: int, stack: AsyncExitStack, taken: list[_Gate]
    ) -> None:
        """Wait for every bucket, then every slot; the wait goes to the task's meter."""
        started = self._clock()
        try:
            for gate in gates:
                await gate.take(estimate)
                taken.append(gate)
            for gate in gates:
                limiter = gate.limiter
                if limiter is None:
                    continue
                try:  # a free slot is taken at once: ``async with`` would yield to the loop
                    limiter.acquire_nowait()  # (a shielded checkpoint) on every call
                except anyio.WouldBlock:
                    await limiter.acquire()
                stack.callback(limiter.release)
        finally:
            meter = _QUEUE_WAIT.get()
            if meter is not None:
                meter.seconds += max(0.0, self._clock() - started)

    async def complete(self, request: ChatRequest, /) -> ChatResponse:
        """Complete ``request`` once the limits allow it."""
        estimate = estimate_tokens(request)
        taken: list[_Gate] = []
        try:
            async with AsyncExitStack() as stack:
                await self._admit(self._gates(request.model), estimate, stack, taken)
                response = await self.inner.complete(request)
        except BaseException:
            for gate in taken:
                gate.settle(-estimate)  # a failed call spent (about) nothing
            raise
        for gate in taken:
            gate.settle(response.usage.total_tokens - estimate)
        return response

    async def embed(self, model: str, texts: Sequence[str], /) -> EmbeddingResponse:
        """Embed within the limits, when the inner provider can embed."""
        embed = getattr(self.inner, "embed", None)
        if embed is None:
            raise ConfigurationError(f"provider {self.name!r} cannot embed")
        estimate = tokens_for_chars(sum(len(t) for t in texts))
        taken: list[_Gate] = []
        async with AsyncExitStack() as stack:
            await self._admit(self._gates(model), estimate, stack, taken)
            result: EmbeddingResponse = await embed(model, texts)
        for gate in taken:
            gate.settle(result.usage.input_tokens - estimate)
        return result

    async def aclose(self) -> None:
        """Close the inner provider."""
        await self.inner.aclose()
