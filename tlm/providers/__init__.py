"""Model providers: the protocol, wire-format adapters, retries and rate limits."""

from tlm.providers.base import (
    ChatRequest,
    ChatResponse,
    EmbeddingProvider,
    EmbeddingResponse,
    Message,
    Provider,
    Usage,
)

__all__ = (
    "ChatRequest",
    "ChatResponse",
    "EmbeddingProvider",
    "EmbeddingResponse",
    "Message",
    "Provider",
    "Usage",
)
