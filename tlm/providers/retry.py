"""Retries with tenacity: exponential backoff with jitter, Retry-After honoured, deadline-bounded.

Only errors whose class says ``retryable`` are retried. The wait before the next attempt is
``max(backoff with jitter, the server's Retry-After)``; retrying stops after ``max_attempts`` or
when that wait would end past the caller's deadline (an absolute time on the policy's clock).

Every attempt is accounted for: a failed call's :class:`ProviderError` carries ``attempts`` (how
many requests were sent), and inside :func:`recording_attempts` each attempt's outcome, HTTP
status, latency and cost is appended to a list the caller reads even when the call failed or was
cancelled (the engine records them on the model-call span and the execution record).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar, Token
from typing import TypeVar

import anyio
import attrs
import tenacity

from tlm.errors import ConfigurationError, ProviderError, RateLimited
from tlm.providers.base import ChatRequest, ChatResponse, EmbeddingResponse, Provider

__all__ = ("RetryPolicy", "RetryingProvider", "Attempt", "recording_attempts")

T = TypeVar("T")


@attrs.define
class Attempt:
    """One request sent to a provider: its outcome and what it cost."""

    number: int
    outcome: str = "in flight"
    """``"ok"``, the error's class name (``"RateLimited"``), or ``"cancelled"``."""
    status: int | None = None
    """The HTTP status, when the provider answered."""
    cost_usd: float = 0.0
    """The catalog price of the usage the reply reported (failed replies report none: 0)."""
    latency_s: float = 0.0

    def describe(self) -> str:
        """``RateLimited (HTTP 429) $0.000000 0.12s``."""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.outcome}{status} ${self.cost_usd:.6f} {self.latency_s:.2f}s"


_ATTEMPTS: ContextVar[list[Attempt] | None] = ContextVar("tlm_provider_attempts", default=None)


class recording_attempts:
    """Collect the attempts :class:`RetryingProvider` makes in this task, in order.

    ``with recording_attempts() as attempts:`` (a plain class: this runs on every model call).
    """

    __slots__ = ("_attempts", "_token")

    def __init__(self) -> None:
        self._attempts: list[Attempt] = []
        self._token: Token[list[Attempt] | None] | None = None

    def __enter__(self) -> list[Attempt]:
        self._token = _ATTEMPTS.set(self._attempts)
        return self._attempts

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _ATTEMPTS.reset(self._token)


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


@attrs.frozen
class RetryPolicy:
    """How to retry a failed provider call. Inject ``sleep``, ``clock`` and ``rng`` in tests."""

    max_attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    """Attempts in all, the first included."""
    base_delay_s: float = 0.5
    """Backoff before the second attempt; doubles for every later one."""
    max_delay_s: float = 30.0
    """Cap on the backoff; a Retry-After above it ends the retries instead of waiting."""
    jitter: float = attrs.field(default=0.25, validator=attrs.validators.ge(0))
    """Random extra backoff, as a fraction of the backoff (0.25: up to 25% more)."""
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    clock: Callable[[], float] = anyio.current_time
    """The clock deadlines are read on (anyio's, like cancel scope deadlines, by default)."""
    rng: Callable[[], float] = random.random

    def backoff(self, attempt: int) -> float:
        """The jittered backoff after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return base * (1.0 + self.jitter * self.rng())

    def wait_for(self, attempt: int, exc: BaseException | None) -> float:
        """The wait after failed attempt ``attempt``: backoff, or the server's Retry-After."""
        wait = self.backoff(attempt)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait

    def retrying(
        self, *, deadline: float | None = None, attempts_made: int = 0
    ) -> tenacity.AsyncRetrying:
        """A tenacity ``AsyncRetrying`` for this policy (reraises the last error).

        ``attempts_made`` attempts already failed before this loop starts (backoff and the
        attempt limit count them).
        """

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            return self.wait_for(state.attempt_number + attempts_made, exc)

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number + attempts_made >= self.max_attempts:
                return True
            upcoming = state.upcoming_sleep
            exc = state.outcome.exception() if state.outcome is not None else None
            if (
                isinstance(exc, RateLimited)
                and exc.retry_after is not None
                and exc.retry_after > self.max_delay_s
            ):
                return True
            return deadline is not None and self.clock() + upcoming > deadline

        return tenacity.AsyncRetrying(
            sleep=self.sleep,
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(_is_retryable),
            reraise=True,
        )

    async def call(
        self, fn: Callable[[int], Awaitable[T]], *, deadline: float | None = None
    ) -> tuple[T, int]:
        """Run ``fn(attempt_number)`` under this policy; return its result and attempts used.

        The first attempt runs directly (most calls succeed, and building tenacity's machinery
        costs tens of microseconds); tenacity drives the retries after a retryable failure.
        """
        try:
            return await fn(1), 1
        except Exception as exc:
            if not _is_retryable(exc):
                raise
            pause = self.wait_for(1, exc)
            if self._stops_after_first(exc, pause, deadline):
                raise
            await self.sleep(pause)
        attempt = 1
        async for try_ in self.retrying(deadline=deadline, attempts_made=1):
            with try_:
                attempt = try_.retry_state.attempt_number + 1
                result = await fn(attempt)
        return result, attempt

    def _stops_after_first(self, exc: BaseException, pause: float, deadline: float | None) -> bool:
        """The stop rule of :meth:`retrying`, applied after the first (untracked) attempt."""
        if self.max_attempts <= 1:
            return True
        if (
            isinstance(exc, RateLimited)
            and exc.retry_after is not None
            and exc.retry_after > self.max_delay_s
        ):
            return True
        return deadline is not None and self.clock() + pause > deadline


class RetryingProvider:
    """A provider that retries its inner provider's retryable failures.

    The deadline is the request's ``timeout_s`` from the first attempt (and the enclosing anyio
    cancel scope's deadline, with the default clock); each attempt gets the time that remains.
    ``ChatResponse.attempts`` says how many attempts were made.
    """

    def __init__(self, inner: Provider, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.name = inner.name

    def __repr__(self) -> str:
        return f"RetryingProvider({self.inner!r})"

    def _deadline(self, timeout_s: float | None) -> float | None:
        deadline = None if timeout_s is None else self.policy.clock() + timeout_s
        if self.policy.clock is anyio.current_time:
            scope_deadline = anyio.current_effective_deadline()
            if math.isfinite(scope_deadline):
                deadline = scope_deadline if deadline is None else min(deadline, scope_deadline)
        return deadline

    async def complete(self, request: ChatRequest, /) -> ChatResponse:
        """Complete ``request``, retrying retryable errors; the last error is re-raised."""
        deadline = self._deadline(request.timeout_s)
        log = _ATTEMPTS.get()
        made = 0

        async def attempt(number: int) -> ChatResponse:
            nonlocal made
            made = number
            entry = Attempt(number)
            if log is not None:
                log.append(entry)
            started = time.perf_counter()
            try:
                if deadline is None or number == 1:
                    response = await self.inner.complete(request)
                else:
                    remaining = max(deadline - self.policy.clock(), 0.001)
                    response = await self.inner.complete(attrs.evolve(request, timeout_s=remaining))
            except ProviderError as exc:
                entry.outcome, entry.status = type(exc).__name__, exc.status
                raise
            except BaseException:
                entry.outcome = "cancelled"
                raise
            finally:
                entry.latency_s = time.perf_counter() - started
            entry.outcome, entry.cost_usd = "ok", response.cost_usd
            return response

        try:
            response, attempts = await self.policy.call(attempt, deadline=deadline)
        except ProviderError as exc:
            exc.attempts = made
            raise
        return attrs.evolve(response, attempts=attempts) if attempts != 1 else response

    async def embed(self, model: str, texts: Sequence[str], /) -> EmbeddingResponse:
        """Embed with retries, when the inner provider can embed."""
        embed = getattr(self.inner, "embed", None)
        if embed is None:
            raise ConfigurationError(f"provider {self.name!r} cannot embed")

        async def attempt(_: int) -> EmbeddingResponse:
            result: EmbeddingResponse = await embed(model, texts)
            return result

        result, _ = await self.policy.call(attempt, deadline=self._deadline(None))
        return result

    async def aclose(self) -> None:
        """Close the inner provider."""
        await self.inner.aclose()
