"""Test doubles for TLM: fake model servers on real sockets, in-process fake providers.

Nothing here runs on import; servers start under ``async with``.
"""

from tlm.testing.batch_servers import FakeAnthropicBatchServer, FakeBatch, FakeOpenAIBatchServer
from tlm.testing.providers import Answer, FakeProvider, Handler, ScriptedModels, ScriptedProvider
from tlm.testing.replies import (
    Reply,
    anthropic_error,
    anthropic_message,
    anthropic_rate_limited,
    anthropic_unauthorized,
    chat_completion,
    context_length_exceeded,
    hang,
    malformed,
    openai_error,
    overloaded,
    prompt_too_long,
    rate_limited,
    reset,
    server_error,
    truncated,
    unauthorized,
)
from tlm.testing.servers import (
    FakeAnthropicServer,
    FakeOpenAIServer,
    RecordedRequest,
    ReplyLike,
    Script,
)

__all__ = (
    "FakeOpenAIServer",
    "FakeAnthropicServer",
    "FakeOpenAIBatchServer",
    "FakeAnthropicBatchServer",
    "FakeBatch",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "Script",
    "FakeProvider",
    "ScriptedProvider",
    "ScriptedModels",
    "Answer",
    "Handler",
    "chat_completion",
    "openai_error",
    "rate_limited",
    "server_error",
    "unauthorized",
    "context_length_exceeded",
    "hang",
    "reset",
    "truncated",
    "malformed",
    "anthropic_message",
    "anthropic_error",
    "anthropic_rate_limited",
    "anthropic_unauthorized",
    "overloaded",
    "prompt_too_long",
)
