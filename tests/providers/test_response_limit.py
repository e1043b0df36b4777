"""Issue 12 item 14: replies are read up to a size limit, over a real socket.

A reply announcing more than the limit is refused from its headers; a chunked reply without a
length is read until it passes the limit and the connection is dropped there (the server sees
the client leave long before it finished sending). Both fail as ``ResponseTooLarge``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

import anyio
import pytest
from aiohttp import web

from tlm.catalog import Catalog
from tlm.errors import ResponseTooLarge
from tlm.providers._http import DEFAULT_MAX_RESPONSE_BYTES
from tlm.providers.anthropic import AnthropicProvider
from tlm.providers.base import ChatRequest
from tlm.providers.openai_compat import OpenAICompatProvider
from tlm.testing import FakeAnthropicServer, FakeOpenAIServer, anthropic_message, chat_completion

LIMIT = 256 * 1024


def _catalog(base_url: str, api: str = "openai") -> Catalog:
    return Catalog.from_data(
        {
            "version": 1,
            "models": [
                {
                    "id": "m",
                    "provider": "fake",
                    "api": api,
                    "provider_model": "m",
                    "base_url": base_url,
                    "context_window": 8192,
                }
            ],
        }
    )


def test_the_default_limit_is_16_mib() -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES == 16 * 1024 * 1024


async def test_a_reply_announcing_more_than_the_limit_is_refused() -> None:
    async with FakeOpenAIServer([chat_completion("y" * (2 * LIMIT)), "small"]) as server:
        async with OpenAICompatProvider(
            name="fake",
            base_url=server.base_url,
            catalog=_catalog(server.base_url),
            max_response_bytes=LIMIT,
        ) as provider:
            with pytest.raises(ResponseTooLarge) as caught:
                await provider.complete(ChatRequest.from_prompt("m", "hi"))
            again = await provider.complete(ChatRequest.from_prompt("m", "hi"))
    assert caught.value.limit_bytes == LIMIT
    assert caught.value.retryable is False
    assert "announces" in str(caught.value)
    assert "response-size limit of 256 KiB" in str(caught.value)
    assert again.text == "small"  # the provider stays usable


async def test_anthropic_replies_are_limited_too() -> None:
    async with FakeAnthropicServer([anthropic_message("z" * (2 * LIMIT))]) as server:
        async with AnthropicProvider(
            base_url=server.base_url,
            catalog=_catalog(server.base_url, api="anthropic"),
            max_response_bytes=LIMIT,
        ) as provider:
            with pytest.raises(ResponseTooLarge):
                await provider.complete(ChatRequest.from_prompt("m", "hi"))


class _EndlessServer:
    """Streams a chat completion chunk by chunk without a Content-Length, forever-ish."""

    def __init__(self) -> None:
        self.sent = 0
        self.gave_up = anyio.Event()
        self.port = 0

    async def handler(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        head = json.dumps(chat_completion("")).encode()
        await response.write(head[: head.index(b'"content": "') + 12])
        chunk = b"x" * 65536
        try:
            for _ in range(10_000):  # 640 MiB if nobody stopped reading
                await response.write(chunk)
                self.sent += len(chunk)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.gave_up.set()
        return response

    async def serve(self) -> AsyncGenerator[str, None]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        finally:
            await runner.cleanup()


async def test_a_streamed_reply_is_cut_off_at_the_limit() -> None:
    server = _EndlessServer()
    serving = server.serve()
    base_url = await serving.__anext__()
    try:
        async with OpenAICompatProvider(
            name="fake", base_url=base_url, catalog=_catalog(base_url), max_response_bytes=LIMIT
        ) as provider:
            with pytest.raises(ResponseTooLarge) as caught:
                await provider.complete(ChatRequest.from_prompt("m", "hi"))
            with anyio.fail_after(10):
                await server.gave_up.wait()
    finally:
        await serving.aclose()
    assert "passed" in str(caught.value)
    assert server.sent < 100 * LIMIT  # the server was stopped early, not read to the end
