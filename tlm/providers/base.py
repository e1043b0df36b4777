"""The provider protocol: one chat request in, one chat response out, usage counted.

Adapters (OpenAI-compatible, Anthropic, the embedded local model) implement :class:`Provider`;
wrappers (retries, rate limits) are providers that wrap a provider.

Adapters do not price: a response carries its :class:`Usage` and the ``prices`` of the model that
answered (its catalog card), and ``cost_usd`` is :func:`tlm.pricing.price` of the two — so a
direct provider call still reads its cost. The engine fixes each call's cost once, for the usage
it bills (``attrs.evolve(response, cost_usd=...)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from tlm.pricing import Prices, price
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
    fixed_cost_usd: float | None = attrs.field(default=None, alias="cost_usd")
    """The cost as priced by the engine (``cost_usd=`` at construction); ``None``: priced from
    ``usage`` and ``prices``."""
    attempts: int = 1
    """Attempts made to get this response, retries included."""
    prices: Prices | None = attrs.field(default=None, eq=False, repr=False)
    """The answering model's prices (its catalog card), set by the adapter."""

    @property
    def cost_usd(self) -> float:
        """Cost of this call: as the engine priced it, else :func:`tlm.pricing.price` of
        ``usage`` at ``prices`` (0 when the model is free or unknown)."""
        if self.fixed_cost_usd is not None:
            return self.fixed_cost_usd
        return price(self.prices, self.usage)


@attrs.frozen
class EmbeddingResponse:
    """Embeddings of several texts, in input order."""

    vectors: tuple[tuple[float, ...], ...]
    model: str
    usage: Usage = attrs.field(factory=Usage)
    fixed_cost_usd: float | None = attrs.field(default=None, alias="cost_usd")
    """The cost given at construction (``cost_usd=``); ``None``: priced from ``usage``."""
    prices: Prices | None = attrs.field(default=None, eq=False, repr=False)
    """The embedding model's prices (its catalog card), set by the adapter."""

    @property
    def cost_usd(self) -> float:
        """Cost of this call: :func:`tlm.pricing.price` of ``usage`` at ``prices``, unless one
        was given."""
        if self.fixed_cost_usd is not None:
            return self.fixed_cost_usd
        return price(self.prices, self.usage)


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
