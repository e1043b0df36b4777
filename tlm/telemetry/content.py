"""Message content in the GenAI conventions' JSON shapes (input/output messages, instructions).

``gen_ai.input.messages`` is a list of ``{"role", "parts": [{"type": "text", "content"}]}``,
``gen_ai.output.messages`` adds each message's ``finish_reason`` and ``gen_ai.system_instructions``
is a list of parts. On spans they are JSON strings. Recorded only when content capture is on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tlm.telemetry.redact import plain_json

if TYPE_CHECKING:
    from tlm.providers.base import Message

__all__ = ("input_messages", "output_messages", "FINISH_REASONS")

FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}
"""TLM's (OpenAI's) finish reasons that the conventions spell differently."""


def _part(text: str) -> dict[str, str]:
    return {"type": "text", "content": text}


def input_messages(messages: Sequence[Message], *, system_separate: bool) -> tuple[str, str | None]:
    """``(gen_ai.input.messages, gen_ai.system_instructions or None)`` as JSON strings.

    With ``system_separate`` (an API that takes the system prompt apart, like Anthropic's) the
    system messages become the instructions; otherwise they stay in the chat history.
    """
    history: list[dict[str, object]] = []
    system: list[dict[str, str]] = []
    for message in messages:
        if system_separate and message.role == "system":
            system.append(_part(message.content))
        else:
            history.append({"role": message.role, "parts": [_part(message.content)]})
    return plain_json(history), (plain_json(system) if system else None)


def output_messages(text: str, finish_reason: str | None) -> str:
    """``gen_ai.output.messages`` for one assistant reply, as a JSON string."""
    reason = FINISH_REASONS.get(finish_reason or "stop", finish_reason or "stop")
    return plain_json([{"role": "assistant", "parts": [_part(text)], "finish_reason": reason}])
