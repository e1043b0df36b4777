"""Rate limits: concurrency slots and token buckets, asserted on a virtual clock."""

from __future__ import annotations

import anyio
import pytest

from tlm.errors import ConfigurationError, ProviderUnavailable
from tlm.providers.base import ChatRequest, ChatResponse, Usage
from tlm.providers.limits import (
    ProviderLimits,
    RateLimitedProvider,
    TokenBucket,
    estimate_tokens,
)
from tlm.testing import FakeProvider, ScriptedProvider

from .clock import VirtualTime


async def test_concurrency_is_capped() -> None:
    release = anyio.Event()
    in_flight = 0
    peak = 0

    async def handler(request: ChatRequest) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        return "ok"

    limited = RateLimitedProvider(FakeProvider(handler), max_concurrency=2)
    results: list[str] = []

    async def call() -> None:
        results.append((await limited.complete(ChatRequest.from_prompt("m", "x"))).text)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        assert in_flight == 2
        assert limited.limiter is not None
        stats = limited.limiter.statistics()
        assert (stats.borrowed_tokens, stats.tasks_waiting) == (2, 3)
        release.set()
    assert results == ["ok"] * 5
    assert peak == 2


async def test_requests_per_minute_bucket_spaces_calls() -> None:
    time = VirtualTime()
    limited = RateLimitedProvider(
        ScriptedProvider(["a", "b", "c", "d"]),
        requests_per_minute=2,
        clock=time.clock,
        sleep=time.sleep,
    )
    for _ in range(4):
        await limited.complete(ChatRequest.from_prompt("m", "x"))
    assert time.sleeps == [30.0, 30.0]  # a burst of 2, then one every 30s


async def test_tokens_per_minute_uses_the_estimate_then_the_real_usage() -> None:
    time = VirtualTime()
    usage = Usage(input_tokens=300, output_tokens=100)

    def handler(request: ChatRequest) -> ChatResponse:
        return ChatResponse(text="ok", model="m", provider="p", usage=usage)

    limited = RateLimitedProvider(
        FakeProvider(handler), tokens_per_minute=600, clock=time.clock, sleep=time.sleep
    )
    request = ChatRequest.from_prompt("m", "y" * 792, max_tokens=100)
    assert estimate_tokens(request) == 335  # (792 + 4) * 2 // 7 + 8 for the prompt, 100 out
    assert limited.tokens is not None
    await limited.complete(request)
    assert limited.tokens.level == pytest.approx(200)  # 600 - the 400 really used
    await limited.complete(request)  # needs 335, has 200: waits 135 tokens at 10/s
    assert time.sleeps == [13.5]
    assert limited.tokens.level == pytest.approx(-65)  # refilled to 335, spent 400


async def test_failed_calls_give_their_estimate_back() -> None:
    time = VirtualTime()
    limited = RateLimitedProvider(
        ScriptedProvider([ProviderUnavailable("x", provider="p", model="m")]),
        tokens_per_minute=1000,
        clock=time.clock,
        sleep=time.sleep,
    )
    with pytest.raises(ProviderUnavailable):
        await limited.complete(ChatRequest.from_prompt("m", "z" * 400))
    assert limited.tokens is not None
    assert limited.tokens.level == pytest.approx(1000)


async def test_oversized_request_waits_for_a_full_bucket_then_goes_into_debt() -> None:
    time = VirtualTime()
    bucket = TokenBucket(100, clock=time.clock, sleep=time.sleep)
    await bucket.acquire(50)
    await bucket.acquire(250)  # more than the bucket holds: wait until full, then owe 150
    assert time.sleeps == [30.0]
    assert bucket.level == pytest.approx(-150)


async def test_from_limits_and_bad_limits() -> None:
    limited = RateLimitedProvider.from_limits(
        ScriptedProvider(["a"]), ProviderLimits(max_concurrency=3, requests_per_minute=60)
    )
    assert limited.limiter is not None
    assert limited.limiter.total_tokens == 3
    assert limited.requests is not None
    with pytest.raises(ConfigurationError, match="positive"):
        TokenBucket(0)
