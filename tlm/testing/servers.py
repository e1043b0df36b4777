"""Fake OpenAI-compatible and Anthropic servers on a real loopback socket, with fault injection.

Use as async context managers; each binds 127.0.0.1 on a free port::

    async with FakeOpenAIServer(["hello", rate_limited(2), server_error(503)]) as server:
        provider = OpenAICompatProvider(name="fake", base_url=server.base_url, catalog=catalog)

A script is a callable ``(body) -> reply`` (sync or async) or an iterable of replies consumed in
order (then the default reply: an echo of the last user message). :meth:`push` appends replies.
Every request is recorded (path, headers, body) in :attr:`requests`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Self

import anyio
import attrs
from aiohttp import web

from tlm.testing.replies import (
    Reply,
    anthropic_message,
    anthropic_unauthorized,
    chat_completion,
    unauthorized,
)

__all__ = (
    "ReplyLike",
    "Script",
    "RecordedRequest",
    "FakeOpenAIServer",
    "FakeAnthropicServer",
)

ReplyLike = Reply | Mapping[str, Any] | str
Script = Callable[[dict[str, Any]], ReplyLike | Awaitable[ReplyLike]] | Iterable[ReplyLike]
_HANG_LIMIT_S = 60.0


@attrs.frozen
class RecordedRequest:
    """One request the fake server received."""

    path: str
    headers: Mapping[str, str]
    body: Any


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _prompt_words(body: Mapping[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        if isinstance(message, Mapping):
            content = message.get("content")
            total += _words(content if isinstance(content, str) else json.dumps(content))
    system = body.get("system")
    return total + (_words(system) if isinstance(system, str) else 0)


def _default_vector(text: str, dims: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b - 127.5 for b in digest[:dims]]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


class _FakeServer:
    """The shared machinery: socket, script, faults, recording."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        latency_s: float = 0.0,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        self.latency_s = latency_s
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._handler: Callable[[dict[str, Any]], ReplyLike | Awaitable[ReplyLike]] | None = None
        self._queue: deque[ReplyLike] = deque()
        if callable(script):
            self._handler = script
        elif script is not None:
            self._queue.extend(script)
        self._runner: web.AppRunner | None = None
        self._closing = anyio.Event()
        self._port: int | None = None
        self._bind_port = port

    # -- lifecycle ---------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        if self._port is None:
            raise RuntimeError("the fake server is not running; use `async with`")
        return f"http://127.0.0.1:{self._port}"

    async def __aenter__(self) -> Self:
        app = web.Application()
        self._routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._bind_port)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- scripting ---------------------------------------------------------------------------

    def push(self, *replies: ReplyLike) -> None:
        """Append replies to the script's queue."""
        self._queue.extend(replies)

    async def _next_reply(self, body: dict[str, Any]) -> ReplyLike | None:
        if self._queue:
            return self._queue.popleft()
        if self._handler is not None:
            reply = self._handler(body)
            if inspect.isawaitable(reply):
                reply = await reply
            return reply
        return None

    async def _send(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        delay = self.latency_s + reply.delay_s
        if delay > 0:
            await anyio.sleep(delay)
        if reply.action == "hang":
            with anyio.move_on_after(_HANG_LIMIT_S):
                await self._closing.wait()
            return web.Response(status=504)
        transport = request.transport
        if reply.action == "reset":
            if transport is not None:
                transport.abort()
            return web.Response(status=204)
        data = reply.encoded()
        headers = {"Content-Type": "application/json", **reply.headers}
        if reply.action == "truncate":
            response = web.StreamResponse(status=reply.status, headers=headers)
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            if transport is not None:
                transport.close()
            return response
        return web.Response(status=reply.status, body=data, headers=headers)

    async def _record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        self.requests.append(RecordedRequest(request.path, dict(request.headers), body))
        return body if isinstance(body, dict) else {"_body": body}

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies received, in order."""
        return [r.body for r in self.requests]


class FakeOpenAIServer(_FakeServer):
    """An OpenAI-compatible server: ``/v1/chat/completions`` and ``/v1/embeddings``.

    With ``api_key`` set, requests without ``Authorization: Bearer <api_key>`` get OpenAI's real
    401 body. Embeddings come from ``embed`` (default: a deterministic 8-dimensional vector per
    text), unless :meth:`push_embeddings` queued replies.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        latency_s: float = 0.0,
        api_key: str | None = None,
        embed: Callable[[str], Sequence[float]] | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(script, latency_s=latency_s, api_key=api_key, port=port)
        self._embed = embed or _default_vector
        self._embedding_queue: deque[ReplyLike] = deque()

    @property
    def base_url(self) -> str:
        """The API root to give a client, ending in ``/v1``."""
        return f"{self.root_url}/v1"

    def push_embeddings(self, *replies: ReplyLike) -> None:
        """Queue replies for ``/v1/embeddings`` (faults, or whole bodies)."""
        self._embedding_queue.extend(replies)

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)

    def _unauthorized(self, request: web.Request) -> Reply | None:
        if self.api_key is None:
            return None
        given = request.headers.get("Authorization", "")
        if given == f"Bearer {self.api_key}":
            return None
        return unauthorized(given.removeprefix("Bearer "))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        denied = self._unauthorized(request)
        if denied is not None:
            return await self._send(request, denied)
        reply = await self._next_reply(body)
        if reply is None:
            reply = _last_user_text(body)
        return await self._send(request, self._as_reply(reply, body))

    def _as_reply(self, reply: ReplyLike, body: Mapping[str, Any]) -> Reply:
        if isinstance(reply, Reply):
            return reply
        if isinstance(reply, str):
            return Reply(
                body=chat_completion(
                    reply,
                    model=str(body.get("model", "fake-model")),
                    prompt_tokens=_prompt_words(body),
                )
            )
        return Reply(body=dict(reply))

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        denied = self._unauthorized(request)
        if denied is not None:
            return await self._send(request, denied)
        if self._embedding_queue:
            queued = self._embedding_queue.popleft()
            return await self._send(request, self._as_reply(queued, body))
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        tokens = sum(_words(str(t)) for t in texts)
        payload = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": list(self._embed(str(t)))}
                for i, t in enumerate(texts)
            ],
            "model": str(body.get("model", "fake-embedding")),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return await self._send(request, Reply(body=payload))


class FakeAnthropicServer(_FakeServer):
    """An Anthropic Messages API server: ``/v1/messages``.

    :attr:`base_url` has no ``/v1`` (as Anthropic's SDK expects). With ``api_key`` set, a request
    must carry it as ``x-api-key`` or ``Authorization: Bearer`` (newer SDKs). A string reply to a
    request that forces a tool is parsed as JSON and sent as that tool's ``tool_use`` input.
    """

    @property
    def base_url(self) -> str:
        """The API root to give a client (without ``/v1``)."""
        return self.root_url

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if self.api_key is not None and self.api_key not in (
            request.headers.get("x-api-key"),
            request.headers.get("Authorization", "").removeprefix("Bearer "),
        ):
            return await self._send(request, anthropic_unauthorized())
        reply = await self._next_reply(body)
        if reply is None:
            reply = _last_user_text(body)
        return await self._send(request, self._as_reply(reply, body))

    def _as_reply(self, reply: ReplyLike, body: Mapping[str, Any]) -> Reply:
        if isinstance(reply, Reply):
            return reply
        if not isinstance(reply, str):
            return Reply(body=dict(reply))
        model = str(body.get("model", "claude-fake"))
        prompt = _prompt_words(body)
        choice = body.get("tool_choice")
        if isinstance(choice, Mapping) and choice.get("type") == "tool":
            try:
                value = json.loads(reply)
            except ValueError:
                value = None
            if value is not None:
                tool_input = value if isinstance(value, dict) else {"value": value}
                return Reply(
                    body=anthropic_message(
                        tool_input=tool_input,
                        tool_name=str(choice.get("name")),
                        model=model,
                        input_tokens=prompt,
                    )
                )
        return Reply(body=anthropic_message(reply, model=model, input_tokens=prompt))
