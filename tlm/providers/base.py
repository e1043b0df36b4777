"""The provider protocol: one chat request in, one chat response out, usage counted.

Adapters (OpenAI-compatible, Anthropic, the embedded local model) implement :class:`Provider`;
wrappers (retries, rate limits) are providers that wrap a provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from tlm.usage import Usage

__all__ = (
    "Message",
    "ChatRequest",
    "Usage",
    "ChatResponse",
    "EmbeddingResponse",
    "Provider",
    "EmbeddingProvider",
)

Role = Literal["system", "user", "assistant"]


@attrs.frozen
class Message:
    """One chat message."""

    role: Role
    content: str


@attrs.frozen
class ChatRequest:
    """A chat completion request, independent of any wire format."""

    model: str
    """The catalog model id (the adapter maps it to the provider's own model name)."""
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    output_schema: Mapping[str, Any] | None = None
    """When set, ask for JSON matching this schema (structured output) and parse the reply."""
    timeout_s: float | None = None
    """Per-call timeout; the caller's remaining deadline when it has one."""
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    """Provider-specific body fields, passed through unchanged (e.g. ``cache_prompt``)."""

    @classmethod
    def from_prompt(
        cls, model: str, prompt: str, *, system: str | None = None, **kwargs: Any
    ) -> ChatRequest:
        """A request with an optional system message and one user message."""
        messages: list[Message] = []
        if system:
            messages.append(Message("system", system))
        messages.append(Message("user", prompt))
        return cls(model=model, messages=tuple(messages), **kwargs)


@attrs.frozen
class ChatResponse:
    """A provider's answer to a :class:`ChatRequest`."""

    text: str
    model: str
    """The model id the provider says answered (may differ from the requested one)."""
    provider: str
    finish_reason: str | None = None
    usage: Usage = attrs.field(factory=Usage)
    response_id: str | None = None
    latency_s: float = 0.0
    parsed: Any = None
    """The reply parsed as JSON when the request asked for structured output and it parsed."""
    cost_usd: float = 0.0
    """Cost of this call from the catalog's prices (0 when the model is free or unknown)."""
    attempts: int = 1
    """Attempts made to get this response, retries included."""


@attrs.frozen
class EmbeddingResponse:
    """Embeddings of several texts, in input order."""

    vectors: tuple[tuple[float, ...], ...]
    model: str
    usage: Usage = attrs.field(factory=Usage)
    cost_usd: float = 0.0


@runtime_checkable
class Provider(Protocol):
    """Anything that answers chat requests. Implementations need not inherit from this."""

    name: str

    async def complete(self, request: ChatRequest, /) -> ChatResponse:
        """Send one request and return its response, or raise :class:`tlm.errors.ProviderError`."""
        ...

    async def aclose(self) -> None:
        """Release connections; must release even when a graceful close fails."""
        ...


@runtime_checkable
class EmbeddingProvider(Protocol):
    """A provider that can embed texts."""

    name: str

    async def embed(self, model: str, texts: Sequence[str], /) -> EmbeddingResponse:
        """Embed ``texts`` with ``model``."""
        ...
