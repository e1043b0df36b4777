"""Retries: which errors, how long to wait (virtual time), Retry-After, attempts and deadlines."""

from __future__ import annotations

import anyio
import pytest

from tlm.catalog import Catalog
from tlm.errors import (
    AuthenticationFailed,
    MalformedResponse,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from tlm.providers.base import ChatRequest
from tlm.providers.openai_compat import OpenAICompatProvider
from tlm.providers.retry import RetryingProvider, RetryPolicy
from tlm.testing import (
    FakeOpenAIServer,
    ScriptedProvider,
    chat_completion,
    rate_limited,
    reset,
    server_error,
    truncated,
)

from .clock import VirtualTime
from .support import API_KEY, make_catalog


def unavailable() -> ProviderUnavailable:
    return ProviderUnavailable("busy", provider="p", model="m", status=503)


def policy(time: VirtualTime, **kwargs: float) -> RetryPolicy:
    settings = {"base_delay_s": 1.0, "max_delay_s": 30.0, "jitter": 0.5, **kwargs}
    return RetryPolicy(
        max_attempts=int(settings.pop("max_attempts", 4)),
        sleep=time.sleep,
        clock=time.clock,
        rng=lambda: 0.5,
        **settings,
    )


REQUEST = ChatRequest.from_prompt("m", "hi")


async def test_backoff_is_exponential_with_jitter() -> None:
    time = VirtualTime()
    inner = ScriptedProvider(
        [unavailable(), ProviderTimeout("slow", provider="p", model="m"), "ok"]
    )
    response = await RetryingProvider(inner, policy(time)).complete(REQUEST)
    assert response.text == "ok"
    assert response.attempts == 3
    assert time.sleeps == [1.25, 2.5]  # 1 and 2 seconds, each +25% jitter (rng 0.5 x 0.5)


async def test_not_retryable_errors_are_raised_at_once() -> None:
    time = VirtualTime()
    inner = ScriptedProvider([AuthenticationFailed("no", provider="p", model="m", status=401)])
    with pytest.raises(AuthenticationFailed):
        await RetryingProvider(inner, policy(time)).complete(REQUEST)
    assert len(inner.requests) == 1
    assert time.sleeps == []


async def test_retry_after_wins_over_a_shorter_backoff() -> None:
    time = VirtualTime()
    inner = ScriptedProvider(
        [
            RateLimited("slow down", provider="p", model="m", retry_after=7.0),
            RateLimited("slow down", provider="p", model="m", retry_after=0.1),
            "ok",
        ]
    )
    response = await RetryingProvider(inner, policy(time)).complete(REQUEST)
    assert response.attempts == 3
    assert time.sleeps == [7.0, 2.5]


async def test_retry_after_beyond_max_delay_gives_up() -> None:
    time = VirtualTime()
    inner = ScriptedProvider([RateLimited("later", provider="p", model="m", retry_after=3600)])
    with pytest.raises(RateLimited):
        await RetryingProvider(inner, policy(time)).complete(REQUEST)
    assert time.sleeps == []


async def test_stops_after_max_attempts_with_the_last_error() -> None:
    time = VirtualTime()
    last = MalformedResponse("broken", provider="p", model="m")
    inner = ScriptedProvider([unavailable(), unavailable(), last])
    with pytest.raises(MalformedResponse) as caught:
        await RetryingProvider(inner, policy(time, max_attempts=3)).complete(REQUEST)
    assert caught.value is last
    assert time.sleeps == [1.25, 2.5]


async def test_deadline_bounds_retries_and_each_attempt_gets_the_remaining_time() -> None:
    time = VirtualTime()
    inner = ScriptedProvider([unavailable(), unavailable(), "never reached"])
    request = ChatRequest.from_prompt("m", "hi", timeout_s=5.0)
    with pytest.raises(ProviderUnavailable):
        await RetryingProvider(inner, policy(time, base_delay_s=2.0, jitter=0.0)).complete(request)
    # waited 2s after the first failure; the next 4s wait would end past the 5s deadline
    assert time.sleeps == [2.0]
    assert [r.timeout_s for r in inner.requests] == [5.0, 3.0]
    assert inner.remaining == 1


async def test_an_enclosing_cancel_scope_is_the_deadline() -> None:
    time = VirtualTime()
    slow = RetryPolicy(sleep=time.sleep, rng=lambda: 0.0, max_delay_s=60)  # real anyio clock
    inner = ScriptedProvider([RateLimited("wait", provider="p", model="m", retry_after=20.0)])
    with anyio.move_on_after(10):
        with pytest.raises(RateLimited):
            await RetryingProvider(inner, slow).complete(REQUEST)
    assert time.sleeps == []


async def test_policy_call_reports_attempts() -> None:
    time = VirtualTime()
    seen: list[int] = []

    async def flaky(attempt: int) -> str:
        seen.append(attempt)
        if attempt < 3:
            raise unavailable()
        return "done"

    assert await policy(time).call(flaky) == ("done", 3)
    assert seen == [1, 2, 3]


async def test_end_to_end_over_the_socket_with_retry_after_and_cost() -> None:
    time = VirtualTime()
    catalog: Catalog = make_catalog()
    async with FakeOpenAIServer(api_key=API_KEY) as server:
        server.push(
            rate_limited(4),
            server_error(503),
            reset(),
            truncated(),
            chat_completion("fine", prompt_tokens=1000, completion_tokens=100, cached_tokens=200),
        )
        adapter = OpenAICompatProvider(
            name="fake", base_url=server.base_url, catalog=catalog, api_key=API_KEY
        )
        async with adapter:
            retrying = RetryingProvider(adapter, policy(time, max_attempts=5, jitter=0.0))
            response = await retrying.complete(ChatRequest.from_prompt("m-schema", "hi"))
        assert len(server.requests) == 5
    assert response.text == "fine"
    assert response.attempts == 5
    assert time.sleeps == [4.0, 2.0, 4.0, 8.0]  # Retry-After 4 beat the 1s backoff
    # failed attempts were not billed; the answer costs 800 fresh + 200 cached input + 100 output
    assert response.cost_usd == pytest.approx((800 * 2.0 + 200 * 0.5 + 100 * 8.0) / 1e6)
    assert response.cost_usd == catalog.get("m-schema").cost(response.usage)


async def test_embeddings_are_retried_too() -> None:
    time = VirtualTime()
    async with FakeOpenAIServer() as server:
        server.push_embeddings(server_error(502), reset())
        async with OpenAICompatProvider(
            name="fake", base_url=server.base_url, catalog=make_catalog()
        ) as adapter:
            result = await RetryingProvider(adapter, policy(time)).embed("m-embed", ["a b"])
    assert len(result.vectors) == 1
    assert len(server.requests) == 3
    assert time.sleeps == [1.25, 2.5]
