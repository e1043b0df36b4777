"""In-process providers for unit tests: a function, or a script of replies and errors.

``FakeProvider(handler)`` calls ``handler(request)`` (sync or async); ``ScriptedProvider(items)``
answers with the items in order; ``ScriptedModels(handlers)`` answers each model from its own
handler (``"*"`` for any other) and notes which calls completed and which were cancelled.
An answer may be a :class:`ChatResponse`, a string (the reply text; parsed as JSON when the
request asks for structured output) or an exception, which is raised (so ``RateLimited(...)``
scripts a failure). Usage is a rough word count unless fixed; cost comes from the catalog when
one is given.
"""

from __future__ import annotations

import inspect
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence

import anyio
import attrs

from tlm.catalog import Catalog
from tlm.errors import ConfigurationError
from tlm.json_reply import parse_json_reply
from tlm.providers.base import ChatRequest, ChatResponse, EmbeddingResponse, Usage

__all__ = ("Answer", "Handler", "FakeProvider", "ScriptedProvider", "ScriptedModels")

Answer = ChatResponse | str | BaseException
Handler = Callable[[ChatRequest], Answer | Awaitable[Answer]]


class FakeProvider:
    """A :class:`~tlm.providers.base.Provider` whose answers come from ``handler``."""

    def __init__(
        self,
        handler: Handler,
        *,
        name: str = "fake",
        catalog: Catalog | None = None,
        usage: Usage | None = None,
    ) -> None:
        self.name = name
        self.catalog = catalog
        self.usage = usage
        """Usage reported for every reply; ``None`` counts words."""
        self.requests: list[ChatRequest] = []
        self.closed = False
        self._handler = handler

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def complete(self, request: ChatRequest, /) -> ChatResponse:
        """Record ``request`` and answer it from the handler."""
        if self.closed:
            raise ConfigurationError(f"provider {self.name!r} is closed")
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, ChatResponse):
            return answer
        usage = self.usage or Usage(
            input_tokens=sum(len(m.content.split()) for m in request.messages),
            output_tokens=max(1, len(answer.split())),
        )
        card = None
        if self.catalog is not None and request.model in self.catalog:
            card = self.catalog.get(request.model)
        return ChatResponse(
            text=answer,
            model=request.model,
            provider=self.name,
            finish_reason="stop",
            usage=usage,
            response_id=f"fake-{len(self.requests)}",
            parsed=parse_json_reply(answer).value if request.output_schema is not None else None,
            prices=card,
        )

    async def embed(self, model: str, texts: Sequence[str], /) -> EmbeddingResponse:
        """Deterministic bag-of-characters vectors (26 letters), for similarity tests."""
        vectors = []
        for text in texts:
            counts = [0.0] * 26
            for ch in text.lower():
                if "a" <= ch <= "z":
                    counts[ord(ch) - 97] += 1.0
            vectors.append(tuple(counts))
        usage = Usage(input_tokens=sum(len(t.split()) for t in texts))
        return EmbeddingResponse(vectors=tuple(vectors), model=model, usage=usage)

    async def aclose(self) -> None:
        """Mark closed; later calls are refused."""
        self.closed = True


@attrs.define
class _Script:
    items: deque[Answer | Callable[[ChatRequest], Answer]]
    name: str

    def __call__(self, request: ChatRequest) -> Answer:
        if not self.items:
            return AssertionError(
                f"ScriptedProvider {self.name!r} ran out of replies at request "
                f"{json.dumps([m.content for m in request.messages])[:200]}"
            )
        item = self.items.popleft()
        if callable(item) and not isinstance(item, BaseException):
            return item(request)
        return item


class ScriptedProvider(FakeProvider):
    """Answers with ``items`` in order; running out raises ``AssertionError``.

    An item may also be a callable ``(request) -> answer`` for one reply computed from the request.
    """

    def __init__(
        self,
        items: Iterable[Answer | Callable[[ChatRequest], Answer]],
        *,
        name: str = "scripted",
        catalog: Catalog | None = None,
    ) -> None:
        self._script = _Script(deque(items), name)
        super().__init__(self._script, name=name, catalog=catalog)

    def push(self, *items: Answer | Callable[[ChatRequest], Answer]) -> None:
        """Append more replies."""
        self._script.items.extend(items)

    @property
    def remaining(self) -> int:
        """Replies not used yet."""
        return len(self._script.items)


class ScriptedModels(FakeProvider):
    """One provider for several models, each answered by its own handler.

    ``handlers`` maps a model id (or ``"*"`` for any model) to ``(request) -> answer``, sync or
    async, and may be changed between calls. ``completed`` and ``cancelled`` list the models whose
    calls finished or were cancelled, in order. Every reply reports ``usage`` (100 in, 50 out
    unless given).
    """

    def __init__(
        self,
        handlers: dict[str, Handler] | None = None,
        *,
        name: str = "fake",
        catalog: Catalog | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(
            self._answer,
            name=name,
            catalog=catalog,
            usage=usage or Usage(input_tokens=100, output_tokens=50),
        )
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.completed: list[str] = []
        self.cancelled: list[str] = []

    async def _answer(self, request: ChatRequest) -> Answer:
        handler = self.handlers.get(request.model) or self.handlers.get("*")
        if handler is None:
            return AssertionError(f"ScriptedModels has no handler for {request.model!r}")
        try:
            answer = handler(request)
            if inspect.isawaitable(answer):
                answer = await answer
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(request.model)
            raise
        self.completed.append(request.model)
        return answer

    def calls(self, model: str | None = None) -> int:
        """How many requests were made (to ``model``, or to any)."""
        return sum(1 for r in self.requests if model is None or r.model == model)
